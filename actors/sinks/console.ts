/**
 * ConsoleSinkNode: writes messages to stdout or stderr, one per line.
 *
 * @module
 */
import type { Actor, ActorContext } from "../../runtime/actor.ts";
import type { NodeSpec } from "../../runtime/registry.ts";
import { s, type Schema } from "../../runtime/schema.ts";
import type { NodeDef } from "../../runtime/flow.ts";
import { toJsonSafe } from "../../runtime/dead_letter.ts";

/** Config of ConsoleSinkNode. */
export interface ConsoleSinkConfig {
  /** `json`: one compact document per line; `pretty`: indented. @default {"json"} */
  format: "json" | "pretty";
  /** Where to write. @default {"stdout"} */
  stream: "stdout" | "stderr";
}

const consoleConfig: Schema<ConsoleSinkConfig> = s.object({
  format: s.enum(["json", "pretty"] as const, {
    default: "json",
    doc: "json: one compact JSON document per line; pretty: indented.",
  }),
  stream: s.enum(["stdout", "stderr"] as const, { default: "stdout", doc: "Where to write." }),
});

/**
 * Serialises one message for a line-oriented sink; strings are written as they are.
 *
 * @param message The message.
 * @param indent Indentation for pretty output.
 * @returns The line, without a newline.
 * @example One JSON line
 * ```ts
 * import { messageLine } from "./console.ts";
 * console.assert(messageLine({ a: 1 }) === '{"a":1}');
 * ```
 */
export function messageLine(message: unknown, indent?: number): string {
  if (typeof message === "string") return message;
  try {
    return JSON.stringify(message, undefined, indent) ?? "null";
  } catch {
    // BigInt, cycles: write a safe form rather than lose the message.
    return JSON.stringify(toJsonSafe(message), undefined, indent);
  }
}

class ConsoleSinkActor implements Actor {
  #config: ConsoleSinkConfig;
  #encoder = new TextEncoder();
  constructor(config: ConsoleSinkConfig) {
    this.#config = config;
  }
  async handle(batch: unknown[], _ctx: ActorContext): Promise<void> {
    const indent = this.#config.format === "pretty" ? 2 : undefined;
    let text = "";
    for (const m of batch) text += messageLine(m, indent) + "\n";
    const out = this.#config.stream === "stderr" ? Deno.stderr : Deno.stdout;
    const bytes = this.#encoder.encode(text);
    let written = 0;
    while (written < bytes.length) written += await out.write(bytes.subarray(written));
  }
}

/** The ConsoleSinkNode type. */
export const ConsoleSinkNode: NodeSpec<ConsoleSinkConfig> = {
  type: "ConsoleSinkNode",
  kind: "sink",
  description: "Writes each message to stdout (or stderr) as a line of JSON.",
  config: consoleConfig,
  create: (config) => new ConsoleSinkActor(config),
};

/**
 * A typed ConsoleSinkNode.
 *
 * @param config The node's config.
 * @returns A node definition accepting anything.
 * @example A console sink for the fluent builder
 * ```ts
 * import { consoleSink } from "./console.ts";
 * console.assert(consoleSink().type === "ConsoleSinkNode");
 * ```
 */
export function consoleSink(config: Partial<ConsoleSinkConfig> = {}): NodeDef<unknown, never> {
  return { type: "ConsoleSinkNode", config };
}
