import assert from "node:assert/strict";
import {
  WindowEngine,
  type WindowEngineOptions,
  type WindowRecord,
} from "../../actors/processors/window_engine.ts";
import {
  Accumulator,
  AGGREGATION_NAMES,
  type AggregationName,
  createAggregationPlan,
  QUANTILE_MAX_BUCKETS,
  QUANTILE_RELATIVE_ACCURACY,
} from "../../actors/processors/aggregates.ts";
import { parseTimestampMs } from "../../runtime/time.ts";

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

function engine(options: Partial<WindowEngineOptions>): WindowEngine {
  return new WindowEngine({
    type: "tumbling",
    sizeMs: 1000,
    graceMs: 0,
    groupBy: [],
    aggregations: ["count"],
    ...options,
  });
}

Deno.test("WindowEngine validates its options", async (t) => {
  const cases: [
    string,
    Partial<WindowEngineOptions>,
    ErrorConstructor,
    RegExp,
  ][] = [
    [
      "unknown type",
      { type: "hopping" as "tumbling" },
      TypeError,
      /found "hopping"/,
    ],
    ["zero size", { sizeMs: 0 }, RangeError, /sizeMs > 0, found 0/],
    ["negative size", { sizeMs: -5 }, RangeError, /sizeMs/],
    [
      "size as string",
      { sizeMs: "5" as unknown as number },
      TypeError,
      /sizeMs/,
    ],
    ["missing size", { sizeMs: undefined }, TypeError, /found nothing/],
    ["infinite size", { sizeMs: Infinity }, TypeError, /finite/],
    ["sliding without slide", { type: "sliding" }, TypeError, /slideMs/],
    [
      "slide larger than size",
      { type: "sliding", slideMs: 2000 },
      RangeError,
      /slideMs in \(0, sizeMs = 1000\]/,
    ],
    ["zero slide", { type: "sliding", slideMs: 0 }, RangeError, /slideMs/],
    ["session without gap", { type: "session" }, TypeError, /gapMs/],
    ["zero gap", { type: "session", gapMs: 0 }, RangeError, /gapMs > 0/],
    ["negative grace", { graceMs: -1 }, RangeError, /graceMs >= 0/],
    [
      "unknown aggregation",
      { aggregations: ["median" as "count"] },
      TypeError,
      /median/,
    ],
    ["no aggregations", { aggregations: [] }, TypeError, /non-empty/],
    [
      "sum without value field",
      { aggregations: ["count", "sum", "p99"] },
      TypeError,
      /valueField for aggregations sum, p99/,
    ],
    [
      "distinct without any field",
      { aggregations: ["distinct_count"] },
      TypeError,
      /distinctField/,
    ],
    [
      "groupBy not an array",
      { groupBy: "user" as unknown as string[] },
      TypeError,
      /groupBy/,
    ],
    ["malformed groupBy path", { groupBy: ["a..b"] }, TypeError, /empty key/],
  ];
  for (const [name, options, type, message] of cases) {
    await t.step(name, () => {
      assert.throws(() => engine(options), (error: Error) => {
        assert.ok(error instanceof type, `${error.name}: ${error.message}`);
        assert.match(error.message, message);
        return true;
      });
    });
  }
  await t.step(
    "accepted: session ignores sizeMs, distinct falls back to valueField",
    () => {
      engine({ type: "session", gapMs: 10, sizeMs: undefined });
      engine({ valueField: "v", aggregations: ["distinct_count"] });
      engine({ type: "sliding", slideMs: 1000 });
    },
  );
});

Deno.test("WindowEngine tumbling windows: exact records, lateness and order", () => {
  const e = engine({
    groupBy: ["user"],
    valueField: "v",
    aggregations: [
      "count",
      "sum",
      "avg",
      "min",
      "max",
      "first",
      "last",
      "rate_per_second",
    ],
  });
  assert.equal(e.watermark, -Infinity);
  assert.equal(e.add({ user: "b", v: 5 }, 200), true);
  assert.equal(e.add({ user: "a", v: 1 }, 100), true);
  assert.equal(e.add({ user: "a", v: 3 }, 900), true);
  assert.equal(e.add({ user: "a", v: "x" }, 950), true);
  assert.equal(e.openWindowCount, 2);
  assert.deepEqual(e.drain(), [], "nothing is final yet");
  assert.equal(e.add({ v: 7 }, 1100), true); // user missing → key null
  assert.equal(e.watermark, 1100);
  assert.deepEqual(e.drain(), [
    {
      window_start: 0,
      window_end: 1000,
      key: { user: "a" },
      count: 3,
      sum: 4,
      avg: 2,
      min: 1,
      max: 3,
      first: 1,
      last: "x",
      rate_per_second: 3,
    },
    {
      window_start: 0,
      window_end: 1000,
      key: { user: "b" },
      count: 1,
      sum: 5,
      avg: 5,
      min: 5,
      max: 5,
      first: 5,
      last: 5,
      rate_per_second: 1,
    },
  ]);
  assert.equal(e.add({ user: "a", v: 9 }, 999), false, "[0, 1000) was final");
  assert.equal(e.openWindowCount, 1);
  assert.equal(e.maxOpenWindowEnd(), 2000);
  e.advanceWatermark(1500);
  assert.deepEqual(e.drain(), []);
  e.advanceWatermark(1200); // never backward
  assert.equal(e.watermark, 1500);
  e.advanceWatermark(2000);
  assert.deepEqual(e.drain(), [{
    window_start: 1000,
    window_end: 2000,
    key: { user: null },
    count: 1,
    sum: 7,
    avg: 7,
    min: 7,
    max: 7,
    first: 7,
    last: 7,
    rate_per_second: 1,
  }]);
  assert.equal(e.openWindowCount, 0);
  assert.equal(e.maxOpenWindowEnd(), undefined);
});

