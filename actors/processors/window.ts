/**
 * WindowNode: tumbling, sliding and session windows over event time (with a
 * watermark and a grace period) or processing time, grouped, with aggregates.
 *
 * @module
 */
import type { Actor, ActorContext } from "../../runtime/actor.ts";
import type { ConfigIssue } from "../../runtime/errors.ts";
import type { NodeDef } from "../../runtime/flow.ts";
import { compilePath, type PathGetter } from "../../runtime/path.ts";
import type { NodeSpec } from "../../runtime/registry.ts";
import { s, type Schema } from "../../runtime/schema.ts";
import { detectTimeUnit, fromMs, type TimeUnit } from "../../runtime/time.ts";
import { AGGREGATION_NAMES, type AggregationName } from "./aggregates.ts";
import { WindowEngine, type WindowRecord, type WindowType } from "./window_engine.ts";

/** Config of WindowNode (YAML keys, durations in seconds). */
export interface WindowConfig {
  /** `tumbling`, `sliding` or `session`. @default {"tumbling"} */
  window_type: WindowType;
  /** Window length (tumbling and sliding). */
  window_size_seconds?: number;
  /** How often a sliding window starts. */
  slide_interval_seconds?: number;
  /** Silence that ends a session. */
  session_gap_seconds?: number;
  /** Event-time field (epoch s, ms or ISO 8601); absent: processing time from the clock. */
  time_field?: string;
  /** How late an event may be and still count. @default {0} */
  late_arrival_grace_period: number;
  /** After this much silence the watermark follows the clock, so windows close on a quiet stream. */
  idle_timeout_seconds?: number;
  /** Fields (dot paths) to group by. @default {[]} */
  group_by: string[];
  /** The numeric field the aggregates read. */
  value_field?: string;
  /** The field `distinct_count` counts (default: value_field). */
  distinct_field?: string;
  /** Aggregates to compute. @default {["count"]} */
  aggregations: AggregationName[];
}

const windowConfig: Schema<WindowConfig> = s.object({
  window_type: s.enum(["tumbling", "sliding", "session"] as const, {
    default: "tumbling",
    doc:
      "tumbling: fixed, non-overlapping; sliding: overlapping, one every slide_interval_seconds; session: ends after session_gap_seconds of silence per key.",
  }),
  window_size_seconds: s.number({ greaterThan: 0, optional: true, doc: "Window length." }),
  slide_interval_seconds: s.number({
    greaterThan: 0,
    optional: true,
    doc: "Sliding windows: how often one starts (<= window_size_seconds).",
  }),
  session_gap_seconds: s.number({
    greaterThan: 0,
    optional: true,
    doc: "Session windows: silence that ends a session.",
  }),
  time_field: s.string({
    optional: true,
    doc:
      "Event-time field, epoch seconds (< 1e11), epoch milliseconds or ISO 8601; window bounds come out in the same unit. Absent: processing time (bounds in epoch seconds).",
  }),
  late_arrival_grace_period: s.number({
    min: 0,
    default: 0,
    doc: "Seconds: the watermark is the highest event time seen minus this.",
  }),
  idle_timeout_seconds: s.number({
    greaterThan: 0,
    optional: true,
    doc:
      "After this much silence the watermark advances with the clock, so open windows close on a quiet stream.",
  }),
  group_by: s.array(s.string(), { default: [], doc: "Fields (dot paths) to group by." }),
  value_field: s.string({ optional: true, doc: "The numeric field aggregated." }),
  distinct_field: s.string({
    optional: true,
    doc: "The field distinct_count counts (default value_field).",
  }),
  aggregations: s.array(s.enum(AGGREGATION_NAMES), {
    default: ["count"],
    minItems: 1,
    doc: `From: ${AGGREGATION_NAMES.join(", ")}. Percentiles are within 1% relative error.`,
  }),
}) as Schema<WindowConfig>;

const NEEDS_VALUE: ReadonlySet<string> = new Set([
  "sum",
  "avg",
  "min",
  "max",
  "first",
  "last",
  "p50",
  "p90",
  "p95",
  "p99",
]);

