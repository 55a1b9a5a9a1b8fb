/**
 * Window aggregations: the {@linkcode Accumulator} that holds one window's
 * running state, and the bounded-memory {@linkcode QuantileSketch} behind the
 * percentile aggregations.
 *
 * Memory per accumulator is O(1) for `count`, `sum`, `avg`, `min`, `max`,
 * `rate_per_second`, `first` and `last`; percentiles add a sketch of at most
 * {@linkcode QUANTILE_MAX_BUCKETS} buckets per sign; `distinct_count` keeps a
 * set of every distinct value seen, so its memory grows with the number of
 * distinct values in the window. Events themselves are never stored.
 *
 * @module
 */

/**
 * Every aggregation a window can compute, in documentation order.
 *
 * @example Validating a config value
 * ```ts
 * import { AGGREGATION_NAMES } from "./aggregates.ts";
 * console.assert(AGGREGATION_NAMES.includes("p99"));
 * ```
 */
export const AGGREGATION_NAMES = [
  "count",
  "sum",
  "avg",
  "min",
  "max",
  "rate_per_second",
  "distinct_count",
  "first",
  "last",
  "p50",
  "p90",
  "p95",
  "p99",
] as const;

/** The name of one aggregation, such as `"sum"` or `"p95"`. */
export type AggregationName = typeof AGGREGATION_NAMES[number];

/**
 * Relative accuracy of the percentile aggregations: a reported percentile is
 * within 1% relative error of the true (nearest-rank) value, as long as the
 * sketch has not collapsed buckets (see {@linkcode QUANTILE_MAX_BUCKETS}).
 *
 * @example Checking a percentile against the exact value
 * ```ts
 * import { QUANTILE_RELATIVE_ACCURACY } from "./aggregates.ts";
 * const exact = 250, reported = 251.2;
 * console.assert(Math.abs(reported - exact) <= QUANTILE_RELATIVE_ACCURACY * exact);
 * ```
 */
export const QUANTILE_RELATIVE_ACCURACY = 0.01;

/**
 * Most buckets a {@linkcode QuantileSketch} keeps per sign. With 1% accuracy
 * this covers values spanning about 17 orders of magnitude; beyond that the
 * buckets of the smallest magnitudes are merged, and percentiles that fall
 * in the merged bucket lose their accuracy guarantee.
 *
 * @example The bound on retained buckets
 * ```ts
 * import { QUANTILE_MAX_BUCKETS } from "./aggregates.ts";
 * console.assert(QUANTILE_MAX_BUCKETS === 2048);
 * ```
 */
export const QUANTILE_MAX_BUCKETS = 2048;

const PERCENTILES: Readonly<Record<string, number>> = {
  p50: 50,
  p90: 90,
  p95: 95,
  p99: 99,
};

/**
 * Tells whether a value names an aggregation.
 *
 * @param value Anything, typically a string from a workflow config.
 * @returns `true` when `value` is one of {@linkcode AGGREGATION_NAMES}.
 * @example Filtering config values
 * ```ts
 * import { isAggregationName } from "./aggregates.ts";
 * console.assert(isAggregationName("avg"));
 * console.assert(!isAggregationName("median"));
 * ```
 */
export function isAggregationName(value: unknown): value is AggregationName {
  return typeof value === "string" &&
    (AGGREGATION_NAMES as readonly string[]).includes(value);
}

/**
 * The aggregations one window computes, checked and precompiled into the
 * flags the per-event path tests. Build it once with
 * {@linkcode createAggregationPlan} and share it between accumulators.
 */
export interface AggregationPlan {
  /** The requested aggregations, duplicates removed, in request order. */
  readonly names: readonly AggregationName[];
  /** Whether numeric values are folded in (`sum`, `avg`, `min`, `max`, percentiles). */
  readonly numeric: boolean;
  /** Whether `first` or `last` is requested. */
  readonly firstLast: boolean;
  /** Whether `distinct_count` is requested. */
  readonly distinct: boolean;
  /** The requested percentiles in percent (`p95` → 95), ascending. */
  readonly percentiles: readonly number[];
  /** Whether the value field is read at all (numeric or first/last). */
  readonly needsValue: boolean;
}

