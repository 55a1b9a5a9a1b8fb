import assert from "node:assert/strict";
import { builtins, eventFilter } from "../../actors/mod.ts";
import { VirtualClock } from "../../runtime/clock.ts";
import { buildWorkflow, parseWorkflowText } from "../../runtime/config.ts";
import { MemoryDeadLetters } from "../../runtime/dead_letter.ts";
import { ConfigError, type ConfigIssue } from "../../runtime/errors.ts";
import { Flow } from "../../runtime/flow.ts";
import { createLogger } from "../../runtime/log.ts";
import type { NodeSnapshot } from "../../runtime/metrics.ts";
import { Registry } from "../../runtime/registry.ts";
import { type RunReport, Workflow } from "../../runtime/workflow.ts";
import { PhasedSource, type PhasedSourceConfig } from "../helpers.ts";

const HOUR_MS = 3_600_000;
const NOW_MS = Date.UTC(2024, 0, 1, 12); // 2024-01-01T12:00:00Z

interface Harness {
  workflow: Workflow;
  clock: VirtualClock;
  deadLetters: MemoryDeadLetters;
  /** Adds a collector on `port` of `from` and returns what it receives. */
  collect(id: string, from: string, port?: string): unknown[];
}

function harness(config: PhasedSourceConfig, startMs = NOW_MS): Harness {
  const clock = new VirtualClock(startMs);
  const deadLetters = new MemoryDeadLetters();
  const workflow = new Workflow({
    registry: new Registry(builtins).with(PhasedSource),
    clock,
    deadLetters,
    logger: createLogger({ level: "silent" }),
  }).addNode("PhasedSource", "src", config);
  return {
    workflow,
    clock,
    deadLetters,
    collect(id, from, port = "out") {
      const seen: unknown[] = [];
      workflow.addNode("FunctionNode", id, {
        fn: (m: unknown) => {
          seen.push(m);
        },
      }).addConnection(from, id, port);
      return seen;
    },
  };
}

function node(report: RunReport, id: string): NodeSnapshot {
  const found = report.nodes.find((n) => n.id === id);
  assert.ok(found, `no node ${id} in the report`);
  return found;
}

/** Runs a source → filter (→ out, and → rejected when asked) workflow. */
async function runFilter(
  events: unknown[],
  config: Record<string, unknown>,
  options: { rejected?: boolean } = {},
): Promise<{ out: unknown[]; rejected: unknown[]; report: RunReport; h: Harness }> {
  const h = harness({ phases: [events] });
  h.workflow.addNode("EventFilterNode", "filter", config).addConnection("src", "filter");
  const out = h.collect("out", "filter");
  const rejected = options.rejected ? h.collect("rejected", "filter", "rejected") : [];
  const report = await h.workflow.run();
  assert.equal(report.status, "completed", report.error?.message);
  return { out, rejected, report, h };
}

const ids = (events: unknown[]): unknown[] => events.map((e) => (e as { id: unknown }).id);