Deno.test("WindowEngine tumbling windows align to the epoch, also before it", () => {
  const e = engine({ sizeMs: 60_000, graceMs: 10_000_000 });
  e.add({}, -1);
  e.add({}, 1_700_000_012_345);
  const records = e.flushAll();
  assert.deepEqual(
    records.map((r) => [r.window_start, r.window_end, r.count]),
    [[-60_000, 0, 1], [1_699_999_980_000, 1_700_000_040_000, 1]],
  );
});

Deno.test("WindowEngine sliding windows: each event in every window containing it", () => {
  const e = engine({
    type: "sliding",
    slideMs: 500,
    valueField: "v",
    aggregations: ["count", "sum"],
  });
  e.add({ v: 1 }, 700);
  e.add({ v: 2 }, 1200);
  e.add({ v: 4 }, 1600); // watermark 1600
  assert.equal(
    e.add({ v: 100 }, 900),
    false,
    "[0,1000) and [500,1500) are final",
  );
  assert.equal(e.add({ v: 8 }, 1400), true, "only [1000,2000) is still open");
  assert.deepEqual(e.drain(), [
    { window_start: 0, window_end: 1000, key: {}, count: 1, sum: 1 },
    { window_start: 500, window_end: 1500, key: {}, count: 2, sum: 3 },
  ]);
  e.advanceWatermark(Infinity);
  assert.deepEqual(e.drain(), [
    { window_start: 1000, window_end: 2000, key: {}, count: 3, sum: 14 },
    { window_start: 1500, window_end: 2500, key: {}, count: 1, sum: 4 },
  ]);
});

Deno.test("WindowEngine sliding windows with a slide that does not divide the size", () => {
  const e = engine({ type: "sliding", sizeMs: 1000, slideMs: 300 });
  e.add({}, 950);
  // Windows [k*300, k*300+1000) containing 950: k = 0, 1, 2, 3.
  assert.deepEqual(
    e.flushAll().map((r) => [r.window_start, r.window_end]),
    [[0, 1000], [300, 1300], [600, 1600], [900, 1900]],
  );
});

Deno.test("WindowEngine session windows: open, extend, bridge, finalize", () => {
  const e = engine({
    type: "session",
    gapMs: 100,
    graceMs: 1000,
    groupBy: ["user"],
    valueField: "v",
    aggregations: ["count", "first", "last", "sum"],
  });
  e.add({ user: "a", v: 1 }, 0);
  e.add({ user: "a", v: 2 }, 50); // extends [0, 150)
  e.add({ user: "a", v: 3 }, 400); // new session [400, 500)
  e.add({ user: "a", v: 4 }, 250); // new session [250, 350)
  e.add({ user: "b", v: 5 }, 120); // other key: [120, 220)
  assert.equal(e.openWindowCount, 4);
  // [150, 250) touches both [0, 150) and [250, 350): one session [0, 350).
  e.add({ user: "a", v: 6 }, 150);
  assert.equal(e.openWindowCount, 3);
  assert.equal(e.maxOpenWindowEnd(), 500);
  e.advanceWatermark(350);
  assert.deepEqual(e.drain(), [
    {
      window_start: 120,
      window_end: 220,
      key: { user: "b" },
      count: 1,
      first: 5,
      last: 5,
      sum: 5,
    },
    {
      window_start: 0,
      window_end: 350,
      key: { user: "a" },
      count: 4,
      first: 1,
      last: 4,
      sum: 13,
    },
  ]);
  // [300, 400) touches the final [0, 350) (not reopened) and [400, 500).
  assert.equal(e.add({ user: "a", v: 7 }, 300), true);
  assert.equal(e.add({ user: "a", v: 8 }, 200), false, "200 + 100 <= 350");
  assert.equal(e.add({ user: "a", v: 10 }, 250), false, "250 + 100 <= 350");
  assert.equal(e.add({ user: "a", v: 9 }, 260), true, "260 + 100 > 350");
  assert.deepEqual(e.flushAll(), [
    {
      window_start: 260,
      window_end: 500,
      key: { user: "a" },
      count: 3,
      first: 9,
      last: 3,
      sum: 19,
    },
  ]);
  assert.equal(e.openWindowCount, 0);
});

