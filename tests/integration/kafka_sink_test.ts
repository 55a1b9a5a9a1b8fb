/**
 * KafkaSinkNode against a real broker (sluice produces, kcat reads), and
 * Kafka -> filter -> transform -> Kafka pipelines with exact counts.
 */
import assert from "node:assert/strict";
import { builtins } from "../../actors/mod.ts";
import { VirtualClock } from "../../runtime/clock.ts";
import { MemoryDeadLetters } from "../../runtime/dead_letter.ts";
import { Registry } from "../../runtime/registry.ts";
import { s } from "../../runtime/schema.ts";
import { Workflow } from "../../runtime/workflow.ts";
import {
  captureLogger,
  committedOffsets,
  createTopic,
  kafkaTest,
  kcatConsume,
  kcatProduce,
  uniqueTopic,
  waitFor,
} from "../kafka_env.ts";

/** A registry with a source that emits a fixed list, then ends. */
function withList(events: unknown[]): Registry {
  return new Registry(builtins).with({
    type: "ListSource",
    kind: "source",
    description: "test events",
    config: s.any(),
    create: () => ({
      async run(ctx) {
        for (const e of events) ctx.emit(e);
        await ctx.flush();
        return "end";
      },
    }),
  });
}

function sum(offsets: Map<number, number>): number {
  let total = 0;
  for (const v of offsets.values()) total += Math.max(0, v);
  return total;
}

kafkaTest("KafkaSinkNode writes messages that kcat reads back", async (t, brokers) => {
  const topic = uniqueTopic("sink-basic");
  await createTopic(brokers, topic, 2);
  const { logger } = captureLogger();
  const report = await new Workflow({
    registry: new Registry(builtins),
    deadLetters: new MemoryDeadLetters(),
    logger,
  })
    .addNode("GeneratorNode", "gen", { message_count: 300, start_time: 0 })
    .addNode("KafkaSinkNode", "out", {
      brokers,
      topic,
      key_field: "user_id",
      headers: { source: "sluice" },
      batch_size: 100,
      compression: "gzip",
    })
    .addConnection("gen", "out")
    .run();
  assert.equal(report.status, "completed");
  const read = await kcatConsume(brokers, topic);

  await t.step("every message is in the topic once", () => {
    assert.equal(read.length, 300);
    const seqs = new Set(read.map((m) => JSON.parse(m.value).sequence));
    assert.equal(seqs.size, 300);
  });
  await t.step("keys come from key_field and fix the partition", () => {
    const m = read.find((x) => JSON.parse(x.value).sequence === 42)!;
    assert.equal(m.key, "user_42");
    const partitionsOfUser = new Set(
      read.filter((x) => x.key === "user_42").map((x) => x.partition),
    );
    assert.equal(partitionsOfUser.size, 1);
  });
  await t.step("static headers are on every message", () => {
    assert.ok(read.every((m) => m.headers === "source=sluice"));
  });
});

kafkaTest(
  "KafkaSinkNode routes by topic_field, adds headers_field, and dead-letters what it cannot write",
  async (t, brokers) => {
    const a = uniqueTopic("sink-a");
    const b = uniqueTopic("sink-b");
    await createTopic(brokers, a, 1);
    await createTopic(brokers, b, 1);
    const events = [
      { dest: a, n: 1, meta: { trace: "t1" } },
      { dest: b, n: 2 },
      { n: 3, big: 10n }, // no dest, no fallback topic; also not JSON
      { dest: a, n: 4, _kafka: { topic: "in", partition: 0, offset: 9 } },
      { dest: 5, n: 5 },
    ];
    const deadLetters = new MemoryDeadLetters();
    const { logger } = captureLogger();
    const report = await new Workflow({ registry: withList(events), deadLetters, logger })
      .addNode("ListSource", "list")
      .addNode("KafkaSinkNode", "out", {
        brokers,
        topic_field: "dest",
        headers_field: "meta",
        idempotent: true,
      })
      .addConnection("list", "out")
      .run();
    assert.equal(report.status, "completed");
    const inA = await kcatConsume(brokers, a);
    const inB = await kcatConsume(brokers, b);

    await t.step("each message went to the topic its field names", () => {
      assert.deepEqual(inA.map((m) => JSON.parse(m.value).n), [1, 4]);
      assert.deepEqual(inB.map((m) => JSON.parse(m.value).n), [2]);
    });
    await t.step("headers_field entries become headers; _kafka is stripped", () => {
      assert.equal(inA[0].headers, "trace=t1");
      assert.deepEqual(JSON.parse(inA[1].value), { dest: a, n: 4 });
    });
    await t.step("messages without a usable topic go to dead letters", () => {
      assert.equal(report.deadLetters, 2);
      assert.deepEqual(deadLetters.letters.map((l) => l.errorName), [
        "KafkaSerializationError",
        "KafkaSerializationError",
      ]);
      assert.match(deadLetters.letters[1].error, /topic field holds number 5/);
    });
  },
);