Deno.test("EventFilterNode applies the guide's and-conditions with relative time on the workflow clock", async (t) => {
  const guide = {
    filter_conditions: [
      { field: "event_type", operator: "in", values: ["click", "purchase", "view"] },
      { field: "user_id", operator: "exists" },
      { field: "timestamp", operator: "greater_than", value: "now-1h" },
    ],
    filter_logic: "and",
  };
  const recentS = NOW_MS / 1000 - 1800; // 30 minutes ago, epoch seconds
  const recentMs = NOW_MS - 1800_000; // epoch milliseconds
  const recentIso = "2024-01-01T11:30:00Z";
  const old = NOW_MS / 1000 - 2 * 3600;
  const events = [
    { id: 1, event_type: "click", user_id: "u1", timestamp: recentS },
    { id: 2, event_type: "view", user_id: "u2", timestamp: recentMs },
    { id: 3, event_type: "purchase", user_id: "u3", timestamp: recentIso },
    { id: 4, event_type: "click", user_id: "u4", timestamp: old }, // too old
    { id: 5, event_type: "scroll", user_id: "u5", timestamp: recentS }, // wrong type
    { id: 6, event_type: "click", timestamp: recentS }, // no user
    { id: 7, event_type: "click", user_id: null, timestamp: recentS }, // null exists
    { id: 8, event_type: "click", user_id: "u8", timestamp: "2024-13-45" }, // bad date
    { id: 9, event_type: "click", user_id: "u9", timestamp: NOW_MS / 1000 - 3600 }, // exactly 1h: not greater
  ];

  await t.step("passing events go to out, failing ones to rejected, in order", async () => {
    const { out, rejected, report } = await runFilter(events, guide, { rejected: true });
    assert.deepEqual(ids(out), [1, 2, 3, 7]);
    assert.deepEqual(ids(rejected), [4, 5, 6, 8, 9]);
    const filter = node(report, "filter");
    assert.deepEqual(filter.outByPort, { out: 4, rejected: 5 });
    assert.equal(filter.messagesIn, 9);
    assert.equal(report.deadLetters, 0);
  });

  await t.step("events are passed on as the same objects (never copied or changed)", async () => {
    const input = events.map((e) => Object.freeze({ ...e }));
    const { out, rejected } = await runFilter(input, guide, { rejected: true });
    for (const e of [...out, ...rejected]) assert.ok(input.includes(e as typeof input[0]));
  });

  await t.step("filter_logic defaults to and", async () => {
    const { out } = await runFilter(events, { filter_conditions: guide.filter_conditions });
    assert.deepEqual(ids(out), [1, 2, 3, 7]);
  });
});

Deno.test("EventFilterNode or-logic keeps events matching any condition", async (t) => {
  const events = [
    { id: 1, level: "error", data: { value: 1 } },
    { id: 2, level: "info", data: { value: 150 } },
    { id: 3, level: "info", data: { value: 50 } },
    { id: 4, level: "info" },
  ];
  await t.step("or", async () => {
    const { out, rejected } = await runFilter(events, {
      filter_conditions: [
        { field: "level", operator: "equals", value: "error" },
        { field: "data.value", operator: "greater_than", value: 100 },
      ],
      filter_logic: "or",
    }, { rejected: true });
    assert.deepEqual(ids(out), [1, 2]);
    assert.deepEqual(ids(rejected), [3, 4]);
  });
  await t.step("an empty list passes everything with and, nothing with or", async () => {
    assert.equal((await runFilter(events, { filter_conditions: [] })).out.length, 4);
    const none = await runFilter(events, { filter_conditions: [], filter_logic: "or" });
    assert.equal(none.out.length, 0);
    assert.equal(node(none.report, "filter").outByPort.rejected, 4);
  });
});

Deno.test("EventFilterNode evaluates nested any/all/not groups", async () => {
  // Keep purchases over 100, or clicks that are not from bots, unless the event is a test.
  const config = {
    filter_conditions: [
      {
        any: [
          {
            all: [
              { field: "event_type", operator: "equals", value: "purchase" },
              { field: "amount", operator: "greater_than", value: 100 },
            ],
          },
          {
            all: [
              { field: "event_type", operator: "equals", value: "click" },
              { not: { field: "agent", operator: "matches", value: "bot", flags: "i" } },
            ],
          },
        ],
      },
      { not: { field: "test", operator: "equals", value: true } },
    ],
  };
  const events = [
    { id: 1, event_type: "purchase", amount: 150 },
    { id: 2, event_type: "purchase", amount: 50 },
    { id: 3, event_type: "click", agent: "Firefox" },
    { id: 4, event_type: "click", agent: "GoogleBOT" },
    { id: 5, event_type: "click" },
    { id: 6, event_type: "purchase", amount: 500, test: true },
    { id: 7, event_type: "view" },
  ];
  const { out, rejected } = await runFilter(events, config, { rejected: true });
  assert.deepEqual(ids(out), [1, 3, 5]);
  assert.deepEqual(ids(rejected), [2, 4, 6, 7]);
});

