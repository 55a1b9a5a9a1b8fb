/**
 * The typed fluent builder for TypeScript workflows: connecting an output of
 * type A to an input of type B is a compile error unless A is assignable to B.
 *
 * @module
 */
import type { SupervisionConfig } from "./supervisor.ts";
import {
  type MailboxConfig,
  type RunOptions,
  type RunReport,
  Workflow,
  type WorkflowOptions,
} from "./workflow.ts";

/**
 * A node type with its config, typed by what it accepts and emits.
 *
 * @typeParam In What the node accepts.
 * @typeParam Out What the node emits.
 */
export interface NodeDef<In, Out> {
  /** Registered type name. */
  readonly type: string;
  /** The config. */
  readonly config: unknown;
  /** Phantom: the input type (never set at run time). */
  readonly __in?: (message: In) => void;
  /** Phantom: the output type (never set at run time). */
  readonly __out?: Out;
}

/** Something that emits `Out` (a node's `out` port or a named port). */
export interface OutputRef<Out> {
  /** Node id. */
  readonly id: string;
  /** Port name. */
  readonly port: string;
  /** Phantom output type. */
  readonly __out?: Out;
}

/** Something that accepts `In`. */
export interface InputRef<In> {
  /** Node id. */
  readonly id: string;
  /** Phantom input type. */
  readonly __in?: (message: In) => void;
}

/** A node added to a {@linkcode Flow}. */
export interface NodeRef<In, Out> extends OutputRef<Out>, InputRef<In> {
  /**
   * A named output port of this node (router destinations, `rejected`, `late`).
   *
   * @typeParam T What that port emits. @default {Out}
   */
  output<T = Out>(port: string): OutputRef<T>;
}

/** Per-node options of {@linkcode Flow.add}. */
export interface AddOptions {
  /** Mailbox settings. */
  mailbox?: MailboxConfig;
  /** Supervision settings. */
  supervision?: SupervisionConfig;
}

/**
 * A typed workflow builder.
 *
 * @example A typed two-node pipeline
 * ```ts
 * import { Flow, Registry } from "../mod.ts";
 * import { builtins, generator, map } from "../actors/mod.ts";
 * import { VirtualClock } from "./clock.ts";
 * const flow = new Flow({ registry: new Registry(builtins), clock: new VirtualClock(0) });
 * const events = flow.add("events", generator({ message_count: 5, start_time: 0 }));
 * const values = flow.add("values", map((e: { sequence: number }) => e.sequence));
 * flow.connect(events, values);
 * const report = await flow.run();
 * console.assert(report.status === "completed");
 * ```
 */
export class Flow {
  /** The untyped workflow underneath. */
  readonly workflow: Workflow;
  /**
   * Creates an empty flow.
   *
   * @param options As for {@linkcode Workflow}.
   */
  constructor(options: WorkflowOptions) {
    this.workflow = new Workflow(options);
  }
  /**
   * Adds a node.
   *
   * @typeParam In What it accepts.
   * @typeParam Out What it emits.
   * @param id A unique id.
   * @param def The node definition.
   * @param options Mailbox and supervision.
   * @returns A typed reference to connect.
   * @throws {TypeError} When the flow is running.
   */
  add<In, Out>(id: string, def: NodeDef<In, Out>, options: AddOptions = {}): NodeRef<In, Out> {
    this.workflow.addNode(def.type, id, def.config, options);
    return {
      id,
      port: "out",
      output: <T = Out>(port: string): OutputRef<T> => ({ id, port }),
    };
  }
  /**
   * Connects an output to an input whose type accepts it.
   *
   * @typeParam T The message type.
   * @param from An output (a node or `node.output("port")`).
   * @param to A node accepting `T`.
   * @returns This flow.
   * @throws {TypeError} When the flow is running.
   */
  connect<T>(from: OutputRef<T>, to: InputRef<T>): this {
    this.workflow.addConnection(from.id, to.id, from.port, "in");
    return this;
  }
  /**
   * Runs the workflow.
   *
   * @param options As for {@linkcode Workflow.run}.
   * @returns The report.
   * @throws {ConfigError} When the workflow is invalid.
   */
  run(options?: RunOptions): Promise<RunReport> {
    return this.workflow.run(options);
  }
}

/**
 * A node definition of any registered type, with the types you state.
 *
 * @typeParam In What it accepts.
 * @typeParam Out What it emits.
 * @param type Registered type name.
 * @param config The config.
 * @returns The definition.
 * @example Declaring the types of a YAML-style node
 * ```ts
 * import { node } from "./flow.ts";
 * const filter = node<{ a: number }, { a: number }>("EventFilterNode", {});
 * console.assert(filter.type === "EventFilterNode");
 * ```
 */
export function node<In = unknown, Out = unknown>(
  type: string,
  config: unknown = {},
): NodeDef<In, Out> {
  return { type, config };
}
