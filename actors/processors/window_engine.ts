/**
 * The pure event-time windowing engine behind the window node: assigns events
 * to tumbling, sliding or session windows per group key, tracks the
 * watermark, and hands back finished windows with their aggregates. It does
 * no I/O and reads no clock; the caller feeds event times and watermarks.
 *
 * @module
 */

import { compilePath, type PathGetter } from "../../runtime/path.ts";
import { parseTimestampMs } from "../../runtime/time.ts";
import {
  Accumulator,
  type AggregationName,
  type AggregationPlan,
  createAggregationPlan,
  valueKey,
} from "./aggregates.ts";

/** How windows are laid out in event time. */
export type WindowType = "tumbling" | "sliding" | "session";

/** Options for {@linkcode WindowEngine}. All durations are milliseconds. */
export interface WindowEngineOptions {
  /** The window layout. */
  type: WindowType;
  /**
   * Window length, > 0; required for tumbling and sliding windows, ignored
   * by session windows.
   */
  sizeMs?: number;
  /** Distance between sliding window starts, in (0, sizeMs]. */
  slideMs?: number;
  /** Session inactivity gap, > 0; required for session windows. */
  gapMs?: number;
  /** How far the watermark trails the largest event time seen, >= 0. */
  graceMs: number;
  /** Dot paths whose values form the group key; `[]` for one global group. */
  groupBy: string[];
  /**
   * Dot path of the aggregated value; required by `sum`, `avg`, `min`,
   * `max`, `first`, `last` and the percentiles.
   */
  valueField?: string;
  /** Dot path counted by `distinct_count`; defaults to `valueField`. */
  distinctField?: string;
  /** The aggregations every window computes. */
  aggregations: AggregationName[];
}

/**
 * One finished window: its bounds in epoch milliseconds (`window_start`
 * inclusive, `window_end` exclusive), its group key (`key[field]` for each
 * `groupBy` field, `null` when the event lacked it) and one property per
 * requested aggregation.
 */
export interface WindowRecord {
  /** Inclusive start, epoch milliseconds. */
  window_start: number;
  /** Exclusive end, epoch milliseconds. */
  window_end: number;
  /** The group key's field values. */
  key: Record<string, unknown>;
  /** The requested aggregations, by name. */
  [aggregation: string]: unknown;
}

interface Group {
  readonly keyString: string;
  readonly values: readonly unknown[];
  /** Tumbling and sliding windows by start. */
  readonly windows: Map<number, OpenWindow>;
  /** Session windows, unordered (a key rarely has more than a few). */
  readonly sessions: OpenWindow[];
  /** The window the previous event of this group went to. */
  last: OpenWindow | null;
}

interface OpenWindow {
  start: number;
  end: number;
  /** The end the heap orders by; sessions only grow, so it may lag `end`. */
  heapEnd: number;
  heapIndex: number;
  readonly group: Group;
  readonly acc: Accumulator;
  removed: boolean;
}

function finite(
  value: unknown,
  name: string,
  check: (v: number) => boolean,
  expected: string,
): number {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new TypeError(
      `expected ${name} to be a finite number of milliseconds, found ${
        value === undefined ? "nothing" : JSON.stringify(value) ?? typeof value
      }`,
    );
  }
  if (!check(value)) {
    throw new RangeError(`expected ${name} ${expected}, found ${value}`);
  }
  return value;
}

