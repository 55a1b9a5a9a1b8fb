import assert from "node:assert/strict";
import {
  assessHealth,
  combineHealth,
  formatDuration,
  HealthTracker,
  LiveStatus,
  realTicker,
  statusLine,
  statusTable,
  withRates,
} from "../../cli/status.ts";
import { VirtualClock } from "../../runtime/clock.ts";
import type { NodeSnapshot, WorkflowSnapshot } from "../../runtime/metrics.ts";

function node(id: string, overrides: Partial<NodeSnapshot> = {}): NodeSnapshot {
  return {
    id,
    type: "T",
    kind: "processor",
    state: "running",
    messagesIn: 0,
    messagesOut: 0,
    outByPort: {},
    ratePerSecond: 0,
    errors: 0,
    restarts: 0,
    deadLettered: 0,
    mailbox: {
      depth: 0,
      capacity: 100,
      highWater: 0,
      enqueued: 0,
      dequeued: 0,
      dropped: { drop_oldest: 0, drop_newest: 0, sample: 0, fail: 0 },
      blockedSends: 0,
    },
    mailboxUtilization: 0,
    dropped: 0,
    latencyMs: { p50: 0, p95: 0, p99: 0, mean: 0 },
    idleMs: 0,
    ...overrides,
  };
}

function snap(time: number, nodes: NodeSnapshot[], uptimeMs = time): WorkflowSnapshot {
  return { name: "w", time, uptimeMs, nodes, deadLetters: 0 };
}

Deno.test("assessHealth judges utilization, errors, restarts and failures", async (t) => {
  await t.step("healthy", () => {
    assert.deepEqual(assessHealth(snap(0, [node("a", { mailboxUtilization: 0.8 })])), {
      status: "healthy",
      reasons: [],
    });
  });
  await t.step("degraded by a full mailbox, errors, restarts and restarting", () => {
    const report = assessHealth(snap(0, [
      node("a", { mailboxUtilization: 0.85 }),
      node("b", { errors: 2, restarts: 1, state: "restarting" }),
    ]));
    assert.deepEqual(report, {
      status: "degraded",
      reasons: [
        'mailbox of "a" is 85% full (above 80%)',
        'node "b" is restarting',
        'node "b": 2 errors',
        'node "b": 1 restart',
      ],
    });
  });
  await t.step("errors count from the baseline", () => {
    const before = snap(1000, [node("b", { errors: 2 })]);
    assert.equal(assessHealth(snap(5000, [node("b", { errors: 2 })]), before).status, "healthy");
    assert.deepEqual(assessHealth(snap(5000, [node("b", { errors: 3 })]), before).reasons, [
      'node "b": 1 error in the last 4s',
    ]);
  });
  await t.step("unhealthy when a node failed", () => {
    const report = assessHealth(
      snap(0, [
        node("a", { state: "failed", lastError: "boom" }),
        node("b", { mailboxUtilization: 1 }),
      ]),
      undefined,
      { maxUtilization: 0.5 },
    );
    assert.deepEqual(report, {
      status: "unhealthy",
      reasons: ['node "a" has failed: boom', 'mailbox of "b" is 100% full (above 50%)'],
    });
  });
});

Deno.test("HealthTracker counts errors within a sliding window", () => {
  const tracker = new HealthTracker({ windowMs: 10_000 });
  assert.equal(tracker.assess(snap(0, [node("a")])).status, "healthy");
  // An error at 5s degrades the status for the next 10s of clock time.
  assert.equal(tracker.assess(snap(5000, [node("a", { errors: 1 })])).status, "degraded");
  assert.equal(tracker.assess(snap(9000, [node("a", { errors: 1 })])).status, "degraded");
  assert.equal(tracker.assess(snap(14_000, [node("a", { errors: 1 })])).status, "degraded");
  assert.deepEqual(tracker.assess(snap(16_000, [node("a", { errors: 1 })])), {
    status: "healthy",
    reasons: [],
  });
  assert.deepEqual(tracker.assess(snap(17_000, [node("a", { errors: 4 })])).reasons, [
    'node "a": 3 errors in the last 12s',
  ]);
  assert.throws(() => new HealthTracker({ windowMs: 0 }), RangeError);
});

