/**
 * FunctionNode: a TypeScript function per message or per batch.
 *
 * @module
 */
import type { Actor, ActorContext } from "../../runtime/actor.ts";
import type { NodeSpec } from "../../runtime/registry.ts";
import { s } from "../../runtime/schema.ts";
import type { NodeDef } from "../../runtime/flow.ts";
import type { ConfigIssue } from "../../runtime/errors.ts";

/** A per-message function: its result, unless `undefined` or `null`, is emitted on `out`. */
export type MessageFunction<In, Out> = (
  message: In,
  ctx: ActorContext<Out>,
) => Out | undefined | null | void | Promise<Out | undefined | null | void>;

/** A per-batch function: every element of its result is emitted on `out`. */
export type BatchFunction<In, Out> = (
  messages: In[],
  ctx: ActorContext<Out>,
) => Out[] | undefined | void | Promise<Out[] | undefined | void>;

/** Config of FunctionNode (TypeScript only). */
export interface FunctionConfig<In = unknown, Out = unknown> {
  /** Called per message. */
  fn?: MessageFunction<In, Out>;
  /** Called per batch. */
  batch?: BatchFunction<In, Out>;
}

const functionConfig = s.object({
  fn: s.func<MessageFunction<unknown, unknown>>({
    optional: true,
    doc: "Called per message; a result other than undefined/null is emitted.",
  }),
  batch: s.func<BatchFunction<unknown, unknown>>({
    optional: true,
    doc: "Called per batch; every element of the result is emitted.",
  }),
});

class MessageFunctionActor implements Actor {
  map: (message: unknown, ctx: ActorContext) => unknown;
  constructor(fn: MessageFunction<unknown, unknown>) {
    // The user's function is the actor's map, called directly on the hot path.
    this.map = fn as (message: unknown, ctx: ActorContext) => unknown;
  }
}

class BatchFunctionActor implements Actor {
  #fn: BatchFunction<unknown, unknown>;
  constructor(fn: BatchFunction<unknown, unknown>) {
    this.#fn = fn;
  }
  handle(batch: unknown[], ctx: ActorContext): void | Promise<void> {
    const result = this.#fn(batch, ctx);
    // Synchronous functions stay synchronous: no promise per batch.
    if (result instanceof Promise) return result.then((r) => emitAll(r, ctx));
    emitAll(result, ctx);
  }
}

function emitAll(result: Iterable<unknown> | void | undefined | null, ctx: ActorContext): void {
  if (result) { for (const r of result) ctx.emit(r); }
}

/** The FunctionNode type. */
export const FunctionNode: NodeSpec<FunctionConfig> = {
  type: "FunctionNode",
  kind: "processor",
  description:
    "Runs a TypeScript function per message (fn) or per batch (batch). A thrown error is a message-level failure: retried, then dead-lettered. TypeScript workflows only.",
  config: functionConfig,
  validate(config, path, issues: ConfigIssue[]) {
    if (!config.fn === !config.batch) {
      issues.push({ path, message: "set exactly one of fn and batch" });
    }
  },
  create: (config) =>
    config.fn ? new MessageFunctionActor(config.fn) : new BatchFunctionActor(config.batch!),
};

/**
 * A typed FunctionNode calling `fn` per message.
 *
 * @typeParam In The input type.
 * @typeParam Out The output type.
 * @param fn The function.
 * @returns A node definition.
 * @example Doubling numbers
 * ```ts
 * import { map } from "./function.ts";
 * const double = map((n: number) => n * 2);
 * console.assert(double.type === "FunctionNode");
 * ```
 */
export function map<In, Out>(
  fn: (
    message: In,
    ctx: ActorContext<Out>,
  ) => Out | undefined | null | Promise<Out | undefined | null>,
): NodeDef<In, Out> {
  return { type: "FunctionNode", config: { fn } };
}

/**
 * A typed FunctionNode calling `fn` per batch.
 *
 * @typeParam In The input type.
 * @typeParam Out The output type.
 * @param fn The function.
 * @returns A node definition.
 * @example Summing each batch
 * ```ts
 * import { mapBatch } from "./function.ts";
 * const sums = mapBatch((ns: number[]) => [ns.reduce((a, b) => a + b, 0)]);
 * console.assert(sums.type === "FunctionNode");
 * ```
 */
export function mapBatch<In, Out>(
  fn: (messages: In[], ctx: ActorContext<Out>) => Out[] | Promise<Out[]>,
): NodeDef<In, Out> {
  return { type: "FunctionNode", config: { batch: fn } };
}
