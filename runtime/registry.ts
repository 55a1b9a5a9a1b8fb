/**
 * Node types and their config specs. Registration is explicit: a
 * {@linkcode Registry} is built from a list of specs, so importing a module
 * has no side effects.
 *
 * @module
 */
import type { Actor } from "./actor.ts";
import type { Clock } from "./clock.ts";
import type { ConfigIssue } from "./errors.ts";
import type { OverflowPolicy } from "./mailbox.ts";
import type { Schema, SchemaInfo } from "./schema.ts";
import type { SupervisionOptions } from "./supervisor.ts";
import { suggest } from "./suggest.ts";

/** Whether a node produces, transforms or consumes messages. */
export type NodeKind = "source" | "processor" | "sink";

/** What a node's factory is given besides its config. */
export interface NodeEnvironment {
  /** The node id. */
  id: string;
  /** The workflow's clock. */
  clock: Clock;
  /** Directory that relative paths in the config resolve against. */
  baseDir: string;
  /**
   * State that survives restarts of this node (a generator's position, a
   * client's subscription), empty at the start of a run.
   */
  persistent: Map<string, unknown>;
}

/** Mailbox settings a node type derives from its own config (for example `max_queue_size`). */
export interface MailboxSettings {
  /** Capacity. */
  capacity?: number;
  /** Overflow policy. */
  overflow?: OverflowPolicy;
  /** Fraction admitted by `sample`. */
  sampleRate?: number;
}

/**
 * A node type: its name, config schema, ports and factory. Every connector
 * is one self-contained module exporting one of these.
 *
 * @typeParam C The parsed config.
 */
// deno-lint-ignore no-explicit-any
export interface NodeSpec<C = any> {
  /** Type name used in workflows (`EventFilterNode`). */
  type: string;
  /** Source, processor or sink. */
  kind: NodeKind;
  /** One paragraph for `sluice nodes`. */
  description: string;
  /** The config schema. */
  config: Schema<C>;
  /** Input ports. @default {["in"] for processors and sinks, [] for sources} */
  inputs?: readonly string[];
  /** Output ports, possibly derived from the config (router destinations). */
  outputs?: readonly string[] | ((config: C) => readonly string[]);
  /** Deno permissions the node needs, for docs and the CLI. */
  permissions?: readonly string[];
  /** Cross-field checks beyond the schema; push issues with paths under `path`. */
  validate?(config: C, path: string, issues: ConfigIssue[]): void;
  /** Supervision defaults derived from the config (reconnect settings). */
  supervision?(config: C): Partial<SupervisionOptions>;
  /** Mailbox defaults derived from the config (`max_queue_size`, `backpressure_strategy`). */
  mailbox?(config: C): MailboxSettings;
  /** Creates a fresh actor (called again on every restart). */
  create(config: C, env: NodeEnvironment): Actor;
}

/**
 * Resolves a spec's input ports.
 *
 * @param spec The node type.
 * @returns The input port names.
 * @example A sink's default input port
 * ```ts
 * import { inputPorts } from "./registry.ts";
 * import { s } from "./schema.ts";
 * const spec = { type: "T", kind: "sink" as const, description: "", config: s.any(), create: () => ({}) };
 * console.assert(inputPorts(spec).join() === "in");
 * ```
 */
export function inputPorts(spec: NodeSpec): readonly string[] {
  return spec.inputs ?? (spec.kind === "source" ? [] : ["in"]);
}

/**
 * Resolves a spec's output ports for a given config.
 *
 * @param spec The node type.
 * @param config The parsed config.
 * @returns The output port names.
 * @example A processor's default output port
 * ```ts
 * import { outputPorts } from "./registry.ts";
 * import { s } from "./schema.ts";
 * const spec = { type: "T", kind: "processor" as const, description: "", config: s.any(), create: () => ({}) };
 * console.assert(outputPorts(spec, {}).join() === "out");
 * ```
 */
export function outputPorts<C>(spec: NodeSpec<C>, config: C): readonly string[] {
  const outputs = spec.outputs;
  if (typeof outputs === "function") return outputs(config);
  return outputs ?? (spec.kind === "sink" ? [] : ["out"]);
}

/** A node type as `sluice nodes` shows it. */
export interface NodeTypeInfo {
  /** Type name. */
  type: string;
  /** Kind. */
  kind: NodeKind;
  /** Description. */
  description: string;
  /** Config fields. */
  config: SchemaInfo;
  /** Input ports. */
  inputs: readonly string[];
  /** Static output ports, or a note when they come from the config. */
  outputs: readonly string[] | string;
  /** Deno permissions. */
  permissions: readonly string[];
}

/**
 * The node types a workflow may use.
 *
 * @example Registering a node type
 * ```ts
 * import { Registry } from "./registry.ts";
 * import { s } from "./schema.ts";
 * const registry = new Registry([
 *   { type: "Nothing", kind: "sink", description: "Drops nothing.", config: s.object({}), create: () => ({}) },
 * ]);
 * console.assert(registry.has("Nothing"));
 * ```
 */
export class Registry {
  #specs = new Map<string, NodeSpec>();
  /**
   * Creates a registry holding the given node types.
   *
   * @param specs The node types to register.
   * @throws {TypeError} When two specs share a type name.
   */
  constructor(specs: Iterable<NodeSpec> = []) {
    for (const spec of specs) this.register(spec);
  }
  /**
   * Adds a node type.
   *
   * @param spec The node type.
   * @returns This registry.
   * @throws {TypeError} When the type name is already registered.
   */
  register(spec: NodeSpec): this {
    if (this.#specs.has(spec.type)) {
      throw new TypeError(`node type "${spec.type}" is already registered`);
    }
    this.#specs.set(spec.type, spec);
    return this;
  }
  /**
   * Whether a type is registered.
   *
   * @param type The type name.
   * @returns `true` when registered.
   */
  has(type: string): boolean {
    return this.#specs.has(type);
  }
  /**
   * The spec of a type.
   *
   * @param type The type name.
   * @returns The spec, or `undefined` when not registered.
   */
  get(type: string): NodeSpec | undefined {
    return this.#specs.get(type);
  }
  /**
   * Registered type names.
   *
   * @returns The names, sorted.
   */
  types(): string[] {
    return [...this.#specs.keys()].sort();
  }
  /**
   * A "did you mean" hint for an unknown type.
   *
   * @param type The unknown type name.
   * @returns The closest registered name, or `undefined` when none is close.
   */
  suggest(type: string): string | undefined {
    return suggest(type, [...this.#specs.keys()]);
  }
  /**
   * Docs of a type, as `sluice nodes` shows them.
   *
   * @param type The type name.
   * @returns The docs, or `undefined` when not registered.
   */
  info(type: string): NodeTypeInfo | undefined {
    const spec = this.#specs.get(type);
    if (!spec) return undefined;
    return {
      type: spec.type,
      kind: spec.kind,
      description: spec.description,
      config: spec.config.info(),
      inputs: inputPorts(spec),
      outputs: typeof spec.outputs === "function"
        ? "from the config"
        : outputPorts(spec, undefined),
      permissions: spec.permissions ?? [],
    };
  }
  /**
   * A copy of this registry with more types; this one is unchanged.
   *
   * @param specs The node types to add.
   * @returns The new registry.
   * @throws {TypeError} When a type name is already registered.
   */
  with(...specs: NodeSpec[]): Registry {
    return new Registry([...this.#specs.values(), ...specs]);
  }
}
