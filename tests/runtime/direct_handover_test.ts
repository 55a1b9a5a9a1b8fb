/**
 * Direct hand-over: a batch sent to an idle consumer (empty mailbox, parked
 * loop) is handled at once on the sender's stack. These tests pin down that
 * it behaves exactly like delivery through the mailbox.
 */
import assert from "node:assert/strict";
import type { Actor, ActorContext } from "../../runtime/actor.ts";
import type { VirtualClock } from "../../runtime/clock.ts";
import type { NodeSpec } from "../../runtime/registry.ts";
import { s } from "../../runtime/schema.ts";
import type { RunReport } from "../../runtime/workflow.ts";
import { quietWorkflow, testRegistry } from "../helpers.ts";

type Msg = { n: number };

/** Set by the source while its flush runs: a handler that sees it runs on the source's stack. */
interface Probe {
  inSourceFlush: boolean;
}

interface SourceConfig {
  count: number;
  /** Messages per flush, cycled. */
  sizes: number[];
  probe?: Probe;
  /** Called before each flush with the number emitted so far. */
  onFlush?: (emitted: number) => void;
  /** Places a checkpoint after each flush; called with the count emitted before it. */
  onCheckpoint?: (upTo: number) => void;
}

/** A source emitting `{n}` for n in 0..count-1 in flushes of the given sizes. */
const FlushSource: NodeSpec<SourceConfig> = {
  type: "FlushSource",
  kind: "source",
  description: "test source with chosen flush sizes",
  config: s.any(),
  create: (config): Actor => ({
    async run(ctx: ActorContext) {
      let n = 0;
      for (let i = 0; n < config.count; i++) {
        const size = Math.min(config.sizes[i % config.sizes.length], config.count - n);
        for (let k = 0; k < size; k++) ctx.emit({ n: n++ });
        config.onFlush?.(n);
        if (config.probe) config.probe.inSourceFlush = true;
        let pending;
        try {
          pending = ctx.flush();
        } finally {
          if (config.probe) config.probe.inSourceFlush = false;
        }
        if (config.onCheckpoint) {
          const upTo = n;
          ctx.checkpoint(() => config.onCheckpoint!(upTo));
        }
        if (pending) await pending;
      }
      return "end" as const;
    },
  }),
};

interface RelayConfig {
  /** How the actor handles messages. */
  mode: "map" | "handleMessage" | "handle";
  /** Batch lengths seen by `handle`, or 1 per call otherwise. */
  batches?: number[];
  probe?: Probe;
  /** Counts calls made while the source's flush was on the stack. */
  onSourceStack?: { count: number };
  /** Every call, with the message (for handle: each message of the batch). */
  calls?: Msg[];
  /** Throws for a message when it returns true (attempt counts from 1 per message). */
  fail?: (message: Msg, attempt: number) => boolean;
  /** Drops messages for which it returns false. */
  keep?: (message: Msg) => boolean;
  /** Makes a call asynchronous when it returns a promise. */
  delay?: (message: Msg) => Promise<void> | undefined;
  /** Counts calls that overlapped another call. */
  overlaps?: { count: number };
  /** Called on every start of the actor. */
  onStart?: () => void;
}

const attemptsByConfig = new WeakMap<RelayConfig, Map<number, number>>();

