import assert from "node:assert/strict";
import { builtins } from "../../actors/mod.ts";
import type { HealthAlert, HealthReport } from "../../actors/processors/health.ts";
import type { Actor, ActorContext } from "../../runtime/actor.ts";
import { VirtualClock } from "../../runtime/clock.ts";
import { MemoryDeadLetters } from "../../runtime/dead_letter.ts";
import { createLogger } from "../../runtime/log.ts";
import { Histogram } from "../../runtime/metrics.ts";
import { type NodeSpec, Registry } from "../../runtime/registry.ts";
import { s } from "../../runtime/schema.ts";
import { Workflow } from "../../runtime/workflow.ts";

/** Config of the test source: emit `messages` at clock time `at`, then wait for the gate. */
interface ScriptConfig {
  steps: { at: number; messages: unknown[] }[];
  gate?: Promise<void>;
}

const ScriptSource: NodeSpec<ScriptConfig> = {
  type: "ScriptSource",
  kind: "source",
  description: "",
  config: s.any<ScriptConfig>(),
  create: (config): Actor => ({
    async run(ctx: ActorContext) {
      for (const step of config.steps) {
        const wait = step.at - ctx.clock.now();
        if (wait > 0) await ctx.clock.sleep(wait, { signal: ctx.signal });
        for (const m of step.messages) ctx.emit(m);
        await ctx.flush();
      }
      await config.gate;
      return "end";
    },
  }),
};

function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => open = resolve);
  return { promise, open };
}

/** Advances timer by timer, letting each timer's work settle before the next. */
async function advance(clock: VirtualClock, ms: number): Promise<void> {
  const target = clock.now() + ms;
  while (true) {
    await clock.settle(5);
    const next = clock.nextTimerAt();
    if (next === undefined || next > target) break;
    await clock.advanceTo(next);
  }
  await clock.advanceTo(target);
  await clock.settle(5);
}

function workflow(clock: VirtualClock, reports: HealthReport[]) {
  return new Workflow({
    registry: new Registry(builtins).with(ScriptSource),
    clock,
    deadLetters: new MemoryDeadLetters(),
    logger: createLogger({ level: "silent" }),
    random: () => 0.5,
  }).addNode("FunctionNode", "reports", {
    fn: (r: HealthReport) => {
      reports.push(r);
    },
  });
}

/** Alerts without their message text, for exact comparison. */
const plain = (alerts: HealthAlert[]) =>
  alerts.map(({ type, node, value, threshold }) => ({
    type,
    ...(node === undefined ? {} : { node }),
    value,
    threshold,
  }));

const tens = (from: number, bad: (i: number) => boolean = () => false) =>
  Array.from({ length: 10 }, (_, i) => ({ i: from + i, bad: bad(i) }));

Deno.test("HealthMonitorNode reports a healthy workflow and ends when the other sources end", async () => {
  const clock = new VirtualClock(0);
  const reports: HealthReport[] = [];
  // 20 messages every second from t=0.5 s to t=8.5 s, then the feed ends.
  const steps = Array.from({ length: 9 }, (_, k) => ({
    at: 500 + k * 1000,
    messages: Array.from({ length: 20 }, (_, i) => ({ i: k * 20 + i })),
  }));
  const wf = workflow(clock, reports)
    .addNode("HealthMonitorNode", "health", { interval_seconds: 5 })
    .addNode("ScriptSource", "feed", { steps })
    .addNode("FunctionNode", "work", { fn: () => {} })
    .addConnection("feed", "work")
    .addConnection("health", "reports");
  const running = wf.run();
  await advance(clock, 8999);
  assert.equal(reports.length, 1);
  const [report] = reports;
  assert.equal(report.health_status, "healthy");
  assert.deepEqual(report.alerts, []);
  assert.equal(report.timestamp, 5);
  assert.equal(report.metrics.rate_per_second, 20);
  assert.equal(report.metrics.interval_seconds, 5);
  assert.equal(report.metrics.total_processed, 200);
  assert.deepEqual(Object.keys(report.metrics.nodes), ["reports", "feed", "work"]);
  assert.equal(report.metrics.nodes.work.processed, 100);
  assert.equal(report.metrics.nodes.feed.idle_seconds, 0.5);
  // The feed ended at 8.5 s; the monitor notices at its next check and ends too.
  await advance(clock, 1);
  const result = await running;
  assert.equal(result.status, "completed");
  assert.equal(reports.length, 1);
  assert.equal(clock.now(), 9000);
});

