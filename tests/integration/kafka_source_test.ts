/**
 * EventStreamNode against a real broker: kcat produces, sluice consumes.
 */
import assert from "node:assert/strict";
import { builtins } from "../../actors/mod.ts";
import type { KafkaEvent } from "../../actors/sources/kafka.ts";
import { MemoryDeadLetters } from "../../runtime/dead_letter.ts";
import { Registry } from "../../runtime/registry.ts";
import { Workflow } from "../../runtime/workflow.ts";
import {
  captureLogger,
  clock,
  committedOffsets,
  createTopic,
  kafkaTest,
  kcatProduce,
  uniqueTopic,
  waitFor,
} from "../kafka_env.ts";

function source(
  brokers: string,
  topic: string,
  group: string,
  extra: Record<string, unknown> = {},
) {
  return {
    source_type: "kafka",
    brokers,
    topic,
    consumer_group: group,
    from_beginning: true,
    // Short timeouts keep the tests quick; the broker allows sessions from 6 s.
    session_timeout: 10,
    heartbeat_interval: 1,
    max_wait: 0.2,
    ...extra,
  };
}

/** EventStreamNode with `config` -> a FunctionNode collecting the events into `seen`. */
function collecting(
  config: Record<string, unknown>,
  deadLetters = new MemoryDeadLetters(),
): { wf: Workflow; seen: KafkaEvent[] } {
  const seen: KafkaEvent[] = [];
  const { logger } = captureLogger();
  const wf = new Workflow({ registry: new Registry(builtins), deadLetters, logger })
    .addNode("EventStreamNode", "events", config)
    .addNode("FunctionNode", "collect", { fn: (e: KafkaEvent) => void seen.push(e) })
    .addConnection("events", "collect");
  return { wf, seen };
}

function sum(offsets: Map<number, number>): number {
  let total = 0;
  for (const v of offsets.values()) total += Math.max(0, v);
  return total;
}

kafkaTest(
  "EventStreamNode emits what kcat produced with _kafka metadata and commits after delivery",
  async (t, brokers) => {
    const topic = uniqueTopic("src-basic");
    const group = `${topic}-g`;
    await createTopic(brokers, topic, 2);
    const lines = Array.from({ length: 200 }, (_, i) => `k${i}\t${JSON.stringify({ n: i })}`);
    await kcatProduce(brokers, topic, lines, { keyed: true, headers: { origin: "kcat" } });
    const { wf, seen } = collecting(source(brokers, topic, group, { batch_size: 50 }));
    const running = wf.run();
    await waitFor("200 events", () => seen.length >= 200);
    wf.stop();
    const report = await running;
    assert.equal(report.status, "stopped");

    await t.step("every message arrives once, as its JSON object", () => {
      assert.equal(seen.length, 200);
      const ns = new Set(seen.map((e) => e.n));
      assert.equal(ns.size, 200);
    });
    await t.step("metadata: topic, partition, offset, key, headers, timestamp", () => {
      const e = seen.find((x) => x.n === 7)!;
      assert.equal(e._kafka!.topic, topic);
      assert.equal(e._kafka!.key, "k7");
      assert.deepEqual(e._kafka!.headers, { origin: "kcat" });
      assert.ok([0, 1].includes(e._kafka!.partition));
      assert.equal(typeof e._kafka!.offset, "number");
      assert.ok(e._kafka!.timestamp > 1_600_000_000_000);
      // Offsets per partition are 0..n-1 in order.
      for (const p of [0, 1]) {
        const offsets = seen.filter((x) => x._kafka!.partition === p).map((x) => x._kafka!.offset);
        assert.deepEqual(offsets, offsets.map((_, i) => i));
      }
    });
    await t.step("the group committed every offset on stop", async () => {
      const committed = await committedOffsets(brokers, group, topic);
      assert.equal(sum(committed), 200);
    });
  },
);