Deno.test("EventFilterNode counts rejected events even when the rejected port is not connected", async () => {
  const events = Array.from({ length: 10 }, (_, i) => ({ id: i, n: i }));
  const { out, report } = await runFilter(events, {
    filter_conditions: [{ field: "n", operator: "less_than", value: 3 }],
  });
  assert.deepEqual(ids(out), [0, 1, 2]);
  const filter = node(report, "filter");
  assert.deepEqual(filter.outByPort, { out: 3, rejected: 7 });
  assert.equal(report.deadLetters, 0);
});

Deno.test("EventFilterNode re-reads the virtual clock for now-relative conditions", async () => {
  // The same event passes at 12:00 and is rejected once the clock moved on by 2 hours.
  const event = { id: "a", timestamp: "2024-01-01T11:30:00Z" };
  let releasePhase!: () => void;
  const phaseGate = new Promise<void>((resolve) => (releasePhase = resolve));
  let firstSeen!: () => void;
  const first = new Promise<void>((resolve) => (firstSeen = resolve));
  const h = harness({ phases: [[event], [{ ...event, id: "b" }]], gate: () => phaseGate });
  h.workflow.addNode("EventFilterNode", "filter", {
    filter_conditions: [{ field: "timestamp", operator: "greater_or_equal", value: "now - 1h" }],
  }).addConnection("src", "filter");
  const out = h.collect("out", "filter");
  const rejected: unknown[] = [];
  h.workflow.addNode("FunctionNode", "rejected", {
    fn: (m: unknown) => {
      rejected.push(m);
    },
  }).addConnection("filter", "rejected", "rejected");
  // Resolve `first` once the first event has come out of the filter.
  h.workflow.addNode("FunctionNode", "watch", {
    fn: () => firstSeen(),
  }).addConnection("filter", "watch");
  const running = h.workflow.run();
  await first;
  await h.clock.advance(2 * HOUR_MS);
  releasePhase();
  const report = await running;
  assert.equal(report.status, "completed");
  assert.deepEqual(ids(out), ["a"]);
  assert.deepEqual(ids(rejected), ["b"]);
});

Deno.test("EventFilterNode sends an event whose evaluation throws to the dead letters and goes on", async () => {
  const hostile = { id: 2 };
  Object.defineProperty(hostile, "level", {
    enumerable: true,
    get() {
      throw new Error("getter exploded");
    },
  });
  const { out, report, h } = await runFilter(
    [{ id: 1, level: "error" }, hostile, { id: 3, level: "error" }],
    { filter_conditions: [{ field: "level", operator: "equals", value: "error" }] },
  );
  assert.deepEqual(ids(out), [1, 3]);
  assert.equal(report.deadLetters, 1);
  assert.equal(h.deadLetters.letters[0].node, "filter");
  assert.equal(h.deadLetters.letters[0].error, "getter exploded");
  assert.equal(h.deadLetters.letters[0].message, hostile);
  assert.equal(node(report, "filter").deadLettered, 1);
});

Deno.test("EventFilterNode works in a typed Flow with its rejected port", async () => {
  const kept: { n: number }[] = [];
  const dropped: { n: number }[] = [];
  const registry = new Registry(builtins).with(PhasedSource);
  const flow = new Flow({
    registry,
    clock: new VirtualClock(0),
    deadLetters: new MemoryDeadLetters(),
    logger: createLogger({ level: "silent" }),
  });
  const src = flow.add<never, { n: number }>("src", {
    type: "PhasedSource",
    config: { phases: [[{ n: 1 }, { n: 5 }, { n: 9 }]] },
  });
  const filter = flow.add(
    "filter",
    eventFilter<{ n: number }>([
      { field: "n", operator: "greater_than", value: 4 },
    ]),
  );
  const keep = flow.add("keep", {
    type: "FunctionNode",
    config: { fn: (m: { n: number }) => void kept.push(m) },
  } as { type: string; config: unknown });
  const drop = flow.add("drop", {
    type: "FunctionNode",
    config: { fn: (m: { n: number }) => void dropped.push(m) },
  } as { type: string; config: unknown });
  flow.connect(src, filter).connect(filter, keep).connect(filter.output("rejected"), drop);
  const report = await flow.run();
  assert.equal(report.status, "completed");
  assert.deepEqual(kept, [{ n: 5 }, { n: 9 }]);
  assert.deepEqual(dropped, [{ n: 1 }]);
});

