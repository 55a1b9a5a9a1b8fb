/**
 * BatchNode: groups messages into batches by size and by time, as the
 * reference guide's real-time pipeline does (`batch_size`, `batch_timeout`,
 * `adaptive_batching`).
 *
 * @module
 */
import type { Actor, ActorContext } from "../../runtime/actor.ts";
import type { ConfigIssue } from "../../runtime/errors.ts";
import type { NodeDef } from "../../runtime/flow.ts";
import { compilePath, type PathGetter } from "../../runtime/path.ts";
import type { NodeSpec } from "../../runtime/registry.ts";
import { s, type Schema } from "../../runtime/schema.ts";
import { detectTimeUnit, fromMs, parseTimestampMs } from "../../runtime/time.ts";

/** Why a batch was emitted. */
export type BatchTrigger = "size" | "timeout" | "drain";

/**
 * One batch, as BatchNode emits it. Field names follow the reference guide's
 * pipeline (`messages`, `count`, `timestamp`, `processing_latency`).
 *
 * @typeParam T The type of the batched messages.
 */
export interface Batch<T = unknown> {
  /** The messages, in arrival order. */
  messages: T[];
  /** `messages.length`. */
  count: number;
  /** Sequence number of the batch: 1 for the node's first batch (kept across restarts). */
  batch_id: number;
  /**
   * Why the batch was cut: `size` (it reached the size in force), `timeout`
   * (`batch_timeout` passed since its first message) or `drain` (the input ended).
   */
  trigger: BatchTrigger;
  /** The size limit in force for this batch (changes under `adaptive_batching`). */
  target_size: number;
  /** When the batch was emitted: clock time, epoch seconds. */
  timestamp: number;
  /**
   * Seconds from the moment the node took the batch's first message to the
   * emit, by the clock. (The guide measures from the previous emit; measuring
   * from the first message is what a consumer waiting for that message sees.)
   */
  processing_latency: number;
  /**
   * Event time of the first message whose `time_field` holds a timestamp
   * (epoch seconds, epoch milliseconds or ISO 8601, given back in the same
   * unit), or `null` when no message has one.
   */
  first_timestamp: number | string | null;
  /** Event time of the last message whose `time_field` holds a timestamp, or `null`. */
  last_timestamp: number | string | null;
}

/** Config of BatchNode (YAML keys, times in seconds). */
export interface BatchConfig {
  /** Messages per batch (the starting size under `adaptive_batching`). @default {100} */
  batch_size: number;
  /** Longest a message waits for its batch to fill, seconds. @default {1} */
  batch_timeout: number;
  /** Adapt the size between `min_batch_size` and `max_batch_size` (see {@linkcode nextBatchSize}). @default {false} */
  adaptive_batching: boolean;
  /** Smallest adaptive size. @default {1} */
  min_batch_size: number;
  /** Largest adaptive size. @default {10000} */
  max_batch_size: number;
  /** Latency the adaptive size aims at, seconds. @default {batch_timeout / 2} */
  target_latency?: number;
  /** Dot path of the event time read for `first_timestamp`/`last_timestamp`. @default {"timestamp"} */
  time_field: string;
}

const batchConfig: Schema<BatchConfig> = s.object({
  batch_size: s.integer({
    min: 1,
    default: 100,
    doc: "Messages per batch; the starting size when adaptive_batching is on.",
  }),
  batch_timeout: s.number({
    greaterThan: 0,
    default: 1,
    doc: "Seconds after a batch's first message when the batch is emitted even if not full.",
  }),
  adaptive_batching: s.boolean({
    default: false,
    doc:
      "Adapt the batch size toward target_latency: halve it when a batch took longer than target_latency, double it when a batch filled by size within half of it.",
  }),
  min_batch_size: s.integer({ min: 1, default: 1, doc: "Smallest adaptive batch size." }),
  max_batch_size: s.integer({ min: 1, default: 10_000, doc: "Largest adaptive batch size." }),
  target_latency: s.number({
    greaterThan: 0,
    optional: true,
    doc: "Seconds from a batch's first message to its emit that adaptive batching aims at. " +
      "Default: half of batch_timeout.",
  }),
  time_field: s.string({
    nonEmpty: true,
    default: "timestamp",
    doc: "Dot path of the event time (epoch s, epoch ms or ISO 8601) for first/last_timestamp.",
  }),
});