Deno.test("WindowEngine session end grows while queued for draining", () => {
  const e = engine({ type: "session", gapMs: 100, graceMs: 0 });
  e.add({}, 0);
  for (let t = 50; t <= 1000; t += 50) {
    e.add({}, t);
    assert.deepEqual(e.drain(), [], `still open at ${t}`);
  }
  e.advanceWatermark(1099);
  assert.deepEqual(e.drain(), []);
  e.advanceWatermark(1100);
  assert.deepEqual(e.drain(), [{
    window_start: 0,
    window_end: 1100,
    key: {},
    count: 21,
  }]);
});

Deno.test("WindowEngine group keys", async (t) => {
  await t.step(
    "multiple dotted fields, missing as null, types kept apart",
    () => {
      const e = engine({ groupBy: ["region", "meta.tier"] });
      e.add({ region: "eu", meta: { tier: 1 } }, 1);
      e.add({ region: "eu", meta: { tier: "1" } }, 2);
      e.add({ region: "eu" }, 3);
      e.add({ region: "eu", meta: { tier: null } }, 4);
      e.add({ region: "eu", meta: { tier: 1 } }, 5);
      const keys = e.flushAll().map((r) => [r.key, r.count]);
      assert.equal(keys.length, 3);
      assert.deepEqual(
        new Set(keys.map((k) => JSON.stringify(k))),
        new Set([
          JSON.stringify([{ region: "eu", "meta.tier": 1 }, 2]),
          JSON.stringify([{ region: "eu", "meta.tier": "1" }, 1]),
          JSON.stringify([{ region: "eu", "meta.tier": null }, 2]),
        ]),
      );
    },
  );
  await t.step("object values group by content", () => {
    const e = engine({ groupBy: ["tags"] });
    e.add({ tags: { a: 1, b: 2 } }, 1);
    e.add({ tags: { b: 2, a: 1 } }, 2);
    const records = e.flushAll();
    assert.equal(records.length, 1);
    assert.equal(records[0].count, 2);
  });
  await t.step("a __proto__ field is an ordinary own key", () => {
    const e = engine({ groupBy: ["__proto__"] });
    e.add(JSON.parse('{"__proto__": "x"}'), 1);
    e.add({}, 2);
    const [withKey, without] = e.flushAll().sort((a, b) => a.count === b.count ? 0 : 1);
    for (const record of [withKey, without]) {
      assert.equal(Object.getPrototypeOf(record.key), Object.prototype);
      assert.ok(Object.hasOwn(record.key, "__proto__"));
    }
    assert.deepEqual(
      new Set([withKey.key["__proto__"], without.key["__proto__"]]),
      new Set(["x", null]),
    );
  });
  await t.step("alternating keys reuse the right windows", () => {
    const e = engine({ groupBy: ["k"] });
    for (let i = 0; i < 100; i++) e.add({ k: i % 3 }, i);
    assert.deepEqual(
      e.flushAll().map((r) => [r.key.k, r.count]),
      [[0, 34], [1, 33], [2, 33]],
    );
  });
});

Deno.test("WindowEngine drain orders by end, then start, then key", () => {
  const e = engine({
    type: "sliding",
    sizeMs: 1000,
    slideMs: 500,
    groupBy: ["k"],
    graceMs: 5000,
  });
  e.add({ k: "b" }, 1200);
  e.add({ k: "a" }, 1200);
  e.add({ k: "c" }, 100);
  e.advanceWatermark(Infinity);
  assert.deepEqual(
    e.drain().map((r) => `${r.window_start}-${r.window_end}:${r.key.k}`),
    [
      "-500-500:c",
      "0-1000:c",
      "500-1500:a",
      "500-1500:b",
      "1000-2000:a",
      "1000-2000:b",
    ],
  );
});

Deno.test("WindowEngine rejects invalid times", () => {
  const e = engine({});
  assert.throws(() => e.add({}, NaN), TypeError);
  assert.throws(() => e.add({}, Infinity), TypeError);
  assert.throws(() => e.add({}, "5" as unknown as number), TypeError);
  assert.throws(() => e.advanceWatermark(NaN), TypeError);
  assert.equal(e.openWindowCount, 0);
  assert.equal(e.watermark, -Infinity);
});

// --- brute-force reference -------------------------------------------------

type Op =
  | { kind: "event"; event: Record<string, unknown>; t: number }
  | { kind: "advance"; by: number }
  | { kind: "drain" };

