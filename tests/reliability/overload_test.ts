/**
 * Overload: a producer 10x faster than the slowest actor for 60 seconds of
 * stream time (virtual clock) under each overflow policy.
 */
import assert from "node:assert/strict";
import type { ActorContext } from "../../runtime/actor.ts";
import type { OverflowPolicy } from "../../runtime/mailbox.ts";
import { s } from "../../runtime/schema.ts";
import { quietWorkflow, testRegistry } from "../helpers.ts";

const RATE = 1000; // producer: messages per second
const SLOW_MS = 10; // consumer: 10 ms per message, 100 per second
const SECONDS = 60;

const SlowSink = {
  type: "SlowSink",
  kind: "sink" as const,
  description: "",
  config: s.any<{ into: { n: number }[] }>(),
  create: (config: { into: { n: number }[] }) => ({
    async handle(batch: { sequence: number }[], ctx: ActorContext) {
      for (const m of batch) {
        await ctx.clock.sleep(SLOW_MS);
        config.into.push({ n: m.sequence });
      }
    },
  }),
};

async function overload(overflow: OverflowPolicy) {
  const { workflow, clock, deadLetters } = quietWorkflow({ registry: testRegistry(SlowSink) });
  const delivered: { n: number }[] = [];
  workflow
    .addNode("GeneratorNode", "producer", {
      rate_per_second: RATE,
      realtime: true,
      start_time: 0,
      message_count: RATE * SECONDS,
    })
    .addNode("SlowSink", "slow", { into: delivered }, {
      mailbox: { capacity: 100, overflow, sample_rate: 0.5, batch_size: 10 },
      supervision: { initial_delay: 0, jitter: 0, max_restarts: 100_000 },
    })
    .addConnection("producer", "slow");
  const heapBefore = Deno.memoryUsage().heapUsed;
  const running = workflow.run({ drainTimeoutMs: 3_600_000 });
  for (let t = 0; t < SECONDS * 1000; t += 250) await clock.advance(250);
  workflow.stop();
  for (let t = 0; t < 30_000 && !(await isDone(running)); t += 1000) await clock.advance(1000);
  const report = await running;
  const heapAfter = Deno.memoryUsage().heapUsed;
  const producer = report.nodes.find((n) => n.id === "producer")!;
  const slow = report.nodes.find((n) => n.id === "slow")!;
  return {
    report,
    producer,
    slow,
    delivered,
    deadLetters,
    heapGrowthMb: (heapAfter - heapBefore) / 1048576,
  };
}

async function isDone(p: Promise<unknown>): Promise<boolean> {
  const marker = {};
  return (await Promise.race([p, Promise.resolve(marker)])) !== marker;
}

Deno.test("overload under block: the producer slows to the pipeline's pace and nothing is dropped", async () => {
  const { producer, slow, delivered, report } = await overload("block");
  assert.equal(report.status, "stopped");
  assert.equal(slow.dropped, 0);
  assert.equal(delivered.length, producer.messagesOut, "everything produced was delivered");
  // 60 s at 100/s is about 6,000, plus what fit in the mailbox: far below the 60,000 offered.
  assert.ok(producer.messagesOut < 7_000, `producer slowed to ${producer.messagesOut}`);
  assert.ok(producer.messagesOut > 5_500, `producer kept the pace: ${producer.messagesOut}`);
  assert.ok(slow.mailbox!.highWater <= 100);
  console.log(
    `  block: produced ${producer.messagesOut}, delivered ${delivered.length}, dropped 0`,
  );
});

for (const overflow of ["drop_oldest", "drop_newest", "sample"] as const) {
  Deno.test(`overload under ${overflow}: the producer keeps its pace and every drop is counted`, async () => {
    const { producer, slow, delivered } = await overload(overflow);
    assert.equal(producer.messagesOut, RATE * SECONDS, "the producer was never slowed");
    assert.equal(slow.mailbox!.dropped[overflow], slow.dropped);
    assert.equal(
      delivered.length + slow.dropped,
      producer.messagesOut,
      "delivered + dropped = produced, exactly",
    );
    assert.ok(slow.mailbox!.highWater <= 100);
    const seqs = delivered.map((d) => d.n);
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), "order kept");
    console.log(
      `  ${overflow}: produced ${producer.messagesOut}, delivered ${delivered.length}, dropped ${slow.dropped}`,
    );
  });
}

Deno.test("overload under fail: overflow goes to dead letters and restarts the slow node, never the producer", async () => {
  const { producer, slow, delivered, deadLetters } = await overload("fail");
  assert.equal(producer.restarts, 0, producer.lastError);
  assert.ok(slow.restarts > 0);
  assert.equal(slow.mailbox!.dropped.fail, deadLetters.letters.length);
  assert.equal(delivered.length + deadLetters.letters.length, producer.messagesOut);
  console.log(
    `  fail: produced ${producer.messagesOut}, delivered ${delivered.length}, dead-lettered ${deadLetters.letters.length}, restarts ${slow.restarts}`,
  );
});