/** Validation issues of a workflow with one filter node (index 1). */
function filterIssues(config: unknown): ConfigIssue[] {
  const h = harness({ phases: [[]] });
  h.workflow.addNode("EventFilterNode", "filter", config).addConnection("src", "filter");
  return h.workflow.validate();
}

Deno.test("EventFilterNode reports config errors with their key paths", async (t) => {
  await t.step("unknown operator with a suggestion", () => {
    const issues = filterIssues({
      filter_conditions: [
        { field: "a", operator: "exists" },
        { field: "b", operator: "exists" },
        { field: "c", operator: "greather_than", value: "now-1h" },
      ],
    });
    assert.deepEqual(issues, [{
      path: "nodes[1].config.filter_conditions[2].operator",
      message:
        'node "filter" (EventFilterNode): unknown operator "greather_than"; did you mean "greater_than"?',
    }]);
  });
  await t.step("a regex that does not compile", () => {
    const issues = filterIssues({
      filter_conditions: [{ field: "a", operator: "matches", value: "([a-z" }],
    });
    assert.equal(issues.length, 1);
    assert.equal(issues[0].path, "nodes[1].config.filter_conditions[0].value");
    assert.match(issues[0].message, /regex does not compile/);
  });
  await t.step("nested groups report deep paths", () => {
    const issues = filterIssues({
      filter_conditions: [{ any: [{ field: "a", operator: "exists" }, { not: { field: "" } }] }],
    });
    assert.deepEqual(issues.map((i) => i.path), [
      "nodes[1].config.filter_conditions[0].any[1].not.field",
      "nodes[1].config.filter_conditions[0].any[1].not.operator",
    ]);
  });
  await t.step("a bad relative time", () => {
    const issues = filterIssues({
      filter_conditions: [{ field: "ts", operator: "greater_than", value: "now-1y" }],
    });
    assert.equal(issues[0].path, "nodes[1].config.filter_conditions[0].value");
    assert.match(issues[0].message, /invalid relative time "now-1y"/);
  });
  await t.step("filter_logic other than and/or, and unknown keys", () => {
    const issues = filterIssues({ filter_conditions: [], filter_logic: "any", filter: [] });
    assert.deepEqual(issues.map((i) => i.path).sort(), [
      "nodes[1].config.filter",
      "nodes[1].config.filter_logic",
    ]);
  });
  await t.step("filter_conditions must be a list", () => {
    const issues = filterIssues({ filter_conditions: { field: "a", operator: "exists" } });
    assert.equal(issues[0].path, "nodes[1].config.filter_conditions");
    const missing = filterIssues({});
    assert.equal(missing[0].path, "nodes[1].config.filter_conditions");
  });
});

Deno.test("EventFilterNode config errors in YAML carry line and column", () => {
  const yaml = [
    "nodes:",
    "  - id: gen",
    "    type: GeneratorNode",
    "    config: {message_count: 1}",
    "  - id: filter",
    "    type: EventFilterNode",
    "    config:",
    "      filter_conditions:",
    "        - {field: event_type, operator: in, values: [click]}",
    "        - {field: user_id, operator: exists}",
    "        - field: timestamp",
    "          operator: greather_than",
    "          value: now-1h",
    "connections:",
    "  - {from: gen, to: filter}",
    "",
  ].join("\n");
  const parsed = parseWorkflowText(yaml, { file: "wf.yaml", env: () => undefined });
  let error: unknown;
  try {
    buildWorkflow(parsed, {
      registry: new Registry(builtins),
      clock: new VirtualClock(0),
      deadLetters: new MemoryDeadLetters(),
      logger: createLogger({ level: "silent" }),
    });
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
  assert.equal(error.issues.length, 1);
  const [issue] = error.issues;
  assert.equal(issue.path, "nodes[1].config.filter_conditions[2].operator");
  assert.deepEqual(issue.position, { file: "wf.yaml", line: 12, column: 11 });
  assert.match(
    error.message,
    /^wf\.yaml:12:11: nodes\[1\]\.config\.filter_conditions\[2\]\.operator: /,
  );
});