/**
 * Checks aggregation names and precompiles them into an
 * {@linkcode AggregationPlan}.
 *
 * @param names The requested aggregations; duplicates are ignored.
 * @returns A frozen plan.
 * @throws {TypeError} When `names` is not a non-empty array of
 * {@linkcode AGGREGATION_NAMES}.
 * @example Planning a window's aggregations
 * ```ts
 * import { createAggregationPlan } from "./aggregates.ts";
 * const plan = createAggregationPlan(["count", "p95", "count"]);
 * console.assert(plan.names.length === 2 && plan.numeric);
 * ```
 */
export function createAggregationPlan(
  names: readonly string[],
): AggregationPlan {
  if (!Array.isArray(names) || names.length === 0) {
    throw new TypeError(
      `expected a non-empty array of aggregation names, found ${
        Array.isArray(names) ? "an empty array" : typeof names
      }`,
    );
  }
  const unique: AggregationName[] = [];
  for (const name of names) {
    if (!isAggregationName(name)) {
      throw new TypeError(
        `expected an aggregation name (one of ${AGGREGATION_NAMES.join(", ")}), found ${
          JSON.stringify(name) ?? String(name)
        }`,
      );
    }
    if (!unique.includes(name)) unique.push(name);
  }
  const percentiles = unique.filter((n) => n in PERCENTILES)
    .map((n) => PERCENTILES[n])
    .sort((a, b) => a - b);
  const numeric = percentiles.length > 0 ||
    unique.some((n) => n === "sum" || n === "avg" || n === "min" || n === "max");
  const firstLast = unique.includes("first") || unique.includes("last");
  return Object.freeze({
    names: Object.freeze(unique),
    numeric,
    firstLast,
    distinct: unique.includes("distinct_count"),
    percentiles: Object.freeze(percentiles),
    needsValue: numeric || firstLast,
  });
}

/**
 * A canonical string for a value, used for group keys and for counting
 * distinct objects: equal strings mean equal values. Strings are JSON-quoted,
 * numbers use `String` (so `0` and `-0` agree, and `1` differs from `"1"`),
 * `undefined` is `null`, and objects and arrays are JSON with object keys
 * sorted, prefixed with `o` so they never equal a string's encoding.
 *
 * @param value Any value; objects must not be cyclic.
 * @returns The canonical string.
 * @throws {TypeError} When an object value is cyclic.
 * @example Keys that do not depend on property order
 * ```ts
 * import { valueKey } from "./aggregates.ts";
 * console.assert(valueKey({ a: 1, b: 2 }) === valueKey({ b: 2, a: 1 }));
 * console.assert(valueKey(1) !== valueKey("1"));
 * console.assert(valueKey(undefined) === valueKey(null));
 * ```
 */
export function valueKey(value: unknown): string {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "number":
    case "boolean":
      return String(value);
    case "undefined":
      return "null";
    case "bigint":
      return `${value}n`;
    case "object":
      return value === null ? "null" : "o" + stableJson(value);
    default:
      // Symbols and functions cannot come from JSON data; keep them apart.
      return "x" + String(value);
  }
}

function stableJson(value: unknown): string {
  if (typeof value !== "object" || value === null) {
    return JSON.stringify(value) ?? "null";
  }
  if (Array.isArray(value)) {
    return "[" + value.map(stableJson).join(",") + "]";
  }
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === "function") return stableJson(toJSON.call(value));
  const record = value as Record<string, unknown>;
  const parts: string[] = [];
  for (const key of Object.keys(record).sort()) {
    const item = record[key];
    if (item === undefined || typeof item === "function") continue;
    parts.push(JSON.stringify(key) + ":" + stableJson(item));
  }
  return "{" + parts.join(",") + "}";
}

