import assert from "node:assert/strict";
import { TestDriver } from "../../testing/mod.ts";
import { ConfigError } from "../../runtime/errors.ts";
import { Registry } from "../../runtime/registry.ts";
import type { NodeSpec } from "../../runtime/registry.ts";
import { s } from "../../runtime/schema.ts";
import { Workflow } from "../../runtime/workflow.ts";
import { builtins } from "../../actors/mod.ts";

/**
 * Emits each message `seconds` (of the workflow clock) after it arrives,
 * stamped with the time; what is still pending when the input ends is
 * emitted on drain.
 */
const delay: NodeSpec<{ seconds: number }> = {
  type: "Delay",
  kind: "processor",
  description: "Test processor.",
  config: s.object({ seconds: s.number({ default: 1 }) }),
  create: (config) => {
    const pending = new Set<object>();
    return {
      handleMessage(message, ctx) {
        const m = message as object;
        pending.add(m);
        ctx.schedule(config.seconds * 1000, () => {
          if (pending.delete(m)) ctx.emit({ ...m, emitted: ctx.clock.now() });
        });
      },
      drain(ctx) {
        for (const m of pending) ctx.emit({ ...m, emitted: ctx.clock.now(), drained: true });
        pending.clear();
      },
    };
  },
};

/** A source with two ports, to check that replacements keep ports. */
const twoPorts: NodeSpec<Record<string, never>> = {
  type: "TwoPorts",
  kind: "source",
  description: "Test source.",
  config: s.object({}),
  outputs: ["out", "errors"],
  create: () => ({ run: () => Promise.resolve("end" as const) }),
};

const registry = new Registry(builtins).with(delay, twoPorts);

const PIPELINE = `name: pipeline
nodes:
  - {id: events, type: GeneratorNode, config: {message_count: 3, start_time: 0}}
  - {id: later, type: Delay, config: {seconds: 2}}
  - {id: out, type: FileSinkNode, config: {path: out.ndjson}}
  - {id: raw, type: ConsoleSinkNode}
connections:
  - {from: events, to: later}
  - {from: later, to: out}
  - {from: events, to: raw}
`;

Deno.test("TestDriver emits sent events at their virtual times and collects sink outputs", async () => {
  const driver = TestDriver.fromWorkflowText(PIPELINE, { registry, startTime: 1_000_000 });
  assert.deepEqual(driver.sources, ["events"]);
  assert.deepEqual(driver.sinks, ["out", "raw"]);
  driver.send("events", [{ n: 1 }, { n: 2 }]);
  driver.send("events", [{ n: 3 }], { at: 5000 });
  await driver.advance(1000);
  assert.deepEqual(driver.output("raw"), [{ n: 1 }, { n: 2 }]);
  assert.deepEqual(driver.output("out"), []);
  await driver.advance(1000);
  // The processor's own timers run on the same virtual clock.
  assert.deepEqual(driver.output("out"), [
    { n: 1, emitted: 1_002_000 },
    { n: 2, emitted: 1_002_000 },
  ]);
  driver.send("events", [{ n: 4 }], { at: 3000 });
  const result = await driver.finish();
  assert.deepEqual(result.outputs, {
    out: [
      { n: 1, emitted: 1_002_000 },
      { n: 2, emitted: 1_002_000 },
      { n: 4, emitted: 1_005_000 },
      { n: 3, emitted: 1_005_000, drained: true },
    ],
    raw: [{ n: 1 }, { n: 2 }, { n: 4 }, { n: 3 }],
  });
  assert.deepEqual(result.deadLetters, []);
  assert.equal(result.report.status, "completed");
  assert.equal(result.report.name, "pipeline");
  assert.deepEqual(result.report.nodes.map((n) => [n.id, n.type, n.messagesIn]), [
    ["events", "TestDriverSource", 0],
    ["later", "Delay", 4],
    ["out", "TestDriverSink", 4],
    ["raw", "TestDriverSink", 4],
  ]);
  assert.equal(driver.clock.now(), 1_005_000);
});

Deno.test("TestDriver runs are deterministic", async () => {
  const once = async () => {
    const driver = TestDriver.fromWorkflowText(PIPELINE, { registry });
    for (let i = 0; i < 20; i++) driver.send("events", [{ i }], { at: (i % 7) * 300 });
    return (await driver.finish()).outputs;
  };
  assert.deepEqual(await once(), await once());
});

Deno.test("TestDriver drives TypeScript workflows and records dead letters", async () => {
  const workflow = new Workflow({ registry: new Registry(builtins) })
    .addNode("GeneratorNode", "numbers")
    .addNode("FunctionNode", "invert", {
      fn: (n: number) => {
        if (n === 0) throw new RangeError("cannot invert 0");
        return 1 / n;
      },
    })
    .addNode("ConsoleSinkNode", "out")
    .addConnection("numbers", "invert")
    .addConnection("invert", "out");
  const driver = new TestDriver(workflow);
  driver.send("numbers", [1, 0, 4]);
  const { outputs, deadLetters, report } = await driver.finish();
  assert.deepEqual(outputs, { out: [1, 0.25] });
  assert.equal(deadLetters.length, 1);
  assert.deepEqual(
    { node: deadLetters[0].node, error: deadLetters[0].error, message: deadLetters[0].message },
    { node: "invert", error: "cannot invert 0", message: 0 },
  );
  assert.equal(deadLetters[0].errorName, "RangeError");
  assert.equal(report.deadLetters, 1);
});

