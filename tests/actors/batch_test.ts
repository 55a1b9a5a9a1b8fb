import assert from "node:assert/strict";
import { type Batch, BatchNode, nextBatchSize } from "../../actors/processors/batch.ts";
import { builtins } from "../../actors/mod.ts";
import type { Actor, ActorContext } from "../../runtime/actor.ts";
import { VirtualClock } from "../../runtime/clock.ts";
import { MemoryDeadLetters } from "../../runtime/dead_letter.ts";
import { createLogger } from "../../runtime/log.ts";
import { NodeMetrics } from "../../runtime/metrics.ts";
import { type NodeSpec, Registry } from "../../runtime/registry.ts";
import { s } from "../../runtime/schema.ts";
import { Workflow } from "../../runtime/workflow.ts";

/** Messages a script source emits at a clock time (ms since the clock's start). */
interface Step {
  at: number;
  messages: unknown[];
  /** Mark a checkpoint after these messages; the callback runs when it completes. */
  checkpoint?: () => void;
}

/** A source that follows a timed script, then ends once `gate` resolves. */
function scriptSource(steps: Step[], gate: Promise<void> = Promise.resolve()): NodeSpec {
  return {
    type: "ScriptSource",
    kind: "source",
    description: "",
    config: s.any(),
    create: (): Actor => ({
      async run(ctx: ActorContext) {
        for (const step of steps) {
          const wait = step.at - ctx.clock.now();
          if (wait > 0) await ctx.clock.sleep(wait, { signal: ctx.signal });
          for (const m of step.messages) ctx.emit(m);
          await ctx.flush();
          if (step.checkpoint) ctx.checkpoint(step.checkpoint);
        }
        await gate;
        return "end";
      },
    }),
  };
}

interface Received {
  at: number;
  batch: Batch;
}

function harness(
  steps: Step[],
  config: Record<string, unknown>,
  gate?: Promise<void>,
  clock: VirtualClock = new VirtualClock(0),
) {
  const received: Received[] = [];
  const wf = new Workflow({
    registry: new Registry(builtins).with(scriptSource(steps, gate)),
    clock,
    deadLetters: new MemoryDeadLetters(),
    logger: createLogger({ level: "silent" }),
  })
    .addNode("ScriptSource", "src")
    .addNode("BatchNode", "batch", config)
    .addNode("FunctionNode", "sink", {
      fn: (b: Batch) => {
        received.push({ at: clock.now(), batch: b });
      },
    })
    .addConnection("src", "batch")
    .addConnection("batch", "sink");
  return { clock, received, wf };
}

function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => open = resolve);
  return { promise, open };
}

/**
 * Advances the clock timer by timer, letting the work each timer starts settle
 * for a few macrotasks (sources yield to the event loop now and then), so a
 * source never wakes after the clock has already moved past its next step.
 */
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

const ids = (r: Received) => r.batch.messages.map((m) => (m as { id: number }).id);

Deno.test("BatchNode emits a partial batch exactly at batch_timeout", async () => {
  const g = gate();
  const { clock, received, wf } = harness(
    [{ at: 0, messages: [{ id: 1 }, { id: 2 }, { id: 3 }] }],
    { batch_size: 10, batch_timeout: 2 },
    g.promise,
  );
  const running = wf.run();
  await advance(clock, 1999);
  assert.equal(received.length, 0);
  await advance(clock, 1);
  assert.equal(received.length, 1);
  const { at, batch } = received[0];
  assert.equal(at, 2000);
  assert.deepEqual(ids(received[0]), [1, 2, 3]);
  assert.equal(batch.count, 3);
  assert.equal(batch.trigger, "timeout");
  assert.equal(batch.processing_latency, 2);
  assert.equal(batch.timestamp, 2);
  assert.equal(batch.batch_id, 1);
  assert.equal(batch.target_size, 10);
  g.open();
  const report = await running;
  assert.equal(report.status, "completed");
  assert.equal(received.length, 1, "nothing left to flush on drain");
});