/**
 * Bucket counts for one sign of a {@linkcode QuantileSketch}: a dense array
 * over the occupied index range, grown on demand up to `maxBuckets`, after
 * which the lowest indices (smallest magnitudes) are merged into one.
 */
class BucketStore {
  counts: Float64Array | null = null;
  /** The bucket index stored at `counts[0]`. */
  offset = 0;
  minIndex = 0;
  maxIndex = -1;
  total = 0;
  readonly maxBuckets: number;

  constructor(maxBuckets: number) {
    this.maxBuckets = maxBuckets;
  }

  get span(): number {
    return this.total === 0 ? 0 : this.maxIndex - this.minIndex + 1;
  }

  add(index: number, count: number): void {
    if (this.total === 0) {
      const size = Math.min(16, this.maxBuckets);
      this.counts = new Float64Array(size);
      this.offset = index - (size >> 1);
      this.minIndex = this.maxIndex = index;
    } else if (index < this.minIndex || index > this.maxIndex) {
      index = this.#extend(index);
    }
    this.counts![index - this.offset] += count;
    this.total += count;
  }

  /**
   * Widens the occupied range to hold `index`, merging the lowest buckets
   * when the range would exceed `maxBuckets`.
   *
   * @returns The bucket `index`'s count must go to (raised when merged).
   */
  #extend(index: number): number {
    let counts = this.counts!;
    const oldMin = this.minIndex;
    const oldMax = this.maxIndex;
    let lo = Math.min(oldMin, index);
    const hi = Math.max(oldMax, index);
    let moved = 0;
    if (hi - lo + 1 > this.maxBuckets) {
      lo = hi - this.maxBuckets + 1;
      for (let i = oldMin; i <= oldMax && i < lo; i++) {
        moved += counts[i - this.offset];
        counts[i - this.offset] = 0;
      }
      if (index < lo) index = lo;
    }
    if (lo < this.offset || hi >= this.offset + counts.length) {
      const size = Math.min(
        this.maxBuckets,
        Math.max(counts.length * 2, hi - lo + 1),
      );
      const grown = new Float64Array(size);
      // Leave the spare room on the side the range is growing towards.
      const offset = index < oldMin ? hi - size + 1 : lo;
      for (let i = Math.max(oldMin, lo); i <= oldMax; i++) {
        grown[i - offset] = counts[i - this.offset];
      }
      this.counts = counts = grown;
      this.offset = offset;
    }
    this.minIndex = lo;
    this.maxIndex = hi;
    counts[lo - this.offset] += moved;
    return index;
  }

  get(index: number): number {
    return this.counts![index - this.offset];
  }
}

/**
 * A mergeable, bounded-memory quantile sketch: a histogram over
 * logarithmically spaced buckets. A value `x > 0` goes to bucket
 * `ceil(log(x) / log(γ))` with `γ = (1 + a) / (1 - a)`; negative values use
 * the same buckets over `|x|` in a separate store, zeros are counted apart.
 * Each bucket reports `2γ^i / (1 + γ)`, which is within relative error `a` of
 * every value in it, so a reported quantile is within `a` (1% by default) of
 * the true nearest-rank quantile value. Memory is at most `maxBuckets`
 * buckets per sign; past that the smallest magnitudes are merged (see
 * {@linkcode QUANTILE_MAX_BUCKETS}). Non-finite values are ignored.
 *
 * @example Estimating the median
 * ```ts
 * import { QuantileSketch } from "./aggregates.ts";
 * const sketch = new QuantileSketch();
 * for (let i = 1; i <= 1000; i++) sketch.add(i);
 * const median = sketch.quantile(0.5)!;
 * console.assert(Math.abs(median - 500) <= 0.01 * 500);
 * ```
 */
