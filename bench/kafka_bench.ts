/**
 * Kafka benchmark: topic -> filter -> topic through sluice (EventStreamNode ->
 * EventFilterNode -> KafkaSinkNode) against a bare kafkajs consumer-plus-
 * producer loop doing the same filter, on the same broker in the same run.
 *
 * Both read the same input topic (their own consumer groups), keep the
 * click and purchase events, write them as JSON to their own output topic
 * with acks -1, and are timed from start until the output topic holds every
 * expected message. Uses `KAFKA_BROKERS`, or starts a throwaway broker with
 * scripts/kafka.sh when it is not set.
 *
 * @module
 */
import {
  CompressionTypes,
  Kafka,
  type KafkaMessage,
  logLevel,
  type Message,
  Partitioners,
} from "kafkajs";
import { builtins } from "../actors/mod.ts";
import { RealClock } from "../runtime/clock.ts";
import { MemoryDeadLetters } from "../runtime/dead_letter.ts";
import { createLogger } from "../runtime/log.ts";
import { Registry } from "../runtime/registry.ts";
import { Workflow } from "../runtime/workflow.ts";
import type { BenchResult } from "./result.ts";

const MESSAGES = Number(Deno.env.get("SLUICE_KAFKA_BENCH_MESSAGES") ?? 200_000);
const PARTITIONS = 3;
const ROUNDS = Number(Deno.env.get("SLUICE_KAFKA_BENCH_ROUNDS") ?? 3);
const TYPES = ["click", "view", "purchase", "scroll"];
const KEEP = new Set(["click", "purchase"]);
const clock = new RealClock();

async function startBroker(): Promise<{ brokers: string; stop: () => Promise<void> }> {
  const script = new URL("../scripts/kafka.sh", import.meta.url).pathname;
  const data = await Deno.makeTempDir({ prefix: "sluice-kafka-bench-" });
  await Deno.remove(data);
  const env = { SLUICE_KAFKA_DATA: data };
  const out = await new Deno.Command("bash", { args: [script, "start"], env, stderr: "inherit" })
    .output();
  const line = new TextDecoder().decode(out.stdout).split("\n").find((l) =>
    l.startsWith("KAFKA_BROKERS=")
  );
  if (!out.success || !line) throw new Error("could not start a Kafka broker (scripts/kafka.sh)");
  return {
    brokers: line.slice("KAFKA_BROKERS=".length),
    stop: async () => {
      await new Deno.Command("bash", { args: [script, "stop"], env, stdout: "null" }).output();
    },
  };
}

function client(brokers: string, id: string): Kafka {
  return new Kafka({ brokers: brokers.split(","), clientId: id, logLevel: logLevel.ERROR });
}

/** Polls the output topic's end offsets until they hold `expected` messages. */
async function waitForOutput(kafka: Kafka, topic: string, expected: number): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const start = clock.monotonic();
    while (true) {
      try {
        const offsets = await admin.fetchTopicOffsets(topic);
        if (offsets.reduce((n, p) => n + Number(p.high), 0) >= expected) return;
      } catch {
        // A leader or metadata hiccup of a busy broker: ask again.
      }
      if (clock.monotonic() - start > 300_000) throw new Error(`${topic}: timed out`);
      await clock.sleep(25);
    }
  } finally {
    await admin.disconnect();
  }
}

/** The bare loop: kafkajs eachBatch, JSON.parse, filter, one send per fetched batch. */
async function runBare(
  kafka: Kafka,
  input: string,
  output: string,
  expected: number,
): Promise<number> {
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const consumer = kafka.consumer({ groupId: `${output}-bare`, maxWaitTimeInMs: 200 });
  await consumer.connect();
  await consumer.subscribe({ topics: [input], fromBeginning: true });
  const started = clock.monotonic();
  await consumer.run({
    eachBatch: async ({ batch }) => {
      const out: Message[] = [];
      for (const m of batch.messages as KafkaMessage[]) {
        const event = JSON.parse(m.value!.toString());
        if (KEEP.has(event.event_type) && event.user_id !== undefined) {
          out.push({ value: JSON.stringify(event) });
        }
      }
      if (out.length > 0) {
        await producer.sendBatch({
          topicMessages: [{ topic: output, messages: out }],
          acks: -1,
          compression: CompressionTypes.None,
        });
      }
    },
  });
  await waitForOutput(kafka, output, expected);
  const seconds = (clock.monotonic() - started) / 1000;
  await consumer.disconnect();
  await producer.disconnect();
  return seconds;
}