kafkaTest(
  "EventStreamNode sends messages that do not parse to dead letters with topic, partition and offset",
  async (t, brokers) => {
    const topic = uniqueTopic("src-bad");
    const group = `${topic}-g`;
    await createTopic(brokers, topic, 1);
    const lines = ['{"ok":1}', "not json", '{"ok":2}', "{broken", "[1,2]", "42"];
    await kcatProduce(brokers, topic, lines);
    const deadLetters = new MemoryDeadLetters();
    const { wf, seen } = collecting(source(brokers, topic, group), deadLetters);
    const running = wf.run();
    await waitFor(
      "4 events and 2 dead letters",
      () => seen.length >= 4 && deadLetters.letters.length >= 2,
    );
    // Commits happen when the last checkpoint completes; wait for the 6th offset.
    await waitFor(
      "offsets committed",
      async () => sum(await committedOffsets(brokers, group, topic)) === 6,
    );
    wf.stop();
    const report = await running;

    await t.step("valid messages are events; non-object JSON is wrapped as {value}", () => {
      assert.deepEqual(seen.map((e) => e.ok ?? e.value), [1, 2, [1, 2], 42]);
    });
    await t.step("each bad message is one dead letter with its coordinates", () => {
      assert.equal(report.deadLetters, 2);
      const [a, b] = deadLetters.letters;
      assert.equal(a.node, "events");
      assert.equal(a.message, "not json");
      assert.equal(a.errorName, "KafkaDecodeError");
      assert.deepEqual(a.context, { topic, partition: 0, offset: 1, key: null });
      assert.equal(b.message, "{broken");
      assert.equal(b.context!.offset, 3);
    });
    await t.step("their offsets count as done: all six are committed", async () => {
      assert.equal(sum(await committedOffsets(brokers, group, topic)), 6);
    });
  },
);

kafkaTest("EventStreamNode decodes text and binary formats", async (t, brokers) => {
  const topic = uniqueTopic("src-formats");
  await createTopic(brokers, topic, 1);
  await kcatProduce(brokers, topic, ["hello", "wörld"]);
  for (const format of ["text", "binary"] as const) {
    await t.step(format, async () => {
      const { wf, seen } = collecting(
        source(brokers, topic, `${topic}-${format}`, { event_format: format, metadata: false }),
      );
      const running = wf.run();
      await waitFor("2 events", () => seen.length >= 2);
      wf.stop();
      await running;
      if (format === "text") assert.deepEqual(seen, [{ value: "hello" }, { value: "wörld" }]);
      else {
        assert.ok(seen[1].value instanceof Uint8Array);
        assert.equal(new TextDecoder().decode(seen[1].value as Uint8Array), "wörld");
        assert.equal(seen[1]._kafka, undefined);
      }
    });
  }
});

kafkaTest(
  "EventStreamNode redelivers events a crashed downstream actor had not finished",
  async (t, brokers) => {
    const topic = uniqueTopic("src-crash");
    const group = `${topic}-g`;
    await createTopic(brokers, topic, 2);
    const n = 500;
    await kcatProduce(brokers, topic, Array.from({ length: n }, (_, i) => JSON.stringify({ i })));
    const delivered: number[] = [];
    let crashed = false;
    const { logger } = captureLogger();
    const wf = new Workflow({
      registry: new Registry(builtins),
      deadLetters: new MemoryDeadLetters(),
      logger,
    })
      .addNode("EventStreamNode", "events", source(brokers, topic, group, { batch_size: 20 }))
      .addNode("FunctionNode", "flaky", {
        fn: (e: KafkaEvent) => {
          if (e.i === 250 && !crashed) {
            crashed = true;
            throw new Error("flaky handler");
          }
          return e;
        },
      }, { supervision: { on_message_error: "restart", initial_delay: 0.05 } })
      .addNode("FunctionNode", "sink", {
        fn: (e: KafkaEvent) => void delivered.push(e.i as number),
      })
      .addConnection("events", "flaky")
      .addConnection("flaky", "sink");
    const running = wf.run();
    await waitFor(`all ${n} events delivered`, () => new Set(delivered).size >= n);
    await waitFor(
      "offsets committed",
      async () => sum(await committedOffsets(brokers, group, topic)) === n,
    );
    wf.stop();
    const report = await running;

    await t.step("the handler crashed once and was restarted", () => {
      assert.equal(crashed, true);
      const flaky = report.nodes.find((x) => x.id === "flaky")!;
      assert.equal(flaky.restarts, 1);
    });
    await t.step("no event is lost; the failed batch is retried", () => {
      assert.equal(new Set(delivered).size, n);
      assert.equal(report.deadLetters, 0);
    });
  },
);