export class QuantileSketch {
  /** The guaranteed relative accuracy, `a`. */
  readonly relativeAccuracy: number;
  /** The most buckets kept per sign. */
  readonly maxBuckets: number;
  readonly #lnGamma: number;
  readonly #bucketScale: number;
  #positive: BucketStore;
  #negative: BucketStore;
  #zeros = 0;
  #count = 0;
  #min = Infinity;
  #max = -Infinity;

  /**
   * Creates a QuantileSketch.
   *
   * @param relativeAccuracy The relative accuracy `a`, in (0, 1).
   * @param maxBuckets The most buckets kept per sign, at least 2.
   * @throws {RangeError} When an argument is out of range.
   */
  constructor(
    relativeAccuracy: number = QUANTILE_RELATIVE_ACCURACY,
    maxBuckets: number = QUANTILE_MAX_BUCKETS,
  ) {
    if (!(relativeAccuracy > 0 && relativeAccuracy < 1)) {
      throw new RangeError(
        `expected a relative accuracy in (0, 1), found ${relativeAccuracy}`,
      );
    }
    if (!Number.isInteger(maxBuckets) || maxBuckets < 2) {
      throw new RangeError(
        `expected maxBuckets to be an integer >= 2, found ${maxBuckets}`,
      );
    }
    this.relativeAccuracy = relativeAccuracy;
    this.maxBuckets = maxBuckets;
    const gamma = (1 + relativeAccuracy) / (1 - relativeAccuracy);
    this.#lnGamma = Math.log(gamma);
    this.#bucketScale = 2 / (1 + gamma);
    this.#positive = new BucketStore(maxBuckets);
    this.#negative = new BucketStore(maxBuckets);
  }

  /**
   * How many values were added (non-finite values excluded).
   *
   * @example Counting values
   * ```ts
   * import { QuantileSketch } from "./aggregates.ts";
   * const sketch = new QuantileSketch();
   * sketch.add(1);
   * sketch.add(NaN);
   * console.assert(sketch.count === 1);
   * ```
   */
  get count(): number {
    return this.#count;
  }

