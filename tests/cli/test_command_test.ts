import assert from "node:assert/strict";
import { compare, parseTestFile, testCommand } from "../../cli/test.ts";
import { Registry } from "../../runtime/registry.ts";
import type { NodeSpec } from "../../runtime/registry.ts";
import { s } from "../../runtime/schema.ts";
import { builtins } from "../../actors/mod.ts";

/** Checks orders: a non-numeric amount is an error; big ones also go to `big`. */
const check: NodeSpec<Record<string, never>> = {
  type: "Check",
  kind: "processor",
  description: "Test processor.",
  config: s.object({}),
  outputs: ["out", "big"],
  create: () => ({
    handleMessage(message, ctx) {
      const order = message as { amount: unknown };
      if (typeof order.amount !== "number") throw new TypeError("amount must be a number");
      if (order.amount > 100) ctx.emit(order, "big");
      ctx.emit(order);
    },
  }),
};

/** Holds each message `seconds` of clock time, stamping it; drains what is left. */
const delay: NodeSpec<{ seconds: number }> = {
  type: "Delay",
  kind: "processor",
  description: "Test processor.",
  config: s.object({ seconds: s.number() }),
  create: (config) => {
    const pending = new Set<object>();
    return {
      handleMessage(message, ctx) {
        const m = message as object;
        pending.add(m);
        ctx.schedule(config.seconds * 1000, () => {
          if (pending.delete(m)) ctx.emit({ ...m, at: ctx.clock.now() });
        });
      },
      drain(ctx) {
        for (const m of pending) ctx.emit({ ...m, drained: true });
      },
    };
  },
};

const registry = new Registry(builtins).with(check, delay);

const WORKFLOW = `name: orders
nodes:
  - {id: orders, type: GeneratorNode}
  - {id: check, type: Check, config: {}}
  - {id: hold, type: Delay, config: {seconds: "\${HOLD}"}}
  - {id: big, type: FileSinkNode, config: {path: big.ndjson}}
  - {id: all, type: ConsoleSinkNode}
connections:
  - {from: orders, to: check}
  - {from: check, to: big, from_port: big}
  - {from: check, to: hold}
  - {from: hold, to: all}
`;

const PASSING = `workflow: orders.yaml
env: {HOLD: 5}
start_time: 2024-01-01T00:00:00Z
tests:
  - name: big orders are split off at once
    inputs:
      orders:
        - {at: 0, message: {id: 1, amount: 150}}
        - {at: 1, messages: [{id: 2, amount: 5}, {id: 3, amount: x}]}
    steps:
      - advance: 1
      - expect:
          big: {messages: [{id: 1, amount: 150}]}
          all: {count: 0}
        dead_letters: {contains: [{node: check, message: {id: 3}}]}
      - advance: 4
      - expect: {all: {messages: [{id: 1, amount: 150, at: 1704067205000}]}}
      - send: {orders: [{id: 4, amount: 500}]}
    expect:
      big: {contains: [{id: 4}, {id: 1}], count: 2}
      all:
        messages:
          - {id: 1, amount: 150, at: 1704067205000}
          - {id: 2, amount: 5, drained: true}
          - {id: 4, amount: 500, drained: true}
    dead_letters:
      count: 1
      contains: [{node: check, error: amount must be a number, errorName: TypeError, message: {id: 3, amount: x}}]
  - name: nothing in, nothing out
    expect:
      all: {messages: []}
      big: {count: 0}
`;

const FAILING = `workflow: orders.yaml
env: {HOLD: 1}
tests:
  - name: passes
    inputs:
      orders: [{message: {id: 1, amount: 1}}]
    expect:
      all: {count: 1}
  - name: wrong expectations
    inputs:
      orders:
        - {at: 0, messages: [{id: 1, amount: 150}, {id: 2, amount: 7}, {id: 3}]}
    steps:
      - advance: 1
      - expect: {big: {count: 2}}
    expect:
      all:
        messages:
          - {id: 1, amount: 150, at: 1000}
          - {id: 9, amount: 7, at: 1000}
      big: {contains: [{id: 1, amount: 150}, {amount: 999}]}
    dead_letters: {count: 0}
    status: failed
`;

