/**
 * Fuzzes the YAML loader, the condition grammar and time parsing with
 * generated hostile inputs: never a crash, never an unhandled rejection,
 * always a clear error (a ConfigError) or a value.
 */
import assert from "node:assert/strict";
import { stringify } from "yaml";
import { buildWorkflow, parseWorkflowText } from "../../runtime/config.ts";
import { compileCondition, compileConditionList } from "../../runtime/conditions.ts";
import { ConfigError, type ConfigIssue } from "../../runtime/errors.ts";
import { getPath } from "../../runtime/path.ts";
import { parseRelativeTime, parseTimestampMs } from "../../runtime/time.ts";
import { testRegistry } from "../helpers.ts";
import { assertPrototypeClean, deeplyNested, hostileValue, prng } from "./fuzz_helpers.ts";

const registry = testRegistry();

function loadOrConfigError(text: string): "ok" | "config-error" {
  try {
    buildWorkflow(parseWorkflowText(text, { file: "fuzz.yaml", env: () => undefined }), {
      registry,
    });
    return "ok";
  } catch (error) {
    if (error instanceof ConfigError) {
      assert.ok(error.issues.length > 0);
      for (const issue of error.issues) assert.equal(typeof issue.message, "string");
      return "config-error";
    }
    throw new Error(`loader threw a non-ConfigError for:\n${text.slice(0, 500)}`, { cause: error });
  }
}

Deno.test("YAML loader turns every generated hostile document into a workflow or a ConfigError", () => {
  const random = prng(20261201);
  const types = ["GeneratorNode", "WindowNode", "FileSinkNode", "EventFilterNode", "Nope", 42];
  let configErrors = 0;
  for (let i = 0; i < 400; i++) {
    const doc = random() < 0.2 ? hostileValue(random) : {
      name: random() < 0.5 ? "fuzz" : hostileValue(random),
      nodes: Array.from({ length: 1 + Math.floor(random() * 3) }, (_, j) => ({
        id: random() < 0.9 ? `n${j}` : hostileValue(random),
        type: types[Math.floor(random() * types.length)],
        config: hostileValue(random),
        ...(random() < 0.3 ? { mailbox: hostileValue(random) } : {}),
        ...(random() < 0.3 ? { supervision: hostileValue(random) } : {}),
      })),
      connections: random() < 0.5 ? [{ from: "n0", to: "n1" }] : hostileValue(random),
    };
    let text: string;
    try {
      text = stringify(doc);
    } catch {
      continue;
    }
    if (loadOrConfigError(text) === "config-error") configErrors++;
    assertPrototypeClean();
  }
  assert.ok(configErrors > 300, `most hostile documents are rejected (${configErrors})`);
});

Deno.test("YAML loader survives raw hostile text: syntax soup, deep nesting, huge and invalid strings", () => {
  const random = prng(7);
  const fragments = [
    "nodes:",
    "- ",
    "  ",
    "{",
    "}",
    "[",
    "]",
    ":",
    "&a",
    "*a",
    "<<: *a",
    "!!binary",
    "\t",
    "'",
    '"',
    "\\",
    "#",
    "\n",
    "${X",
    "${Y:-",
    "__proto__:",
    "id: x",
    "type: GeneratorNode",
  ];
  for (let i = 0; i < 500; i++) {
    let text = "";
    const n = Math.floor(random() * 40);
    for (let j = 0; j < n; j++) text += fragments[Math.floor(random() * fragments.length)];
    loadOrConfigError(text);
  }
  // Deep nesting and a billion-laughs style alias bomb.
  loadOrConfigError(`nodes: ${JSON.stringify(deeplyNested(5000, false))}`);
  loadOrConfigError(
    `nodes:\n  - id: g\n    type: GeneratorNode\n    config: ${
      JSON.stringify(deeplyNested(2000, true))
    }`,
  );
  const bomb = ["a: &a [x, x, x, x, x, x, x, x, x]"];
  for (let i = 1; i < 12; i++) {
    bomb.push(
      `${"b".repeat(i)}: &${"b".repeat(i)} [${
        Array(9).fill(i === 1 ? "*a" : `*${"b".repeat(i - 1)}`).join(", ")
      }]`,
    );
  }
  bomb.push("nodes: *bbbbbbbbbbb");
  loadOrConfigError(bomb.join("\n"));
  // Invalid UTF-8 decoded the way Deno.readTextFile does (replacement characters).
  const bytes = new Uint8Array([
    0x6e,
    0x6f,
    0x64,
    0x65,
    0x73,
    0x3a,
    0x20,
    0xff,
    0xfe,
    0xc3,
    0x28,
    0x0a,
  ]);
  loadOrConfigError(new TextDecoder().decode(bytes));
  loadOrConfigError(`name: ${"x".repeat(2_000_000)}\nnodes: []`);
  assertPrototypeClean();
});

