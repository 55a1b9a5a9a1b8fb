/**
 * A Kafka -> Kafka pipeline survives a broker outage mid-stream: the source
 * and the sink reconnect, and counted against what was produced, nothing is
 * lost (duplicates are allowed and reported).
 */
import assert from "node:assert/strict";
import { builtins } from "../../actors/mod.ts";
import type { KafkaEvent } from "../../actors/sources/kafka.ts";
import { MemoryDeadLetters } from "../../runtime/dead_letter.ts";
import { Registry } from "../../runtime/registry.ts";
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

const SCRIPT = new URL("../../scripts/kafka.sh", import.meta.url).pathname;

async function kafkaScript(...args: string[]): Promise<void> {
  const out = await new Deno.Command("bash", {
    args: [SCRIPT, ...args],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output();
  if (!out.success) {
    throw new Error(
      `kafka.sh ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
}

function sum(offsets: Map<number, number>): number {
  let total = 0;
  for (const v of offsets.values()) total += Math.max(0, v);
  return total;
}

kafkaTest(
  "a Kafka -> Kafka pipeline reconnects after a broker restart mid-stream and loses nothing",
  async (t, brokers) => {
    const input = uniqueTopic("restart-in");
    const output = uniqueTopic("restart-out");
    const group = `${input}-g`;
    await createTopic(brokers, input, 2);
    await createTopic(brokers, output, 2);
    const n = 3000;
    await kcatProduce(brokers, input, Array.from({ length: n }, (_, i) => JSON.stringify({ i })));
    const connection = {
      brokers,
      retries: 2,
      retry_initial_delay: 0.2,
      retry_max_delay: 1,
      connection_timeout: 1,
    };
    // Generous restart budget with a short backoff: the outage lasts seconds.
    const supervision = { max_restarts: 1000, initial_delay: 0.2, max_delay: 1 };
    let brokerStopped = false;
    let outage: Promise<void> | undefined;
    const { logger, lines } = captureLogger();
    const wf = new Workflow({
      registry: new Registry(builtins),
      deadLetters: new MemoryDeadLetters(),
      logger,
    })
      .addNode("EventStreamNode", "events", {
        ...connection,
        topic: input,
        consumer_group: group,
        from_beginning: true,
        batch_size: 100,
        max_wait: 0.2,
        session_timeout: 10,
        heartbeat_interval: 1,
      }, { supervision })
      .addNode("FunctionNode", "midway", {
        // Stops the broker when the stream is half way through, so the
        // outage hits both the consumer and the producer with work in flight.
        fn: async (e: KafkaEvent) => {
          if (e.i === n / 2 && !brokerStopped) {
            brokerStopped = true;
            outage = kafkaScript("stop", "--keep");
            await outage;
          }
          return e;
        },
      })
      .addNode("KafkaSinkNode", "out", { ...connection, topic: output }, { supervision })
      .addConnection("events", "midway")
      .addConnection("midway", "out");
    const running = wf.run();
    try {
      await waitFor("the broker to be stopped mid-stream", async () => {
        if (!outage) return false;
        await outage;
        return true;
      }, 90_000);
      await waitFor(
        "the sink to fail against the stopped broker",
        () => wf.snapshot().nodes.find((x) => x.id === "out")!.errors > 0,
        60_000,
      );
    } finally {
      // Whatever happened above, leave a running broker for the other tests.
      await kafkaScript("restart-broker");
    }
    try {
      await waitFor("every input offset committed", async () => {
        try {
          return sum(await committedOffsets(brokers, group, input)) === n;
        } catch {
          return false; // the coordinator may still be loading after the restart
        }
      }, 90_000);
    } catch (error) {
      // Show where the stream stopped.
      console.error(JSON.stringify(
        wf.snapshot().nodes.map((x) => ({
          id: x.id,
          state: x.state,
          in: x.messagesIn,
          out: x.messagesOut,
          depth: x.mailbox?.depth,
          errors: x.errors,
          restarts: x.restarts,
        })),
      ));
      console.error(JSON.stringify([...await committedOffsets(brokers, group, input)]));
      throw error;
    }
    wf.stop();
    const report = await running;
    const read = await kcatConsume(brokers, output);
    const values = read.map((m) => JSON.parse(m.value).i as number);
    const distinct = new Set(values);
    const duplicates = values.length - distinct.size;
    console.log(
      `broker restart: produced ${n}, written ${values.length}, distinct ${distinct.size}, duplicates ${duplicates}, ` +
        `sink restarts ${report.nodes.find((x) => x.id === "out")!.restarts}, ` +
        `source restarts ${report.nodes.find((x) => x.id === "events")!.restarts}`,
    );

    await t.step("nodes failed during the outage and were restarted", () => {
      const sink = report.nodes.find((x) => x.id === "out")!;
      assert.ok(sink.errors > 0);
      assert.ok(lines.some((l) => l.includes("kafkajs")));
    });
    await t.step("every produced message reached the output topic", () => {
      for (let i = 0; i < n; i++) assert.ok(distinct.has(i), `message ${i} is missing`);
      assert.equal(distinct.size, n);
      assert.equal(report.deadLetters, 0);
    });
  },
);