/** Events with bounded disorder, some very late ones, and interleaved ops. */
function makeOps(seed: number, n: number): Op[] {
  const random = mulberry32(seed);
  const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)];
  const ops: Op[] = [];
  let base = 1_000_000;
  for (let i = 0; i < n; i++) {
    // Bursts separated by pauses, so sessions both form and end.
    base += random() < 0.02 ? 500 + Math.floor(random() * 1500) : Math.floor(random() * 40);
    let t = base - Math.floor(random() * 300); // disorder up to 300 ms
    if (random() < 0.03) t = base - 2000 - Math.floor(random() * 5000);
    const event: Record<string, unknown> = {};
    const region = pick(["eu", "us", "ap", undefined]);
    if (region !== undefined) event.region = region;
    if (random() < 0.8) event.meta = { tier: pick([1, 2, "1", null]) };
    const r = random();
    if (r < 0.8) event.v = Math.round((random() - 0.1) * 1000);
    else if (r < 0.85) event.v = 0;
    else if (r < 0.9) event.v = pick(["12", null, NaN, Infinity]);
    else if (r < 0.95) event.v = Math.round(random() * 1e6) / 100;
    // else: v missing
    const user = pick([
      "u1",
      "u2",
      "u3",
      "u4",
      "u5",
      { id: 1 },
      1,
      "1",
      undefined,
      null,
    ]);
    if (user !== undefined) event.user = user;
    ops.push({ kind: "event", event, t });
    if (random() < 0.1) ops.push({ kind: "drain" });
    if (random() < 0.02) {
      ops.push({ kind: "advance", by: Math.floor(random() * 200) });
    }
  }
  return ops;
}

interface RefEvent {
  event: Record<string, unknown>;
  t: number;
  arrival: number;
}

interface RefWindow {
  keyValues: unknown[];
  keyJson: string;
  start: number;
  end: number;
  events: RefEvent[];
}

function refKey(event: Record<string, unknown>, groupBy: string[]): unknown[] {
  return groupBy.map((path) => {
    let value: unknown = event;
    for (const key of path.split(".")) {
      value = value !== null && typeof value === "object"
        ? (value as Record<string, unknown>)[key]
        : undefined;
    }
    return value ?? null;
  });
}

/** Naive windowing: stores every event, recomputes everything from scratch. */
function reference(
  options: WindowEngineOptions,
  ops: Op[],
): { windows: RefWindow[]; late: number[]; bridges: number } {
  const size = options.sizeMs ?? 0;
  const slide = options.type === "sliding" ? options.slideMs! : size;
  const gap = options.gapMs ?? 0;
  let watermark = -Infinity;
  const late: number[] = [];
  const windows: RefWindow[] = [];
  let arrival = 0;
  let bridges = 0;
  for (const op of ops) {
    if (op.kind === "drain") continue;
    if (op.kind === "advance") {
      watermark = Math.max(watermark, watermark + op.by);
      continue;
    }
    const index = arrival++;
    const item: RefEvent = { event: op.event, t: op.t, arrival: index };
    const keyValues = refKey(op.event, options.groupBy);
    const keyJson = JSON.stringify(keyValues);
    const sameKey = (w: RefWindow) => w.keyJson === keyJson;
    if (options.type === "session") {
      if (op.t + gap <= watermark) {
        late.push(index);
      } else {
        const touching = windows.filter((w) =>
          sameKey(w) && w.end > watermark && op.t <= w.end &&
          op.t + gap >= w.start
        );
        if (touching.length > 1) bridges++;
        const merged: RefWindow = {
          keyValues,
          keyJson,
          start: 0,
          end: 0,
          events: [item],
        };
        for (const w of touching) {
          merged.events.push(...w.events);
          windows.splice(windows.indexOf(w), 1);
        }
        merged.start = Math.min(...merged.events.map((e) => e.t));
        merged.end = Math.max(...merged.events.map((e) => e.t)) + gap;
        windows.push(merged);
      }
    } else {
      let assigned = false;
      const first = Math.floor(op.t / slide) - Math.ceil(size / slide) - 2;
      for (let k = first; k <= first + Math.ceil(size / slide) + 4; k++) {
        const start = k * slide;
        const end = start + size;
        if (!(start <= op.t && op.t < end) || end <= watermark) continue;
        assigned = true;
        let w = windows.find((w) => w.start === start && sameKey(w));
        if (!w) windows.push(w = { keyValues, keyJson, start, end, events: [] });
        w.events.push(item);
      }
      if (!assigned) late.push(index);
    }
    watermark = Math.max(watermark, op.t - options.graceMs);
  }
  return { windows, late, bridges };
}

function expectedRecord(
  w: RefWindow,
  options: WindowEngineOptions,
): Record<string, unknown> {
  const events = [...w.events].sort((a, b) => a.t - b.t || a.arrival - b.arrival);
  const values = events.map((e) => e.event.v);
  const numbers = w.events.map((e) => e.event.v)
    .filter((v): v is number => typeof v === "number" && Number.isFinite(v));
  const sorted = [...numbers].sort((a, b) => a - b);
  const sum = numbers.reduce((a, b) => a + b, 0);
  const distinct = new Set(
    w.events.map((e) => e.event.user).filter((u) => u !== null && u !== undefined)
      .map((u) => typeof u === "object" ? "obj:" + JSON.stringify(u) : u),
  );
  const pct = (p: number) =>
    sorted.length === 0 ? null : sorted[Math.ceil(p * sorted.length / 100) - 1];
  const record: Record<string, unknown> = {
    window_start: w.start,
    window_end: w.end,
    key: Object.fromEntries(options.groupBy.map((f, i) => [f, w.keyValues[i]])),
  };
  for (const name of options.aggregations) {
    record[name] = {
      count: events.length,
      sum,
      avg: numbers.length ? sum / numbers.length : null,
      min: numbers.length ? sorted[0] : null,
      max: numbers.length ? sorted[sorted.length - 1] : null,
      rate_per_second: events.length / ((w.end - w.start) / 1000),
      distinct_count: distinct.size,
      first: values[0] ?? null,
      last: values[values.length - 1] ?? null,
      p50: pct(50),
      p90: pct(90),
      p95: pct(95),
      p99: pct(99),
    }[name];
  }
  return record;
}