/** A processor passing `{n}` on, configurable to fail, filter, go async and record. */
const Relay: NodeSpec<RelayConfig> = {
  type: "Relay",
  kind: "processor",
  description: "test relay",
  config: s.any(),
  create: (config): Actor => {
    // Attempts per message survive restarts of the actor.
    let attempts = attemptsByConfig.get(config);
    if (attempts === undefined) attemptsByConfig.set(config, attempts = new Map());
    let inCall = false;
    const enter = () => {
      if (inCall && config.overlaps) config.overlaps.count++;
      inCall = true;
      if (config.probe?.inSourceFlush && config.onSourceStack) config.onSourceStack.count++;
    };
    const check = (m: Msg) => {
      config.calls?.push(m);
      const attempt = (attempts!.get(m.n) ?? 0) + 1;
      attempts!.set(m.n, attempt);
      if (config.fail?.(m, attempt)) throw new Error(`fail ${m.n} attempt ${attempt}`);
    };
    const one = (m: Msg): Msg | undefined => {
      check(m);
      return config.keep === undefined || config.keep(m) ? m : undefined;
    };
    /** Runs `run` now, or once `wait` resolves; the call ends when `run` has. */
    const finish = <T>(wait: Promise<void> | undefined, run: () => T): T | Promise<T> => {
      if (wait === undefined) {
        try {
          return run();
        } finally {
          inCall = false;
        }
      }
      return wait.then(run).finally(() => inCall = false);
    };
    const actor: Actor = { start: () => config.onStart?.() };
    switch (config.mode) {
      case "map":
        actor.map = (m) => {
          enter();
          const message = m as Msg;
          return finish(config.delay?.(message), () => one(message));
        };
        break;
      case "handleMessage":
        actor.handleMessage = (m, ctx) => {
          enter();
          config.batches?.push(1);
          const message = m as Msg;
          return finish(config.delay?.(message), () => {
            const out = one(message);
            if (out !== undefined) ctx.emit(out);
          });
        };
        break;
      case "handle":
        actor.handle = (batch, ctx) => {
          enter();
          config.batches?.push(batch.length);
          return finish(config.delay?.(batch[0] as Msg), () => {
            for (const m of batch as Msg[]) {
              const out = one(m);
              if (out !== undefined) ctx.emit(out);
            }
          });
        };
        break;
    }
    return actor;
  },
};

interface SinkConfig {
  into: Msg[];
  batches?: number[];
  delay?: (batch: Msg[]) => Promise<void> | undefined;
  overlaps?: { count: number };
  probe?: Probe;
  onSourceStack?: { count: number };
}

/** A sink that records batches, optionally asynchronous, and detects overlapping calls. */
const RecordSink: NodeSpec<SinkConfig> = {
  type: "RecordSink",
  kind: "sink",
  description: "test sink",
  config: s.any(),
  create: (config): Actor => {
    let inHandle = false;
    return {
      handle(batch) {
        if (inHandle && config.overlaps) config.overlaps.count++;
        if (config.probe?.inSourceFlush && config.onSourceStack) config.onSourceStack.count++;
        config.batches?.push(batch.length);
        inHandle = true;
        const wait = config.delay?.(batch as Msg[]);
        if (wait === undefined) {
          config.into.push(...batch as Msg[]);
          inHandle = false;
          return;
        }
        return wait.then(() => {
          config.into.push(...batch as Msg[]);
          inHandle = false;
        });
      },
    };
  },
};

function setup() {
  return quietWorkflow({ registry: testRegistry(FlushSource, Relay, RecordSink) });
}

function byId(report: RunReport) {
  return Object.fromEntries(report.nodes.map((n) => [n.id, n]));
}

function range(count: number, keep: (n: number) => boolean = () => true): Msg[] {
  return Array.from({ length: count }, (_, n) => ({ n })).filter((m) => keep(m.n));
}

/** Runs the workflow to completion on its virtual clock. */
async function runToEnd(
  workflow: ReturnType<typeof setup>["workflow"],
  clock: VirtualClock,
  ms = 1_000_000,
): Promise<RunReport> {
  const running = workflow.run();
  await clock.advance(ms);
  return await running;
}

/** A few microtasks of asynchrony, no timers. */
async function microtasks(count: number): Promise<void> {
  for (let i = 0; i < count; i++) await Promise.resolve();
}

