/**
 * The Kafka nodes without a broker: config validation, event decoding,
 * offset bookkeeping, message encoding, client settings, the example
 * workflow, and what happens when no broker answers.
 */
import assert from "node:assert/strict";
import { logLevel } from "kafkajs";
import { kafkaClientConfig, parseBrokers } from "../../actors/kafka_client.ts";
import { builtins } from "../../actors/mod.ts";
import { KafkaRecordEncoder } from "../../actors/sinks/kafka.ts";
import { KafkaDecodeError, kafkaEvent, OffsetTracker } from "../../actors/sources/kafka.ts";
import { buildWorkflow, parseWorkflowText } from "../../runtime/config.ts";
import { MemoryDeadLetters } from "../../runtime/dead_letter.ts";
import type { ConfigIssue } from "../../runtime/errors.ts";
import { createLogger } from "../../runtime/log.ts";
import { Registry } from "../../runtime/registry.ts";
import { Workflow } from "../../runtime/workflow.ts";

const registry = new Registry(builtins);

function issuesOf(type: "EventStreamNode", config: unknown): ConfigIssue[] {
  return new Workflow({ registry })
    .addNode(type, "n", config)
    .addNode("ConsoleSinkNode", "sink")
    .addConnection("n", "sink")
    .validate()
    .filter((i) => i.path.startsWith("nodes[0].config"));
}

const encoder = new TextEncoder();
const record = (value: string | Uint8Array | null, extra: Record<string, unknown> = {}) => ({
  offset: "5",
  key: encoder.encode("k"),
  timestamp: "1700000000000",
  value: typeof value === "string" ? encoder.encode(value) : value,
  ...extra,
});

Deno.test("EventStreamNode config is validated with key paths", async (t) => {
  const base = { brokers: "localhost:9092", topic: "t", consumer_group: "g" };
  await t.step("a minimal config is valid; source_type defaults to kafka", () => {
    assert.deepEqual(issuesOf("EventStreamNode", base), []);
  });
  await t.step("other source types are config errors", () => {
    const [issue] = issuesOf("EventStreamNode", { ...base, source_type: "redis" });
    assert.equal(issue.path, "nodes[0].config.source_type");
    assert.match(issue.message, /expected one of kafka, found the string "redis"/);
  });
  await t.step("exactly one of topic and topic_pattern", () => {
    const both = issuesOf("EventStreamNode", { ...base, topic_pattern: "^a" });
    assert.equal(both[0].path, "nodes[0].config.topic");
    const none = issuesOf("EventStreamNode", { brokers: "b:1", consumer_group: "g" });
    assert.match(none[0].message, /exactly one of topic/);
  });
  await t.step("a topic_pattern that is not a regex", () => {
    const [issue] = issuesOf("EventStreamNode", {
      brokers: "b:1",
      consumer_group: "g",
      topic_pattern: "(",
    });
    assert.equal(issue.path, "nodes[0].config.topic_pattern");
  });
  await t.step("brokers must be host:port", () => {
    const [issue] = issuesOf("EventStreamNode", { ...base, brokers: ["ok:1", "nope"] });
    assert.equal(issue.path, "nodes[0].config.brokers");
    assert.match(issue.message, /found "nope"/);
    assert.deepEqual(parseBrokers(["a:1,b:2", " c:3 "]), ["a:1", "b:2", "c:3"]);
  });
  await t.step("heartbeats must come more often than the session timeout", () => {
    const [issue] = issuesOf("EventStreamNode", {
      ...base,
      session_timeout: 6,
      heartbeat_interval: 6,
    });
    assert.equal(issue.path, "nodes[0].config.heartbeat_interval");
  });
  await t.step("unknown keys and bad SASL settings", () => {
    const issues = issuesOf("EventStreamNode", {
      ...base,
      consumer_grup: "x",
      sasl: { mechanism: "kerberos", username: "u" },
    });
    const paths = issues.map((i) => i.path);
    assert.ok(paths.includes("nodes[0].config.consumer_grup"));
    assert.ok(paths.includes("nodes[0].config.sasl.mechanism"));
    assert.ok(paths.includes("nodes[0].config.sasl.password"));
  });
});