Deno.test("BatchNode restarts the timeout after a size-triggered batch", async () => {
  const g = gate();
  const { clock, received, wf } = harness(
    [
      { at: 0, messages: [{ id: 1 }, { id: 2 }] },
      { at: 1000, messages: [{ id: 3 }] },
      { at: 1500, messages: [{ id: 4 }] },
    ],
    { batch_size: 3, batch_timeout: 2 },
    g.promise,
  );
  const running = wf.run();
  await advance(clock, 1000);
  assert.equal(received.length, 1);
  assert.deepEqual(ids(received[0]), [1, 2, 3]);
  assert.equal(received[0].batch.trigger, "size");
  assert.equal(received[0].batch.processing_latency, 1);
  // The first batch's timer (due at 2000) must not cut the second batch early.
  await advance(clock, 1000);
  assert.equal(received.length, 1);
  await advance(clock, 1499);
  assert.equal(received.length, 1);
  await advance(clock, 1);
  assert.equal(received.length, 2);
  assert.equal(received[1].at, 3500);
  assert.deepEqual(ids(received[1]), [4]);
  assert.equal(received[1].batch.trigger, "timeout");
  assert.equal(received[1].batch.processing_latency, 2);
  assert.equal(received[1].batch.batch_id, 2);
  g.open();
  await running;
});

Deno.test("BatchNode flushes the last partial batch when the input ends", async () => {
  const messages = [1, 2, 3, 4, 5].map((id) => ({ id }));
  const { received, wf } = harness([{ at: 0, messages }], { batch_size: 2, batch_timeout: 60 });
  const report = await wf.run();
  assert.equal(report.status, "completed");
  assert.deepEqual(received.map(ids), [[1, 2], [3, 4], [5]]);
  assert.deepEqual(received.map((r) => r.batch.trigger), ["size", "size", "drain"]);
  assert.deepEqual(received.map((r) => r.batch.batch_id), [1, 2, 3]);
  const node = report.nodes.find((n) => n.id === "batch")!;
  assert.equal(node.messagesIn, 5);
  assert.equal(node.messagesOut, 3);
});

Deno.test("BatchNode reports the first and last event times in their own unit", async (t) => {
  const run = async (messages: unknown[], config: Record<string, unknown> = {}) => {
    const { received, wf } = harness([{ at: 0, messages }], { batch_size: 100, ...config });
    await wf.run();
    assert.equal(received.length, 1);
    return received[0].batch;
  };
  await t.step("epoch seconds", async () => {
    const b = await run([{ timestamp: 1700000000 }, { timestamp: 1700000001.5 }]);
    assert.equal(b.first_timestamp, 1700000000);
    assert.equal(b.last_timestamp, 1700000001.5);
  });
  await t.step("epoch milliseconds and ISO 8601, skipping messages without one", async () => {
    const b = await run([
      { other: 1 },
      { timestamp: 1700000000000 },
      { timestamp: "not a time" },
      { timestamp: "2024-01-01T00:00:00Z" },
      { other: 2 },
    ]);
    assert.equal(b.first_timestamp, 1700000000000);
    assert.equal(b.last_timestamp, "2024-01-01T00:00:00.000Z");
  });
  await t.step("null when no message has a timestamp", async () => {
    const b = await run([{ id: 1 }, "text", 42]);
    assert.equal(b.first_timestamp, null);
    assert.equal(b.last_timestamp, null);
  });
  await t.step("a nested time_field", async () => {
    const b = await run([{ meta: { at: 5 } }, { meta: { at: 7 } }], { time_field: "meta.at" });
    assert.equal(b.first_timestamp, 5);
    assert.equal(b.last_timestamp, 7);
  });
});

Deno.test("nextBatchSize halves above the target, doubles fast full batches, keeps the rest", async (t) => {
  const base = { size: 8, targetLatencySeconds: 1, min: 2, max: 32 };
  await t.step("above the target: halve, whatever cut the batch", () => {
    assert.equal(nextBatchSize({ ...base, trigger: "timeout", latencySeconds: 2 }), 4);
    assert.equal(nextBatchSize({ ...base, trigger: "size", latencySeconds: 1.01 }), 4);
  });
  await t.step("filled by size within half the target: double", () => {
    assert.equal(nextBatchSize({ ...base, trigger: "size", latencySeconds: 0.5 }), 16);
    assert.equal(nextBatchSize({ ...base, trigger: "size", latencySeconds: 0 }), 16);
  });
  await t.step("between half the target and the target: keep", () => {
    assert.equal(nextBatchSize({ ...base, trigger: "size", latencySeconds: 0.51 }), 8);
    assert.equal(nextBatchSize({ ...base, trigger: "size", latencySeconds: 1 }), 8);
  });
  await t.step("cut by a timeout or the drain within the target: keep", () => {
    assert.equal(nextBatchSize({ ...base, trigger: "timeout", latencySeconds: 0.1 }), 8);
    assert.equal(nextBatchSize({ ...base, trigger: "drain", latencySeconds: 0 }), 8);
  });
  await t.step("clamped to [min, max]", () => {
    assert.equal(nextBatchSize({ ...base, size: 3, trigger: "timeout", latencySeconds: 5 }), 2);
    assert.equal(nextBatchSize({ ...base, size: 20, trigger: "size", latencySeconds: 0 }), 32);
  });
});

