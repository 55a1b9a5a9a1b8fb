/**
 * `sluice nodes [TYPE]`: the registered node types, and one type's config
 * keys with their types, defaults and docs, ports and permissions.
 *
 * @module
 */
import { type NodeTypeInfo, Registry } from "../runtime/registry.ts";
import type { SchemaInfo } from "../runtime/schema.ts";
import { builtins } from "../actors/mod.ts";
import { type CommandIo, EXIT, parseCommandArgs, stdio } from "./run.ts";

/** Help text of `sluice nodes`. */
export const NODES_HELP = `Usage: sluice nodes [TYPE] [options]

Without TYPE: lists the node types with their kind and a one-line
description. With TYPE: the type's description, input and output ports,
the Deno permissions it needs, and every config key with its type, default
and documentation.

Options:
  --json       Print the JSON Schema of the config (of every type without TYPE).
  -h, --help   This help.

Exit codes: 0 ok, 2 unknown type or bad usage.`;

/** Options of {@linkcode nodesCommand}. */
export interface NodesCommandOptions {
  /** The node types. @default {new Registry(builtins)} */
  registry?: Registry;
}

/**
 * Runs `sluice nodes`.
 *
 * @param args Arguments after `nodes`.
 * @param io Output streams.
 * @param options The registry.
 * @returns The exit code.
 * @example Showing one node type
 * ```ts
 * import { nodesCommand } from "./nodes.ts";
 * let out = "";
 * const code = nodesCommand(["GeneratorNode"], { out: (t) => out += t, err: () => {} });
 * console.assert(code === 0 && out.startsWith("GeneratorNode (source)"));
 * ```
 */
export function nodesCommand(
  args: string[],
  io: CommandIo = stdio,
  options: NodesCommandOptions = {},
): number {
  const parsedArgs = parseCommandArgs(
    args,
    {
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    NODES_HELP,
    io,
  );
  if (typeof parsedArgs === "number") return parsedArgs;
  const { values, positionals } = parsedArgs;
  if (positionals.length > 1) {
    io.err(`error: expected at most one node type, got ${positionals.length}\n\n${NODES_HELP}\n`);
    return EXIT.usage;
  }
  const registry = options.registry ?? new Registry(builtins);
  const type = positionals[0];
  if (type === undefined) {
    if (values.json) {
      const all = Object.fromEntries(
        registry.types().map((t) => [t, configJsonSchema(registry, t)]),
      );
      io.out(JSON.stringify(all, null, 2) + "\n");
    } else {
      io.out(nodeList(registry));
    }
    return EXIT.ok;
  }
  const info = registry.info(type);
  if (!info) {
    const hint = registry.suggest(type);
    io.err(
      `error: unknown node type "${type}"${hint ? `; did you mean "${hint}"?` : ""} (known: ${
        registry.types().join(", ")
      })\n`,
    );
    return EXIT.usage;
  }
  io.out(
    values.json ? JSON.stringify(configJsonSchema(registry, type), null, 2) + "\n" : nodeDoc(info),
  );
  return EXIT.ok;
}

/**
 * The JSON Schema of a node type's config, titled with the type.
 *
 * @param registry The registry.
 * @param type A registered type.
 * @returns The schema.
 * @throws {RangeError} When the type is not registered.
 * @example The JSON Schema of a node's config
 * ```ts
 * import { configJsonSchema } from "./nodes.ts";
 * import { Registry } from "../runtime/registry.ts";
 * import { builtins } from "../actors/mod.ts";
 * const schema = configJsonSchema(new Registry(builtins), "FileSinkNode");
 * console.assert(schema.title === "FileSinkNode" && schema.type === "object");
 * ```
 */
export function configJsonSchema(registry: Registry, type: string): Record<string, unknown> {
  const spec = registry.get(type);
  if (!spec) throw new RangeError(`unknown node type "${type}"`);
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    title: type,
    description: spec.description,
    ...spec.config.jsonSchema(),
  };
}