Deno.test("KafkaSinkNode config is validated with key paths", async (t) => {
  const sink = (config: Record<string, unknown>) =>
    new Workflow({ registry })
      .addNode("GeneratorNode", "g")
      .addNode("KafkaSinkNode", "n", { brokers: "b:1", ...config })
      .addConnection("g", "n")
      .validate();
  await t.step("needs topic or topic_field", () => {
    assert.match(sink({})[0].message, /set topic, topic_field or both/);
  });
  await t.step("acks accepts -1, 1, 0 and their names", () => {
    assert.deepEqual(sink({ topic: "t", acks: "all" }), []);
    assert.deepEqual(sink({ topic: "t", acks: 0 }), []);
    assert.equal(sink({ topic: "t", acks: 2 })[0].path, "nodes[1].config.acks");
  });
  await t.step("idempotent needs acks -1", () => {
    const [issue] = sink({ topic: "t", idempotent: true, acks: "leader" });
    assert.equal(issue.path, "nodes[1].config.acks");
    assert.deepEqual(sink({ topic: "t", idempotent: true }), []);
  });
  await t.step("field paths must be dot paths", () => {
    assert.equal(sink({ topic: "t", key_field: "a..b" })[0].path, "nodes[1].config.key_field");
  });
});

Deno.test("kafkaEvent decodes records into events", async (t) => {
  await t.step("a JSON object is the event, with _kafka metadata", () => {
    const e = kafkaEvent(
      record('{"a":1}', { headers: { h: encoder.encode("v") } }),
      "t",
      2,
      "json",
      true,
    );
    assert.deepEqual(e, {
      a: 1,
      _kafka: {
        topic: "t",
        partition: 2,
        offset: 5,
        key: "k",
        headers: { h: "v" },
        timestamp: 1700000000000,
      },
    });
  });
  await t.step("other JSON values, text, binary and tombstones are {value}", () => {
    assert.deepEqual(kafkaEvent(record("[1]"), "t", 0, "json", false), { value: [1] });
    assert.deepEqual(kafkaEvent(record("null"), "t", 0, "json", false), { value: null });
    assert.deepEqual(kafkaEvent(record(null), "t", 0, "json", false), { value: null });
    assert.deepEqual(kafkaEvent(record("héllo"), "t", 0, "text", false), { value: "héllo" });
    const bin = kafkaEvent(record(new Uint8Array([0, 255])), "t", 0, "binary", false);
    assert.deepEqual([...(bin.value as Uint8Array)], [0, 255]);
  });
  await t.step("repeated headers are lists; a missing key is null", () => {
    const e = kafkaEvent(
      record("{}", { key: null, headers: { h: [encoder.encode("1"), encoder.encode("2")] } }),
      "t",
      0,
      "json",
      true,
    );
    assert.deepEqual(e._kafka!.headers, { h: ["1", "2"] });
    assert.equal(e._kafka!.key, null);
  });
  await t.step("bad JSON and invalid UTF-8 throw KafkaDecodeError", () => {
    assert.throws(() => kafkaEvent(record("{x"), "t", 0, "json", true), KafkaDecodeError);
    const invalid = new Uint8Array([0x7b, 0xff, 0x7d]);
    assert.throws(() => kafkaEvent(record(invalid), "t", 0, "text", true), /not valid UTF-8/);
    // Text that really contains U+FFFD is valid.
    assert.equal(kafkaEvent(record("\uFFFD"), "t", 0, "text", false).value, "\uFFFD");
  });
});

Deno.test("OffsetTracker commits only past the completed prefix, per partition", async (t) => {
  await t.step("out-of-order completion waits for the earlier chunk", () => {
    const tracker = new OffsetTracker();
    const a = tracker.add("t", 0, 9);
    const b = tracker.add("t", 0, 19);
    const c = tracker.add("t", 1, 4);
    tracker.complete(b);
    tracker.complete(c);
    assert.deepEqual(tracker.commits(), [{ topic: "t", partition: 1, offset: "5" }]);
    tracker.complete(a);
    assert.deepEqual(tracker.commits().map((x) => x.offset), ["20", "5"]);
    assert.equal(tracker.pending, 0);
  });
  await t.step("confirmed commits are not repeated and never go backwards", () => {
    const tracker = new OffsetTracker();
    tracker.complete(tracker.add("t", 0, 9));
    tracker.committed(tracker.commits());
    assert.deepEqual(tracker.commits(), []);
    // A redelivery of 0..9 after a restart completes again: nothing new to commit.
    tracker.complete(tracker.add("t", 0, 9));
    assert.deepEqual(tracker.commits(), []);
  });
  await t.step("revoked partitions are forgotten", () => {
    const tracker = new OffsetTracker();
    const a = tracker.add("t", 0, 9);
    tracker.add("t", 1, 9);
    tracker.retain({ t: [1] });
    assert.equal(tracker.pending, 1);
    tracker.complete(a);
    assert.deepEqual(tracker.commits(), []);
  });
});