Deno.test("BatchNode adaptive_batching follows the documented rule on the clock", async () => {
  const g = gate();
  // A burst at t=0, a steady message every 300 ms from t=10 s, then silence.
  const burst = Array.from({ length: 4 + 8 + 16 + 16 }, (_, i) => ({ id: i }));
  const steady: Step[] = Array.from({ length: 10 }, (_, i) => ({
    at: 10_000 + i * 300,
    messages: [{ id: 100 + i }],
  }));
  const { clock, received, wf } = harness(
    [{ at: 0, messages: burst }, ...steady, { at: 20_000, messages: [{ id: 200 }] }],
    {
      batch_size: 4,
      batch_timeout: 2,
      target_latency: 1,
      adaptive_batching: true,
      min_batch_size: 2,
      max_batch_size: 16,
    },
    g.promise,
  );
  const running = wf.run();
  await advance(clock, 30_000);
  g.open();
  await running;
  const sizes = received.map((r) => [r.batch.target_size, r.batch.count, r.batch.trigger]);
  assert.deepEqual(sizes, [
    // The burst fills every batch at once (latency 0): 4 -> 8 -> 16, capped at 16.
    [4, 4, "size"],
    [8, 8, "size"],
    [16, 16, "size"],
    [16, 16, "size"],
    // 16 messages at 300 ms do not come in 2 s: the timeout cuts 7 of them
    // (latency 2 s > 1 s), so the size halves to 8.
    [16, 7, "timeout"],
    // 3 left from the steady phase, cut by the timeout again: halve to 4.
    [8, 3, "timeout"],
    // One message, cut by the timeout (2 s > 1 s): halve to 2.
    [4, 1, "timeout"],
  ]);
  assert.deepEqual(received.map((r) => r.batch.processing_latency), [0, 0, 0, 0, 2, 2, 2]);
});

Deno.test("BatchNode adaptive size settles when batches fill within the target", async () => {
  const g = gate();
  // One message every 300 ms: a batch of 2 fills in 0.3 s (<= 0.5 s: double),
  // a batch of 4 in 0.9 s (between 0.5 s and 1 s: keep).
  const steps: Step[] = Array.from(
    { length: 14 },
    (_, i) => ({ at: i * 300, messages: [{ id: i }] }),
  );
  const { clock, received, wf } = harness(steps, {
    batch_size: 2,
    batch_timeout: 2,
    target_latency: 1,
    adaptive_batching: true,
    min_batch_size: 1,
    max_batch_size: 64,
  }, g.promise);
  const running = wf.run();
  await advance(clock, 5000);
  g.open();
  await running;
  assert.deepEqual(received.map((r) => r.batch.target_size), [2, 4, 4, 4]);
  assert.deepEqual(received.map((r) => r.batch.count), [2, 4, 4, 4]);
  assert.deepEqual(
    received.map((r) => Math.round(r.batch.processing_latency * 1000)),
    [300, 900, 900, 900],
  );
});

Deno.test("BatchNode holds a checkpoint until the batch holding its messages is emitted", async () => {
  const g = gate();
  let completedAt: number | undefined;
  const clock = new VirtualClock(0);
  const { received, wf } = harness(
    [{ at: 0, messages: [{ id: 1 }, { id: 2 }], checkpoint: () => completedAt = clock.now() }],
    { batch_size: 10, batch_timeout: 5 },
    g.promise,
    clock,
  );
  const running = wf.run();
  await advance(clock, 4999);
  assert.equal(received.length, 0);
  assert.equal(completedAt, undefined, "the checkpoint must not pass buffered messages");
  await advance(clock, 1);
  assert.equal(received.length, 1);
  assert.equal(completedAt, 5000);
  g.open();
  await running;
});