Deno.test("Direct hand-over keeps the order end to end through four processors", async () => {
  const { workflow, clock } = setup();
  const probe: Probe = { inSourceFlush: false };
  const onSourceStack = { count: 0 };
  const out: Msg[] = [];
  const N = 3000;
  workflow
    .addNode("FlushSource", "src", { count: N, sizes: [1, 2, 3, 1, 5, 8, 1, 13, 1], probe })
    .addNode("Relay", "p1", { mode: "map", probe, onSourceStack })
    .addNode("Relay", "p2", { mode: "handleMessage" })
    .addNode("Relay", "p3", {
      mode: "handle",
      // Now and then asynchronous, so some batches queue behind a busy node.
      delay: (m: Msg) => m.n % 97 === 0 ? microtasks(3) : undefined,
    })
    .addNode("Relay", "p4", {
      mode: "map",
      keep: (m: Msg) => m.n % 3 !== 0,
      delay: (m: Msg) => m.n % 89 === 0 ? clock.sleep(5) : undefined,
    })
    .addNode("RecordSink", "sink", { into: out })
    .addConnection("src", "p1").addConnection("p1", "p2").addConnection("p2", "p3")
    .addConnection("p3", "p4").addConnection("p4", "sink");
  const report = await runToEnd(workflow, clock);
  assert.equal(report.status, "completed");
  assert.deepEqual(out, range(N, (n) => n % 3 !== 0), "every message, in order, once");
  assert.ok(onSourceStack.count > 0, "batches were handled directly on the source's stack");
  const nodes = byId(report);
  assert.equal(nodes.src.messagesOut, N);
  for (const id of ["p1", "p2", "p3", "p4"]) {
    assert.equal(nodes[id].messagesIn, N, `${id} messagesIn`);
  }
  for (const id of ["p1", "p2", "p3"]) {
    assert.equal(nodes[id].messagesOut, N, `${id} messagesOut`);
  }
  for (const id of ["p1", "p2", "p3", "p4", "sink"]) {
    // Messages handed over directly count in the mailbox too: enqueued and taken.
    const mailbox = nodes[id].mailbox!;
    assert.equal(mailbox.enqueued, nodes[id].messagesIn, `${id} mailbox.enqueued`);
    assert.equal(mailbox.dequeued, nodes[id].messagesIn, `${id} mailbox.dequeued`);
    assert.equal(mailbox.depth, 0);
  }
  assert.equal(nodes.p4.messagesOut, out.length, "p4 messagesOut counts what it kept");
  assert.equal(nodes.sink.messagesIn, out.length);
  assert.equal(nodes.sink.messagesOut, 0);
  for (const node of report.nodes) assert.equal(node.errors, 0, node.id);
});

Deno.test("Direct hand-over respects batch_size", async () => {
  const { workflow, clock } = setup();
  const one: number[] = [];
  const three: number[] = [];
  const sinkBatches: number[] = [];
  const out: Msg[] = [];
  const N = 200;
  workflow
    .addNode("FlushSource", "src", { count: N, sizes: [10, 1, 7] })
    .addNode("Relay", "one", { mode: "handle", batches: one }, { mailbox: { batch_size: 1 } })
    .addNode("Relay", "three", { mode: "handle", batches: three }, {
      mailbox: { batch_size: 3 },
    })
    .addNode("RecordSink", "sink", {
      into: out,
      batches: sinkBatches,
      delay: () => microtasks(2),
    }, { mailbox: { batch_size: 4 } })
    .addConnection("src", "one").addConnection("one", "three").addConnection("three", "sink");
  const report = await runToEnd(workflow, clock);
  assert.equal(report.status, "completed");
  assert.deepEqual(out, range(N));
  assert.ok(one.every((b) => b === 1), `batch_size 1 saw batches ${[...new Set(one)]}`);
  assert.equal(one.length, N);
  assert.ok(three.every((b) => b >= 1 && b <= 3), `batch_size 3 saw ${[...new Set(three)]}`);
  assert.equal(three.reduce((a, b) => a + b, 0), N);
  assert.ok(sinkBatches.every((b) => b >= 1 && b <= 4), `batch_size 4 saw ${sinkBatches}`);
  assert.equal(sinkBatches.reduce((a, b) => a + b, 0), N);
  const nodes = byId(report);
  for (const id of ["one", "three", "sink"]) assert.equal(nodes[id].messagesIn, N, id);
});

Deno.test("Direct hand-over never runs an asynchronous handler concurrently", async () => {
  const { workflow, clock } = setup();
  const probe: Probe = { inSourceFlush: false };
  const overlaps = { count: 0 };
  const sinkOverlaps = { count: 0 };
  const onSourceStack = { count: 0 };
  const batches: number[] = [];
  const out: Msg[] = [];
  const N = 500;
  let calls = 0;
  workflow
    .addNode("FlushSource", "src", { count: N, sizes: [1, 3, 1, 1, 6, 2], probe })
    .addNode("Relay", "async", {
      mode: "handleMessage",
      overlaps,
      probe,
      onSourceStack,
      delay: (m: Msg) => m.n % 2 === 0 ? microtasks(1 + (m.n % 5)) : undefined,
    })
    .addNode("RecordSink", "sink", {
      into: out,
      batches,
      overlaps: sinkOverlaps,
      delay: () => ++calls % 3 === 0 ? clock.sleep(2) : microtasks(2),
    }, { mailbox: { capacity: 8, batch_size: 5 } })
    .addConnection("src", "async").addConnection("async", "sink");
  const report = await runToEnd(workflow, clock);
  assert.equal(report.status, "completed");
  assert.equal(overlaps.count, 0, "handleMessage calls never overlap");
  assert.equal(sinkOverlaps.count, 0, "handle calls never overlap");
  assert.ok(onSourceStack.count > 0, "some batches were handed over directly");
  assert.ok(batches.every((b) => b <= 5), `batches ${batches}`);
  assert.deepEqual(out, range(N));
  const nodes = byId(report);
  assert.equal(nodes.async.messagesIn, N);
  assert.equal(nodes.async.messagesOut, N);
  assert.equal(nodes.sink.messagesIn, N);
});