  /**
   * How many buckets the sketch currently spans (both signs, plus one for
   * zeros when any): the memory it holds, never more than
   * `2 * maxBuckets + 1`.
   *
   * @example Memory stays bounded
   * ```ts
   * import { QuantileSketch } from "./aggregates.ts";
   * const sketch = new QuantileSketch(0.01, 64);
   * for (let i = 0; i < 10000; i++) sketch.add(1.01 ** i);
   * console.assert(sketch.bucketCount <= 64);
   * ```
   */
  get bucketCount(): number {
    return this.#positive.span + this.#negative.span +
      (this.#zeros > 0 ? 1 : 0);
  }

  /**
   * Adds one value; non-finite values (`NaN`, `±Infinity`) are ignored.
   *
   * @param value The value.
   * @example Adding values of both signs
   * ```ts
   * import { QuantileSketch } from "./aggregates.ts";
   * const sketch = new QuantileSketch();
   * for (const v of [-5, 0, 5]) sketch.add(v);
   * console.assert(sketch.quantile(0.5) === 0);
   * ```
   */
  add(value: number): void {
    if (value - value !== 0) return; // NaN or ±Infinity
    this.#count++;
    if (value < this.#min) this.#min = value;
    if (value > this.#max) this.#max = value;
    if (value > 0) {
      this.#positive.add(Math.ceil(Math.log(value) / this.#lnGamma), 1);
    } else if (value < 0) {
      this.#negative.add(Math.ceil(Math.log(-value) / this.#lnGamma), 1);
    } else {
      this.#zeros++;
    }
  }

  /**
   * Adds every value of another sketch into this one.
   *
   * @param other A sketch with the same accuracy and bucket limit.
   * @throws {RangeError} When the sketches' parameters differ.
   * @example Merging two sketches
   * ```ts
   * import { QuantileSketch } from "./aggregates.ts";
   * const a = new QuantileSketch(), b = new QuantileSketch();
   * a.add(1);
   * b.add(2);
   * a.merge(b);
   * console.assert(a.count === 2);
   * ```
   */
  merge(other: QuantileSketch): void {
    if (
      other.relativeAccuracy !== this.relativeAccuracy ||
      other.maxBuckets !== this.maxBuckets
    ) {
      throw new RangeError(
        `expected a sketch with accuracy ${this.relativeAccuracy} and ${this.maxBuckets} buckets, found ${other.relativeAccuracy} and ${other.maxBuckets}`,
      );
    }
    for (
      const [mine, theirs] of [[this.#positive, other.#positive], [
        this.#negative,
        other.#negative,
      ]]
    ) {
      if (theirs.total === 0) continue;
      // Highest indices first, so collapsing keeps the buckets that survive.
      for (let i = theirs.maxIndex; i >= theirs.minIndex; i--) {
        const c = theirs.get(i);
        if (c !== 0) mine.add(i, c);
      }
    }
    this.#zeros += other.#zeros;
    this.#count += other.#count;
    if (other.#min < this.#min) this.#min = other.#min;
    if (other.#max > this.#max) this.#max = other.#max;
  }

  /**
   * The approximate value of the given nearest-rank rank: the `rank`-th
   * smallest value (1-based). Rank 1 and rank `count` are exact (the minimum
   * and maximum are tracked exactly).
   *
   * @param rank An integer in `[1, count]`; clamped into that range.
   * @returns The estimate, or `null` when the sketch is empty.
   * @example The smallest and largest ranks
   * ```ts
   * import { QuantileSketch } from "./aggregates.ts";
   * const sketch = new QuantileSketch();
   * for (const v of [3, 1, 2]) sketch.add(v);
   * console.assert(sketch.valueAtRank(1) === 1 && sketch.valueAtRank(3) === 3);
   * ```
   */
  valueAtRank(rank: number): number | null {
    if (this.#count === 0) return null;
    const target = Math.min(this.#count, Math.max(1, Math.ceil(rank)));
    // The extremes are tracked exactly, so the first and last ranks are exact.
    if (target === 1) return this.#min;
    if (target === this.#count) return this.#max;
    let seen = 0;
    const negative = this.#negative;
    if (negative.total > 0) {
      // Most negative first: the highest |x| bucket holds the smallest values.
      for (let i = negative.maxIndex; i >= negative.minIndex; i--) {
        seen += negative.get(i);
        if (seen >= target) return this.#clamp(-this.#representative(i));
      }
    }
    seen += this.#zeros;
    if (seen >= target) return 0;
    const positive = this.#positive;
    for (let i = positive.minIndex; i <= positive.maxIndex; i++) {
      seen += positive.get(i);
      if (seen >= target) return this.#clamp(this.#representative(i));
    }
    return this.#max;
  }

  /**
   * The approximate nearest-rank quantile: the value of rank
   * `ceil(q * count)` (at least 1).
   *
   * @param q The quantile in [0, 1].
   * @returns The estimate, or `null` when the sketch is empty.
   * @throws {RangeError} When `q` is outside [0, 1].
   * @example The 90th percentile
   * ```ts
   * import { QuantileSketch } from "./aggregates.ts";
   * const sketch = new QuantileSketch();
   * for (let i = 1; i <= 100; i++) sketch.add(i);
   * console.assert(Math.abs(sketch.quantile(0.9)! - 90) <= 0.9);
   * ```
   */
  quantile(q: number): number | null {
    if (!(q >= 0 && q <= 1)) {
      throw new RangeError(`expected a quantile in [0, 1], found ${q}`);
    }
    return this.valueAtRank(Math.ceil(q * this.#count));
  }

  #representative(index: number): number {
    return Math.exp(index * this.#lnGamma) * this.#bucketScale;
  }

  /** Exact extremes beat bucket estimates (and tame overflow at the top). */
  #clamp(value: number): number {
    return value < this.#min ? this.#min : value > this.#max ? this.#max : value;
  }
}

/**
 * The running state of one window: folds events in one at a time and merges
 * with another accumulator (for session windows), without storing events.
 *
 * Semantics:
 * - `count` counts every event, whatever its value.
 * - `sum`, `avg`, `min`, `max` and the percentiles use only values that are
 *   finite numbers; anything else (missing, strings such as `"12"`, `null`,
 *   `NaN`, `±Infinity`) is skipped. With no such values `sum` is `0` and
 *   `avg`, `min`, `max` and the percentiles are `null`.
 * - `first` / `last` are the values (missing → `null`) of the events with the
 *   earliest / latest event time, ties going to the earlier / later arrival.
 * - `distinct_count` counts distinct distinct-values (`1` and `"1"` differ,
 *   objects compare by content via {@linkcode valueKey}); events whose value
 *   is `null` or missing are not counted. Its memory grows with the number of
 *   distinct values.
 * - `rate_per_second` is `count` divided by the window duration in seconds.
 * - Percentiles (`p50`, `p90`, `p95`, `p99`) are nearest-rank, within 1%
 *   relative error of the true value (see {@linkcode QuantileSketch}).
 *
 * The sketch and the distinct set are only allocated when their aggregations
 * are requested.
 *
 * @example Aggregating three events
 * ```ts
 * import { Accumulator, createAggregationPlan } from "./aggregates.ts";
 * const acc = new Accumulator(createAggregationPlan(["count", "avg", "first"]));
 * acc.add(2000, 10, undefined, 0);
 * acc.add(1000, 20, undefined, 1);
 * acc.add(3000, "n/a", undefined, 2);
 * const result = acc.result(60_000);
 * console.assert(result.count === 3 && result.avg === 15 && result.first === 20);
 * ```
 */
export class Accumulator {
  /** The plan this accumulator computes. */
  readonly plan: AggregationPlan;
  #count = 0;
  #numericCount = 0;
  #sum = 0;
  #min = Infinity;
  #max = -Infinity;
  #firstTime = Infinity;
  #firstArrival = Infinity;
  #firstValue: unknown = null;
  #lastTime = -Infinity;
  #lastArrival = -Infinity;
  #lastValue: unknown = null;
  #distinct: Set<unknown> | null;
  /** Distinct object values by {@linkcode valueKey}, allocated on first use. */
  #distinctObjects: Set<string> | null = null;
  #sketch: QuantileSketch | null;

  /**
   * Creates a Accumulator.
   *
   * @param plan The aggregations to compute, from
   * {@linkcode createAggregationPlan}.
   */
  constructor(plan: AggregationPlan) {
    this.plan = plan;
    this.#distinct = plan.distinct ? new Set() : null;
    this.#sketch = plan.percentiles.length > 0 ? new QuantileSketch() : null;
  }

  /**
   * How many events were added (or merged in).
   *
   * @example Counting events
   * ```ts
   * import { Accumulator, createAggregationPlan } from "./aggregates.ts";
   * const acc = new Accumulator(createAggregationPlan(["count"]));
   * acc.add(0, undefined, undefined, 0);
   * console.assert(acc.count === 1);
   * ```
   */
  get count(): number {
    return this.#count;
  }

  /**
   * The number of cells of growable state held: sketch buckets plus distinct
   * values. It is 0 for the plain aggregations, bounded for percentiles, and
   * grows only with distinct values; useful for state-size metrics and tests.
   *
   * @example Plain aggregations keep no growable state
   * ```ts
   * import { Accumulator, createAggregationPlan } from "./aggregates.ts";
   * const acc = new Accumulator(createAggregationPlan(["sum", "max"]));
   * for (let i = 0; i < 1000; i++) acc.add(i, i, undefined, i);
   * console.assert(acc.retainedCells === 0);
   * ```
   */
  get retainedCells(): number {
    return (this.#sketch?.bucketCount ?? 0) + (this.#distinct?.size ?? 0) +
      (this.#distinctObjects?.size ?? 0);
  }

  /**
   * Folds in one event.
   *
   * @param eventTimeMs The event time, used by `first` / `last`.
   * @param value The event's value-field value (anything; see the class
   * docs for which values count).
   * @param distinctValue The event's distinct-field value.
   * @param arrival A number increasing with arrival order (the engine's
   * event sequence), breaking event-time ties for `first` / `last`.
   * @example Ties in event time go by arrival
   * ```ts
   * import { Accumulator, createAggregationPlan } from "./aggregates.ts";
   * const acc = new Accumulator(createAggregationPlan(["first", "last"]));
   * acc.add(5, "a", undefined, 0);
   * acc.add(5, "b", undefined, 1);
   * const result = acc.result(1000);
   * console.assert(result.first === "a" && result.last === "b");
   * ```
   */
  add(
    eventTimeMs: number,
    value: unknown,
    distinctValue: unknown,
    arrival: number,
  ): void {
    this.#count++;
    const plan = this.plan;
    if (plan.numeric && typeof value === "number" && value - value === 0) {
      this.#numericCount++;
      this.#sum += value;
      if (value < this.#min) this.#min = value;
      if (value > this.#max) this.#max = value;
      if (this.#sketch !== null) this.#sketch.add(value);
    }
    if (plan.firstLast) {
      if (
        eventTimeMs < this.#firstTime ||
        (eventTimeMs === this.#firstTime && arrival < this.#firstArrival)
      ) {
        this.#firstTime = eventTimeMs;
        this.#firstArrival = arrival;
        this.#firstValue = value === undefined ? null : value;
      }
      if (
        eventTimeMs > this.#lastTime ||
        (eventTimeMs === this.#lastTime && arrival > this.#lastArrival)
      ) {
        this.#lastTime = eventTimeMs;
        this.#lastArrival = arrival;
        this.#lastValue = value === undefined ? null : value;
      }
    }
    if (this.#distinct !== null && distinctValue != null) {
      if (typeof distinctValue === "object") {
        (this.#distinctObjects ??= new Set()).add(valueKey(distinctValue));
      } else {
        this.#distinct.add(distinctValue);
      }
    }
  }

  /**
   * Folds in one event when the plan needs neither event times nor distinct
   * values (no `first`, `last` or `distinct_count`): the same as
   * {@linkcode Accumulator.add} without the arguments that plan ignores.
   *
   * @param value The event's value-field value.
   * @throws {TypeError} When the plan needs times or distinct values.
   * @example Summing values
   * ```ts
   * import { Accumulator, createAggregationPlan } from "./aggregates.ts";
   * const acc = new Accumulator(createAggregationPlan(["count", "sum"]));
   * acc.addValue(2);
   * acc.addValue("not a number");
   * console.assert(acc.count === 2 && acc.result(1000).sum === 2);
   * ```
   */
  addValue(value: unknown): void {
    const plan = this.plan;
    if (plan.firstLast || this.#distinct !== null) {
      throw new TypeError("this plan needs event times or distinct values: use add()");
    }
    this.#count++;
    if (plan.numeric && typeof value === "number" && value - value === 0) {
      this.#numericCount++;
      this.#sum += value;
      if (value < this.#min) this.#min = value;
      if (value > this.#max) this.#max = value;
      if (this.#sketch !== null) this.#sketch.add(value);
    }
  }

  /**
   * Folds another accumulator's events into this one, as if they had been
   * added here (used when session windows merge). `other` is left unchanged
   * but should be discarded.
   *
   * @param other An accumulator built from the same plan.
   * @throws {TypeError} When the plans differ.
   * @example Merging two sessions' state
   * ```ts
   * import { Accumulator, createAggregationPlan } from "./aggregates.ts";
   * const plan = createAggregationPlan(["count", "max"]);
   * const a = new Accumulator(plan), b = new Accumulator(plan);
   * a.add(0, 1, undefined, 0);
   * b.add(9, 7, undefined, 1);
   * a.merge(b);
   * console.assert(a.result(1000).max === 7 && a.count === 2);
   * ```
   */
  merge(other: Accumulator): void {
    if (other.plan !== this.plan) {
      throw new TypeError(
        "expected an accumulator built from the same aggregation plan, found a different plan",
      );
    }
    this.#count += other.#count;
    this.#numericCount += other.#numericCount;
    this.#sum += other.#sum;
    if (other.#min < this.#min) this.#min = other.#min;
    if (other.#max > this.#max) this.#max = other.#max;
    if (
      other.#firstTime < this.#firstTime ||
      (other.#firstTime === this.#firstTime &&
        other.#firstArrival < this.#firstArrival)
    ) {
      this.#firstTime = other.#firstTime;
      this.#firstArrival = other.#firstArrival;
      this.#firstValue = other.#firstValue;
    }
    if (
      other.#lastTime > this.#lastTime ||
      (other.#lastTime === this.#lastTime &&
        other.#lastArrival > this.#lastArrival)
    ) {
      this.#lastTime = other.#lastTime;
      this.#lastArrival = other.#lastArrival;
      this.#lastValue = other.#lastValue;
    }
    if (this.#distinct !== null && other.#distinct !== null) {
      for (const v of other.#distinct) this.#distinct.add(v);
      if (other.#distinctObjects !== null) {
        const mine = this.#distinctObjects ??= new Set();
        for (const v of other.#distinctObjects) mine.add(v);
      }
    }
    if (this.#sketch !== null && other.#sketch !== null) {
      this.#sketch.merge(other.#sketch);
    }
  }

  /**
   * The aggregation results, with exactly the plan's keys in plan order.
   *
   * @param windowDurationMs The window's length, for `rate_per_second`
   * (which is `null` when the duration is not positive).
   * @returns An object mapping each aggregation name to its value.
   * @example Rate over a one-minute window
   * ```ts
   * import { Accumulator, createAggregationPlan } from "./aggregates.ts";
   * const acc = new Accumulator(createAggregationPlan(["rate_per_second"]));
   * for (let i = 0; i < 120; i++) acc.add(i, undefined, undefined, i);
   * console.assert(acc.result(60_000).rate_per_second === 2);
   * ```
   */
  result(windowDurationMs: number): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    const hasNumbers = this.#numericCount > 0;
    for (const name of this.plan.names) {
      switch (name) {
        case "count":
          out.count = this.#count;
          break;
        case "sum":
          out.sum = this.#sum;
          break;
        case "avg":
          out.avg = hasNumbers ? this.#sum / this.#numericCount : null;
          break;
        case "min":
          out.min = hasNumbers ? this.#min : null;
          break;
        case "max":
          out.max = hasNumbers ? this.#max : null;
          break;
        case "rate_per_second":
          out.rate_per_second = windowDurationMs > 0
            ? this.#count / (windowDurationMs / 1000)
            : null;
          break;
        case "distinct_count":
          out.distinct_count = (this.#distinct?.size ?? 0) +
            (this.#distinctObjects?.size ?? 0);
          break;
        case "first":
          out.first = this.#count > 0 ? this.#firstValue : null;
          break;
        case "last":
          out.last = this.#count > 0 ? this.#lastValue : null;
          break;
        default: {
          // Integer arithmetic keeps the nearest rank exact: p * n is an
          // integer, so dividing by 100 rounds correctly before ceil.
          const n = this.#sketch!.count;
          out[name] = n === 0
            ? null
            : this.#sketch!.valueAtRank(Math.ceil(PERCENTILES[name] * n / 100));
        }
      }
    }
    return out;
  }
}