kafkaTest(
  "Kafka -> EventFilterNode -> EventTransformNode -> Kafka delivers exactly the matching events",
  async (t, brokers) => {
    const input = uniqueTopic("pipe-in");
    const output = uniqueTopic("pipe-out");
    const group = `${input}-g`;
    await createTopic(brokers, input, 3);
    await createTopic(brokers, output, 3);
    const types = ["click", "view", "purchase", "scroll"];
    const n = 2000;
    const lines = Array.from({ length: n }, (_, i) =>
      JSON.stringify({
        seq: i,
        event_type: types[i % 4],
        ...(i % 10 === 0 ? {} : { user_id: `u${i % 37}` }),
      }));
    await kcatProduce(brokers, input, lines);
    const expected = lines.map((l) => JSON.parse(l)).filter((e) =>
      ["click", "purchase"].includes(e.event_type) && e.user_id !== undefined
    );
    const { logger } = captureLogger();
    const wf = new Workflow({
      registry: new Registry(builtins),
      deadLetters: new MemoryDeadLetters(),
      logger,
    })
      .addNode("EventStreamNode", "events", {
        brokers,
        topic: input,
        consumer_group: group,
        from_beginning: true,
        max_wait: 0.2,
      })
      .addNode("EventFilterNode", "filter", {
        filter_conditions: [
          { field: "event_type", operator: "in", values: ["click", "purchase"] },
          { field: "user_id", operator: "exists" },
        ],
        filter_logic: "and",
      })
      .addNode("EventTransformNode", "transform", {
        transformations: [
          { field: "user_id", operation: "hash", output_field: "user_hash" },
          { field: "event_type", operation: "uppercase" },
        ],
      })
      .addNode("KafkaSinkNode", "out", { brokers, topic: output, key_field: "user_id" })
      .addConnection("events", "filter")
      .addConnection("filter", "transform")
      .addConnection("transform", "out");
    const running = wf.run();
    await waitFor(
      "all input offsets committed",
      async () => sum(await committedOffsets(brokers, group, input)) === n,
    );
    wf.stop();
    const report = await running;
    const read = await kcatConsume(brokers, output);

    await t.step("exact counts through every node", () => {
      const node = (id: string) => report.nodes.find((x) => x.id === id)!;
      assert.equal(node("events").messagesOut, n);
      assert.equal(node("filter").outByPort.out, expected.length);
      assert.equal(node("filter").outByPort.rejected, n - expected.length);
      assert.equal(node("out").messagesIn, expected.length);
      assert.equal(report.deadLetters, 0);
    });
    await t.step("the output topic holds each matching event once, transformed", () => {
      assert.equal(read.length, expected.length);
      const values = read.map((m) => JSON.parse(m.value));
      assert.deepEqual(
        values.map((v) => v.seq).sort((x, y) => x - y),
        expected.map((e) => e.seq),
      );
      const v = values[0];
      assert.match(v.user_hash, /^[0-9a-f]{64}$/);
      assert.ok(v.event_type === "CLICK" || v.event_type === "PURCHASE");
      assert.equal(v._kafka, undefined);
      assert.equal(read[0].key, v.user_id);
    });
  },
);

kafkaTest(
  "KafkaSinkNode with linger holds the source's commits until the held batch is acknowledged",
  async (t, brokers) => {
    const input = uniqueTopic("linger-in");
    const output = uniqueTopic("linger-out");
    const group = `${input}-g`;
    await createTopic(brokers, input, 1);
    await createTopic(brokers, output, 1);
    const n = 50;
    await kcatProduce(brokers, input, Array.from({ length: n }, (_, i) => JSON.stringify({ i })));
    // The linger timer runs on this clock, so nothing is sent until the test advances it.
    const clock = new VirtualClock(Date.now());
    const { logger } = captureLogger();
    const wf = new Workflow({
      registry: new Registry(builtins),
      deadLetters: new MemoryDeadLetters(),
      logger,
      clock,
    })
      .addNode("EventStreamNode", "events", {
        brokers,
        topic: input,
        consumer_group: group,
        from_beginning: true,
        batch_size: 10,
        max_wait: 0.2,
      })
      .addNode("KafkaSinkNode", "out", { brokers, topic: output, linger: 5, batch_size: 1000 })
      .addConnection("events", "out");
    const running = wf.run();
    await waitFor(
      "the sink to take every event",
      () => wf.snapshot().nodes.find((x) => x.id === "out")!.messagesIn === n,
    );

    await t.step("held: nothing written, nothing committed", async () => {
      assert.equal((await kcatConsume(brokers, output)).length, 0);
      assert.equal(sum(await committedOffsets(brokers, group, input)), 0);
    });
    await clock.advance(5_000);
    await t.step("after linger: one send, then every offset commits", async () => {
      await waitFor(
        "offsets committed",
        async () => sum(await committedOffsets(brokers, group, input)) === n,
      );
      assert.equal((await kcatConsume(brokers, output)).length, n);
    });
    wf.stop();
    await running;
  },
);