Deno.test("Direct hand-over to an asynchronous sink: one batch at a time, in order", async () => {
  const { workflow, clock } = setup();
  const probe: Probe = { inSourceFlush: false };
  const overlaps = { count: 0 };
  const onSourceStack = { count: 0 };
  const batches: number[] = [];
  const out: Msg[] = [];
  const N = 400;
  let calls = 0;
  workflow
    .addNode("FlushSource", "src", { count: N, sizes: [1, 2, 4, 3], probe })
    .addNode("RecordSink", "sink", {
      into: out,
      batches,
      overlaps,
      probe,
      onSourceStack,
      delay: () => ++calls % 2 === 0 ? clock.sleep(1) : microtasks(3),
    }, { mailbox: { capacity: 6, batch_size: 4 } })
    .addConnection("src", "sink");
  const report = await runToEnd(workflow, clock);
  assert.equal(report.status, "completed");
  assert.equal(overlaps.count, 0, "handle calls never overlap");
  assert.ok(onSourceStack.count > 0, "batches were handed to the sink directly");
  assert.ok(batches.every((b) => b >= 1 && b <= 4), `batches ${batches}`);
  assert.deepEqual(out, range(N));
  assert.equal(byId(report).sink.messagesIn, N);
});

Deno.test("A failing message in a directly handed batch is retried, then dead-lettered", async (t) => {
  for (const mode of ["map", "handleMessage", "handle"] as const) {
    await t.step(mode, async () => {
      const { workflow, clock, deadLetters } = setup();
      const probe: Probe = { inSourceFlush: false };
      const onSourceStack = { count: 0 };
      const calls: Msg[] = [];
      const out: Msg[] = [];
      const N = 100;
      let failedOnSourceStack = 0;
      const poison = (n: number) => n % 10 === 3;
      const flaky = (n: number) => n % 10 === 7;
      workflow
        .addNode("FlushSource", "src", { count: N, sizes: [10], probe })
        .addNode("Relay", "p", {
          mode,
          calls,
          probe,
          onSourceStack,
          fail: (m: Msg, attempt: number) => {
            const fails = poison(m.n) || (flaky(m.n) && attempt === 1);
            if (fails && probe.inSourceFlush) failedOnSourceStack++;
            return fails;
          },
        }, { supervision: { max_message_retries: 2 } })
        .addNode("RecordSink", "sink", { into: out })
        .addConnection("src", "p").addConnection("p", "sink");
      const report = await runToEnd(workflow, clock);
      assert.equal(report.status, "completed");
      assert.ok(onSourceStack.count > 0, "the batches were handed over directly");
      assert.ok(failedOnSourceStack > 0, "messages failed in directly handed batches");
      assert.deepEqual(out, range(N, (n) => !poison(n)), "the rest, in order");
      assert.deepEqual(
        deadLetters.letters.map((l) => l.message),
        range(N, poison),
      );
      for (const letter of deadLetters.letters) {
        assert.equal(letter.node, "p");
        assert.equal(letter.attempts, 3, "1 try + 2 retries");
        const n = (letter.message as Msg).n;
        if (mode === "handle") {
          // A failed handle() batch is split, so the failing message may be
          // tried once more alone before its retries begin.
          assert.match(String(letter.error), new RegExp(`^fail ${n} attempt [34]$`));
        } else {
          assert.equal(letter.error, `fail ${n} attempt 3`);
        }
      }
      const tries = (n: number) => calls.filter((m) => m.n === n).length;
      for (let n = 0; n < N; n++) {
        const want = poison(n) ? 3 : flaky(n) ? 2 : 1;
        // handle() retries a failed batch message by message: the innocent
        // messages of a failed batch are handled once more.
        if (mode === "handle") assert.ok(tries(n) >= want, `${n}: ${tries(n)} tries`);
        else assert.equal(tries(n), want, `${n}: tries`);
      }
      const p = byId(report).p;
      assert.equal(p.messagesIn, N);
      assert.equal(p.messagesOut, N - range(N, poison).length);
      assert.equal(p.deadLettered, range(N, poison).length);
      assert.equal(p.errors, range(N, (n) => poison(n) || flaky(n)).length);
      assert.equal(p.restarts, 0);
    });
  }
});