function validate(config: WindowConfig, path: string, issues: ConfigIssue[]): void {
  const t = config.window_type;
  if (t !== "session" && config.window_size_seconds === undefined) {
    issues.push({
      path: `${path}.window_size_seconds`,
      message: `${t} windows need window_size_seconds`,
    });
  }
  if (t === "sliding") {
    if (config.slide_interval_seconds === undefined) {
      issues.push({
        path: `${path}.slide_interval_seconds`,
        message: "sliding windows need slide_interval_seconds",
      });
    } else if (
      config.window_size_seconds !== undefined &&
      config.slide_interval_seconds > config.window_size_seconds
    ) {
      issues.push({
        path: `${path}.slide_interval_seconds`,
        message:
          `slide_interval_seconds (${config.slide_interval_seconds}) must not exceed window_size_seconds (${config.window_size_seconds})`,
      });
    }
  } else if (config.slide_interval_seconds !== undefined) {
    issues.push({
      path: `${path}.slide_interval_seconds`,
      message: `slide_interval_seconds applies to sliding windows, not ${t}`,
    });
  }
  if (t === "session" && config.session_gap_seconds === undefined) {
    issues.push({
      path: `${path}.session_gap_seconds`,
      message: "session windows need session_gap_seconds",
    });
  }
  const needsValue = config.aggregations.filter((a) => NEEDS_VALUE.has(a));
  if (needsValue.length > 0 && config.value_field === undefined) {
    issues.push({
      path: `${path}.value_field`,
      message: `aggregations ${needsValue.join(", ")} need value_field`,
    });
  }
  if (
    config.aggregations.includes("distinct_count") && config.distinct_field === undefined &&
    config.value_field === undefined
  ) {
    issues.push({
      path: `${path}.distinct_field`,
      message: "distinct_count needs distinct_field (or value_field)",
    });
  }
}

class WindowActor implements Actor {
  #config: WindowConfig;
  #engine: WindowEngine;
  #time: PathGetter | undefined;
  #unit: TimeUnit | undefined;
  #graceMs: number;
  #idleMs: number | undefined;
  #lastEventAt = 0;
  #watermarkAtLastEvent = -Infinity;
  #cancelTimer: (() => void) | undefined;
  #timerAt = Infinity;
  /** Late events sent to the `late` port (or dead letters when it is not connected). */
  late = 0;