Deno.test("BatchNode checkpoint progress counts emitted batches", () => {
  const clock = new VirtualClock(0);
  const emitted: unknown[] = [];
  const ctx = fakeContext(clock, emitted);
  const config = BatchNode.config.parse({ batch_size: 2 }, "config", []);
  const actor = BatchNode.create(config, fakeEnv(clock));
  actor.start?.(ctx);
  assert.equal(actor.checkpointBarrier!(), undefined);
  assert.equal(actor.checkpointProgress!(), 0);
  actor.handle!([1], ctx);
  assert.equal(actor.checkpointBarrier!(), 1);
  actor.handle!([2, 3], ctx);
  assert.equal(actor.checkpointProgress!(), 1);
  assert.equal(actor.checkpointBarrier!(), 2);
  actor.drain!(ctx);
  assert.equal(actor.checkpointProgress!(), 2);
  assert.equal(actor.checkpointBarrier!(), undefined);
  assert.equal(emitted.length, 2);
});

Deno.test("BatchNode keeps buffered messages across a restart", () => {
  const clock = new VirtualClock(0);
  const emitted: unknown[] = [];
  const env = fakeEnv(clock);
  const config = BatchNode.config.parse({ batch_size: 10 }, "config", []);
  const first = BatchNode.create(config, env);
  const ctx = fakeContext(clock, emitted);
  first.start?.(ctx);
  first.handle!([{ id: 1 }, { id: 2 }], ctx);
  const second = BatchNode.create(config, env);
  second.start?.(ctx);
  assert.equal(second.checkpointBarrier!(), 1);
  second.drain!(ctx);
  assert.equal(emitted.length, 1);
  assert.deepEqual((emitted[0] as Batch).messages, [{ id: 1 }, { id: 2 }]);
});

Deno.test("BatchNode reports config problems with their paths", async (t) => {
  const issuesOf = (config: unknown) => {
    const wf = new Workflow({ registry: new Registry(builtins), clock: new VirtualClock(0) })
      .addNode("GeneratorNode", "g", { message_count: 1 })
      .addNode("BatchNode", "b", config)
      .addConnection("g", "b");
    return wf.validate().map((i) => `${i.path}: ${i.message}`);
  };
  await t.step("min above max", () => {
    const issues = issuesOf({ min_batch_size: 10, max_batch_size: 5 });
    assert.equal(issues.length, 1);
    assert.match(
      issues[0],
      /^nodes\[1\]\.config\.min_batch_size: .*min_batch_size <= max_batch_size/,
    );
  });
  await t.step("batch_size outside the adaptive bounds", () => {
    const issues = issuesOf({ adaptive_batching: true, batch_size: 1, min_batch_size: 2 });
    assert.equal(issues.length, 1);
    assert.match(issues[0], /config\.batch_size: .*\[2, 10000\].*found 1/);
  });
  await t.step("the bounds do not matter without adaptive_batching", () => {
    assert.deepEqual(issuesOf({ batch_size: 1, min_batch_size: 2 }), []);
  });
  await t.step("a non-positive timeout", () => {
    assert.match(
      issuesOf({ batch_timeout: 0 })[0],
      /config\.batch_timeout: .*expected number > 0, found 0/,
    );
  });
  await t.step("a malformed time_field", () => {
    assert.match(issuesOf({ time_field: "a..b" })[0], /config\.time_field: .*empty key/);
  });
  await t.step("an unknown key", () => {
    assert.match(issuesOf({ batch_sise: 5 })[0], /did you mean "batch_size"/);
  });
});

function fakeEnv(clock: VirtualClock) {
  return { id: "batch", clock, baseDir: ".", persistent: new Map<string, unknown>() };
}

function fakeContext(clock: VirtualClock, emitted: unknown[]): ActorContext {
  return {
    nodeId: "batch",
    clock,
    signal: new AbortController().signal,
    log: createLogger({ level: "silent" }),
    metrics: new NodeMetrics(),
    connectedPorts: new Set(["out"]),
    restarts: 0,
    emit: (m) => void emitted.push(m),
    emitMany: (ms) => void emitted.push(...ms),
    flush: () => undefined,
    deadLetter: () => {},
    checkpoint: () => {},
    schedule: (ms, task) => {
      const id = clock.setTimeout(() => void task(), ms);
      return () => clock.clearTimeout(id);
    },
    resetBackoff: () => {},
    snapshot: () => ({ name: "w", time: 0, uptimeMs: 0, nodes: [], deadLetters: 0 }),
  };
}
