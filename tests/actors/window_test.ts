import assert from "node:assert/strict";
import type { ActorContext } from "../../runtime/actor.ts";
import { s } from "../../runtime/schema.ts";
import { buildWorkflow, parseWorkflowText } from "../../runtime/config.ts";
import { ConfigError } from "../../runtime/errors.ts";
import { quietWorkflow, testRegistry } from "../helpers.ts";

/** A source that emits `[delayMs, event]` pairs at those virtual-clock offsets. */
const TimedSource = {
  type: "TimedSource",
  kind: "source" as const,
  description: "",
  config: s.any<{ script: [number, unknown][] }>(),
  create: (config: { script: [number, unknown][] }) => ({
    async run(ctx: ActorContext) {
      for (const [delay, event] of config.script) {
        if (delay > 0) await ctx.clock.sleep(delay, { signal: ctx.signal });
        ctx.emit(event);
        const p = ctx.flush();
        if (p) await p;
      }
      return "end" as const;
    },
  }),
};

function windowWorkflow(
  config: Record<string, unknown>,
  script: [number, unknown][],
  options: { late?: unknown[]; onEmit?: (r: unknown, at: number) => void } = {},
) {
  const base = quietWorkflow({ registry: testRegistry(TimedSource) });
  const out: unknown[] = [];
  base.workflow
    .addNode("TimedSource", "src", { script })
    .addNode("WindowNode", "w", config)
    .addNode("CollectSink", "sink", { into: out })
    .addConnection("src", "w")
    .addConnection("w", "sink");
  if (options.late) {
    base.workflow.addNode("CollectSink", "late", { into: options.late });
    base.workflow.addConnection("w", "late", "late");
  }
  return { ...base, out };
}

Deno.test("WindowNode tumbling event-time windows with a grace period and a late port", async () => {
  const late: unknown[] = [];
  const events = [
    { ts: 100, user: "a", v: 1 },
    { ts: 101, user: "b", v: 2 },
    { ts: 105, user: "a", v: 3 }, // watermark 105 - 2 = 103
    { ts: 99, user: "a", v: 100 }, // window [95,100) not closed yet? its end 100 <= 103: late
    { ts: 112, user: "a", v: 4 }, // watermark 110: closes [100,105) and [105,110)
  ];
  const { workflow, out, deadLetters } = windowWorkflow(
    {
      window_size_seconds: 5,
      time_field: "ts",
      late_arrival_grace_period: 2,
      group_by: ["user"],
      value_field: "v",
      aggregations: ["count", "sum", "min", "max", "avg"],
    },
    events.map((e) => [0, e]),
    { late },
  );
  const report = await workflow.run();
  assert.equal(report.status, "completed");
  assert.deepEqual(out, [
    {
      window_start: 100,
      window_end: 105,
      key: { user: "a" },
      count: 1,
      sum: 1,
      min: 1,
      max: 1,
      avg: 1,
    },
    {
      window_start: 100,
      window_end: 105,
      key: { user: "b" },
      count: 1,
      sum: 2,
      min: 2,
      max: 2,
      avg: 2,
    },
    {
      window_start: 105,
      window_end: 110,
      key: { user: "a" },
      count: 1,
      sum: 3,
      min: 3,
      max: 3,
      avg: 3,
    },
    // Flushed on drain:
    {
      window_start: 110,
      window_end: 115,
      key: { user: "a" },
      count: 1,
      sum: 4,
      min: 4,
      max: 4,
      avg: 4,
    },
  ]);
  assert.deepEqual(late, [{ ts: 99, user: "a", v: 100 }]);
  assert.equal(deadLetters.letters.length, 0);
  assert.equal(report.nodes.find((n) => n.id === "w")!.outByPort.late, 1);
});

Deno.test("WindowNode sends late events to dead letters when the late port is not connected", async () => {
  const { workflow, deadLetters } = windowWorkflow(
    { window_size_seconds: 1, time_field: "ts" },
    [[0, { ts: 10 }], [0, { ts: 12 }], [0, { ts: 10.5 }]],
  );
  await workflow.run();
  assert.equal(deadLetters.letters.length, 1);
  assert.match(deadLetters.letters[0].error, /late event/);
  assert.deepEqual(deadLetters.letters[0].message, { ts: 10.5 });
});

