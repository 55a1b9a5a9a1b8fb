/**
 * Scale-out: three sluice processes run the same workflow in one consumer
 * group and split a six-partition topic. One is SIGKILLed mid-stream; its
 * partitions move to the others and, counted against what was produced, no
 * message is lost (duplicates are allowed and reported).
 *
 * This file is also the child process: with `SLUICE_SCALEOUT_CHILD=1` it runs
 * the workflow (Kafka -> a throttle -> FileSinkNode) until SIGTERM.
 */
import assert from "node:assert/strict";
import { Kafka, logLevel } from "kafkajs";
import { builtins } from "../../actors/mod.ts";
import { RealClock } from "../../runtime/clock.ts";
import { MemoryDeadLetters } from "../../runtime/dead_letter.ts";
import { createLogger } from "../../runtime/log.ts";
import { Registry } from "../../runtime/registry.ts";
import { Workflow } from "../../runtime/workflow.ts";
import { createTopic, kafkaTest, kcatProduce, uniqueTopic, waitFor } from "../kafka_env.ts";

const PROCESSES = 3;
const PARTITIONS = 6;
const N = 12_000;

/** The child: consume in the group, about 1000 events/s per process, into its own file. */
async function child(): Promise<void> {
  const env = (name: string) => {
    const v = Deno.env.get(name);
    if (!v) throw new Error(`${name} is not set`);
    return v;
  };
  const realClock = new RealClock();
  const wf = new Workflow({
    registry: new Registry(builtins),
    deadLetters: new MemoryDeadLetters(),
    logger: createLogger({ level: "warn", fields: { process: env("CHILD_ID") } }),
  })
    .addNode("EventStreamNode", "events", {
      brokers: env("KAFKA_BROKERS"),
      topic: env("TOPIC"),
      consumer_group: env("GROUP"),
      from_beginning: true,
      batch_size: 50,
      session_timeout: 6,
      heartbeat_interval: 1,
      max_wait: 0.2,
    })
    .addNode("FunctionNode", "throttle", {
      // Slow enough that the stream is still running when a process is killed.
      batch: async (events: unknown[]) => {
        await realClock.sleep(events.length);
        return events;
      },
    })
    .addNode("FileSinkNode", "out", { path: env("OUT") })
    .addConnection("events", "throttle")
    .addConnection("throttle", "out");
  const report = await wf.run({ handleSignals: true });
  Deno.exit(report.status === "failed" ? 1 : 0);
}

if (Deno.env.get("SLUICE_SCALEOUT_CHILD") === "1") await child();

interface Child {
  id: number;
  out: string;
  process: Deno.ChildProcess;
  stderr: Promise<string>;
}

async function readLines(path: string): Promise<{ i: number; partition: number }[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return [];
  }
  const out: { i: number; partition: number }[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    try {
      const e = JSON.parse(line);
      out.push({ i: e.i, partition: e._kafka.partition });
    } catch {
      // A line cut short by SIGKILL: its event was not acknowledged, so it is redelivered.
    }
  }
  return out;
}

async function groupMembers(brokers: string, group: string): Promise<number> {
  const kafka = new Kafka({
    brokers: brokers.split(","),
    clientId: "sluice-test-admin",
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const { groups } = await admin.describeGroups([group]);
    return groups[0]?.state === "Stable" ? groups[0].members.length : 0;
  } finally {
    await admin.disconnect();
  }
}

kafkaTest(
  "three processes in one group split a topic; SIGKILL of one loses nothing",
  async (t, brokers) => {
    const topic = uniqueTopic("scale");
    const group = `${topic}-g`;
    await createTopic(brokers, topic, PARTITIONS);
    const dir = await Deno.makeTempDir({ prefix: "sluice-scaleout-" });
    const self = new URL(import.meta.url).pathname;
    const config = new URL("../../deno.json", import.meta.url).pathname;
    const children: Child[] = [];
    let failed = false;
    try {
      for (let id = 0; id < PROCESSES; id++) {
        const out = `${dir}/out-${id}.ndjson`;
        const process = new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", "--config", config, self],
          env: {
            SLUICE_SCALEOUT_CHILD: "1",
            CHILD_ID: String(id),
            KAFKA_BROKERS: brokers,
            TOPIC: topic,
            GROUP: group,
            OUT: out,
          },
          stdout: "null",
          stderr: "piped",
        }).spawn();
        const stderr = new Response(process.stderr).text();
        children.push({ id, out, process, stderr });
      }
      await waitFor(
        `a stable group of ${PROCESSES}`,
        async () => (await groupMembers(brokers, group)) === PROCESSES,
        60_000,
      );

      // Keyed, so the events spread over every partition (kcat sticks unkeyed batches to one).
      await kcatProduce(
        brokers,
        topic,
        Array.from({ length: N }, (_, i) => `k${i}\t${JSON.stringify({ i })}`),
        { keyed: true },
      );
      const victim = children[0];
      // Mid-stream: every process has written some, far from all is done.
      await waitFor("each process to have written events", async () => {
        for (const c of children) if ((await readLines(c.out)).length < 200) return false;
        return true;
      }, 60_000);
      victim.process.kill("SIGKILL");
      const victimStatus = await victim.process.status;
      const victimLines = await readLines(victim.out);

      const union = async () => {
        const seen = new Set<number>();
        for (const c of children) for (const e of await readLines(c.out)) seen.add(e.i);
        return seen;
      };
      await waitFor(
        `all ${N} events across the outputs`,
        async () => (await union()).size >= N,
        90_000,
      );

      for (const c of children.slice(1)) c.process.kill("SIGTERM");
      const survivors = await Promise.all(children.slice(1).map((c) => c.process.status));
      const all = await Promise.all(children.map((c) => readLines(c.out)));
      const total = all.reduce((n, lines) => n + lines.length, 0);
      const distinct = await union();
      const perProcess = all.map((lines) => lines.length);
      console.log(
        `scale-out: produced ${N}, consumed ${total} (per process ${perProcess.join("/")}), ` +
          `distinct ${distinct.size}, duplicates ${total - distinct.size}; ` +
          `killed process had written ${victimLines.length}`,
      );

      await t.step("the killed process really died by SIGKILL mid-stream", () => {
        assert.equal(victimStatus.signal, "SIGKILL");
        assert.ok(victimLines.length > 0 && victimLines.length < N);
      });
      await t.step("the partitions were split across all processes", () => {
        for (const lines of all) assert.ok(lines.length > 0);
      });
      await t.step("the victim's partitions moved to the survivors", () => {
        const survivorPartitions = new Set(all.slice(1).flat().map((e) => e.partition));
        for (const e of victimLines) assert.ok(survivorPartitions.has(e.partition));
      });
      await t.step("no produced message is lost", () => {
        for (let i = 0; i < N; i++) assert.ok(distinct.has(i), `event ${i} is missing`);
      });
      await t.step("the survivors stopped cleanly on SIGTERM", () => {
        for (const s of survivors) assert.equal(s.code, 0);
      });
    } catch (error) {
      failed = true;
      throw error;
    } finally {
      for (const c of children) {
        try {
          c.process.kill("SIGKILL");
        } catch {
          // already exited
        }
        await c.process.status;
        const stderr = await c.stderr;
        if (failed) console.error(`--- process ${c.id} stderr ---\n${stderr.slice(-4000)}`);
      }
      await Deno.remove(dir, { recursive: true });
    }
  },
);