Deno.test("YAML loader never lets __proto__ or constructor keys reach Object.prototype", () => {
  const text = `
__proto__: {polluted: true}
nodes:
  - id: g
    type: GeneratorNode
    config: {__proto__: {polluted: true}, constructor: {prototype: {polluted: true}}}
    mailbox: {__proto__: {polluted: true}}
connections: []
`;
  assert.equal(loadOrConfigError(text), "config-error");
  assertPrototypeClean();
});

Deno.test("condition grammar compiles hostile specs into issues, and evaluates hostile events without throwing", () => {
  const random = prng(99);
  const operators = [
    "equals",
    "not_equals",
    "in",
    "not_in",
    "contains",
    "exists",
    "not_exists",
    "greater_than",
    "greater_or_equal",
    "less_than",
    "less_or_equal",
    "matches",
    "inn",
    7,
  ];
  let compiled = 0;
  for (let i = 0; i < 2000; i++) {
    const spec = random() < 0.3 ? hostileValue(random) : {
      field: random() < 0.8
        ? [
          "a",
          "a.b",
          "__proto__.x",
          "constructor.name",
          "data.value",
          "",
        ][Math.floor(random() * 6)]
        : hostileValue(random),
      operator: operators[Math.floor(random() * operators.length)],
      ...(random() < 0.7 ? { value: hostileValue(random) } : {}),
      ...(random() < 0.3 ? { values: hostileValue(random) } : {}),
    };
    const issues: ConfigIssue[] = [];
    const condition = random() < 0.5
      ? compileCondition(spec, "c", issues, { now: () => 1_700_000_000_000 })
      : compileConditionList([spec, spec], random() < 0.5 ? "and" : "or", "c", issues);
    if (issues.length === 0) compiled++;
    for (let j = 0; j < 5; j++) {
      const result = condition(hostileValue(random));
      assert.equal(typeof result, "boolean");
    }
  }
  assert.ok(compiled > 100, `some specs compile (${compiled})`);
  // Deep nesting is refused as a config issue, not a stack overflow.
  const issues: ConfigIssue[] = [];
  let deep: unknown = { field: "a", operator: "exists" };
  for (let i = 0; i < 10_000; i++) deep = { not: deep };
  compileCondition(deep, "c", issues);
  assert.ok(issues.some((i) => /depth|deep|nest/i.test(i.message)), JSON.stringify(issues[0]));
  assertPrototypeClean();
});

Deno.test("time parsing returns a finite time or undefined for every hostile input", () => {
  const random = prng(5);
  for (let i = 0; i < 20_000; i++) {
    const raw = hostileValue(random);
    const v = random() < 0.5 || typeof raw === "object" ? raw : String(raw);
    const ms = parseTimestampMs(v);
    assert.ok(ms === undefined || Number.isFinite(ms), `${typeof v} -> ${ms}`);
    if (typeof v === "string") {
      const rel = parseRelativeTime(v, 1_700_000_000_000);
      assert.ok(rel === undefined || Number.isFinite(rel));
    }
  }
  for (
    const v of [
      "now-1e400h",
      "now-99999999999999999999d",
      "9999999999999999999999",
      "+275760-09-13T00:00:00.001Z",
    ]
  ) {
    const a = parseTimestampMs(v);
    const b = parseRelativeTime(v, 0);
    assert.ok(a === undefined || Number.isFinite(a));
    assert.ok(b === undefined || Number.isFinite(b));
  }
});

Deno.test("dot paths never read through the prototype chain", () => {
  assert.equal(getPath({}, "constructor"), undefined);
  assert.equal(getPath({}, "__proto__.polluted"), undefined);
  assert.equal(getPath({ a: {} }, "a.toString"), undefined);
  assert.equal(
    getPath(JSON.parse('{"__proto__": {"x": 1}}'), "__proto__.x"),
    1,
    "own keys are data",
  );
});