/**
 * An event-time window engine.
 *
 * - **Tumbling** windows are aligned to the epoch: an event at `t` belongs to
 *   `[floor(t / size) * size, + size)`.
 * - **Sliding** windows are `[k * slide, k * slide + size)` for every integer
 *   `k`; an event belongs to each one containing it (so each event costs
 *   `size / slide` accumulator updates).
 * - **Session** windows, per group key: an event at `t` opens `[t, t + gap)`
 *   and merges with every open session of that key it overlaps or touches
 *   (so two sessions merge when an out-of-order event bridges them). A
 *   session spans its first event time to its last event time + gap.
 *
 * The watermark starts at `-Infinity` and becomes
 * `max(watermark, eventTime - graceMs)` after each event, or moves forward
 * through {@linkcode WindowEngine.advanceWatermark}. A window is final once
 * its end is `<=` the watermark: it takes no more events and
 * {@linkcode WindowEngine.drain} hands it out. An event is *late* (dropped,
 * {@linkcode WindowEngine.add} returns `false`) when every window it belongs
 * to is final, judged against the watermark before the event itself moves
 * it; for sessions, when `eventTime + gap <= watermark`. A final session is
 * never reopened: a later event that would have touched it starts a new
 * session. Hence what is emitted depends only on the events and watermark
 * moves, never on when `drain` is called.
 *
 * State is one accumulator per open window (see `Accumulator` in
 * `aggregates.ts` for what each aggregation keeps); events are never stored.
 *
 * @example Tumbling one-minute counts per user
 * ```ts
 * import { WindowEngine } from "./window_engine.ts";
 * const engine = new WindowEngine({
 *   type: "tumbling",
 *   sizeMs: 60_000,
 *   graceMs: 0,
 *   groupBy: ["user"],
 *   valueField: "ms",
 *   aggregations: ["count", "avg"],
 * });
 * engine.add({ user: "ada", ms: 10 }, 1_000);
 * engine.add({ user: "ada", ms: 30 }, 2_000);
 * engine.add({ user: "bob", ms: 5 }, 61_000); // watermark → 61 000
 * const [record] = engine.drain();
 * console.assert(record.key.user === "ada" && record.count === 2 && record.avg === 20);
 * console.assert(record.window_start === 0 && record.window_end === 60_000);
 * ```
 */
export class WindowEngine {
  readonly #type: WindowType;
  /** `#type === "tumbling"`, the hot case, as a boolean. */
  readonly #tumbling: boolean;
  readonly #size: number;
  readonly #slide: number;
  readonly #gap: number;
  readonly #grace: number;
  readonly #plan: AggregationPlan;
  readonly #fields: readonly string[];
  readonly #getters: readonly PathGetter[];
  readonly #valueGetter: PathGetter | null;
  readonly #distinctGetter: PathGetter | null;
  readonly #groups = new Map<string, Group>();
  /** Min-heap of open windows by `heapEnd`. */
  readonly #heap: OpenWindow[] = [];
  /** Scratch space for the current event's group values. */
  readonly #scratch: unknown[];
  #lastGroup: Group | null = null;
  #watermark = -Infinity;
  #maxEnd = -Infinity;
  #arrival = 0;