Deno.test("on_message_error restart: a directly handed batch is retried after the restart", async (t) => {
  for (const mode of ["map", "handleMessage", "handle"] as const) {
    await t.step(mode, async () => {
      const { workflow, clock, deadLetters } = setup();
      const probe: Probe = { inSourceFlush: false };
      const onSourceStack = { count: 0 };
      let starts = 0;
      const out: Msg[] = [];
      const N = 100;
      // The first attempts of 24 and 77 crash the actor. The first batch
      // reaches the processor before its loop is parked; 20..29 is handed
      // over directly; during the restart's backoff the rest (usually) queues.
      const crashOn = new Set([24, 77]);
      const crashedOnSourceStack: boolean[] = [];
      workflow
        .addNode("FlushSource", "src", { count: N, sizes: [10], probe })
        .addNode("Relay", "p", {
          mode,
          probe,
          onSourceStack,
          onStart: () => starts++,
          fail: (m: Msg, attempt: number) => {
            const crash = crashOn.has(m.n) && attempt === 1;
            if (crash) crashedOnSourceStack.push(probe.inSourceFlush);
            return crash;
          },
        }, {
          supervision: {
            on_message_error: "restart",
            initial_delay: 1,
            jitter: 0,
            max_restarts: 10,
          },
        })
        .addNode("RecordSink", "sink", { into: out })
        .addConnection("src", "p").addConnection("p", "sink");
      const report = await runToEnd(workflow, clock);
      assert.equal(report.status, "completed");
      assert.ok(onSourceStack.count > 0, "batches were handed over directly");
      assert.equal(crashedOnSourceStack.length, 2);
      assert.equal(crashedOnSourceStack[0], true, "the first crash is in a directly handed batch");
      assert.deepEqual(out, range(N), "nothing lost, nothing twice, in order");
      assert.equal(deadLetters.letters.length, 0);
      assert.equal(starts, 3, "the first start and two restarts");
      const p = byId(report).p;
      assert.equal(p.restarts, 2);
      assert.equal(p.errors, 2);
      assert.equal(p.messagesIn, N, "retried messages are not counted again");
      assert.equal(p.messagesOut, N);
    });
  }
});

Deno.test("Backpressure still reaches the source through direct hand-over", async (t) => {
  await t.step("source straight into a slow sink", async () => {
    const { workflow, clock } = setup();
    const out: Msg[] = [];
    const ahead: number[] = [];
    const N = 60;
    workflow
      .addNode("FlushSource", "src", {
        count: N,
        sizes: [1],
        onFlush: (emitted: number) => ahead.push(emitted - out.length),
      })
      .addNode("RecordSink", "sink", { into: out, delay: () => clock.sleep(10) }, {
        mailbox: { capacity: 2 },
      })
      .addConnection("src", "sink");
    const running = workflow.run();
    await clock.settle(10);
    // No timer has fired: the sink has finished nothing, the source must be held back.
    assert.equal(out.length, 0);
    assert.ok(ahead.length <= 6, `the source ran ahead by ${ahead.length} messages`);
    await clock.advance(1_000_000);
    const report = await running;
    assert.equal(report.status, "completed");
    assert.deepEqual(out, range(N));
    const max = Math.max(...ahead);
    // One batch in the handler, a full mailbox, one blocked message, the new one.
    assert.ok(max <= 2 * 2 + 2, `emitted minus sunk reached ${max}: ${ahead}`);
    assert.ok(max > 2, `the sink was full at times: ${max}`);
  });
  await t.step("through two idle processors into a slow sink", async () => {
    const { workflow, clock } = setup();
    const out: Msg[] = [];
    const ahead: number[] = [];
    const N = 200;
    workflow
      .addNode("FlushSource", "src", {
        count: N,
        sizes: [1, 2],
        onFlush: (emitted: number) => ahead.push(emitted - out.length),
      })
      .addNode("Relay", "a", { mode: "map" }, { mailbox: { capacity: 3 } })
      .addNode("Relay", "b", { mode: "handleMessage" }, { mailbox: { capacity: 3 } })
      .addNode("RecordSink", "sink", { into: out, delay: () => clock.sleep(10) }, {
        mailbox: { capacity: 2 },
      })
      .addConnection("src", "a").addConnection("a", "b").addConnection("b", "sink");
    const report = await runToEnd(workflow, clock);
    assert.equal(report.status, "completed");
    assert.deepEqual(out, range(N));
    const max = Math.max(...ahead);
    // Each hop holds at most its mailbox, one batch in hand and one blocked batch.
    const bound = (3 + 2 + 2) + (3 + 2 + 2) + (2 + 2 + 2) + 2;
    assert.ok(max <= bound, `emitted minus sunk reached ${max} (bound ${bound})`);
  });
});

