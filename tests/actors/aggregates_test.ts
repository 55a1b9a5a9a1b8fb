import assert from "node:assert/strict";
import {
  Accumulator,
  AGGREGATION_NAMES,
  createAggregationPlan,
  isAggregationName,
  QUANTILE_MAX_BUCKETS,
  QUANTILE_RELATIVE_ACCURACY,
  QuantileSketch,
  valueKey,
} from "../../actors/processors/aggregates.ts";

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The nearest-rank value: the ceil(q * n)-th smallest (at least the first). */
function exactAtRank(sorted: number[], rank: number): number {
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

function assertWithinAccuracy(
  estimate: number | null,
  exact: number,
  message: string,
): void {
  assert.notEqual(estimate, null, message);
  // A hair of slack for floating-point error in log() at bucket borders.
  const bound = QUANTILE_RELATIVE_ACCURACY * Math.abs(exact) * (1 + 1e-9);
  assert.ok(
    Math.abs(estimate! - exact) <= bound,
    `${message}: estimate ${estimate} vs exact ${exact} (bound ${bound})`,
  );
}

Deno.test("createAggregationPlan checks names and precompiles flags", async (t) => {
  await t.step("dedupes and keeps request order", () => {
    const plan = createAggregationPlan(["p99", "count", "p50", "count"]);
    assert.deepEqual(plan.names, ["p99", "count", "p50"]);
    assert.deepEqual(plan.percentiles, [50, 99]);
    assert.equal(plan.numeric, true);
    assert.equal(plan.firstLast, false);
    assert.equal(plan.distinct, false);
    assert.ok(Object.isFrozen(plan));
  });
  await t.step("count alone needs no value", () => {
    const plan = createAggregationPlan(["count", "rate_per_second"]);
    assert.equal(plan.needsValue, false);
    assert.equal(plan.numeric, false);
  });
  await t.step("first/last need the value but are not numeric", () => {
    const plan = createAggregationPlan(["last"]);
    assert.equal(plan.needsValue, true);
    assert.equal(plan.numeric, false);
    assert.equal(plan.firstLast, true);
  });
  await t.step("rejects unknown names and empty lists with TypeError", () => {
    assert.throws(() => createAggregationPlan(["median"]), {
      name: "TypeError",
      message: /found "median"/,
    });
    assert.throws(() => createAggregationPlan([]), TypeError);
    assert.throws(
      () => createAggregationPlan("count" as unknown as string[]),
      TypeError,
    );
  });
  await t.step("isAggregationName knows every documented name", () => {
    for (const name of AGGREGATION_NAMES) assert.ok(isAggregationName(name));
    assert.equal(isAggregationName("P99"), false);
    assert.equal(isAggregationName(1), false);
  });
});

Deno.test("valueKey encodes values canonically", () => {
  assert.equal(
    valueKey({ a: 1, b: [1, { d: 2, c: 3 }] }),
    valueKey({ b: [1, { c: 3, d: 2 }], a: 1 }),
  );
  assert.notEqual(valueKey(1), valueKey("1"));
  assert.notEqual(valueKey(true), valueKey("true"));
  assert.notEqual(valueKey({ a: 1 }), valueKey('{"a":1}'));
  assert.equal(valueKey(undefined), valueKey(null));
  assert.equal(valueKey(0), valueKey(-0));
  assert.notEqual(valueKey(NaN), valueKey(null));
  assert.equal(valueKey(10n), "10n");
});

Deno.test("Accumulator computes every aggregation on a small case", () => {
  const acc = new Accumulator(createAggregationPlan([...AGGREGATION_NAMES]));
  // [event time, value, distinct value]
  const events: [number, unknown, unknown][] = [
    [300, 5, "a"],
    [100, 1, "b"],
    [200, "7", "a"], // counted, but a string is not numeric
    [400, -2, null], // null distinct values are not counted
    [400, 10, { id: 1 }],
    [150, undefined, { id: 1 }], // same object content: one distinct value
    [250, NaN, 1],
    [260, Infinity, "1"], // 1 and "1" are distinct
  ];
  events.forEach(([t, v, d], i) => acc.add(t, v, d, i));
  const { p50, p90, p95, p99, ...exact } = acc.result(4000);
  assert.deepEqual(exact, {
    count: 8,
    sum: 14, // 5 + 1 - 2 + 10
    avg: 3.5,
    min: -2,
    max: 10,
    rate_per_second: 2, // 8 events in 4 s
    distinct_count: 5, // "a", "b", {id:1}, 1, "1"
    first: 1, // t=100
    last: 10, // t=400, the later arrival of the two
  });
  // Numeric values sorted: [-2, 1, 5, 10]; nearest ranks 2, 4, 4, 4.
  assertWithinAccuracy(p50 as number, 1, "p50");
  assertWithinAccuracy(p90 as number, 10, "p90");
  assertWithinAccuracy(p95 as number, 10, "p95");
  assertWithinAccuracy(p99 as number, 10, "p99");
  assert.deepEqual(
    Object.keys(acc.result(4000)),
    [...AGGREGATION_NAMES],
    "keys in plan order",
  );
});

Deno.test("Accumulator returns exactly the requested keys", () => {
  const acc = new Accumulator(createAggregationPlan(["max", "count"]));
  acc.add(0, 3, undefined, 0);
  assert.deepEqual(acc.result(1000), { max: 3, count: 1 });
  assert.deepEqual(Object.keys(acc.result(1000)), ["max", "count"]);
});

Deno.test("Accumulator reports null for numeric aggregates without numbers", () => {
  const acc = new Accumulator(
    createAggregationPlan([
      "count",
      "sum",
      "avg",
      "min",
      "max",
      "p50",
      "first",
      "last",
    ]),
  );
  acc.add(10, "x", undefined, 0);
  acc.add(20, undefined, undefined, 1);
  acc.add(30, null, undefined, 2);
  assert.deepEqual(acc.result(1000), {
    count: 3,
    sum: 0,
    avg: null,
    min: null,
    max: null,
    p50: null,
    first: "x",
    last: null, // missing and null values both read as null
  });
});

Deno.test("Accumulator first/last follow event time, ties by arrival", async (t) => {
  const plan = createAggregationPlan(["first", "last"]);
  await t.step("out-of-order event times", () => {
    const acc = new Accumulator(plan);
    acc.add(50, "mid", undefined, 0);
    acc.add(90, "late", undefined, 1);
    acc.add(10, "early", undefined, 2);
    assert.deepEqual(acc.result(1), { first: "early", last: "late" });
  });
  await t.step("equal event times", () => {
    const acc = new Accumulator(plan);
    acc.add(5, "a", undefined, 0);
    acc.add(5, "b", undefined, 1);
    acc.add(5, "c", undefined, 2);
    assert.deepEqual(acc.result(1), { first: "a", last: "c" });
  });
  await t.step("merge keeps arrival order across accumulators", () => {
    const a = new Accumulator(plan);
    const b = new Accumulator(plan);
    b.add(5, "b-first", undefined, 0);
    a.add(5, "a-middle", undefined, 1);
    b.add(5, "b-last", undefined, 2);
    a.merge(b);
    assert.deepEqual(a.result(1), { first: "b-first", last: "b-last" });
  });
  await t.step("an empty accumulator has null first/last", () => {
    assert.deepEqual(new Accumulator(plan).result(1), {
      first: null,
      last: null,
    });
  });
});

Deno.test("Accumulator rate_per_second divides by the window in seconds", () => {
  const acc = new Accumulator(createAggregationPlan(["rate_per_second"]));
  for (let i = 0; i < 30; i++) acc.add(i, undefined, undefined, i);
  assert.equal(acc.result(60_000).rate_per_second, 0.5);
  assert.equal(acc.result(250).rate_per_second, 120);
  assert.equal(acc.result(0).rate_per_second, null);
});

Deno.test("Accumulator merge equals adding everything to one accumulator", () => {
  const random = mulberry32(7);
  const plan = createAggregationPlan([...AGGREGATION_NAMES]);
  for (let round = 0; round < 20; round++) {
    const whole = new Accumulator(plan);
    const parts = [
      new Accumulator(plan),
      new Accumulator(plan),
      new Accumulator(plan),
    ];
    for (let i = 0; i < 500; i++) {
      const t = Math.floor(random() * 100);
      const v = random() < 0.9 ? Math.round((random() - 0.3) * 2000) : "n/a";
      const d = random() < 0.1 ? { k: Math.floor(random() * 3) } : Math.floor(random() * 40);
      whole.add(t, v, d, i);
      parts[Math.floor(random() * parts.length)].add(t, v, d, i);
    }
    parts[1].merge(parts[2]);
    parts[0].merge(parts[1]);
    // Integer values: sums are exact in any order, and identical sketch
    // buckets give identical percentiles.
    assert.deepEqual(parts[0].result(5000), whole.result(5000));
    assert.equal(parts[0].count, 500);
  }
});

Deno.test("Accumulator merge rejects a different plan", () => {
  const a = new Accumulator(createAggregationPlan(["count"]));
  const b = new Accumulator(createAggregationPlan(["count"]));
  assert.throws(() => a.merge(b), TypeError);
});

Deno.test("Accumulator allocates growable state only for sketches and distinct values", async (t) => {
  await t.step("plain aggregations retain nothing per event", () => {
    const acc = new Accumulator(
      createAggregationPlan([
        "count",
        "sum",
        "avg",
        "min",
        "max",
        "first",
        "last",
        "rate_per_second",
      ]),
    );
    for (let i = 0; i < 100_000; i++) acc.add(i, i * 1.5, i, i);
    assert.equal(acc.retainedCells, 0);
  });
  await t.step("distinct_count grows with distinct values only", () => {
    const acc = new Accumulator(createAggregationPlan(["distinct_count"]));
    for (let i = 0; i < 100_000; i++) acc.add(i, undefined, i % 37, i);
    assert.equal(acc.retainedCells, 37);
    assert.equal(acc.result(1).distinct_count, 37);
  });
  await t.step("percentiles retain a bounded sketch", () => {
    const acc = new Accumulator(createAggregationPlan(["p99"]));
    const random = mulberry32(3);
    let cellsAtHalf = 0;
    for (let i = 0; i < 200_000; i++) {
      acc.add(i, Math.exp(random() * 20), undefined, i);
      if (i === 99_999) cellsAtHalf = acc.retainedCells;
    }
    assert.ok(acc.retainedCells <= 2 * QUANTILE_MAX_BUCKETS + 1);
    // e^20 spans ~1000 buckets at 1%: all filled long before the end.
    assert.equal(acc.retainedCells, cellsAtHalf);
  });
});

Deno.test("QuantileSketch is within its relative accuracy of nearest-rank quantiles", async (t) => {
  const distributions: Record<string, (r: () => number) => number> = {
    uniform: (r) => r() * 1000,
    "log-uniform over 12 decades": (r) => 10 ** (r() * 12 - 6),
    "mixed signs with zeros": (r) => r() < 0.1 ? 0 : (r() - 0.5) * 1e4,
    "all negative": (r) => -1 - r() * 50,
    "few distinct integers": (r) => Math.floor(r() * 5),
  };
  for (const [name, draw] of Object.entries(distributions)) {
    await t.step(name, () => {
      for (const seed of [1, 2, 3]) {
        const random = mulberry32(seed);
        const sketch = new QuantileSketch();
        const values: number[] = [];
        const n = 1 + Math.floor(random() * 3000);
        for (let i = 0; i < n; i++) {
          const v = draw(random);
          values.push(v);
          sketch.add(v);
        }
        values.sort((a, b) => a - b);
        assert.equal(sketch.count, n);
        for (let rank = 1; rank <= n; rank += Math.max(1, Math.floor(n / 97))) {
          assertWithinAccuracy(
            sketch.valueAtRank(rank),
            exactAtRank(values, rank),
            `${name} seed ${seed} rank ${rank}`,
          );
        }
        for (const q of [0, 0.01, 0.5, 0.9, 0.95, 0.99, 1]) {
          assertWithinAccuracy(
            sketch.quantile(q),
            exactAtRank(values, Math.ceil(q * n)),
            `${name} seed ${seed} q ${q}`,
          );
        }
        assert.equal(sketch.valueAtRank(1), values[0], "the minimum is exact");
        assert.equal(
          sketch.valueAtRank(n),
          values[n - 1],
          "the maximum is exact",
        );
      }
    });
  }
});

Deno.test("QuantileSketch ignores non-finite values and reports null when empty", () => {
  const sketch = new QuantileSketch();
  assert.equal(sketch.quantile(0.5), null);
  sketch.add(NaN);
  sketch.add(Infinity);
  sketch.add(-Infinity);
  assert.equal(sketch.count, 0);
  assert.equal(sketch.valueAtRank(1), null);
  sketch.add(42);
  assert.equal(sketch.quantile(0.5), 42);
});

Deno.test("QuantileSketch validates its arguments", () => {
  assert.throws(() => new QuantileSketch(0), RangeError);
  assert.throws(() => new QuantileSketch(1), RangeError);
  assert.throws(() => new QuantileSketch(0.01, 1), RangeError);
  assert.throws(() => new QuantileSketch(0.01, 2.5), RangeError);
  assert.throws(() => new QuantileSketch().quantile(1.5), RangeError);
  assert.throws(() => new QuantileSketch().quantile(NaN), RangeError);
  assert.throws(
    () => new QuantileSketch(0.01).merge(new QuantileSketch(0.02)),
    RangeError,
  );
});

Deno.test("QuantileSketch collapses its smallest buckets past the bucket limit", async (t) => {
  // With 64 buckets of ~2% width, values from 1 up to 1.02^200 overflow the
  // limit; the top 63 buckets stay exact-ish, the rest merge into one.
  const maxBuckets = 64;
  const values = Array.from({ length: 200 }, (_, i) => 1.0202 ** i);
  const sorted = [...values].sort((a, b) => a - b);
  const check = (sketch: QuantileSketch, label: string) => {
    assert.equal(sketch.count, 200, label);
    assert.ok(
      sketch.bucketCount <= maxBuckets,
      `${label}: ${sketch.bucketCount} buckets`,
    );
    // Ranks whose value lies well above the merged bucket keep the guarantee.
    for (let rank = 200 - 60; rank <= 200; rank++) {
      assertWithinAccuracy(
        sketch.valueAtRank(rank),
        exactAtRank(sorted, rank),
        `${label} rank ${rank}`,
      );
    }
    // The merged bucket still answers with a value inside the data's range.
    const low = sketch.valueAtRank(1)!;
    assert.ok(low >= sorted[0] && low <= sorted[199], label);
  };
  await t.step("growing upwards", () => {
    const sketch = new QuantileSketch(0.01, maxBuckets);
    for (const v of values) sketch.add(v);
    check(sketch, "upwards");
  });
  await t.step("growing downwards", () => {
    const sketch = new QuantileSketch(0.01, maxBuckets);
    for (const v of [...values].reverse()) sketch.add(v);
    check(sketch, "downwards");
  });
  await t.step("random order", () => {
    const random = mulberry32(11);
    const shuffled = [...values].sort(() => random() - 0.5);
    const sketch = new QuantileSketch(0.01, maxBuckets);
    for (const v of shuffled) sketch.add(v);
    check(sketch, "random");
  });
  await t.step("merging two collapsed sketches", () => {
    const a = new QuantileSketch(0.01, maxBuckets);
    const b = new QuantileSketch(0.01, maxBuckets);
    values.forEach((v, i) => (i % 2 === 0 ? a : b).add(v));
    a.merge(b);
    check(a, "merged");
  });
  await t.step("a huge jump collapses everything below into one bucket", () => {
    const sketch = new QuantileSketch(0.01, maxBuckets);
    for (let i = 1; i <= 10; i++) sketch.add(i);
    sketch.add(1e300);
    assert.equal(sketch.count, 11);
    assert.ok(sketch.bucketCount <= maxBuckets);
    assert.equal(sketch.valueAtRank(11), 1e300);
  });
});

Deno.test("QuantileSketch merge equals adding all values to one sketch", () => {
  const random = mulberry32(5);
  const whole = new QuantileSketch();
  const a = new QuantileSketch();
  const b = new QuantileSketch();
  for (let i = 0; i < 5000; i++) {
    const v = (random() - 0.2) * 10 ** (random() * 6);
    whole.add(v);
    (random() < 0.5 ? a : b).add(v);
  }
  a.merge(b);
  for (let rank = 1; rank <= 5000; rank += 49) {
    assert.equal(a.valueAtRank(rank), whole.valueAtRank(rank));
  }
  assert.equal(a.bucketCount, whole.bucketCount);
});
