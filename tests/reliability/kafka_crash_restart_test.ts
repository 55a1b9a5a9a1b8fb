/**
 * A sluice process SIGKILLed mid-stream and started again.
 *
 * kcat produces N numbered messages; `sluice run` consumes them in consumer
 * group G (Kafka -> a throttle -> FileSinkNode) and is SIGKILLed once its
 * output has some lines. The same workflow, same group, is started again,
 * writing another file. Counted against what was produced, the union of the
 * two outputs holds every message: what the first process had not committed
 * is delivered again (duplicates are allowed and reported), nothing is lost.
 */
import assert from "node:assert/strict";
import {
  committedOffsets,
  createTopic,
  kafkaTest,
  kcatProduce,
  uniqueTopic,
  waitFor,
} from "../kafka_env.ts";

const N = 5000;
const PARTITIONS = 3;
const CLI = new URL("../../cli/main.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

function workflowYaml(brokers: string, topic: string, group: string, out: string): string {
  return `name: crash-restart
nodes:
  - id: events
    type: EventStreamNode
    config:
      source_type: kafka
      brokers: "${brokers}"
      topic: ${topic}
      consumer_group: ${group}
      from_beginning: true
      batch_size: 50
      session_timeout: 6
      heartbeat_interval: 1
      rebalance_timeout: 10
      max_wait: 0.2
  - id: throttle
    type: CodeNode
    config: {module: ./throttle.ts, mode: batch}
    mailbox: {batch_size: 50}
  - id: out
    type: FileSinkNode
    config: {path: ${out}}
connections:
  - {from: events, to: throttle}
  - {from: throttle, to: out}
`;
}

// About 1 ms per message: the stream takes seconds, so the kill lands mid-stream.
const THROTTLE = `export default async function throttle(batch) {
  await new Promise((resolve) => setTimeout(resolve, batch.length));
  return batch;
}
`;

interface Lines {
  ids: number[];
  /** `partition:offset` of every line. */
  positions: Set<string>;
  torn: number;
}

/** The events of every complete line; a line cut short by SIGKILL is counted as torn. */
async function readLines(path: string): Promise<Lines> {
  const lines: Lines = { ids: [], positions: new Set(), torn: 0 };
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return lines;
  }
  for (const line of text.split("\n")) {
    if (!line) continue;
    let event: { i: number; _kafka: { partition: number; offset: number } };
    try {
      event = JSON.parse(line);
    } catch {
      lines.torn++;
      continue;
    }
    lines.ids.push(event.i);
    lines.positions.add(`${event._kafka.partition}:${event._kafka.offset}`);
  }
  return lines;
}

/** The per-node lines of the report `sluice run` prints when it stops. */
function nodeReport(
  stderr: string,
): Map<string, { in: number; dropped: number; restarts: number }> {
  const out = new Map<string, { in: number; dropped: number; restarts: number }>();
  const line = /^\s+(\S+)\s+in\s+(\d+)\s+out\s+\d+\s+dropped (\d+)\s+errors \d+\s+restarts (\d+)/gm;
  for (const m of stderr.matchAll(line)) {
    out.set(m[1], { in: Number(m[2]), dropped: Number(m[3]), restarts: Number(m[4]) });
  }
  return out;
}

function spawnSluice(workflow: string): { process: Deno.ChildProcess; stderr: Promise<string> } {
  const process = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", CONFIG, CLI, "run", workflow, "--status-interval", "0"],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  return { process, stderr: new Response(process.stderr).text() };
}