Deno.test("WindowNode gives window bounds in the unit of the time field", async (t) => {
  for (
    const [label, ts, start, end] of [
      ["seconds", 1_700_000_001.5, 1_700_000_000, 1_700_000_010],
      ["milliseconds", 1_700_000_001_500, 1_700_000_000_000, 1_700_000_010_000],
      [
        "ISO 8601",
        "2023-11-14T22:13:21.500Z",
        "2023-11-14T22:13:20.000Z",
        "2023-11-14T22:13:30.000Z",
      ],
    ] as const
  ) {
    await t.step(label, async () => {
      const { workflow, out } = windowWorkflow(
        { window_size_seconds: 10, time_field: "ts" },
        [[0, { ts }]],
      );
      await workflow.run();
      assert.deepEqual(out, [{ window_start: start, window_end: end, key: {}, count: 1 }]);
    });
  }
});

Deno.test("WindowNode dead-letters events whose time field is missing or not a time", async () => {
  const { workflow, deadLetters, out } = windowWorkflow(
    { window_size_seconds: 10, time_field: "ts" },
    [[0, { ts: "yesterday" }], [0, {}], [0, { ts: 5 }]],
  );
  await workflow.run();
  assert.deepEqual(deadLetters.letters.map((l) => l.error), [
    'time_field "ts" is not a timestamp ("yesterday")',
    'time_field "ts" is missing',
  ]);
  assert.equal(out.length, 1);
});

Deno.test("WindowNode processing-time windows close on the virtual clock", async () => {
  const emitted: [number, unknown][] = [];
  const { workflow, clock, out } = windowWorkflow(
    { window_size_seconds: 10, group_by: ["k"] },
    [[1000, { k: "x" }], [2000, { k: "x" }], [9000, { k: "y" }], [5000, { k: "x" }]],
  );
  const running = workflow.run();
  for (let t = 0; t < 20_000; t += 500) {
    await clock.advance(500);
    while (emitted.length < out.length) emitted.push([clock.now(), out[emitted.length]]);
  }
  await running;
  // Events at 1 s and 3 s fall in [0, 10), closed by the clock at 10 s; those at
  // 12 s and 17 s in [10, 20), flushed when the source ends at 17 s.
  assert.deepEqual(emitted, [
    [10_000, { window_start: 0, window_end: 10, key: { k: "x" }, count: 2 }],
    [17_000, { window_start: 10, window_end: 20, key: { k: "x" }, count: 1 }],
    [17_000, { window_start: 10, window_end: 20, key: { k: "y" }, count: 1 }],
  ]);
});

Deno.test("WindowNode idle_timeout_seconds closes windows on a quiet stream", async () => {
  let release!: () => void;
  const quiet = new Promise<void>((r) => release = r);
  const Waiting = {
    ...TimedSource,
    type: "WaitingSource",
    create: () => ({
      async run(ctx: ActorContext) {
        ctx.emit({ ts: 1_000 });
        ctx.emit({ ts: 1_004 });
        await ctx.flush();
        await quiet;
        return "end" as const;
      },
    }),
  };
  const base = quietWorkflow({ registry: testRegistry(Waiting) });
  const clock = base.clock;
  const sink: unknown[] = [];
  base.workflow
    .addNode("WaitingSource", "src", {})
    .addNode("WindowNode", "w", {
      window_size_seconds: 10,
      time_field: "ts",
      late_arrival_grace_period: 1,
      idle_timeout_seconds: 30,
    })
    .addNode("CollectSink", "sink", { into: sink })
    .addConnection("src", "w").addConnection("w", "sink");
  const running = base.workflow.run();
  await clock.advance(29_000);
  assert.deepEqual(sink, [], "not idle yet");
  // After 30 s of silence the watermark (1003 s) follows the clock: 1003 + 7 = 1010 closes [1000, 1010).
  await clock.advance(8_000);
  assert.deepEqual(sink, [{ window_start: 1000, window_end: 1010, key: {}, count: 2 }]);
  release();
  await running;
});