Deno.test("TestDriver keeps the nodes named in keep", async (t) => {
  await t.step("a real generator", async () => {
    const driver = TestDriver.fromWorkflowText(PIPELINE, { registry, keep: ["events"] });
    assert.deepEqual(driver.sources, []);
    const { outputs } = await driver.finish();
    assert.deepEqual(
      (outputs.raw as { sequence: number }[]).map((e) => e.sequence),
      [0, 1, 2],
    );
  });
  await t.step("a source that never ends is stopped after finishTimeoutMs", async () => {
    const driver = TestDriver.fromWorkflowText(
      `nodes:
  - {id: ticks, type: GeneratorNode, config: {rate_per_second: 2, realtime: true, start_time: 0}}
  - {id: out, type: ConsoleSinkNode}
connections:
  - {from: ticks, to: out}
`,
      { keep: ["ticks"], finishTimeoutMs: 10_000 },
    );
    const { outputs, report } = await driver.finish();
    assert.equal(report.status, "stopped");
    assert.equal(outputs.out.length, 21);
  });
});

Deno.test("TestDriver keeps the ports of replaced sources", async () => {
  const driver = TestDriver.fromWorkflowText(
    `nodes:
  - {id: src, type: TwoPorts}
  - {id: good, type: ConsoleSinkNode}
  - {id: bad, type: ConsoleSinkNode}
connections:
  - {from: src, to: good}
  - {from: src, to: bad, from_port: errors}
`,
    { registry },
  );
  driver.send("src", ["ok"]).send("src", ["oops"], { port: "errors" });
  assert.deepEqual((await driver.finish()).outputs, { good: ["ok"], bad: ["oops"] });
});

Deno.test("TestDriver refuses mistakes with clear errors", async (t) => {
  await t.step("an invalid workflow, with positions", () => {
    assert.throws(
      () =>
        TestDriver.fromWorkflowText("nodes:\n  - {id: g, type: GeneratorNod}\n", {
          file: "w.yaml",
        }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.equal(
          error.message,
          'w.yaml:2:13: nodes[0].type: node "g": unknown node type "GeneratorNod"; did you mean "GeneratorNode"? (run `sluice nodes` for the list)',
        );
        return true;
      },
    );
  });
  await t.step("variables come only from options.env", () => {
    const text = 'nodes:\n  - {id: g, type: GeneratorNode, config: {message_count: "${N}"}}\n';
    assert.throws(() => TestDriver.fromWorkflowText(text), /environment variable N is not set/);
    const driver = TestDriver.fromWorkflowText(text, { env: () => "3", keep: ["g"] });
    assert.deepEqual(driver.sources, []);
  });
  await t.step("unknown ids, past times, wrong ports", async () => {
    const driver = TestDriver.fromWorkflowText(PIPELINE, { registry });
    assert.throws(
      () => driver.send("event", [1]),
      new RangeError('"event" is not a replaced source; did you mean "events"? (sources: events)'),
    );
    assert.throws(
      () => driver.send("events", [1], { port: "nope" }),
      new RangeError('source "events" has no output port "nope" (ports: out)'),
    );
    assert.throws(
      () => driver.output("ot"),
      new RangeError('"ot" is not a replaced sink; did you mean "out"? (sinks: out, raw)'),
    );
    assert.throws(() => driver.send("events", {} as unknown[]), TypeError);
    await driver.advance(500);
    assert.throws(
      () => driver.send("events", [1], { at: 100 }),
      new RangeError("at must be >= the current virtual time 500 ms, got 100"),
    );
    await driver.finish();
    assert.throws(() => driver.send("events", [1]), TypeError);
    await assert.rejects(driver.advance(-1), RangeError);
  });
  await t.step("keep names an unknown node", () => {
    assert.throws(
      () => TestDriver.fromWorkflowText(PIPELINE, { registry, keep: ["evnts"] }),
      new RangeError('keep names unknown node "evnts"; did you mean "events"?'),
    );
  });
  await t.step("an unreadable file", async () => {
    await assert.rejects(TestDriver.fromFile("no/such/file.yaml"), ConfigError);
  });
});

Deno.test("TestDriver.fromFile resolves the file's name and directory", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/flow.yaml`, PIPELINE.replace("name: pipeline\n", ""));
  const driver = await TestDriver.fromFile(`${dir}/flow.yaml`, { registry });
  driver.send("events", [{ a: 1 }]);
  const { outputs, report } = await driver.finish();
  assert.equal(report.name, "flow");
  assert.deepEqual(outputs.raw, [{ a: 1 }]);
  await Deno.remove(dir, { recursive: true });
});