  /**
   * Creates a WindowEngine.
   *
   * @param options The window layout, grouping and aggregations.
   * @throws {TypeError} When an option has the wrong type, an aggregation is
   * unknown, or an aggregation needs a field that is not set.
   * @throws {RangeError} When a duration is out of range.
   */
  constructor(options: WindowEngineOptions) {
    if (typeof options !== "object" || options === null) {
      throw new TypeError(
        `expected window engine options, found ${options === null ? "null" : typeof options}`,
      );
    }
    const { type } = options;
    if (type !== "tumbling" && type !== "sliding" && type !== "session") {
      throw new TypeError(
        `expected type "tumbling", "sliding" or "session", found ${
          JSON.stringify(type) ?? typeof type
        }`,
      );
    }
    this.#type = type;
    this.#tumbling = type === "tumbling";
    this.#size = this.#slide = this.#gap = 0;
    if (type === "session") {
      this.#gap = finite(options.gapMs, "gapMs", (v) => v > 0, "> 0");
    } else {
      this.#size = finite(options.sizeMs, "sizeMs", (v) => v > 0, "> 0");
      this.#slide = type === "sliding"
        ? finite(
          options.slideMs,
          "slideMs",
          (v) => v > 0 && v <= this.#size,
          `in (0, sizeMs = ${this.#size}]`,
        )
        : this.#size;
    }
    this.#grace = finite(options.graceMs, "graceMs", (v) => v >= 0, ">= 0");
    this.#plan = createAggregationPlan(options.aggregations);
    if (!Array.isArray(options.groupBy)) {
      throw new TypeError(
        `expected groupBy to be an array of field paths, found ${typeof options
          .groupBy}`,
      );
    }
    this.#fields = [...options.groupBy];
    this.#getters = this.#fields.map(compilePath);
    this.#scratch = new Array(this.#fields.length);
    const valueField = options.valueField;
    if (this.#plan.needsValue && valueField === undefined) {
      const needing = this.#plan.names.filter((n) =>
        n !== "count" && n !== "rate_per_second" && n !== "distinct_count"
      );
      throw new TypeError(
        `expected valueField for aggregations ${needing.join(", ")}, found none`,
      );
    }
    this.#valueGetter = this.#plan.needsValue ? compilePath(valueField!) : null;
    const distinctField = options.distinctField ?? valueField;
    if (this.#plan.distinct && distinctField === undefined) {
      throw new TypeError(
        "expected distinctField (or valueField) for distinct_count, found neither",
      );
    }
    this.#distinctGetter = this.#plan.distinct ? compilePath(distinctField!) : null;
  }

  /**
   * The watermark in epoch milliseconds; `-Infinity` until the first event.
   *
   * @example The watermark trails the event time by the grace period
   * ```ts
   * import { WindowEngine } from "./window_engine.ts";
   * const engine = new WindowEngine({
   *   type: "tumbling", sizeMs: 1000, graceMs: 200, groupBy: [], aggregations: ["count"],
   * });
   * engine.add({}, 5000);
   * console.assert(engine.watermark === 4800);
   * ```
   */
  get watermark(): number {
    return this.#watermark;
  }

  /**
   * How many windows hold state, including final ones not yet drained.
   *
   * @example One window per group
   * ```ts
   * import { WindowEngine } from "./window_engine.ts";
   * const engine = new WindowEngine({
   *   type: "tumbling", sizeMs: 1000, graceMs: 0, groupBy: ["k"], aggregations: ["count"],
   * });
   * engine.add({ k: 1 }, 10);
   * engine.add({ k: 2 }, 20);
   * console.assert(engine.openWindowCount === 2);
   * ```
   */
  get openWindowCount(): number {
    return this.#heap.length;
  }

  /**
   * The largest end among windows holding state, or `undefined` when there
   * are none. Once the watermark reaches it and {@linkcode drain} has run,
   * every event added so far has been emitted.
   *
   * @returns The largest open window end, epoch milliseconds.
   * @example Tracking emitted state
   * ```ts
   * import { WindowEngine } from "./window_engine.ts";
   * const engine = new WindowEngine({
   *   type: "tumbling", sizeMs: 1000, graceMs: 0, groupBy: [], aggregations: ["count"],
   * });
   * engine.add({}, 1500);
   * console.assert(engine.maxOpenWindowEnd() === 2000);
   * engine.advanceWatermark(2000);
   * engine.drain();
   * console.assert(engine.maxOpenWindowEnd() === undefined);
   * ```
   */
  maxOpenWindowEnd(): number | undefined {
    // A window only leaves when its end is <= the watermark, and then every
    // window with a smaller end leaves too, while new windows always end
    // after the watermark; so the running maximum stays exact while any
    // window is open.
    return this.#heap.length === 0 ? undefined : this.#maxEnd;
  }

  /**
   * A lower bound of the earliest open window's end (exact for tumbling and
   * sliding windows; a session may have grown since), for timers.
   *
   * @returns Epoch milliseconds, or `undefined` when no window is open.
   * @example
   * ```ts
   * import { WindowEngine } from "./window_engine.ts";
   * const engine = new WindowEngine({
   *   type: "tumbling", sizeMs: 1000, graceMs: 0, groupBy: [], aggregations: ["count"],
   * });
   * engine.add({}, 1500);
   * console.assert(engine.nextWindowEnd() === 2000);
   * ```
   */
  nextWindowEnd(): number | undefined {
    return this.#heap.length === 0 ? undefined : this.#heap[0].heapEnd;
  }

  /**
   * The cells of growable state held by all open windows (sketch buckets and
   * distinct values; 0 for the plain aggregations). O(open windows).
   *
   * @returns The total across open windows.
   * @example No growable state for plain aggregations
   * ```ts
   * import { WindowEngine } from "./window_engine.ts";
   * const engine = new WindowEngine({
   *   type: "tumbling", sizeMs: 1000, graceMs: 0, groupBy: [], valueField: "v",
   *   aggregations: ["sum", "avg"],
   * });
   * for (let i = 0; i < 100; i++) engine.add({ v: i }, i);
   * console.assert(engine.retainedCells() === 0);
   * ```
   */
  retainedCells(): number {
    let total = 0;
    for (const w of this.#heap) total += w.acc.retainedCells;
    return total;
  }

  /**
   * Assigns an event to its window(s) and then moves the watermark to
   * `max(watermark, eventTimeMs - graceMs)`. Never emits: call
   * {@linkcode drain} afterwards.
   *
   * @param event The event; group, value and distinct fields are read from it.
   * @param eventTimeMs The event time, epoch milliseconds.
   * @returns `false` when the event is late and was not assigned anywhere.
   * @throws {TypeError} When `eventTimeMs` is not a finite number.
   * @example A late event is refused
   * ```ts
   * import { WindowEngine } from "./window_engine.ts";
   * const engine = new WindowEngine({
   *   type: "tumbling", sizeMs: 1000, graceMs: 0, groupBy: [], aggregations: ["count"],
   * });
   * console.assert(engine.add({}, 2500) === true);
   * console.assert(engine.add({}, 1999) === false); // [1000, 2000) is final
   * console.assert(engine.add({}, 2000) === true);
   * ```
   */
  add(event: unknown, eventTimeMs: number): boolean {
    const t = eventTimeMs;
    if (typeof t !== "number" || t - t !== 0) {
      throw new TypeError(
        `expected the event time to be a finite number of milliseconds, found ${t}`,
      );
    }
    const assigned = this.#tumbling
      ? this.#addTumbling(event, t)
      : this.#type === "sliding"
      ? this.#addSliding(event, t)
      : this.#addSession(event, t);
    const candidate = t - this.#grace;
    if (candidate > this.#watermark) this.#watermark = candidate;
    return assigned;
  }

  /**
   * Adds a batch of events in order, each at the time `timeOf` reads from
   * it: the same as {@linkcode add} per event, in one loop that keeps times
   * and the watermark in local variables (the per-event path of a node).
   *
   * @param events The events.
   * @param timeOf Reads an event's raw time (epoch seconds or milliseconds,
   * ISO 8601 or `Date`; see `parseTimestampMs`).
   * @param refused Called with each event that has no usable time (`ms`
   * undefined) or is late (with its time), in order; the watermark is up to
   * date when it is called.
   * @example Adding a batch
   * ```ts
   * import { WindowEngine } from "./window_engine.ts";
   * const engine = new WindowEngine({
   *   type: "tumbling", sizeMs: 1000, graceMs: 0, groupBy: [], aggregations: ["count"],
   * });
   * const refused: unknown[] = [];
   * engine.addBatch([{ t: 2.5 }, { t: "x" }, { t: 1.5 }], (e) => (e as { t: unknown }).t, (e) => {
   *   refused.push(e);
   * });
   * console.assert(refused.length === 2 && engine.watermark === 2500);
   * ```
   */
  addBatch(
    events: readonly unknown[],
    timeOf: (event: unknown) => unknown,
    refused: (event: unknown, ms: number | undefined) => void,
  ): void {
    const n = events.length;
    if (!this.#tumbling || this.#getters.length > 0) {
      for (let i = 0; i < n; i++) {
        const event = events[i];
        const ms = parseTimestampMs(timeOf(event));
        if (ms === undefined || !this.add(event, ms)) refused(event, ms);
      }
      return;
    }
    // Tumbling windows of one group: the common case, written out.
    const size = this.#size;
    const grace = this.#grace;
    const plain = !this.#plan.firstLast && !this.#plan.distinct;
    const valueOf = this.#valueGetter;
    let watermark = this.#watermark;
    let w: OpenWindow | null = null;
    for (let i = 0; i < n; i++) {
      const event = events[i];
      const ms = parseTimestampMs(timeOf(event));
      if (ms === undefined) {
        this.#watermark = watermark;
        refused(event, undefined);
        continue;
      }
      const start = Math.floor(ms / size) * size;
      if (start + size <= watermark) {
        this.#watermark = watermark;
        refused(event, ms);
        continue;
      }
      if (w === null || w.start !== start || w.removed) {
        const group = this.#groupOf(event);
        w = group.last;
        if (w === null || w.start !== start || w.removed) {
          w = group.windows.get(start) ?? this.#open(group, start, start + size);
          group.last = w;
        }
      }
      const value = valueOf === null ? undefined : valueOf(event);
      if (plain) {
        w.acc.addValue(value);
        this.#arrival++;
      } else {
        const distinct = this.#distinctGetter === null ? undefined : this.#distinctGetter(event);
        w.acc.add(ms, value, distinct, this.#arrival++);
      }
      const candidate = ms - grace;
      if (candidate > watermark) watermark = candidate;
    }
    this.#watermark = watermark;
  }

  /**
   * Moves the watermark forward to `ms` (never backward), for processing-time
   * progress and idle timeouts. Never emits: call {@linkcode drain}.
   *
   * @param ms The new watermark, epoch milliseconds; `Infinity` finalizes
   * every window.
   * @throws {TypeError} When `ms` is `NaN` or not a number.
   * @example Closing windows on an idle stream
   * ```ts
   * import { WindowEngine } from "./window_engine.ts";
   * const engine = new WindowEngine({
   *   type: "session", gapMs: 5000, graceMs: 0, groupBy: [], aggregations: ["count"],
   * });
   * engine.add({}, 1000);
   * engine.advanceWatermark(6000);
   * console.assert(engine.drain().length === 1);
   * ```
   */
  advanceWatermark(ms: number): void {
    if (typeof ms !== "number" || Number.isNaN(ms)) {
      throw new TypeError(`expected a watermark in milliseconds, found ${ms}`);
    }
    if (ms > this.#watermark) this.#watermark = ms;
  }

  /**
   * Removes and returns every final window (end `<=` watermark), ordered by
   * `window_end`, then `window_start`, then group key (compared by its
   * canonical encoding, `valueKey` of each field joined by commas).
   *
   * @returns The finished windows; empty when none.
   * @example Draining after the watermark passes
   * ```ts
   * import { WindowEngine } from "./window_engine.ts";
   * const engine = new WindowEngine({
   *   type: "sliding", sizeMs: 1000, slideMs: 500, graceMs: 0, groupBy: [],
   *   aggregations: ["count"],
   * });
   * engine.add({}, 700); // in [0, 1000) and [500, 1500)
   * engine.advanceWatermark(1000);
   * const records = engine.drain();
   * console.assert(records.length === 1 && records[0].window_end === 1000);
   * ```
   */
  drain(): WindowRecord[] {
    const heap = this.#heap;
    const watermark = this.#watermark;
    const done: OpenWindow[] = [];
    while (heap.length > 0 && heap[0].heapEnd <= watermark) {
      const top = heap[0];
      if (top.end <= watermark) {
        this.#heapRemove(0);
        this.#detach(top);
        done.push(top);
      } else {
        // A session that grew since it was queued: requeue at its real end.
        top.heapEnd = top.end;
        this.#siftDown(0);
      }
    }
    return this.#records(done);
  }

  /**
   * Removes and returns every window holding state, final or not, in the
   * same order as {@linkcode drain}; for shutdown. The watermark is
   * unchanged, so events added afterwards start new windows.
   *
   * @returns Every open window.
   * @example Flushing on shutdown
   * ```ts
   * import { WindowEngine } from "./window_engine.ts";
   * const engine = new WindowEngine({
   *   type: "tumbling", sizeMs: 1000, graceMs: 0, groupBy: [], aggregations: ["count"],
   * });
   * engine.add({}, 10);
   * console.assert(engine.flushAll().length === 1 && engine.openWindowCount === 0);
   * ```
   */
  flushAll(): WindowRecord[] {
    const all = this.#heap.splice(0);
    for (const w of all) w.removed = true;
    this.#groups.clear();
    this.#lastGroup = null;
    return this.#records(all);
  }

  #records(windows: OpenWindow[]): WindowRecord[] {
    windows.sort((a, b) =>
      a.end - b.end || a.start - b.start ||
      (a.group.keyString < b.group.keyString ? -1 : a.group.keyString > b.group.keyString ? 1 : 0)
    );
    const fields = this.#fields;
    return windows.map((w) => {
      // fromEntries defines own properties, so a "__proto__" field is safe.
      const key = Object.fromEntries(
        fields.map((f, i) => [f, w.group.values[i]]),
      );
      const record: WindowRecord = {
        window_start: w.start,
        window_end: w.end,
        key,
      };
      return Object.assign(record, w.acc.result(w.end - w.start));
    });
  }

  // --- per-type assignment -------------------------------------------------

  #addTumbling(event: unknown, t: number): boolean {
    const size = this.#size;
    const start = Math.floor(t / size) * size;
    if (start + size <= this.#watermark) return false;
    const group = this.#groupOf(event);
    let w = group.last;
    if (w === null || w.start !== start || w.removed) {
      w = group.windows.get(start) ?? this.#open(group, start, start + size);
      group.last = w;
    }
    this.#fold(w, event, t);
    return true;
  }

  #addSliding(event: unknown, t: number): boolean {
    const size = this.#size;
    const slide = this.#slide;
    const watermark = this.#watermark;
    const lastStart = Math.floor(t / slide) * slide;
    if (lastStart + size <= watermark) return false;
    const group = this.#groupOf(event);
    const value = this.#valueGetter === null ? undefined : this.#valueGetter(event);
    const distinct = this.#distinctGetter === null ? undefined : this.#distinctGetter(event);
    const arrival = this.#arrival++;
    // Walk back from the latest window containing t; later windows end later,
    // so stop at the first final one.
    for (let k = Math.floor(t / slide);; k--) {
      const start = k * slide;
      const end = start + size;
      if (end <= t || end <= watermark) break;
      const w = group.windows.get(start) ?? this.#open(group, start, end);
      w.acc.add(t, value, distinct, arrival);
    }
    return true;
  }

  #addSession(event: unknown, t: number): boolean {
    const gap = this.#gap;
    const watermark = this.#watermark;
    const end = t + gap;
    if (end <= watermark) return false;
    const group = this.#groupOf(event);
    const sessions = group.sessions;
    let target: OpenWindow | null = null;
    for (let i = 0; i < sessions.length; i++) {
      const s = sessions[i];
      // Final sessions are never reopened; touching counts as overlapping.
      if (s.end <= watermark || t > s.end || end < s.start) continue;
      if (target === null) {
        target = s;
        continue;
      }
      // The event bridges two sessions: fold the later-found one in.
      target.acc.merge(s.acc);
      if (s.start < target.start) target.start = s.start;
      if (s.end > target.end) target.end = s.end;
      s.removed = true;
      this.#heapRemove(s.heapIndex);
      sessions.splice(i, 1);
      i--;
    }
    if (target === null) {
      target = this.#open(group, t, end);
    } else {
      if (t < target.start) target.start = t;
      if (end > target.end) target.end = end;
      if (target.end > this.#maxEnd) this.#maxEnd = target.end;
    }
    this.#fold(target, event, t);
    return true;
  }

  #fold(w: OpenWindow, event: unknown, t: number): void {
    const value = this.#valueGetter === null ? undefined : this.#valueGetter(event);
    const distinct = this.#distinctGetter === null ? undefined : this.#distinctGetter(event);
    w.acc.add(t, value, distinct, this.#arrival++);
  }

  // --- groups and windows --------------------------------------------------

  #groupOf(event: unknown): Group {
    const getters = this.#getters;
    const n = getters.length;
    const last = this.#lastGroup;
    // Hot path: consecutive events of the same group allocate nothing.
    let same = last !== null;
    const scratch = this.#scratch;
    for (let i = 0; i < n; i++) {
      let v = getters[i](event);
      if (v === undefined) v = null;
      scratch[i] = v;
      if (same && v !== last!.values[i]) same = false;
    }
    if (same) return last!;
    let keyString: string;
    if (n === 0) keyString = "";
    else if (n === 1) keyString = valueKey(scratch[0]);
    else {
      keyString = valueKey(scratch[0]);
      for (let i = 1; i < n; i++) keyString += "," + valueKey(scratch[i]);
    }
    let group = this.#groups.get(keyString);
    if (group === undefined) {
      group = {
        keyString,
        values: scratch.slice(),
        windows: new Map(),
        sessions: [],
        last: null,
      };
      this.#groups.set(keyString, group);
    }
    this.#lastGroup = group;
    return group;
  }

  #open(group: Group, start: number, end: number): OpenWindow {
    const w: OpenWindow = {
      start,
      end,
      heapEnd: end,
      heapIndex: -1,
      group,
      acc: new Accumulator(this.#plan),
      removed: false,
    };
    if (this.#type === "session") group.sessions.push(w);
    else group.windows.set(start, w);
    if (end > this.#maxEnd) this.#maxEnd = end;
    this.#heapPush(w);
    return w;
  }

  /** Unlinks a drained window from its group, dropping empty groups. */
  #detach(w: OpenWindow): void {
    w.removed = true;
    const group = w.group;
    if (this.#type === "session") {
      group.sessions.splice(group.sessions.indexOf(w), 1);
    } else {
      group.windows.delete(w.start);
    }
    if (group.last === w) group.last = null;
    if (group.windows.size === 0 && group.sessions.length === 0) {
      this.#groups.delete(group.keyString);
      if (this.#lastGroup === group) this.#lastGroup = null;
    }
    if (this.#heap.length === 0) this.#maxEnd = -Infinity;
  }

  // --- indexed binary min-heap on heapEnd ----------------------------------

  #heapPush(w: OpenWindow): void {
    const heap = this.#heap;
    w.heapIndex = heap.length;
    heap.push(w);
    this.#siftUp(w.heapIndex);
  }

  #heapRemove(index: number): void {
    const heap = this.#heap;
    const removed = heap[index];
    const last = heap.pop()!;
    removed.heapIndex = -1;
    if (last === removed) return;
    heap[index] = last;
    last.heapIndex = index;
    this.#siftUp(index);
    this.#siftDown(last.heapIndex);
  }

  #siftUp(index: number): void {
    const heap = this.#heap;
    const w = heap[index];
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = heap[parentIndex];
      if (parent.heapEnd <= w.heapEnd) break;
      heap[index] = parent;
      parent.heapIndex = index;
      index = parentIndex;
    }
    heap[index] = w;
    w.heapIndex = index;
  }

  #siftDown(index: number): void {
    const heap = this.#heap;
    const n = heap.length;
    const w = heap[index];
    for (;;) {
      let child = 2 * index + 1;
      if (child >= n) break;
      if (child + 1 < n && heap[child + 1].heapEnd < heap[child].heapEnd) {
        child++;
      }
      const c = heap[child];
      if (c.heapEnd >= w.heapEnd) break;
      heap[index] = c;
      c.heapIndex = index;
      index = child;
    }
    heap[index] = w;
    w.heapIndex = index;
  }
}