Deno.test("WindowNode sliding and session windows", async (t) => {
  await t.step("sliding", async () => {
    const { workflow, out } = windowWorkflow(
      {
        window_type: "sliding",
        window_size_seconds: 10,
        slide_interval_seconds: 5,
        time_field: "ts",
      },
      [[0, { ts: 7 }], [0, { ts: 12 }], [0, { ts: 30 }]],
    );
    await workflow.run();
    assert.deepEqual(
      out.map((
        r,
      ) => [(r as { window_start: number }).window_start, (r as { count: number }).count]),
      [
        [0, 1],
        [5, 2],
        [10, 1],
        [25, 1],
        [30, 1],
      ],
    );
  });
  await t.step("session", async () => {
    const { workflow, out } = windowWorkflow(
      { window_type: "session", session_gap_seconds: 5, time_field: "ts", group_by: ["u"] },
      [[0, { ts: 1, u: "a" }], [0, { ts: 4, u: "a" }], [0, { ts: 20, u: "a" }]],
    );
    await workflow.run();
    assert.deepEqual(out, [
      { window_start: 1, window_end: 9, key: { u: "a" }, count: 2 },
      { window_start: 20, window_end: 25, key: { u: "a" }, count: 1 },
    ]);
  });
});

Deno.test("WindowNode expresses the guide's per-stream analytics", async () => {
  const events = Array.from({ length: 6 }, (_, i) => ({
    stream_id: i % 2 ? "b" : "a",
    timestamp: 1_700_000_000 + i,
    value: i * 10,
  }));
  const { workflow, out } = windowWorkflow({
    window_size_seconds: 60,
    time_field: "timestamp",
    group_by: ["stream_id"],
    value_field: "value",
    distinct_field: "timestamp",
    aggregations: ["count", "rate_per_second", "min", "max", "avg", "sum", "first", "last"],
  }, events.map((e) => [0, e]));
  await workflow.run();
  assert.deepEqual(out, [
    {
      window_start: 1_699_999_980,
      window_end: 1_700_000_040,
      key: { stream_id: "a" },
      count: 3,
      rate_per_second: 0.05,
      min: 0,
      max: 40,
      avg: 20,
      sum: 60,
      first: 0,
      last: 40,
    },
    {
      window_start: 1_699_999_980,
      window_end: 1_700_000_040,
      key: { stream_id: "b" },
      count: 3,
      rate_per_second: 0.05,
      min: 10,
      max: 50,
      avg: 30,
      sum: 90,
      first: 10,
      last: 50,
    },
  ]);
});

Deno.test("WindowNode holds checkpoints until the windows covering them are emitted", async () => {
  const completed: number[] = [];
  const sink: unknown[] = [];
  let seenAtCheckpoint: number[] = [];
  const { workflow } = quietWorkflow();
  workflow
    .addNode("ListSource", "src", {
      events: [{ ts: 1 }, { ts: 2 }, { ts: 11 }, { ts: 25 }],
      chunk: 1,
      onCheckpoint: (n: number) => {
        completed.push(n);
        seenAtCheckpoint = [...seenAtCheckpoint, sink.length];
      },
    })
    .addNode("WindowNode", "w", { window_size_seconds: 10, time_field: "ts" })
    .addNode("CollectSink", "sink", { into: sink })
    .addConnection("src", "w").addConnection("w", "sink");
  const report = await workflow.run();
  assert.equal(report.status, "completed");
  assert.deepEqual(completed, [1, 2, 3, 4]);
  // A checkpoint passes only once the window holding its event reached the sink:
  // events 1 and 2 are in the first window, 11 in the second, 25 in the third
  // (emitted by the drain).
  const windowsNeeded = [1, 1, 2, 3];
  seenAtCheckpoint.forEach((seen, k) =>
    assert.ok(seen >= windowsNeeded[k], `checkpoint ${k + 1} passed with ${seen} windows out`)
  );
  assert.equal(sink.length, 3);
});

Deno.test("WindowNode config errors name the field", () => {
  const text = `nodes:
  - id: src
    type: GeneratorNode
  - id: w
    type: WindowNode
    config:
      window_type: sliding
      window_size_seconds: 5
      slide_interval_seconds: 10
      aggregations: [count, p95, medain]
connections:
  - {from: src, to: w}
`;
  const registry = testRegistry();
  const error = (() => {
    try {
      buildWorkflow(parseWorkflowText(text, { file: "w.yaml" }), { registry });
    } catch (e) {
      return e;
    }
  })();
  assert.ok(error instanceof ConfigError);
  const lines = error.issues.map((i) =>
    `${i.position?.line}:${i.position?.column} ${i.path}: ${i.message}`
  );
  assert.ok(
    lines.some((l) =>
      l.startsWith(
        '10:34 nodes[1].config.aggregations[2]: node "w" (WindowNode): expected one of count',
      )
    ),
    lines.join("\n"),
  );
});
