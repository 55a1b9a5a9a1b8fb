import assert from "node:assert/strict";
import { nodesCommand } from "../../cli/nodes.ts";
import { Registry } from "../../runtime/registry.ts";
import { s } from "../../runtime/schema.ts";
import type { NodeSpec } from "../../runtime/registry.ts";
import { builtins } from "../../actors/mod.ts";

const thing: NodeSpec = {
  type: "ThingNode",
  kind: "processor",
  description: "Does things to events. Second sentence is left out of the list.",
  config: s.object({
    mode: s.enum(["fast", "slow"] as const, { default: "fast", doc: "How fast." }),
    limit: s.integer({ min: 1, optional: true, doc: "Most things." }),
    rules: s.array(
      s.object({
        field: s.string({ doc: "Field to look at." }),
        tags: s.object({ name: s.string() }, { optional: true }),
      }),
      { default: [], doc: "Rules, in order." },
    ),
  }),
  outputs: ["out", "rejected"],
  permissions: ["--allow-net"],
  create: () => ({}),
};
const sink: NodeSpec = {
  type: "DropSink",
  kind: "sink",
  description: "Drops everything",
  config: s.object({}),
  create: () => ({}),
};
const registry = new Registry([thing, sink]);

function run(args: string[], reg: Registry = registry): { code: number; out: string; err: string } {
  let out = "";
  let err = "";
  const code = nodesCommand(args, { out: (t) => out += t, err: (t) => err += t }, {
    registry: reg,
  });
  return { code, out, err };
}

Deno.test("nodesCommand lists the node types", () => {
  assert.deepEqual(run([]), {
    code: 0,
    out: `TYPE       KIND       DESCRIPTION
DropSink   sink       Drops everything
ThingNode  processor  Does things to events.

Run \`sluice nodes <TYPE>\` for a type's config.
`,
    err: "",
  });
});

Deno.test("nodesCommand shows a type's config keys, ports and permissions", () => {
  assert.deepEqual(run(["ThingNode"]), {
    code: 0,
    out: `ThingNode (processor)

  Does things to events. Second sentence is left out of the list.

inputs:      in
outputs:     out, rejected
permissions: --allow-net

config:
  mode   "fast" | "slow", default "fast"
      How fast.
  limit  integer >= 1, optional
      Most things.
  rules  array of object, default []
      Rules, in order.
      field  string, required
          Field to look at.
      tags   object, optional
          name  string, required
`,
    err: "",
  });
  assert.equal(
    run(["DropSink"]).out,
    "DropSink (sink)\n\n  Drops everything\n\ninputs:      in\noutputs:     none\npermissions: none\n\nconfig: none\n",
  );
});

Deno.test("nodesCommand --json prints the config's JSON Schema", () => {
  const one = run(["DropSink", "--json"]);
  assert.equal(one.code, 0);
  assert.deepEqual(JSON.parse(one.out), {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    title: "DropSink",
    description: "Drops everything",
    type: "object",
    properties: {},
    required: [],
    additionalProperties: false,
  });
  const all = JSON.parse(run(["--json"]).out);
  assert.deepEqual(Object.keys(all), ["DropSink", "ThingNode"]);
  assert.deepEqual(all.ThingNode.properties.mode, {
    enum: ["fast", "slow"],
    description: "How fast.",
    default: "fast",
  });
  assert.deepEqual(all.ThingNode.required, []);
});

Deno.test("nodesCommand refuses an unknown type with a suggestion", () => {
  assert.deepEqual(run(["ThingNod"]), {
    code: 2,
    out: "",
    err:
      'error: unknown node type "ThingNod"; did you mean "ThingNode"? (known: DropSink, ThingNode)\n',
  });
  assert.equal(run(["a", "b"]).code, 2);
  assert.equal(run(["--what"]).code, 2);
});

Deno.test("nodesCommand documents every built-in type", () => {
  const reg = new Registry(builtins);
  for (const type of reg.types()) {
    const { code, out } = run([type], reg);
    assert.equal(code, 0, type);
    assert.ok(out.startsWith(`${type} (${reg.info(type)!.kind})\n`), type);
    assert.equal(JSON.parse(run([type, "--json"], reg).out).title, type);
  }
});