kafkaTest(
  "EventStreamNode keeps its group membership while backpressure blocks it past the session timeout",
  async (t, brokers) => {
    const topic = uniqueTopic("src-block");
    const group = `${topic}-g`;
    await createTopic(brokers, topic, 1);
    const n = 300;
    await kcatProduce(brokers, topic, Array.from({ length: n }, (_, i) => JSON.stringify({ i })));
    const delivered: number[] = [];
    const gate = Promise.withResolvers<void>();
    const { logger, lines } = captureLogger();
    const wf = new Workflow({
      registry: new Registry(builtins),
      deadLetters: new MemoryDeadLetters(),
      logger,
    })
      .addNode(
        "EventStreamNode",
        "events",
        source(brokers, topic, group, { batch_size: 10, session_timeout: 6 }),
      )
      .addNode("FunctionNode", "slow", {
        fn: async (e: KafkaEvent) => {
          if (e.i === 5) await gate.promise;
          delivered.push(e.i as number);
        },
      }, { mailbox: { capacity: 10, overflow: "block" } })
      .addConnection("events", "slow");
    const running = wf.run();
    await waitFor("the sink to block", () => delivered.length === 5);
    // 1.5 session timeouts with the source blocked on a full mailbox.
    await clock.sleep(9_000);
    const blockedAt = delivered.length;
    gate.resolve();
    await waitFor(`all ${n} events`, () => delivered.length >= n);
    wf.stop();
    await running;

    await t.step("nothing moved while blocked", () => assert.equal(blockedAt, 5));
    await t.step("the group never rebalanced: one join, no duplicates", () => {
      const joins = lines.filter((l) => l.includes("kafka consumer joined group"));
      assert.equal(joins.length, 1);
      assert.equal(lines.filter((l) => l.includes("rebalanc")).length, 0);
      assert.equal(delivered.length, n);
      assert.equal(new Set(delivered).size, n);
    });
  },
);

kafkaTest("EventStreamNode consumes a list of topics or a topic_pattern", async (t, brokers) => {
  const prefix = uniqueTopic("src-multi");
  const topics = [`${prefix}-a`, `${prefix}-b`];
  for (const topic of topics) {
    await createTopic(brokers, topic, 1);
    await kcatProduce(brokers, topic, Array.from({ length: 10 }, (_, i) => JSON.stringify({ i })));
  }
  const cases = [
    ["a list", { topic: topics }],
    ["a pattern", { topic: undefined, topic_pattern: `^${prefix}-` }],
  ] as const;
  for (const [what, extra] of cases) {
    await t.step(what, async () => {
      const { wf, seen } = collecting(
        source(brokers, topics[0], `${prefix}-${what.replace(" ", "-")}`, extra),
      );
      const running = wf.run();
      await waitFor("20 events", () => seen.length >= 20);
      wf.stop();
      await running;
      assert.equal(seen.length, 20);
      assert.deepEqual(new Set(seen.map((e) => e._kafka!.topic)), new Set(topics));
    });
  }
});

kafkaTest(
  "EventStreamNode with auto_commit lets kafkajs commit as it fetches",
  async (_t, brokers) => {
    const topic = uniqueTopic("src-auto");
    const group = `${topic}-g`;
    await createTopic(brokers, topic, 1);
    await kcatProduce(brokers, topic, Array.from({ length: 50 }, (_, i) => JSON.stringify({ i })));
    const { wf, seen } = collecting(source(brokers, topic, group, { auto_commit: true }));
    const running = wf.run();
    await waitFor("50 events", () => seen.length >= 50);
    await waitFor(
      "offsets committed",
      async () => sum(await committedOffsets(brokers, group, topic)) === 50,
    );
    wf.stop();
    await running;
    assert.equal(seen.length, 50);
  },
);