/**
 * The table of node types: name, kind and the first sentence of the description.
 *
 * @param registry The registry.
 * @returns The text, ending with a newline.
 * @example Listing node types
 * ```ts
 * import { nodeList } from "./nodes.ts";
 * import { Registry } from "../runtime/registry.ts";
 * import { s } from "../runtime/schema.ts";
 * const registry = new Registry([
 *   { type: "Drop", kind: "sink", description: "Drops all. Really.", config: s.object({}), create: () => ({}) },
 * ]);
 * console.assert(nodeList(registry).split("\n")[1] === "Drop  sink  Drops all.");
 * ```
 */
export function nodeList(registry: Registry): string {
  const rows = registry.types().map((t) => {
    const info = registry.info(t)!;
    return [t, info.kind, firstSentence(info.description)];
  });
  const header = ["TYPE", "KIND", "DESCRIPTION"];
  const widths = [0, 1].map((i) => Math.max(header[i].length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) =>
    `${r[0].padEnd(widths[0])}  ${r[1].padEnd(widths[1])}  ${r[2]}`.trimEnd();
  return [line(header), ...rows.map(line), "", "Run `sluice nodes <TYPE>` for a type's config."]
    .join("\n") + "\n";
}

/**
 * One node type's documentation: description, ports, permissions and config keys.
 *
 * @param info From `registry.info(type)`.
 * @returns The text, ending with a newline.
 * @example Docs of one node type
 * ```ts
 * import { nodeDoc } from "./nodes.ts";
 * import { Registry } from "../runtime/registry.ts";
 * import { builtins } from "../actors/mod.ts";
 * const text = nodeDoc(new Registry(builtins).info("FileSinkNode")!);
 * console.assert(text.includes("  path    string, required"));
 * ```
 */
export function nodeDoc(info: NodeTypeInfo): string {
  const list = (ports: readonly string[] | string) =>
    typeof ports === "string" ? ports : ports.length > 0 ? ports.join(", ") : "none";
  const lines = [
    `${info.type} (${info.kind})`,
    "",
    ...wrap(info.description, 78).map((l) => `  ${l}`),
    "",
    `inputs:      ${list(info.inputs)}`,
    `outputs:     ${list(info.outputs)}`,
    `permissions: ${info.permissions.length > 0 ? info.permissions.join(" ") : "none"}`,
    "",
  ];
  const fields = info.config.fields;
  if (fields && Object.keys(fields).length > 0) {
    lines.push("config:");
    describeFields(fields, 1, lines);
  } else if (fields) {
    lines.push("config: none");
  } else {
    lines.push(`config: ${info.config.type}${info.config.doc ? ` (${info.config.doc})` : ""}`);
  }
  return lines.join("\n") + "\n";
}

function describeFields(fields: Record<string, SchemaInfo>, depth: number, lines: string[]): void {
  const indent = "  ".repeat(depth);
  const width = Math.max(...Object.keys(fields).map((k) => k.length));
  for (const [name, field] of Object.entries(fields)) {
    lines.push(`${indent}${name.padEnd(width)}  ${fieldSummary(field)}`);
    if (field.doc) {
      for (const l of wrap(field.doc, Math.max(40, 76 - indent.length))) {
        lines.push(`${indent}    ${l}`);
      }
    }
    // Nested objects, and objects inside arrays, list their own keys.
    const nested = field.fields ?? field.items?.fields;
    if (nested && Object.keys(nested).length > 0) describeFields(nested, depth + 2, lines);
  }
}

function fieldSummary(field: SchemaInfo): string {
  if (field.default !== undefined) {
    return `${field.type}, default ${JSON.stringify(field.default) ?? String(field.default)}`;
  }
  return `${field.type}, ${field.optional ? "optional" : "required"}`;
}

function firstSentence(text: string): string {
  const match = text.match(/^.*?[.!?](?=\s|$)/s);
  const sentence = (match ? match[0] : text).replace(/\s+/g, " ");
  return sentence.length > 100 ? sentence.slice(0, 99).trimEnd() + "…" : sentence;
}

function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) out.push(line);
  return out;
}