Deno.test("HealthMonitorNode raises the exact alerts of a slow, a failing and a crashing node", async () => {
  const clock = new VirtualClock(0);
  const reports: HealthReport[] = [];
  const feedGate = gate();
  const tickGate = gate();
  const wf = workflow(clock, reports)
    .addNode("HealthMonitorNode", "health", {
      interval_seconds: 10,
      min_throughput: 0.5,
      stall_timeout_seconds: 15,
    })
    .addNode("ScriptSource", "feed", {
      steps: [{ at: 500, messages: tens(0, (i) => i >= 8) }],
      gate: feedGate.promise,
    })
    .addNode("ScriptSource", "ticker", {
      steps: [{ at: 500, messages: [{ tick: 1 }] }],
      gate: tickGate.promise,
    })
    // 6 s of work per message, one at a time, behind a mailbox of 4.
    .addNode("FunctionNode", "slow", {
      fn: async () => {
        await clock.sleep(6000);
      },
    }, { mailbox: { capacity: 4, batch_size: 1 } })
    // Rejects the 2 bad messages of 10: retried, then dead-lettered.
    .addNode("FunctionNode", "parse", {
      fn: (m: { bad: boolean }) => {
        if (m.bad) throw new Error("bad message");
        return m;
      },
    })
    // Crashes on the first bad message: restarted 4 times before the rest of
    // its batch is dead-lettered.
    .addNode("FunctionNode", "crashy", {
      fn: (m: { bad: boolean }) => {
        if (m.bad) throw new Error("crash");
      },
    }, { supervision: { on_message_error: "restart" } })
    .addNode("FunctionNode", "tick_sink", { fn: () => {} })
    .addConnection("health", "reports")
    .addConnection("feed", "slow")
    .addConnection("feed", "parse")
    .addConnection("feed", "crashy")
    .addConnection("ticker", "tick_sink");
  const running = wf.run();
  await advance(clock, 20_000);
  assert.equal(reports.length, 2);

  const p95 = new Histogram();
  p95.record(6000);
  // Reports round to 1e-9 to drop floating-point noise.
  const latency = Math.round(p95.quantile(0.95) / 1000 * 1e9) / 1e9;
  assert.deepEqual(plain(reports[0].alerts), [
    { type: "HIGH_QUEUE_UTILIZATION", node: "slow", value: 1, threshold: 0.8 },
    { type: "HIGH_LATENCY", node: "slow", value: latency, threshold: 5 },
    { type: "HIGH_ERROR_RATE", node: "parse", value: 0.2, threshold: 0.05 },
    { type: "HIGH_ERROR_RATE", node: "crashy", value: 0.4, threshold: 0.05 },
    { type: "HIGH_RESTART_RATE", node: "crashy", value: 4, threshold: 3 },
  ]);
  assert.equal(reports[0].health_status, "degraded");
  assert.equal(reports[0].metrics.rate_per_second, 1.1);
  assert.equal(reports[0].metrics.dead_letters, 4);

  // Second interval: nothing new came in, errors stopped, both sources went
  // quiet for 19.5 s (the feed is blocked by the slow node's full mailbox).
  assert.deepEqual(plain(reports[1].alerts), [
    { type: "LOW_THROUGHPUT", value: 0, threshold: 0.5 },
    { type: "STALLED_SOURCE", node: "feed", value: 19.5, threshold: 15 },
    { type: "STALLED_SOURCE", node: "ticker", value: 19.5, threshold: 15 },
    { type: "HIGH_QUEUE_UTILIZATION", node: "slow", value: 1, threshold: 0.8 },
    { type: "HIGH_LATENCY", node: "slow", value: latency, threshold: 5 },
    { type: "HIGH_RESTART_RATE", node: "crashy", value: 4, threshold: 3 },
  ]);
  assert.match(reports[1].alerts[1].message, /node "feed": nothing emitted for 19.5s/);

  // Open the gates: the feed ends once the slow node has admitted its last message.
  feedGate.open();
  tickGate.open();
  await advance(clock, 60_000);
  const result = await running;
  assert.equal(result.status, "completed");
  const crashy = result.nodes.find((n) => n.id === "crashy")!;
  assert.equal(crashy.restarts, 4);
});

Deno.test("HealthMonitorNode counts restarts over the last minute only", async () => {
  const clock = new VirtualClock(0);
  const reports: HealthReport[] = [];
  const g = gate();
  const wf = workflow(clock, reports)
    .addNode("HealthMonitorNode", "health", {
      interval_seconds: 20,
      min_throughput: 0,
      stall_timeout_seconds: 3600,
    })
    .addNode("ScriptSource", "feed", {
      steps: [{ at: 500, messages: [{ bad: true }] }],
      gate: g.promise,
    })
    .addNode("FunctionNode", "crashy", {
      fn: (m: { bad: boolean }) => {
        if (m.bad) throw new Error("crash");
      },
    }, { supervision: { on_message_error: "restart" } })
    .addConnection("health", "reports")
    .addConnection("feed", "crashy");
  const running = wf.run();
  await advance(clock, 80_000);
  g.open();
  await advance(clock, 1000);
  await running;
  // The 4 restarts happen within a second of t=0.5 s. The window is measured
  // from the newest sample at least a minute old: the start until t=60 s
  // (restarts counted), the t=20 s sample at t=80 s (none since).
  assert.deepEqual(
    reports.map((r) => plain(r.alerts).map((a) => `${a.type}:${a.value}`)),
    [
      ["HIGH_ERROR_RATE:4", "HIGH_RESTART_RATE:4"],
      ["HIGH_RESTART_RATE:4"],
      ["HIGH_RESTART_RATE:4"],
      [],
    ],
  );
  assert.equal(reports[3].health_status, "healthy");
  assert.equal(reports[3].metrics.nodes.crashy.restarts_last_minute, 0);
});