Deno.test("statusTable and statusLine show per-node counters", () => {
  const s = snap(0, [
    node("src", { kind: "source", mailbox: undefined, ratePerSecond: 120 }),
    node("slow", {
      ratePerSecond: 99.44,
      mailbox: { ...node("x").mailbox!, depth: 90 },
      mailboxUtilization: 0.9,
      dropped: 3,
      errors: 1,
      restarts: 2,
      deadLettered: 4,
      state: "restarting",
    }),
  ], 65_000);
  s.deadLetters = 4;
  const health = assessHealth(s);
  assert.deepEqual(statusTable(s, health), [
    "sluice: w up 1m05s, degraded, dead letters 4",
    "NODE  TYPE  STATE       RATE/S   QUEUE  UTIL  DROPPED  ERRORS  RESTARTS  DEAD",
    "src   T     running      120.0       -     -        0       0         0     0",
    "slow  T     restarting    99.4  90/100   90%        3       1         2     4",
    '  degraded: node "slow" is restarting',
    '  degraded: mailbox of "slow" is 90% full (above 80%)',
    '  degraded: node "slow": 1 error',
    '  degraded: node "slow": 2 restarts',
  ]);
  assert.equal(
    statusLine(s, health),
    "status w: degraded, up 1m05s, dead letters 4 | src 120.0/s | slow 99.4/s restarting queue 90/100 dropped 3 errors 1 restarts 2 dead 4" +
      ' | degraded: node "slow" is restarting | degraded: mailbox of "slow" is 90% full (above 80%)' +
      ' | degraded: node "slow": 1 error | degraded: node "slow": 2 restarts',
  );
});

Deno.test("withRates measures each node's rate since the previous snapshot", () => {
  const before = snap(10_000, [
    node("src", { kind: "source", messagesOut: 100, ratePerSecond: 7 }),
    node("p", { messagesIn: 40, ratePerSecond: 7 }),
  ]);
  const after = snap(12_000, [
    node("src", { kind: "source", messagesOut: 300, ratePerSecond: 7 }),
    node("p", { messagesIn: 41, ratePerSecond: 7 }),
    node("new", { ratePerSecond: 7 }),
  ]);
  assert.deepEqual(withRates(after, before).nodes.map((n) => n.ratePerSecond), [100, 0.5, 7]);
  // No time between them, or no previous snapshot: the runtime's own rates.
  assert.equal(withRates(after, after), after);
  assert.equal(withRates(after), after);
});

Deno.test("LiveStatus redraws in place and keeps log lines above the block", () => {
  let screen = "";
  const live = new LiveStatus((t) => screen += t, { columns: () => 12 });
  live.render(["one", "a line that is too long"]);
  assert.equal(screen, "one\na line tha…\n");
  screen = "";
  live.log("log line");
  assert.equal(screen, "\x1b[2A\r\x1b[Jlog line\none\na line tha…\n");
  screen = "";
  live.clear();
  assert.equal(screen, "\x1b[2A\r\x1b[J");
  screen = "";
  live.clear();
  live.log("after\n");
  assert.equal(screen, "after\n");
});

Deno.test("realTicker ticks on its clock until stopped", async () => {
  const clock = new VirtualClock(0);
  const times: number[] = [];
  const handle = realTicker(clock)(1000, () => times.push(clock.now()));
  await clock.advance(2500);
  assert.deepEqual(times, [1000, 2000]);
  handle.stop();
  await clock.advance(5000);
  assert.deepEqual(times, [1000, 2000]);
  assert.equal(clock.pendingTimers, 0);
  assert.throws(() => realTicker(clock)(0, () => {}), RangeError);
});

Deno.test("formatDuration writes durations for humans", () => {
  assert.deepEqual(
    [0, 999, 999.6, 1000, 59_999, 60_000, 3_599_000, 3_600_000, 7_260_000].map(formatDuration),
    ["0ms", "999ms", "1s", "1s", "59s", "1m00s", "59m59s", "1h00m", "2h01m"],
  );
});

Deno.test("combineHealth adds the monitors' verdicts and alerts", () => {
  const own = { status: "healthy" as const, reasons: [] };
  assert.deepEqual(combineHealth(own, []), own);
  assert.deepEqual(combineHealth(own, [{ node: "m", status: "healthy", alerts: [] }]), own);
  assert.deepEqual(
    combineHealth({ status: "unhealthy", reasons: ["x"] }, [{
      node: "m",
      status: "degraded",
      alerts: [{ type: "STALLED_SOURCE", node: "src", message: "quiet" }],
    }]),
    { status: "unhealthy", reasons: ["x", 'monitor "m": STALLED_SOURCE on "src": quiet'] },
  );
});