function sortKey(r: Record<string, unknown>): string {
  return `${r.window_end}|${r.window_start}|${JSON.stringify(r.key)}`;
}

function assertRecordMatches(
  actual: WindowRecord,
  expected: Record<string, unknown>,
  label: string,
): void {
  assert.deepEqual(Object.keys(actual), Object.keys(expected), label);
  for (const [name, want] of Object.entries(expected)) {
    const got = actual[name];
    const where = `${label} ${name}`;
    if (want === null || typeof want !== "number" || Number.isNaN(want)) {
      assert.deepEqual(got, want, where);
    } else if (/^p\d\d$/.test(name)) {
      const bound = QUANTILE_RELATIVE_ACCURACY * Math.abs(want) * (1 + 1e-9);
      assert.ok(
        Math.abs((got as number) - want) <= bound,
        `${where}: ${got} vs ${want}`,
      );
    } else if (name === "sum" || name === "avg" || name === "rate_per_second") {
      // Summation order differs when sessions merge.
      assert.ok(
        Math.abs((got as number) - want) <= 1e-9 * Math.max(1, Math.abs(want)),
        `${where}: ${got} vs ${want}`,
      );
    } else {
      assert.equal(got, want, where);
    }
  }
}

/** Runs one seeded stream through the engine and the reference; returns the
 * number of bridging merges the stream contained. */
function runAgainstReference(
  options: WindowEngineOptions,
  seed: number,
): number {
  const ops = makeOps(seed, 2500);
  const e = new WindowEngine(options);
  const emitted: WindowRecord[] = [];
  const late: number[] = [];
  let arrival = 0;
  let drains = 0;
  for (const op of ops) {
    if (op.kind === "event") {
      const index = arrival++;
      if (!e.add(op.event, op.t)) late.push(index);
    } else if (op.kind === "advance") {
      e.advanceWatermark(e.watermark + op.by);
    } else {
      const records = e.drain();
      drains += records.length;
      for (let i = 0; i < records.length; i++) {
        assert.ok(
          records[i].window_end <= e.watermark,
          "only final windows drain",
        );
        if (i > 0) {
          const [a, b] = [records[i - 1], records[i]];
          assert.ok(
            a.window_end < b.window_end ||
              (a.window_end === b.window_end &&
                a.window_start <= b.window_start),
            "drain orders by end, then start",
          );
        }
      }
      emitted.push(...records);
      const max = e.maxOpenWindowEnd();
      assert.equal(max === undefined, e.openWindowCount === 0);
      if (max !== undefined) {
        assert.ok(
          max > e.watermark,
          "what stays open ends after the watermark",
        );
      }
    }
  }
  const lastMax = e.maxOpenWindowEnd();
  const flushed = e.flushAll();
  if (flushed.length > 0) {
    assert.equal(lastMax, Math.max(...flushed.map((r) => r.window_end)));
  }
  emitted.push(...flushed);
  assert.equal(e.openWindowCount, 0);

  const ref = reference(options, ops);
  const label = `${options.type} seed ${seed}`;
  assert.ok(drains > 0, `${label}: some windows drained before the flush`);
  assert.ok(ref.late.length > 0, `${label}: the stream has late events`);
  assert.deepEqual(late, ref.late, `${label}: late events`);
  const expected = ref.windows.map((w) => expectedRecord(w, options))
    .sort((a, b) => sortKey(a) < sortKey(b) ? -1 : sortKey(a) > sortKey(b) ? 1 : 0);
  const actual = [...emitted]
    .sort((a, b) => sortKey(a) < sortKey(b) ? -1 : sortKey(a) > sortKey(b) ? 1 : 0);
  assert.equal(actual.length, expected.length, `${label}: window count`);
  for (let i = 0; i < expected.length; i++) {
    assertRecordMatches(
      actual[i],
      expected[i],
      `${label} ${sortKey(expected[i])}`,
    );
  }
  return ref.bridges;
}