/** What {@linkcode nextBatchSize} needs to know about the batch just emitted. */
export interface BatchSizeInput {
  /** The size in force for that batch. */
  size: number;
  /** Why it was emitted. */
  trigger: BatchTrigger;
  /** Its latency, seconds (first message in to emit). */
  latencySeconds: number;
  /** The latency aimed at, seconds. */
  targetLatencySeconds: number;
  /** Smallest allowed size. */
  min: number;
  /** Largest allowed size. */
  max: number;
}

/**
 * The adaptive batching rule: the size for the next batch, given the batch
 * just emitted.
 *
 * - latency above the target: **halve** the size (rounded down), whatever cut
 *   the batch; smaller batches fill, and leave, sooner;
 * - cut by size with latency at most **half** the target: **double** it;
 *   the doubled batch fills in about twice the time, still within the target,
 *   so sizes settle instead of oscillating around it;
 * - otherwise (cut by size between half the target and the target, cut by a
 *   timeout within the target, or by the drain): keep it.
 *
 * The result is clamped to `[min, max]`. Latency is measured on the
 * workflow's clock, so the rule is deterministic under a `VirtualClock`.
 *
 * @param input The batch just emitted and the bounds.
 * @returns The size of the next batch.
 * @example Growing, shrinking and keeping
 * ```ts
 * import { nextBatchSize } from "./batch.ts";
 * const base = { size: 100, targetLatencySeconds: 1, min: 10, max: 1000 };
 * console.assert(nextBatchSize({ ...base, trigger: "size", latencySeconds: 0.2 }) === 200);
 * console.assert(nextBatchSize({ ...base, trigger: "timeout", latencySeconds: 2 }) === 50);
 * console.assert(nextBatchSize({ ...base, trigger: "size", latencySeconds: 0.8 }) === 100);
 * ```
 */
export function nextBatchSize(input: BatchSizeInput): number {
  const { size, trigger, latencySeconds, targetLatencySeconds, min, max } = input;
  let next = size;
  if (latencySeconds > targetLatencySeconds) next = Math.floor(size / 2);
  else if (trigger === "size" && latencySeconds <= targetLatencySeconds / 2) next = size * 2;
  return Math.min(max, Math.max(min, next));
}

/** State that survives restarts: a restart must not lose buffered messages. */
interface BatchState {
  buffer: unknown[];
  /** Clock `monotonic()` when the buffer's first message was taken. */
  firstAt: number;
  /** The size in force. */
  size: number;
  /** Batches emitted so far; also the checkpoint progress. */
  emitted: number;
}

function eventTime(value: unknown): number | string | null {
  const ms = parseTimestampMs(value);
  if (ms === undefined) return null;
  return fromMs(ms, detectTimeUnit(value)!);
}

class BatchActor implements Actor {
  #config: BatchConfig;
  #timeoutMs: number;
  #targetLatency: number;
  #time: PathGetter;
  #state: BatchState;
  #cancelTimer: (() => void) | undefined;
  /** Bumped at every emit so a timer task queued for an earlier batch does nothing. */
  #generation = 0;

  constructor(config: BatchConfig, persistent: Map<string, unknown>) {
    this.#config = config;
    this.#timeoutMs = config.batch_timeout * 1000;
    this.#targetLatency = config.target_latency ?? config.batch_timeout / 2;
    this.#time = compilePath(config.time_field);
    let state = persistent.get("batch") as BatchState | undefined;
    if (!state) {
      state = { buffer: [], firstAt: 0, size: config.batch_size, emitted: 0 };
      persistent.set("batch", state);
    }
    this.#state = state;
  }

  start(ctx: ActorContext): void {
    // After a restart the buffer is still here: re-arm its timer for the time left.
    const state = this.#state;
    if (state.buffer.length > 0) {
      this.#arm(ctx, state.firstAt + this.#timeoutMs - ctx.clock.monotonic());
    }
  }

  handle(batch: unknown[], ctx: ActorContext): void {
    const state = this.#state;
    for (const message of batch) {
      if (state.buffer.length === 0) {
        state.firstAt = ctx.clock.monotonic();
        this.#arm(ctx, this.#timeoutMs);
      }
      state.buffer.push(message);
      if (state.buffer.length >= state.size) this.#emit(ctx, "size");
    }
  }