Deno.test("KafkaRecordEncoder serializes messages", async (t) => {
  await t.step("value_field, binary values and non-string keys", () => {
    const enc = new KafkaRecordEncoder({ topic: "t", key_field: "k", value_field: "v" });
    const out = enc.encode({ k: 42, v: new Uint8Array([1, 2]) });
    assert.equal(out.message.key, "42");
    assert.deepEqual([...(out.message.value as Uint8Array)], [1, 2]);
    assert.equal(enc.encode({ k: null, v: "text" }).message.value, "text");
    assert.equal(enc.encode({ k: 1 }).message.value, null);
  });
  await t.step("strip_metadata: false keeps _kafka", () => {
    const enc = new KafkaRecordEncoder({ topic: "t", strip_metadata: false });
    assert.equal(
      enc.encode({ a: 1, _kafka: { offset: 1 } }).message.value,
      '{"a":1,"_kafka":{"offset":1}}',
    );
  });
  await t.step("unserializable values throw KafkaSerializationError", () => {
    const enc = new KafkaRecordEncoder({ topic: "t" });
    assert.throws(() => enc.encode({ n: 1n }), { name: "KafkaSerializationError" });
    assert.throws(
      () => new KafkaRecordEncoder({ headers_field: "h", topic: "t" }).encode({ h: 3 }),
      {
        name: "KafkaSerializationError",
      },
    );
  });
});

Deno.test("kafkaClientConfig passes SASL, TLS, timeouts and retries to kafkajs", () => {
  const config = kafkaClientConfig({
    brokers: "a:1, b:2",
    client_id: "mine",
    ssl: { enabled: true, ca: "CA", key: "KEY", reject_unauthorized: false },
    sasl: { mechanism: "scram-sha-256", username: "u", password: "p" },
    connection_timeout: 2,
    request_timeout: 10,
    retries: 3,
    retry_initial_delay: 0.5,
    retry_max_delay: 4,
  }, { clientId: "default", log: createLogger({ level: "silent" }) });
  assert.deepEqual(config.brokers, ["a:1", "b:2"]);
  assert.equal(config.clientId, "mine");
  assert.deepEqual(config.ssl, { rejectUnauthorized: false, ca: ["CA"], key: "KEY" });
  assert.deepEqual(config.sasl, { mechanism: "scram-sha-256", username: "u", password: "p" });
  assert.equal(config.connectionTimeout, 2000);
  assert.equal(config.requestTimeout, 10000);
  assert.deepEqual(config.retry, { retries: 3, initialRetryTime: 500, maxRetryTime: 4000 });
  assert.equal(config.logLevel, logLevel.WARN);
});

Deno.test("examples/kafka_pipeline.yaml loads and validates", async () => {
  const file = new URL("../../examples/kafka_pipeline.yaml", import.meta.url).pathname;
  const text = await Deno.readTextFile(file);
  assert.match(text.split("\n")[0], /NEEDS KAFKA/);
  const parsed = parseWorkflowText(text, {
    file,
    env: (name) => name === "KAFKA_BROKERS" ? "127.0.0.1:9092" : undefined,
  });
  const wf = buildWorkflow(parsed, { registry });
  assert.deepEqual(wf.nodes.map((n) => n.type), [
    "EventStreamNode",
    "EventFilterNode",
    "EventTransformNode",
    "KafkaSinkNode",
  ]);
});

Deno.test({
  name: "Kafka nodes that reach no broker are restarted with backoff, then fail the workflow",
  // kafkajs leaves socket and retry timers behind for a moment after a failed connect.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    // Port 1 on loopback refuses connections at once.
    const unreachable = { brokers: "127.0.0.1:1", retries: 0, connection_timeout: 1 };
    const supervision = { max_attempts: 2, initial_delay: 0.01, max_delay: 0.01 };
    for (
      const [type, config] of [
        ["EventStreamNode", { ...unreachable, topic: "t", consumer_group: "g" }],
        ["KafkaSinkNode", { ...unreachable, topic: "t" }],
      ] as const
    ) {
      await t.step(type, async () => {
        const wf = new Workflow({
          registry,
          deadLetters: new MemoryDeadLetters(),
          logger: createLogger({ level: "silent" }),
        });
        if (type === "EventStreamNode") {
          wf.addNode(type, "kafka", config, { supervision })
            .addNode("FunctionNode", "collect", { fn: () => {} })
            .addConnection("kafka", "collect");
        } else {
          wf.addNode("GeneratorNode", "gen", { message_count: 3 })
            .addNode(type, "kafka", config, { supervision })
            .addConnection("gen", "kafka");
        }
        const report = await wf.run();
        assert.equal(report.status, "failed");
        const node = report.nodes.find((n) => n.id === "kafka")!;
        // max_attempts 2: the first try and two restarts fail, then the node gives up.
        assert.equal(node.restarts, 2);
        assert.match(report.error!.message, /failed 3 times in a row \(max_attempts 2\)/);
        assert.match(report.error!.message, /ECONNREFUSED/);
      });
    }
  },
});