Deno.test("WindowEngine matches a brute-force reference on disordered streams", async (t) => {
  const common = {
    graceMs: 200,
    groupBy: ["region", "meta.tier"],
    valueField: "v",
    distinctField: "user",
    aggregations: [...AGGREGATION_NAMES],
  };
  const layouts: [string, WindowEngineOptions][] = [
    ["tumbling", { ...common, type: "tumbling", sizeMs: 1000 }],
    ["sliding, slide divides size", {
      ...common,
      type: "sliding",
      sizeMs: 1000,
      slideMs: 250,
    }],
    ["sliding, slide does not divide size", {
      ...common,
      type: "sliding",
      sizeMs: 1000,
      slideMs: 300,
    }],
    ["session", { ...common, type: "session", gapMs: 60 }],
    ["session, one group field, long grace", {
      ...common,
      type: "session",
      groupBy: ["region"],
      gapMs: 100,
      graceMs: 400,
    }],
    ["session, no grace", {
      ...common,
      type: "session",
      gapMs: 150,
      graceMs: 0,
    }],
  ];
  for (const [name, options] of layouts) {
    await t.step(name, () => {
      let bridges = 0;
      for (const seed of [1, 2, 3, 4, 5, 6]) {
        bridges += runAgainstReference(options, seed);
      }
      if (options.type === "session" && options.graceMs >= 400) {
        assert.ok(bridges > 10, `only ${bridges} bridging events`);
      }
    });
  }
});

Deno.test("WindowEngine keeps O(1) state for a million events in one window", async (t) => {
  await t.step("plain aggregations retain nothing per event", () => {
    const e = engine({
      sizeMs: 1e12,
      groupBy: ["k"],
      valueField: "v",
      aggregations: [
        "count",
        "sum",
        "avg",
        "min",
        "max",
        "first",
        "last",
        "rate_per_second",
      ],
    });
    const event = { k: "same", v: 0 };
    for (let i = 0; i < 1_000_000; i++) {
      event.v = i % 1000;
      e.add(event, i);
    }
    assert.equal(e.openWindowCount, 1);
    assert.equal(e.retainedCells(), 0);
    const [record] = e.flushAll();
    assert.equal(record.count, 1_000_000);
    assert.equal(record.sum, 499_500_000);
    assert.equal(record.max, 999);
  });
  await t.step("percentiles and distinct counts stay bounded", () => {
    const e = engine({
      sizeMs: 1e12,
      groupBy: [],
      valueField: "v",
      distinctField: "d",
      aggregations: ["count", "p50", "p99", "distinct_count"],
    });
    const event = { v: 0, d: 0 };
    let cellsAtHalf = 0;
    for (let i = 0; i < 1_000_000; i++) {
      event.v = (i % 10_000) * 1.7 + 1;
      event.d = i % 100;
      e.add(event, i);
      if (i === 499_999) cellsAtHalf = e.retainedCells();
    }
    assert.equal(e.openWindowCount, 1);
    const cells = e.retainedCells();
    assert.equal(cells, cellsAtHalf, "no growth in the second half");
    assert.ok(cells <= 2 * QUANTILE_MAX_BUCKETS + 1 + 100, `${cells} cells`);
    const [record] = e.flushAll();
    assert.equal(record.count, 1_000_000);
    assert.equal(record.distinct_count, 100);
    // Each of the 10 000 values occurs 100 times: rank r holds value
    // floor((r - 1) / 100).
    const exact = (p: number) => Math.floor((p * 10_000 - 1) / 100) * 1.7 + 1;
    for (const [name, p] of [["p50", 50], ["p99", 99]] as const) {
      const want = exact(p);
      assert.ok(
        Math.abs((record[name] as number) - want) <=
          QUANTILE_RELATIVE_ACCURACY * want,
        `${name}: ${record[name]} vs ${want}`,
      );
    }
  });
});

// --- addBatch and Accumulator.addValue --------------------------------------

/** Raw times in every form parseTimestampMs reads, and some it does not. */
function rawTime(random: () => number, ms: number): unknown {
  const r = random();
  if (r < 0.4) return ms;
  if (r < 0.55) return ms / 1000; // epoch seconds, fractional
  if (r < 0.65) return String(ms);
  if (r < 0.75) return new Date(ms).toISOString();
  if (r < 0.82) return new Date(ms);
  if (r < 0.86) return undefined; // missing
  const bad = ["soon", "", null, NaN, Infinity, true, {}, [], "2024-13-45", new Date(NaN)];
  return bad[Math.floor(random() * bad.length)];
}

function makeBatchStream(seed: number, n: number): Record<string, unknown>[] {
  const random = mulberry32(seed);
  const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)];
  const events: Record<string, unknown>[] = [];
  let base = 1_700_000_000_000;
  for (let i = 0; i < n; i++) {
    base += random() < 0.03 ? 800 + Math.floor(random() * 3000) : Math.floor(random() * 60);
    let ms = base - Math.floor(random() * 400); // out of order
    if (random() < 0.04) ms = base - 1500 - Math.floor(random() * 4000); // very late
    const event: Record<string, unknown> = { i };
    const t = rawTime(random, ms);
    if (t !== undefined || random() < 0.5) event.t = t;
    const g = pick(["a", "b", "c", 1, null, undefined]);
    if (g !== undefined) event.g = g;
    const r = random();
    if (r < 0.75) event.v = Math.round((random() - 0.2) * 1000) / 4;
    else if (r < 0.85) event.v = pick(["12", null, NaN, Infinity, -0, { x: 1 }]);
    event.d = pick(["u1", "u2", "u3", 1, "1", null, { id: 1 }, undefined]);
    events.push(event);
  }
  return events;
}