Deno.test("HealthMonitorNode applies per-node thresholds", async (t) => {
  const run = async (health: Record<string, unknown>) => {
    const clock = new VirtualClock(0);
    const reports: HealthReport[] = [];
    const g = gate();
    const wf = workflow(clock, reports)
      .addNode("HealthMonitorNode", "health", { interval_seconds: 10, ...health })
      .addNode("ScriptSource", "feed", {
        steps: [{ at: 500, messages: tens(0, (i) => i >= 8) }],
        gate: g.promise,
      })
      .addNode("FunctionNode", "parse", {
        fn: (m: { bad: boolean }) => {
          if (m.bad) throw new Error("bad message");
        },
      })
      .addNode("FunctionNode", "other", {
        fn: (m: { bad: boolean }) => {
          if (m.bad) throw new Error("bad message");
        },
      })
      .addConnection("health", "reports")
      .addConnection("feed", "parse")
      .addConnection("feed", "other");
    const running = wf.run();
    await advance(clock, 10_000);
    g.open();
    await advance(clock, 1000);
    await running;
    assert.equal(reports.length, 1);
    return plain(reports[0].alerts);
  };
  await t.step("a node's own error rate threshold", async () => {
    assert.deepEqual(
      await run({ min_throughput: 0.5, nodes: { parse: { max_error_rate: 0.25 } } }),
      [{ type: "HIGH_ERROR_RATE", node: "other", value: 0.2, threshold: 0.05 }],
    );
  });
  await t.step("a node's own min_throughput checks that node", async () => {
    assert.deepEqual(
      await run({
        min_throughput: 0.5,
        max_error_rate: 1,
        nodes: { parse: { min_throughput: 2 } },
      }),
      [{ type: "LOW_THROUGHPUT", node: "parse", value: 1, threshold: 2 }],
    );
  });
  await t.step("the workflow's intake against the top-level min_throughput", async () => {
    assert.deepEqual(
      await run({ min_throughput: 1.5, max_error_rate: 1 }),
      [{ type: "LOW_THROUGHPUT", value: 1, threshold: 1.5 }],
    );
  });
});

Deno.test("HealthMonitorNode stops at once when the workflow stops", async () => {
  const clock = new VirtualClock(0);
  const reports: HealthReport[] = [];
  const g = gate();
  const wf = workflow(clock, reports)
    .addNode("HealthMonitorNode", "health", { interval_seconds: 3600 })
    .addNode("ScriptSource", "feed", { steps: [], gate: g.promise })
    .addNode("FunctionNode", "work", { fn: () => {} })
    .addConnection("feed", "work")
    .addConnection("health", "reports");
  const controller = new AbortController();
  const running = wf.run({ signal: controller.signal });
  await advance(clock, 100);
  controller.abort();
  g.open();
  await advance(clock, 0);
  const result = await running;
  assert.equal(result.status, "stopped");
  assert.equal(clock.now(), 100);
  assert.equal(reports.length, 0);
});

Deno.test("HealthMonitorNode checks its config", async (t) => {
  const issuesOf = (config: unknown) =>
    new Workflow({ registry: new Registry(builtins), clock: new VirtualClock(0) })
      .addNode("HealthMonitorNode", "h", config)
      .validate()
      .map((i) => `${i.path}: ${i.message}`);
  await t.step("defaults are valid", () => assert.deepEqual(issuesOf({}), []));
  await t.step("a zero interval", () => {
    assert.match(issuesOf({ interval_seconds: 0 })[0], /config\.interval_seconds: .*> 0/);
  });
  await t.step("a utilization above 1", () => {
    assert.match(
      issuesOf({ max_queue_utilization: 1.5 })[0],
      /config\.max_queue_utilization: .*<= 1/,
    );
  });
  await t.step("an unknown threshold under nodes", () => {
    assert.match(
      issuesOf({ nodes: { a: { max_latency: 1 } } })[0],
      /config\.nodes\.a\.max_latency: .*unknown key "max_latency"/,
    );
  });
});