async function withFiles(
  files: Record<string, string>,
  run: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    for (const [name, text] of Object.entries(files)) {
      await Deno.writeTextFile(`${dir}/${name}`, text);
    }
    await run(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function sluiceTest(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await testCommand(args, { out: (t) => out += t, err: (t) => err += t }, {
    registry,
  });
  return { code, out, err };
}

Deno.test("testCommand passes a test file whose expectations hold", async () => {
  await withFiles({ "orders.yaml": WORKFLOW, "orders_test.yaml": PASSING }, async (dir) => {
    const result = await sluiceTest([`${dir}/orders_test.yaml`]);
    assert.deepEqual(result, {
      code: 0,
      out: `${dir}/orders_test.yaml
  ok    big orders are split off at once
  ok    nothing in, nothing out
2 tests: 2 passed, 0 failed
`,
      err: "",
    });
  });
});

Deno.test("testCommand prints a diff per failed expectation and exits 1", async () => {
  await withFiles({ "orders.yaml": WORKFLOW, "orders_test.yaml": FAILING }, async (dir) => {
    const result = await sluiceTest([`${dir}/orders_test.yaml`]);
    assert.equal(result.err, "");
    assert.equal(
      result.out,
      `${dir}/orders_test.yaml
  ok    passes
  FAIL  wrong expectations
        step 2: big: expected 2 messages, got 1
        status: expected failed, got completed
        all: messages differ (- expected, + actual)
            {"amount":150,"at":1000,"id":1}
          - {"amount":7,"at":1000,"id":9}
          + {"amount":7,"at":1000,"id":2}
        big: 1 expected message not found (- missing, + actual)
          - {"amount":999}
          + {"amount":150,"id":1}
        dead letters: expected 0 messages, got 1
2 tests: 1 passed, 1 failed
`,
    );
    assert.equal(result.code, 1);
  });
});

Deno.test("testCommand --filter runs the named tests and directories are searched", async () => {
  await withFiles({ "orders.yaml": WORKFLOW, "orders_test.yaml": FAILING }, async (dir) => {
    const result = await sluiceTest([dir, "--filter", "pass"]);
    assert.deepEqual(result, {
      code: 0,
      out: `${dir}/orders_test.yaml\n  ok    passes\n1 test: 1 passed, 0 failed\n`,
      err: "",
    });
  });
});

Deno.test("testCommand exits 2 on bad test files, naming file, line and column", async (t) => {
  const bad = async (test: string, workflow = WORKFLOW) => {
    let result!: { code: number; out: string; err: string };
    let where = "";
    await withFiles({ "orders.yaml": workflow, "bad_test.yaml": test }, async (dir) => {
      where = dir;
      result = await sluiceTest([`${dir}/bad_test.yaml`]);
    });
    assert.equal(result.code, 2);
    assert.match(result.out, /could not be run\n$/);
    return result.err.replaceAll(where, "DIR");
  };
  await t.step("unknown source and sink ids", async () => {
    assert.equal(
      await bad(`workflow: orders.yaml
env: {HOLD: 1}
tests:
  - name: typos
    inputs:
      order: [{message: {}}]
    expect:
      al: {count: 1}
`),
      `DIR/bad_test.yaml: cannot run
  DIR/bad_test.yaml:6:7: tests[0].inputs.order: "order" is not a replaced source of the workflow; did you mean "orders"? (orders)
  DIR/bad_test.yaml:8:7: tests[0].expect.al: "al" is not a replaced sink of the workflow; did you mean "all"? (big, all)
`,
    );
  });
  await t.step("shape errors", async () => {
    assert.equal(
      await bad(`workflow: orders.yaml
tests:
  - name: shapes
    inputs:
      orders: [{at: -1, message: 1, messages: [2]}]
    steps:
      - {advance: 1, send: {orders: [1]}}
    expect:
      all: {}
    extra: 1
`),
      `DIR/bad_test.yaml: cannot run
  DIR/bad_test.yaml:5:17: tests[0].inputs.orders[0].at: expected number >= 0, found -1
  DIR/bad_test.yaml:10:5: tests[0].extra: unknown key "extra" (known keys: name, keep, inputs, steps, expect, dead_letters, status)
`,
    );
    assert.equal(
      await bad(`workflow: orders.yaml
tests:
  - name: shapes
    inputs:
      orders: [{message: 1, messages: [2]}]
    steps:
      - {advance: 1, send: {orders: [1]}}
    expect:
      all: {}
`),
      `DIR/bad_test.yaml: cannot run
  DIR/bad_test.yaml:5:16: tests[0].inputs.orders[0]: set exactly one of message and messages
  DIR/bad_test.yaml:7:9: tests[0].steps[0]: a step is one of advance, send, or expect/dead_letters
  DIR/bad_test.yaml:9:7: tests[0].expect.all: expected at least one of messages, contains and count
`,
    );
  });
  await t.step("an invalid workflow", async () => {
    assert.equal(
      await bad(`workflow: orders.yaml\ntests: [{name: x}]\n`),
      `DIR/bad_test.yaml: cannot run
  DIR/bad_test.yaml:1:1: workflow: the workflow DIR/orders.yaml is invalid
  DIR/orders.yaml:5:47: nodes[2].config.seconds: environment variable HOLD is not set (write \${HOLD:-default} for a default)
`,
    );
  });
  await t.step("missing files and usage", async () => {
    const missing = await sluiceTest(["no_such_test.yaml"]);
    assert.equal(missing.code, 2);
    assert.ok(
      missing.err.startsWith(
        "no_such_test.yaml: cannot run\n  cannot read test file no_such_test.yaml: ",
      ),
    );
    assert.equal((await sluiceTest([])).code, 2);
    assert.equal((await sluiceTest(["--frob"])).code, 2);
  });
});

Deno.test("the example test file passes with the built-in node types", async () => {
  const file = new URL("../../examples/cli_pipeline_test.yaml", import.meta.url).pathname;
  let out = "";
  const code = await testCommand([file], { out: (t) => out += t, err: (t) => out += t });
  assert.equal(
    out.split("\n").slice(1).join("\n"),
    `  ok    events reach the file in the order they were sent
  ok    the clock only moves when told to
2 tests: 2 passed, 0 failed
`,
  );
  assert.equal(code, 0);
});

Deno.test("compare matches exactly, by subset and by count", async (t) => {
  await t.step("contains pairs each pattern with a distinct message", () => {
    const actual = [{ a: 1, b: 2 }, { a: 1 }];
    assert.deepEqual(compare("x", { contains: [{ a: 1 }, { a: 1, b: 2 }] }, actual), []);
    assert.equal(compare("x", { contains: [{ a: 1 }, { a: 1 }, { a: 1 }] }, actual).length, 1);
    assert.equal(compare("x", { contains: [[1]] }, [[1, 2]]).length, 1);
    assert.deepEqual(
      compare("x", { contains: [{ n: { deep: true } }] }, [{ n: { deep: true, x: 1 } }]),
      [],
    );
  });
  await t.step("messages compare normalized JSON, key order aside", () => {
    assert.deepEqual(
      compare("x", { messages: [{ b: 1, a: "2024-01-01T00:00:00.000Z" }] }, [
        { a: new Date(Date.UTC(2024, 0, 1)), b: 1, gone: undefined },
      ]),
      [],
    );
    assert.deepEqual(compare("x", { messages: [1, 2] }, [1, 3]), [{
      what: "x: messages differ (- expected, + actual)",
      lines: ["  1", "- 2", "+ 3"],
    }]);
  });
  await t.step("count", () => {
    assert.deepEqual(compare("x", { count: 1 }, []), [{
      what: "x: expected 1 message, got 0",
      lines: [],
    }]);
  });
});

Deno.test("parseTestFile reports syntax errors with positions", () => {
  const parsed = parseTestFile("workflow: [\n", "t.yaml");
  assert.equal(parsed.spec, undefined);
  assert.equal(parsed.issues[0].position?.file, "t.yaml");
  assert.match(parsed.issues[0].message, /^YAML syntax error: /);
  assert.deepEqual(parseTestFile("- 1\n", "t.yaml").issues, [{
    path: "",
    message: "a test file must be a map with `workflow` and `tests`",
    position: { file: "t.yaml", line: 1, column: 1 },
  }]);
});