interface Refusal {
  event: unknown;
  ms: number | undefined;
  watermark: number;
}

/** Feeds one stream to `addBatch` (random splits) and to `add`, comparing all the way. */
function compareBatchWithAdd(
  options: WindowEngineOptions,
  seed: number,
  drainWhenRefused = false,
): void {
  const label = `${options.type} ${JSON.stringify(options.groupBy)} ${options.aggregations} ` +
    `grace ${options.graceMs} seed ${seed}`;
  const events = makeBatchStream(seed, 3000);
  const random = mulberry32(seed * 31 + 7);
  const batched = new WindowEngine(options);
  const single = new WindowEngine(options);
  const timeOf = (event: unknown) => (event as Record<string, unknown>).t;
  const refusedBatched: Refusal[] = [];
  const refusedSingle: Refusal[] = [];
  const recordsBatched: WindowRecord[] = [];
  const recordsSingle: WindowRecord[] = [];
  let lateSeen = 0;
  let badSeen = 0;
  for (let i = 0; i < events.length;) {
    const size = random() < 0.1 ? 0 : 1 + Math.floor(random() * (random() < 0.2 ? 200 : 12));
    const batch = events.slice(i, i + size);
    i += batch.length;
    batched.addBatch(batch, timeOf, (event, ms) => {
      refusedBatched.push({ event, ms, watermark: batched.watermark });
      // The engine is consistent inside the callback: it may even drain.
      if (drainWhenRefused) recordsBatched.push(...batched.drain());
    });
    for (const event of batch) {
      const ms = parseTimestampMs(timeOf(event));
      if (ms === undefined || !single.add(event, ms)) {
        refusedSingle.push({ event, ms, watermark: single.watermark });
        if (drainWhenRefused) recordsSingle.push(...single.drain());
        if (ms === undefined) badSeen++;
        else lateSeen++;
      }
    }
    const where = `${label} after event ${i}`;
    assert.ok(Object.is(batched.watermark, single.watermark), `${where}: watermark`);
    assert.equal(batched.openWindowCount, single.openWindowCount, `${where}: open windows`);
    assert.equal(batched.maxOpenWindowEnd(), single.maxOpenWindowEnd(), `${where}: max end`);
    assert.equal(batched.nextWindowEnd(), single.nextWindowEnd(), `${where}: next end`);
    assert.equal(batched.retainedCells(), single.retainedCells(), `${where}: cells`);
    const r = random();
    if (r < 0.3) {
      const a = batched.drain();
      const b = single.drain();
      assert.deepEqual(a, b, `${where}: drain`);
      recordsBatched.push(...a);
      recordsSingle.push(...b);
    } else if (r < 0.35) {
      const by = Math.floor(random() * 500);
      batched.advanceWatermark(batched.watermark + by);
      single.advanceWatermark(single.watermark + by);
    }
  }
  const a = batched.flushAll();
  const b = single.flushAll();
  assert.deepEqual(a, b, `${label}: flushAll`);
  recordsBatched.push(...a);
  recordsSingle.push(...b);
  assert.deepEqual(recordsBatched, recordsSingle, `${label}: all records`);
  assert.ok(recordsSingle.length > 5, `${label}: some windows`);
  assert.equal(refusedBatched.length, refusedSingle.length, `${label}: refused count`);
  for (let k = 0; k < refusedSingle.length; k++) {
    const x = refusedBatched[k];
    const y = refusedSingle[k];
    assert.equal(x.event, y.event, `${label}: refused #${k} is the same event`);
    assert.ok(Object.is(x.ms, y.ms), `${label}: refused #${k} time ${x.ms} vs ${y.ms}`);
    assert.ok(
      Object.is(x.watermark, y.watermark),
      `${label}: refused #${k} watermark ${x.watermark} vs ${y.watermark}`,
    );
  }
  assert.ok(badSeen > 0, `${label}: the stream has unusable times`);
  if (options.type !== "session" || options.graceMs < 1000) {
    assert.ok(lateSeen > 0, `${label}: the stream has late events`);
  }
}

