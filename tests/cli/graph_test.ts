import assert from "node:assert/strict";
import { graphCommand } from "../../cli/graph.ts";
import { Registry } from "../../runtime/registry.ts";
import { s } from "../../runtime/schema.ts";
import type { NodeSpec } from "../../runtime/registry.ts";
import { builtins } from "../../actors/mod.ts";

/** A processor whose ports and mailbox come from its config. */
const split: NodeSpec<{ extra: string[]; max_queue_size?: number }> = {
  type: "Split",
  kind: "processor",
  description: "Test processor.",
  config: s.object({
    extra: s.array(s.string(), { default: [] }),
    max_queue_size: s.integer({ optional: true }),
  }),
  outputs: (c) => ["out", "rejected", ...c.extra],
  mailbox: (c) => c.max_queue_size ? { capacity: c.max_queue_size, overflow: "drop_oldest" } : {},
  create: () => ({ handle() {} }),
};
const registry = new Registry(builtins).with(split);

const WORKFLOW = `name: shop "orders"
defaults:
  mailbox: {capacity: 500}
nodes:
  - id: orders
    type: GeneratorNode
    config: {message_count: 1}
  - id: split
    type: Split
    mailbox: {capacity: "\${CAP:-50}", overflow: sample, sample_rate: 0.5}
  - id: enrich
    type: Split
    config: {extra: ["\${PORT}"], max_queue_size: "\${QUEUE}"}
  - id: good
    type: FileSinkNode
    config: {path: good.ndjson}
  - id: bad
    type: FileSinkNode
    mailbox: {overflow: drop_newest}
    config: {path: bad.ndjson}
connections:
  - {from: orders, to: split}
  - {from: split, to: enrich}
  - {from: split, to: bad, from_port: rejected}
  - {from: enrich, to: good, from_port: "\${PORT}"}
`;

async function graph(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/shop.yaml`;
  await Deno.writeTextFile(file, WORKFLOW);
  let out = "";
  let err = "";
  const env: Record<string, string> = { PORT: "vip-lane", QUEUE: "777" };
  const code = await graphCommand([...args, file], { out: (t) => out += t, err: (t) => err += t }, {
    registry,
    env: (name) => env[name],
  });
  await Deno.remove(dir, { recursive: true });
  return { code, out, err };
}

Deno.test("graphCommand draws the raw workflow as Mermaid with ports and mailboxes", async () => {
  const { code, out, err } = await graph([]);
  assert.equal(err, "");
  assert.equal(code, 0);
  assert.equal(
    out,
    `---
title: "shop \\"orders\\""
---
flowchart LR
  n0(["orders<br/>GeneratorNode"])
  n1["split<br/>Split<br/>mailbox \${CAP:-50}, sample 0.5<br/>outputs: out, rejected"]
  n2["enrich<br/>Split<br/>mailbox ***, drop_oldest<br/>outputs: out, rejected, ***"]
  n3[("good<br/>FileSinkNode<br/>mailbox 500, block")]
  n4[("bad<br/>FileSinkNode<br/>mailbox 500, drop_newest")]
  n0 --> n1
  n1 --> n2
  n1 -->|"rejected"| n4
  n2 -->|"\${PORT}"| n3
`,
  );
  assert.ok(!out.includes("vip-lane") && !out.includes("777"));
});

Deno.test("graphCommand draws Graphviz DOT", async () => {
  const { code, out } = await graph(["--format", "dot"]);
  assert.equal(code, 0);
  assert.equal(
    out,
    `digraph "shop \\"orders\\"" {
  rankdir=LR;
  node [shape=box];
  "orders" [label="orders\\nGeneratorNode", shape=ellipse];
  "split" [label="split\\nSplit\\nmailbox \${CAP:-50}, sample 0.5\\noutputs: out, rejected"];
  "enrich" [label="enrich\\nSplit\\nmailbox ***, drop_oldest\\noutputs: out, rejected, ***"];
  "good" [label="good\\nFileSinkNode\\nmailbox 500, block", shape=cylinder];
  "bad" [label="bad\\nFileSinkNode\\nmailbox 500, drop_newest", shape=cylinder];
  "orders" -> "split";
  "split" -> "enrich";
  "split" -> "bad" [label="rejected"];
  "enrich" -> "good" [label="\${PORT}"];
}
`,
  );
});

Deno.test("graphCommand refuses bad usage and invalid workflows with exit code 2", async (t) => {
  await t.step("unknown format", async () => {
    const { code, err } = await graph(["--format", "svg"]);
    assert.equal(code, 2);
    assert.equal(err, '--format must be mermaid or dot, got "svg"\n'.replace(/^/, "error: "));
  });
  await t.step("invalid workflow", async () => {
    let err = "";
    const file = new URL("../fixtures/broken/cycle.yaml", import.meta.url).pathname;
    const code = await graphCommand([file], { out: () => {}, err: (t) => err += t });
    assert.equal(code, 2);
    assert.equal(
      err,
      `${file}:13:1: connections: the connections form a cycle: first -> second -> first\ninvalid: 1 error\n`,
    );
  });
  await t.step("no file", async () => {
    assert.equal(await graphCommand([], { out: () => {}, err: () => {} }), 2);
  });
});