/** sluice: EventStreamNode -> EventFilterNode -> KafkaSinkNode. */
async function runSluice(
  kafka: Kafka,
  brokers: string,
  input: string,
  output: string,
  expected: number,
): Promise<number> {
  const wf = new Workflow({
    registry: new Registry(builtins),
    deadLetters: new MemoryDeadLetters(),
    logger: createLogger({ level: "error" }),
  })
    .addNode("EventStreamNode", "events", {
      source_type: "kafka",
      brokers,
      topic: input,
      consumer_group: `${output}-sluice`,
      from_beginning: true,
      max_wait: 0.2,
    })
    .addNode("EventFilterNode", "filter", {
      filter_conditions: [
        { field: "event_type", operator: "in", values: [...KEEP] },
        { field: "user_id", operator: "exists" },
      ],
      filter_logic: "and",
    })
    .addNode("KafkaSinkNode", "out", { brokers, topic: output, acks: -1 })
    .addConnection("events", "filter")
    .addConnection("filter", "out");
  const started = clock.monotonic();
  const running = wf.run();
  await waitForOutput(kafka, output, expected);
  const seconds = (clock.monotonic() - started) / 1000;
  wf.stop();
  const report = await running;
  if (report.status === "failed") throw report.error;
  return seconds;
}

/**
 * Runs the Kafka benchmark.
 *
 * @returns sluice's throughput as a fraction of the bare kafkajs loop's (target >= 0.85).
 */
export async function benchKafka(): Promise<BenchResult> {
  let brokers = Deno.env.get("KAFKA_BROKERS");
  let stop: (() => Promise<void>) | undefined;
  if (!brokers) {
    const started = await startBroker();
    brokers = started.brokers;
    stop = started.stop;
  }
  try {
    const kafka = client(brokers, "sluice-bench");
    const run = crypto.randomUUID().slice(0, 8);
    const input = `bench-in-${run}`;
    const outputs = Array.from({ length: ROUNDS }, (_, r) => ({
      bare: `bench-bare-${r}-${run}`,
      sluice: `bench-sluice-${r}-${run}`,
    }));
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({
      topics: [input, ...outputs.flatMap((o) => [o.bare, o.sluice])].map((topic) => ({
        topic,
        numPartitions: PARTITIONS,
      })),
      waitForLeaders: true,
    });
    await admin.disconnect();

    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    let expected = 0;
    for (let i = 0; i < MESSAGES;) {
      const messages: Message[] = [];
      // kafkajs groups a send's messages per partition in quadratic time: keep sends small.
      for (const end = Math.min(MESSAGES, i + 1_000); i < end; i++) {
        const type = TYPES[i % 4];
        if (KEEP.has(type)) expected++;
        messages.push({
          key: `u${i % 1000}`,
          value: JSON.stringify({
            id: i,
            event_type: type,
            user_id: `u${i % 1000}`,
            value: i % 97,
          }),
        });
      }
      await producer.send({ topic: input, messages, acks: 1 });
    }
    await producer.disconnect();

    // Rounds alternate which side goes first; each side's best round counts
    // (the broker shares the machine, so single runs vary a lot).
    const bareTimes: number[] = [];
    const sluiceTimes: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const { bare, sluice } = outputs[r];
      if (r % 2 === 0) {
        bareTimes.push(await runBare(kafka, input, bare, expected));
        sluiceTimes.push(await runSluice(kafka, brokers, input, sluice, expected));
      } else {
        sluiceTimes.push(await runSluice(kafka, brokers, input, sluice, expected));
        bareTimes.push(await runBare(kafka, input, bare, expected));
      }
    }
    const bareBest = Math.min(...bareTimes);
    const sluiceBest = Math.min(...sluiceTimes);
    const ratio = bareBest / sluiceBest;
    const details: Record<string, number> = {
      messages: MESSAGES,
      kept: expected,
      bare_msgs_per_s: Math.round(MESSAGES / bareBest),
      sluice_msgs_per_s: Math.round(MESSAGES / sluiceBest),
    };
    for (let r = 0; r < ROUNDS; r++) details[`round${r + 1}_ratio`] = bareTimes[r] / sluiceTimes[r];
    const result: BenchResult = {
      name: "kafka",
      ratio,
      target: "sluice >= 0.85 x bare kafkajs loop (topic -> filter -> topic)",
      pass: ratio >= 0.85,
      details,
    };
    console.log(
      `kafka: bare ${result.details.bare_msgs_per_s} msg/s, sluice ${result.details.sluice_msgs_per_s} msg/s, ratio ${
        ratio.toFixed(2)
      }`,
    );
    return result;
  } finally {
    await stop?.();
  }
}

if (import.meta.main) await benchKafka();