Deno.test("WindowEngine addBatch equals add per event, over random streams and splits", async (t) => {
  const plain: WindowEngineOptions["aggregations"] = ["count", "sum", "min", "max", "avg"];
  const layouts: [string, Partial<WindowEngineOptions>][] = [
    ["tumbling, one group, plain aggregations", { aggregations: plain }],
    ["tumbling, one group, count only", { aggregations: ["count"], valueField: undefined }],
    ["tumbling, one group, percentiles", { aggregations: ["count", "p50", "p99", "max"] }],
    ["tumbling, one group, first/last", { aggregations: ["first", "last", "sum"] }],
    ["tumbling, one group, distinct_count", {
      aggregations: ["distinct_count", "count"],
      distinctField: "d",
    }],
    ["tumbling, one group, everything", {
      aggregations: [...AGGREGATION_NAMES],
      distinctField: "d",
    }],
    ["tumbling, grouped, plain", { groupBy: ["g"], aggregations: plain }],
    ["tumbling, grouped, everything", {
      groupBy: ["g"],
      aggregations: [...AGGREGATION_NAMES],
      distinctField: "d",
    }],
    ["sliding", {
      type: "sliding",
      slideMs: 250,
      groupBy: ["g"],
      aggregations: [...AGGREGATION_NAMES],
      distinctField: "d",
    }],
    ["sliding, one group", { type: "sliding", slideMs: 400, aggregations: plain }],
    ["session", {
      type: "session",
      gapMs: 300,
      groupBy: ["g"],
      aggregations: [...AGGREGATION_NAMES],
      distinctField: "d",
    }],
    ["session, one group", { type: "session", gapMs: 150, aggregations: plain }],
  ];
  for (const [name, layout] of layouts) {
    await t.step(name, () => {
      for (const graceMs of [0, 250, 2000]) {
        for (const seed of [1, 2, 3]) {
          compareBatchWithAdd(
            {
              type: "tumbling",
              sizeMs: 1000,
              graceMs,
              groupBy: [],
              valueField: "v",
              aggregations: ["count"],
              ...layout,
            } as WindowEngineOptions,
            seed + graceMs,
            seed === 3,
          );
        }
      }
    });
  }
});

Deno.test("WindowEngine addBatch refuses unusable and late times in order", () => {
  const e = engine({ valueField: "v", aggregations: ["count", "sum"] });
  const refused: [unknown, number | undefined, number][] = [];
  const events = [
    { t: 2.5, v: 1 }, // epoch seconds → 2500 ms
    { t: "x", v: 2 },
    { t: 1.5, v: 3 }, // 1500 ms: window [1000, 2000) is final
    { v: 4 },
    { t: "1970-01-01T00:00:02.900Z", v: 5 },
    { t: new Date(3100), v: 6 },
    { t: "2.999", v: 7 },
  ];
  e.addBatch(events, (ev) => (ev as { t?: unknown }).t, (ev, ms) => {
    refused.push([ev, ms, e.watermark]);
  });
  assert.deepEqual(refused, [
    [events[1], undefined, 2500],
    [events[2], 1500, 2500],
    [events[3], undefined, 2500],
    [events[6], 2999, 3100],
  ]);
  assert.equal(e.watermark, 3100);
  assert.deepEqual(e.flushAll(), [
    { window_start: 2000, window_end: 3000, key: {}, count: 2, sum: 6 },
    { window_start: 3000, window_end: 4000, key: {}, count: 1, sum: 6 },
  ]);
});

Deno.test("Accumulator addValue equals add for plans without first, last or distinct", async (t) => {
  const plans: AggregationName[][] = [
    ["count"],
    ["count", "sum", "min", "max", "avg"],
    ["rate_per_second", "sum"],
    ["p50", "p90", "p95", "p99", "count"],
    ["avg", "p99", "max", "min", "rate_per_second", "count", "sum"],
  ];
  await t.step("random values", () => {
    const random = mulberry32(42);
    const odd: unknown[] = ["12", null, undefined, NaN, Infinity, -Infinity, -0, {}, true, 1n];
    for (const names of plans) {
      const plan = createAggregationPlan(names);
      for (let round = 0; round < 20; round++) {
        const viaAdd = new Accumulator(plan);
        const viaValue = new Accumulator(plan);
        const n = Math.floor(random() * 300);
        for (let i = 0; i < n; i++) {
          const value = random() < 0.15
            ? odd[Math.floor(random() * odd.length)]
            : (random() - 0.3) * 10 ** Math.floor(random() * 8);
          viaAdd.add(1000 + Math.floor(random() * 1000), value, "ignored", i);
          viaValue.addValue(value);
        }
        assert.equal(viaValue.count, viaAdd.count);
        assert.equal(viaValue.retainedCells, viaAdd.retainedCells);
        for (const duration of [1000, 60_000, 0]) {
          assert.deepEqual(viaValue.result(duration), viaAdd.result(duration), `${names}`);
        }
        // Merging accumulators built either way gives the same too.
        const merged = new Accumulator(plan);
        merged.merge(viaValue);
        merged.merge(viaAdd);
        const twice = new Accumulator(plan);
        twice.merge(viaAdd);
        twice.merge(viaAdd);
        assert.deepEqual(merged.result(1000), twice.result(1000));
      }
    }
  });
  await t.step("throws a TypeError for plans with first, last or distinct_count", () => {
    const needing: AggregationName[][] = [
      ["first"],
      ["last"],
      ["distinct_count"],
      ["count", "sum", "first"],
      ["p99", "last"],
      ["count", "distinct_count"],
      [...AGGREGATION_NAMES],
    ];
    for (const names of needing) {
      const acc = new Accumulator(createAggregationPlan(names));
      acc.add(5, 1, "d", 0);
      assert.throws(() => acc.addValue(2), TypeError, `${names}`);
      assert.equal(acc.count, 1, `${names}: a refused value is not counted`);
    }
  });
});