kafkaTest(
  "sluice run SIGKILLed mid-stream and restarted in the same group loses no message",
  async (t, brokers) => {
    const topic = uniqueTopic("crash");
    const group = `${topic}-g`;
    await createTopic(brokers, topic, PARTITIONS);
    await kcatProduce(
      brokers,
      topic,
      Array.from({ length: N }, (_, i) => `k${i}\t${JSON.stringify({ i })}`),
      { keyed: true },
    );
    const dir = await Deno.makeTempDir({ prefix: "sluice-crash-" });
    await Deno.writeTextFile(`${dir}/throttle.ts`, THROTTLE);
    await Deno.writeTextFile(
      `${dir}/first.yaml`,
      workflowYaml(brokers, topic, group, "out-1.ndjson"),
    );
    await Deno.writeTextFile(
      `${dir}/second.yaml`,
      workflowYaml(brokers, topic, group, "out-2.ndjson"),
    );
    const out1 = `${dir}/out-1.ndjson`;
    const out2 = `${dir}/out-2.ndjson`;
    const runs: { process: Deno.ChildProcess; stderr: Promise<string> }[] = [];
    let failed = false;
    try {
      runs.push(spawnSluice(`${dir}/first.yaml`));
      await waitFor(
        "the first run to write 500 lines",
        async () => (await readLines(out1)).ids.length >= 500,
        60_000,
      );
      runs[0].process.kill("SIGKILL");
      const killed = await runs[0].process.status;
      const first = await readLines(out1);
      const committedAtKill = await committedOffsets(brokers, group, topic);
      let committed = 0;
      const committedButMissing: string[] = [];
      for (const [partition, next] of committedAtKill) {
        for (let offset = 0; offset < next; offset++) {
          committed++;
          if (!first.positions.has(`${partition}:${offset}`)) {
            committedButMissing.push(`${partition}:${offset}`);
          }
        }
      }

      runs.push(spawnSluice(`${dir}/second.yaml`));
      const union = async () => {
        const seen = new Set<number>();
        for (const path of [out1, out2]) for (const i of (await readLines(path)).ids) seen.add(i);
        return seen;
      };
      await waitFor(
        `all ${N} messages across both outputs`,
        async () => (await union()).size >= N,
        60_000,
      );
      runs[1].process.kill("SIGTERM");
      const second = await runs[1].process.status;
      const secondReport = nodeReport(await runs[1].stderr);
      const dropped = [...secondReport.values()].reduce((n, r) => n + r.dropped, 0);
      const nodeRestarts = [...secondReport.values()].reduce((n, r) => n + r.restarts, 0);
      const secondLines = await readLines(out2);
      const distinct = await union();
      const delivered = first.ids.length + secondLines.ids.length;
      let lost = 0;
      for (let i = 0; i < N; i++) if (!distinct.has(i)) lost++;
      const deadLetters = await Deno.readTextFile(`${dir}/sluice-dead-letters.ndjson`)
        .then((text) => text.split("\n").filter(Boolean).length, () => 0);
      console.log(
        `  figures: in ${N}, out ${delivered} (first run ${first.ids.length} before SIGKILL, ` +
          `second run ${secondLines.ids.length}), dropped ${dropped}, dead-lettered ${deadLetters}, ` +
          `duplicated ${delivered - distinct.size}, lost ${lost}, committed before the kill ` +
          `${committed}, torn lines ${first.torn}; ` +
          `restarts: process 1, nodes in the second run ${nodeRestarts}`,
      );

      await t.step("the first run died by SIGKILL mid-stream", () => {
        assert.equal(killed.signal, "SIGKILL");
        assert.ok(first.ids.length >= 500 && first.ids.length < N, `${first.ids.length} lines`);
      });
      await t.step("the second run took over in the same group and stopped cleanly", () => {
        assert.equal(second.code, 0);
        assert.ok(secondLines.ids.length > 0);
        assert.ok(secondLines.torn === 0, "a clean stop leaves no torn line");
        assert.deepEqual([...secondReport.keys()], ["events", "throttle", "out"], "its report");
        assert.equal(dropped, 0);
        assert.equal(secondReport.get("out")!.in, secondLines.ids.length);
      });
      await t.step("no produced message is lost; only ids that were produced appear", () => {
        assert.equal(lost, 0);
        assert.equal(distinct.size, N);
        for (const i of distinct) assert.ok(Number.isInteger(i) && i >= 0 && i < N, `id ${i}`);
      });
      await t.step("nothing was dead-lettered", () => assert.equal(deadLetters, 0));
      await t.step(
        "what the first run committed, it had written (never committed but lost)",
        () => {
          assert.deepEqual(committedButMissing, []);
        },
      );
      await t.step(
        "the duplicates are exactly what the first run wrote but had not committed",
        () => {
          assert.equal(delivered - distinct.size, first.ids.length - committed);
        },
      );
    } catch (error) {
      failed = true;
      throw error;
    } finally {
      for (const [n, run] of runs.entries()) {
        try {
          run.process.kill("SIGKILL");
        } catch {
          // already exited
        }
        await run.process.status;
        const stderr = await run.stderr;
        if (failed) console.error(`--- run ${n + 1} stderr ---\n${stderr.slice(-4000)}`);
      }
      await Deno.remove(dir, { recursive: true });
    }
  },
);