  constructor(config: WindowConfig) {
    this.#config = config;
    this.#graceMs = config.late_arrival_grace_period * 1000;
    this.#idleMs = config.idle_timeout_seconds === undefined
      ? undefined
      : config.idle_timeout_seconds * 1000;
    this.#time = config.time_field === undefined ? undefined : compilePath(config.time_field);
    this.#engine = new WindowEngine({
      type: config.window_type,
      sizeMs: config.window_size_seconds === undefined
        ? undefined
        : config.window_size_seconds * 1000,
      slideMs: config.slide_interval_seconds === undefined
        ? undefined
        : config.slide_interval_seconds * 1000,
      gapMs: config.session_gap_seconds === undefined
        ? undefined
        : config.session_gap_seconds * 1000,
      // Processing time has no disorder: the clock is the watermark.
      graceMs: this.#time ? this.#graceMs : 0,
      groupBy: config.group_by,
      valueField: config.value_field,
      distinctField: config.distinct_field,
      aggregations: config.aggregations,
    });
  }

  handle(batch: unknown[], ctx: ActorContext): void {
    const engine = this.#engine;
    const now = ctx.clock.now();
    if (this.#time) {
      const time = this.#time;
      // Output bounds use the unit of the first event with a usable time.
      for (let i = 0; this.#unit === undefined && i < batch.length; i++) {
        this.#unit = detectTimeUnit(time(batch[i]));
      }
      engine.addBatch(batch, time, (event, ms) => {
        if (ms !== undefined) return this.#late(event, ms, ctx);
        const raw = time(event);
        ctx.deadLetter(
          event,
          new TypeError(
            `time_field "${this.#config.time_field}" is ${
              raw === undefined ? "missing" : `not a timestamp (${JSON.stringify(raw)})`
            }`,
          ),
        );
      });
      this.#lastEventAt = now;
      this.#watermarkAtLastEvent = engine.watermark;
    } else {
      for (let i = 0; i < batch.length; i++) engine.add(batch[i], now);
      engine.advanceWatermark(now);
      this.#lastEventAt = now;
    }
    this.#emitClosed(ctx);
    this.#arm(ctx);
  }

  #late(event: unknown, ms: number, ctx: ActorContext): void {
    this.late++;
    if (ctx.connectedPorts.has("late")) {
      ctx.emit(event, "late");
    } else {
      ctx.deadLetter(
        event,
        new RangeError(
          `late event: time ${ms} ms is behind the watermark ${this.#engine.watermark} ms by more than the grace period (connect the "late" port to keep late events)`,
        ),
      );
    }
  }

  #emitClosed(ctx: ActorContext): void {
    const records = this.#engine.drain();
    for (let i = 0; i < records.length; i++) ctx.emit(this.#convert(records[i]));
  }

  #convert(record: WindowRecord): WindowOutput {
    const unit: TimeUnit = this.#time ? this.#unit ?? "s" : "s";
    const out = record as unknown as WindowOutput;
    out.window_start = fromMs(record.window_start, unit);
    out.window_end = fromMs(record.window_end, unit);
    return out;
  }

  /** Keeps one timer armed: the next window end (processing time) or the idle timeout. */
  #arm(ctx: ActorContext): void {
    const engine = this.#engine;
    const next = engine.nextWindowEnd();
    if (next === undefined) return;
    let at: number;
    if (!this.#time) at = next;
    else if (this.#idleMs !== undefined) at = this.#lastEventAt + this.#idleMs;
    else return;
    if (at >= this.#timerAt) return;
    this.#cancelTimer?.();
    this.#timerAt = at;
    this.#cancelTimer = ctx.schedule(Math.max(0, at - ctx.clock.now()), () => {
      this.#timerAt = Infinity;
      this.#cancelTimer = undefined;
      this.#tick(ctx);
    });
  }

  #tick(ctx: ActorContext): void {
    const now = ctx.clock.now();
    const engine = this.#engine;
    if (!this.#time) {
      engine.advanceWatermark(now);
    } else if (this.#idleMs !== undefined && now - this.#lastEventAt >= this.#idleMs) {
      // Quiet stream: event time is taken to move on with the clock.
      const base = Number.isFinite(this.#watermarkAtLastEvent) ? this.#watermarkAtLastEvent : now;
      engine.advanceWatermark(base + (now - this.#lastEventAt));
      this.#emitClosed(ctx);
      const next = engine.nextWindowEnd();
      if (next !== undefined) {
        // Keep following the clock until the open windows have closed.
        const wait = Math.max(1, next - engine.watermark);
        this.#timerAt = now + wait;
        this.#cancelTimer = ctx.schedule(wait, () => {
          this.#timerAt = Infinity;
          this.#tick(ctx);
        });
      }
      return;
    }
    this.#emitClosed(ctx);
    this.#arm(ctx);
  }

  drain(ctx: ActorContext): void {
    this.#cancelTimer?.();
    const records = this.#engine.flushAll();
    for (const r of records) ctx.emit(this.#convert(r));
  }

  checkpointBarrier(): number | undefined {
    return this.#engine.maxOpenWindowEnd();
  }

  checkpointProgress(): number {
    return this.#engine.watermark;
  }
}

/** The WindowNode type. */
export const WindowNode: NodeSpec<WindowConfig> = {
  type: "WindowNode",
  kind: "processor",
  description:
    "Aggregates events over tumbling, sliding or session windows, by event time (time_field, with a watermark and late_arrival_grace_period) or processing time, grouped by fields. Each window is emitted once, when the watermark passes its end (and every open window on drain); late events go to the `late` port (dead letters when it is not connected).",
  config: windowConfig,
  outputs: ["out", "late"],
  validate,
  create: (config) => new WindowActor(config),
};

/**
 * A window result as emitted on `out`: the bounds are in the unit of the
 * input time field (epoch seconds or milliseconds as numbers, ISO 8601 as
 * strings; epoch seconds for processing time).
 */
export type WindowOutput = Omit<WindowRecord, "window_start" | "window_end"> & {
  window_start: number | string;
  window_end: number | string;
};

/**
 * A typed WindowNode for the fluent builder.
 *
 * @typeParam In The events it aggregates.
 * @param config The node's config.
 * @returns A node definition emitting window records.
 * @example
 * ```ts
 * import { window } from "./window.ts";
 * const perMinute = window({ window_type: "tumbling", window_size_seconds: 60, time_field: "timestamp" });
 * console.assert(perMinute.type === "WindowNode");
 * ```
 */
export function window<In = unknown>(
  config: Partial<WindowConfig> & { window_type?: WindowType },
): NodeDef<In, WindowOutput> {
  return { type: "WindowNode", config };
}
