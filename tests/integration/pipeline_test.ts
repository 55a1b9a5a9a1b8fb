import assert from "node:assert/strict";
import { FileDeadLetters } from "../../runtime/dead_letter.ts";
import { createLogger } from "../../runtime/log.ts";
import { Registry } from "../../runtime/registry.ts";
import { Workflow } from "../../runtime/workflow.ts";
import { builtins, type GeneratedEvent } from "../../actors/mod.ts";

const COUNT = 200_000;

Deno.test("generator -> three function actors -> file sink delivers 200,000 messages exactly", async () => {
  const dir = await Deno.makeTempDir();
  const out = `${dir}/out.ndjson`;
  const workflow = new Workflow({
    registry: new Registry(builtins),
    logger: createLogger({ level: "silent" }),
    deadLetters: new FileDeadLetters(`${dir}/dead.ndjson`),
  })
    .addNode("GeneratorNode", "gen", { message_count: COUNT, start_time: 1_700_000_000 })
    .addNode("FunctionNode", "project", {
      fn: (e: GeneratedEvent) => ({ seq: e.sequence, user: e.user_id, value: e.data.value }),
    })
    .addNode("FunctionNode", "enrich", {
      fn: (e: { seq: number; user: string; value: number }) => ({ ...e, bucket: e.seq % 7 }),
    })
    .addNode("FunctionNode", "score", {
      fn: (e: { seq: number; value: number; bucket: number }) => ({
        ...e,
        score: e.value * 3 + e.bucket,
      }),
    }, { mailbox: { capacity: 64 } })
    .addNode("FileSinkNode", "file", { path: out }, { mailbox: { capacity: 128 } })
    .addConnection("gen", "project")
    .addConnection("project", "enrich")
    .addConnection("enrich", "score")
    .addConnection("score", "file");
  const report = await workflow.run();
  assert.equal(report.status, "completed");
  assert.equal(report.deadLetters, 0);

  // Exact checksum of the file against the same computation done directly.
  let expected = 0;
  for (let i = 0; i < COUNT; i++) expected = (expected + (i * 10 * 3 + (i % 7)) * (i + 1)) % 1e9;
  const lines = (await Deno.readTextFile(out)).trimEnd().split("\n");
  assert.equal(lines.length, COUNT);
  let actual = 0;
  lines.forEach((line, i) => {
    const e = JSON.parse(line);
    assert.equal(e.seq, i, "order is kept");
    actual = (actual + e.score * (e.seq + 1)) % 1e9;
  });
  assert.equal(actual, expected);
  const file = report.nodes.find((n) => n.id === "file")!;
  assert.equal(file.messagesIn, COUNT);
  assert.ok(file.mailbox!.highWater <= 128, "the bounded mailbox never exceeded its capacity");
  await Deno.remove(dir, { recursive: true });
});