  drain(ctx: ActorContext): void {
    if (this.#state.buffer.length > 0) this.#emit(ctx, "drain");
  }

  checkpointBarrier(): number | undefined {
    // A checkpoint arriving now follows the buffered messages: it may pass
    // once the batch holding them has been emitted.
    return this.#state.buffer.length > 0 ? this.#state.emitted + 1 : undefined;
  }

  checkpointProgress(): number {
    return this.#state.emitted;
  }

  #arm(ctx: ActorContext, delayMs: number): void {
    this.#cancelTimer?.();
    const generation = this.#generation;
    this.#cancelTimer = ctx.schedule(Math.max(0, delayMs), () => {
      if (generation === this.#generation && this.#state.buffer.length > 0) {
        this.#emit(ctx, "timeout");
      }
    });
  }

  #emit(ctx: ActorContext, trigger: BatchTrigger): void {
    const state = this.#state;
    const messages = state.buffer;
    state.buffer = [];
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    this.#generation++;
    const latency = (ctx.clock.monotonic() - state.firstAt) / 1000;
    const out: Batch = {
      messages,
      count: messages.length,
      batch_id: ++state.emitted,
      trigger,
      target_size: state.size,
      timestamp: ctx.clock.now() / 1000,
      processing_latency: latency,
      first_timestamp: this.#firstTime(messages),
      last_timestamp: this.#lastTime(messages),
    };
    ctx.emit(out);
    if (this.#config.adaptive_batching && trigger !== "drain") {
      state.size = nextBatchSize({
        size: state.size,
        trigger,
        latencySeconds: latency,
        targetLatencySeconds: this.#targetLatency,
        min: this.#config.min_batch_size,
        max: this.#config.max_batch_size,
      });
    }
  }

  #firstTime(messages: unknown[]): number | string | null {
    for (let i = 0; i < messages.length; i++) {
      const t = eventTime(this.#time(messages[i]));
      if (t !== null) return t;
    }
    return null;
  }

  #lastTime(messages: unknown[]): number | string | null {
    for (let i = messages.length - 1; i >= 0; i--) {
      const t = eventTime(this.#time(messages[i]));
      if (t !== null) return t;
    }
    return null;
  }
}

/** The BatchNode type. */
export const BatchNode: NodeSpec<BatchConfig> = {
  type: "BatchNode",
  kind: "processor",
  description:
    "Groups messages into batches {messages, count, batch_id, trigger, target_size, timestamp, processing_latency, first_timestamp, last_timestamp}: a batch is emitted when it reaches batch_size, when batch_timeout seconds have passed since its first message, or when the input ends. adaptive_batching moves the size between min_batch_size and max_batch_size toward target_latency.",
  config: batchConfig,
  validate(config, path, issues: ConfigIssue[]) {
    if (config.min_batch_size > config.max_batch_size) {
      issues.push({
        path: `${path}.min_batch_size`,
        message:
          `expected min_batch_size <= max_batch_size (${config.max_batch_size}), found ${config.min_batch_size}`,
      });
    } else if (
      config.adaptive_batching &&
      (config.batch_size < config.min_batch_size || config.batch_size > config.max_batch_size)
    ) {
      issues.push({
        path: `${path}.batch_size`,
        message:
          `expected batch_size within [min_batch_size, max_batch_size] = [${config.min_batch_size}, ${config.max_batch_size}] with adaptive_batching, found ${config.batch_size}`,
      });
    }
    try {
      compilePath(config.time_field);
    } catch (error) {
      issues.push({ path: `${path}.time_field`, message: (error as Error).message });
    }
  },
  create: (config, env) => new BatchActor(config, env.persistent),
};

/**
 * A typed BatchNode for the fluent builder.
 *
 * @typeParam T The type of the batched messages.
 * @param config The node's config (YAML keys, seconds).
 * @returns A node definition turning `T` messages into {@linkcode Batch}es of `T`.
 * @example A typed BatchNode
 * ```ts
 * import { batch } from "./batch.ts";
 * const def = batch<{ id: string }>({ batch_size: 50, batch_timeout: 0.5 });
 * console.assert(def.type === "BatchNode");
 * ```
 */
export function batch<T = unknown>(config: Partial<BatchConfig> = {}): NodeDef<T, Batch<T>> {
  return { type: "BatchNode", config };
}
