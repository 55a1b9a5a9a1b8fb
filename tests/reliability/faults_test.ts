/**
 * Faults: poison messages at scale, crashes beyond the restart budget, and the
 * accounting that proves nothing accepted is silently lost.
 */
import assert from "node:assert/strict";
import type { ActorContext } from "../../runtime/actor.ts";
import { s } from "../../runtime/schema.ts";
import { numbered, quietWorkflow, testRegistry } from "../helpers.ts";

const MILLION = 1_000_000;

/** A source of `count` numbered messages, fast: no per-message objects beyond `{n}`. */
const CountSource = {
  type: "CountSource",
  kind: "source" as const,
  description: "",
  config: s.any<{ count: number }>(),
  create: (config: { count: number }) => ({
    async run(ctx: ActorContext) {
      for (let i = 0; i < config.count && !ctx.signal.aborted;) {
        const end = Math.min(config.count, i + 1024);
        for (; i < end; i++) ctx.emit({ n: i });
        const p = ctx.flush();
        if (p) await p;
      }
      return "end" as const;
    },
  }),
};

Deno.test("one poison message in 1,000 over a million: every good one delivered once, every bad one dead-lettered", async () => {
  const { workflow, deadLetters } = quietWorkflow({ registry: testRegistry(CountSource) });
  const seen = new Uint8Array(MILLION);
  let delivered = 0;
  workflow
    .addNode("CountSource", "src", { count: MILLION })
    .addNode("FunctionNode", "parse", {
      fn: (m: { n: number }) => {
        if (m.n % 1000 === 500) throw new Error(`cannot parse message ${m.n}`);
        return m;
      },
    }, { supervision: { max_message_retries: 1, max_restarts: 3 } })
    .addNode("FunctionNode", "sink", {
      batch: (ms: { n: number }[]) => {
        for (const m of ms) {
          seen[m.n]++;
          delivered++;
        }
        return [];
      },
    })
    .addConnection("src", "parse").addConnection("parse", "sink");
  const report = await workflow.run();
  assert.equal(report.status, "completed");
  assert.equal(delivered, MILLION - 1000);
  let duplicates = 0;
  for (let i = 0; i < MILLION; i++) {
    const expected = i % 1000 === 500 ? 0 : 1;
    if (seen[i] !== expected) duplicates++;
  }
  assert.equal(duplicates, 0, "every good message exactly once, no bad one delivered");
  assert.equal(deadLetters.letters.length, 1000);
  assert.ok(deadLetters.letters.every((l) => /^cannot parse message \d*500$/.test(l.error)));
  assert.deepEqual(
    deadLetters.letters.slice(0, 2).map((l) => [l.message, l.attempts]),
    [[{ n: 500 }, 2], [{ n: 1500 }, 2]],
  );
  const parse = report.nodes.find((n) => n.id === "parse")!;
  assert.equal(parse.restarts, 0, "message failures never spend the restart budget");
  assert.equal(parse.errors, 1000);
  console.log(
    `  figures: in ${MILLION}, out ${delivered}, dead-lettered ${deadLetters.letters.length}, duplicated 0, restarts 0`,
  );
});

Deno.test("a node crashing beyond its intensity stops the workflow; every accepted message is accounted for", async () => {
  let calls = 0;
  const Flaky = {
    type: "Flaky",
    kind: "processor" as const,
    description: "",
    config: s.any(),
    create: () => ({
      handleMessage(m: unknown, ctx: ActorContext) {
        // Healthy for a while, then broken for good.
        if (++calls > 5_000) throw new Error("disk on fire");
        ctx.emit(m);
      },
    }),
  };
  const { workflow, deadLetters, clock } = quietWorkflow({
    registry: testRegistry(Flaky, CountSource),
  });
  const out: unknown[] = [];
  workflow
    .addNode("CountSource", "src", { count: 50_000 })
    .addNode("Flaky", "flaky", {}, {
      mailbox: { capacity: 1000 },
      supervision: {
        on_message_error: "restart",
        max_restarts: 4,
        restart_period: 60,
        initial_delay: 0.5,
        jitter: 0,
      },
    })
    .addNode("CollectSink", "sink", { into: out })
    .addConnection("src", "flaky").addConnection("flaky", "sink");
  const running = workflow.run();
  for (let i = 0; i < 100; i++) await clock.advance(1000);
  const report = await running;
  assert.equal(report.status, "failed");
  assert.match(
    report.error!.message,
    /node "flaky" failed more than 4 times in 60s; last error: disk on fire/,
  );
  const src = report.nodes.find((n) => n.id === "src")!;
  const flaky = report.nodes.find((n) => n.id === "flaky")!;
  assert.equal(flaky.restarts, 4);
  // Accounting: everything the source emitted was delivered or dead-lettered.
  assert.equal(out.length, 5_000);
  assert.equal(out.length + deadLetters.letters.length, src.messagesOut);
  assert.ok(src.messagesOut < 50_000, "the source stopped early");
  console.log(
    `  figures: emitted ${src.messagesOut}, delivered ${out.length}, dead-lettered ${deadLetters.letters.length}, restarts ${flaky.restarts}, lost 0`,
  );
});

Deno.test("a temporary node that fails sends everything after to dead letters and the rest goes on", async () => {
  const Once = {
    type: "Once",
    kind: "processor" as const,
    description: "",
    config: s.any(),
    create: () => {
      let seen = 0;
      return {
        handleMessage(m: unknown, ctx: ActorContext) {
          if (++seen === 3) throw new Error("gone");
          ctx.emit(m);
        },
      };
    },
  };
  const { workflow, deadLetters } = quietWorkflow({ registry: testRegistry(Once) });
  const a: unknown[] = [];
  const b: unknown[] = [];
  workflow
    .addNode("ListSource", "src", { events: numbered(10), chunk: 1 })
    .addNode("Once", "fragile", {}, {
      supervision: { restart: "temporary", on_message_error: "restart" },
    })
    .addNode("CollectSink", "a", { into: a })
    .addNode("CollectSink", "b", { into: b })
    .addConnection("src", "fragile").addConnection("fragile", "a").addConnection("src", "b");
  const report = await workflow.run();
  assert.equal(report.status, "completed", "a temporary node's failure is not the workflow's");
  assert.equal(b.length, 10);
  assert.equal(a.length, 2);
  assert.equal(a.length + deadLetters.letters.length, 10);
});