Deno.test("Checkpoints complete only after the sink handled every earlier message", async (t) => {
  const variants: [string, (clock: VirtualClock) => (batch: Msg[]) => Promise<void> | undefined][] =
    [
      ["synchronous sink", () => () => undefined],
      ["sink async by microtasks", () => () => microtasks(3)],
      ["sink async by timers", (clock) => (batch) => clock.sleep(batch.length)],
    ];
  for (const [name, makeDelay] of variants) {
    await t.step(name, async () => {
      const { workflow, clock } = setup();
      const out: Msg[] = [];
      const completed: number[] = [];
      const violations: string[] = [];
      const N = 300;
      workflow
        .addNode("FlushSource", "src", {
          count: N,
          sizes: [7, 1, 3],
          onCheckpoint: (upTo: number) => {
            completed.push(upTo);
            if (out.length < upTo) {
              violations.push(`checkpoint ${upTo} completed with ${out.length} sunk`);
            }
          },
        })
        .addNode("Relay", "a", { mode: "map" })
        .addNode("Relay", "b", {
          mode: "handleMessage",
          delay: (m: Msg) => m.n % 4 === 0 ? microtasks(2) : undefined,
        })
        .addNode("RecordSink", "sink", { into: out, delay: makeDelay(clock) }, {
          mailbox: { capacity: 16, batch_size: 8 },
        })
        .addConnection("src", "a").addConnection("a", "b").addConnection("b", "sink");
      const report = await runToEnd(workflow, clock);
      assert.equal(report.status, "completed");
      assert.deepEqual(violations, []);
      assert.deepEqual(out, range(N));
      const expected: number[] = [];
      for (let n = 0, i = 0; n < N; i++) {
        n = Math.min(N, n + [7, 1, 3][i % 3]);
        expected.push(n);
      }
      assert.deepEqual(completed, expected, "every checkpoint, in order");
    });
  }
});

Deno.test("A long chain of idle nodes completes in order (direct hand-over depth is bounded)", async () => {
  const { workflow, clock } = setup();
  const out: Msg[] = [];
  const probe: Probe = { inSourceFlush: false };
  const onSourceStack = { count: 0 };
  const LENGTH = 1500;
  workflow.addNode("FlushSource", "src", { count: 200, sizes: [7, 1, 30], probe });
  let previous = "src";
  for (let i = 0; i < LENGTH; i++) {
    const id = `p${i}`;
    workflow.addNode(
      "Relay",
      id,
      i === LENGTH - 1 ? { mode: "handle", probe, onSourceStack } : {
        mode: i % 2 === 0 ? "map" : "handle",
      },
    ).addConnection(previous, id);
    previous = id;
  }
  workflow.addNode("RecordSink", "sink", { into: out }).addConnection(previous, "sink");
  const report = await runToEnd(workflow, clock);
  assert.equal(report.status, "completed");
  assert.deepEqual(out, range(200));
  // Past the depth limit batches queue instead: the last node never runs on the source's stack.
  assert.equal(onSourceStack.count, 0);
});
