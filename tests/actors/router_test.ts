import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { builtins, eventRouter, routerPorts } from "../../actors/mod.ts";
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

type Rec = Record<string, unknown>;
const NOW_MS = Date.UTC(2024, 0, 1, 12);

function registry(): Registry {
  return new Registry(builtins).with(PhasedSource);
}

interface Harness {
  workflow: Workflow;
  clock: VirtualClock;
  dead: MemoryDeadLetters;
  /** What each connected port received. */
  ports: Record<string, Rec[]>;
  run(): Promise<RunReport>;
}

/** source → router, with a collector on each of `connect`. */
function harness(
  source: PhasedSourceConfig,
  config: unknown,
  connect: string[],
): Harness {
  const clock = new VirtualClock(NOW_MS);
  const dead = new MemoryDeadLetters();
  const workflow = new Workflow({
    registry: registry(),
    clock,
    deadLetters: dead,
    logger: createLogger({ level: "silent" }),
  })
    .addNode("PhasedSource", "src", source)
    .addNode("RouterNode", "router", config)
    .addConnection("src", "router");
  const ports: Record<string, Rec[]> = {};
  for (const port of connect) {
    const seen: Rec[] = [];
    ports[port] = seen;
    workflow.addNode("FunctionNode", `to_${port}`, { fn: (m: Rec) => void seen.push(m) })
      .addConnection("router", `to_${port}`, port);
  }
  return {
    workflow,
    clock,
    dead,
    ports,
    async run() {
      const report = await workflow.run();
      assert.equal(report.status, "completed", report.error?.message);
      return report;
    },
  };
}

function routerNode(report: RunReport): NodeSnapshot {
  return report.nodes.find((n) => n.id === "router")!;
}

const ids = (events: Rec[]): unknown[] => events.map((e) => e.id);

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const key of Object.keys(value)) deepFreeze((value as Rec)[key]);
    Object.freeze(value);
  }
  return value;
}

const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex");

/** The reference guide's event processor, as a RouterNode config. */
const GUIDE = {
  enrichment_rules: [{
    condition: { field: "user_id", operator: "exists" },
    enrichment: { user_type: "registered", enriched_at: "${now}" },
  }],
  routing_rules: [
    {
      condition: { field: "event_type", operator: "equals", value: "purchase" },
      destination: "revenue_analytics",
    },
    {
      condition: { field: "event_type", operator: "in", value: ["click", "view"] },
      destination: "engagement_analytics",
    },
  ],
  handlers: {
    click: [{ field: "clicks", operation: "set", value: 1 }],
    purchase: [
      { field: "amount", operation: "default", value: 0 },
      { field: "amount", operation: "to_number", output_field: "revenue" },
    ],
    view: [{ field: "page_views", operation: "set", value: 1 }],
  },
};

const GUIDE_EVENTS = [
  { id: 1, event_type: "click", user_id: "u1", url: "/a" },
  { id: 2, event_type: "purchase", user_id: "u2", amount: "19.99" },
  { id: 3, event_type: "view", page: "/home" },
  { id: 4, event_type: "signup", user_id: "u4" },
  { id: 5, event_type: "purchase" },
];

Deno.test("RouterNode runs the guide's event processor: enrich, route, handle", async (t) => {
  const h = harness({ phases: [GUIDE_EVENTS] }, GUIDE, [
    "revenue_analytics",
    "engagement_analytics",
    "unmatched",
  ]);
  const report = await h.run();
  const at = NOW_MS / 1000;

  await t.step("every destination receives its events, enriched and handled", () => {
    assert.deepEqual(h.ports.revenue_analytics, [
      {
        id: 2,
        event_type: "purchase",
        user_id: "u2",
        amount: "19.99",
        user_type: "registered",
        enriched_at: at,
        revenue: 19.99,
      },
      { id: 5, event_type: "purchase", amount: 0, revenue: 0 },
    ]);
    assert.deepEqual(h.ports.engagement_analytics, [
      {
        id: 1,
        event_type: "click",
        user_id: "u1",
        url: "/a",
        user_type: "registered",
        enriched_at: at,
        clicks: 1,
      },
      { id: 3, event_type: "view", page: "/home", page_views: 1 },
    ]);
  });
  await t.step("events matching no rule go to unmatched, enriched, without a handler", () => {
    assert.deepEqual(h.ports.unmatched, [
      { id: 4, event_type: "signup", user_id: "u4", user_type: "registered", enriched_at: at },
    ]);
  });
  await t.step("routing_stats are outByPort", () => {
    assert.deepEqual(routerNode(report).outByPort, {
      revenue_analytics: 2,
      engagement_analytics: 2,
      unmatched: 1,
    });
    assert.equal(report.deadLetters, 0);
  });
  await t.step("the output ports are the destinations then unmatched", () => {
    assert.deepEqual(h.workflow.outputPortsOf("router"), [
      "revenue_analytics",
      "engagement_analytics",
      "unmatched",
    ]);
  });
});

Deno.test("RouterNode ${now} follows the virtual clock between batches", async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let firstOut!: () => void;
  const first = new Promise<void>((resolve) => (firstOut = resolve));
  const h = harness(
    { phases: [[{ id: "a" }], [{ id: "b" }]], gate: () => gate },
    {
      enrichment_rules: [{
        enrichment: { at: "${now}", at_iso: "${now_iso}", label: "${id}@${now}" },
      }],
    },
    ["unmatched"],
  );
  h.workflow.addNode("FunctionNode", "watch", { fn: () => firstOut() })
    .addConnection("router", "watch", "unmatched");
  const running = h.run();
  await first;
  await h.clock.advance(90_000);
  release();
  await running;
  const t0 = NOW_MS / 1000;
  assert.deepEqual(h.ports.unmatched, [
    { id: "a", at: t0, at_iso: "2024-01-01T12:00:00.000Z", label: `a@${t0}` },
    { id: "b", at: t0 + 90, at_iso: "2024-01-01T12:01:30.000Z", label: `b@${t0 + 90}` },
  ]);
});

Deno.test("RouterNode sends an event to every matching destination, once each", async () => {
  const h = harness(
    {
      phases: [[
        { id: 1, amount: 500, country: "DE" },
        { id: 2, amount: 5, country: "DE" },
        { id: 3, amount: 500, country: "US" },
        { id: 4, amount: 5, country: "US" },
      ]],
    },
    {
      routing_rules: [
        {
          condition: { field: "amount", operator: "greater_than", value: 100 },
          destination: "big",
        },
        { condition: { field: "country", operator: "equals", value: "DE" }, destination: "eu" },
        // A second rule for "big": an event matching both rules still arrives once.
        { condition: { field: "country", operator: "equals", value: "DE" }, destination: "big" },
        { destination: "audit" },
      ],
    },
    ["big", "eu", "audit", "unmatched"],
  );
  const report = await h.run();
  assert.deepEqual(ids(h.ports.big), [1, 2, 3]);
  assert.deepEqual(ids(h.ports.eu), [1, 2]);
  assert.deepEqual(ids(h.ports.audit), [1, 2, 3, 4]);
  assert.deepEqual(h.ports.unmatched, []);
  // Unchanged events are passed on as they are: every destination shares one object.
  assert.equal(h.ports.big[0], h.ports.eu[0]);
  assert.deepEqual(routerNode(report).outByPort, { big: 3, eu: 2, audit: 4 });
  assert.deepEqual(h.workflow.outputPortsOf("router"), ["big", "eu", "audit", "unmatched"]);
});

Deno.test("RouterNode enrichment: conditions see the input, templates the enriched event", async (t) => {
  const input = deepFreeze([
    { id: 1, user: { id: "u1", tier: "gold" }, event_type: "click" },
    { id: 2, event_type: "click" },
  ]);
  const h = harness(
    { phases: [input] },
    {
      enrichment_rules: [
        {
          condition: { field: "user.tier", operator: "equals", value: "gold" },
          enrichment: { "user.vip": true, priority: "high" },
        },
        {
          // Not applied: `priority` was added by the rule above, and conditions see the input.
          condition: { field: "priority", operator: "exists" },
          enrichment: { saw_priority: true },
        },
        { enrichment: { summary: "${priority}/${user.vip}", copy_of_user: "${user}" } },
      ],
      routing_rules: [
        // Routing sees the enriched event.
        {
          condition: { field: "priority", operator: "equals", value: "high" },
          destination: "fast",
        },
      ],
    },
    ["fast", "unmatched"],
  );
  await h.run();
  await t.step("enriched copies", () => {
    assert.deepEqual(h.ports.fast, [{
      id: 1,
      user: { id: "u1", tier: "gold", vip: true },
      event_type: "click",
      priority: "high",
      summary: "high/true",
      copy_of_user: { id: "u1", tier: "gold", vip: true },
    }]);
    assert.deepEqual(h.ports.unmatched, [{ id: 2, event_type: "click", summary: "/" }]);
  });
  await t.step("the input is untouched and untouched branches are shared", () => {
    assert.deepEqual(input[0], { id: 1, user: { id: "u1", tier: "gold" }, event_type: "click" });
    assert.notEqual(h.ports.fast[0], input[0]);
    assert.equal(h.dead.letters.length, 0);
  });
});

Deno.test("RouterNode handlers transform per event type and dead-letter failures", async (t) => {
  const config = {
    event_type_field: "meta.kind",
    routing_rules: [{ destination: "all" }],
    handlers: {
      purchase: [
        { field: "amount", operation: "to_number" },
        { field: "customer", operation: "hash" },
      ],
      "page view": [{ field: "page", operation: "lowercase" }],
    },
  };
  const events = [
    { id: 1, meta: { kind: "purchase" }, amount: "10", customer: "abc" },
    { id: 2, meta: { kind: "purchase" }, amount: "ten", customer: "def" },
    { id: 3, meta: { kind: "page view" }, page: "/HOME" },
    { id: 4, meta: { kind: "purchase" }, amount: 3, customer: "ghi" },
    { id: 5, meta: { kind: 7 }, amount: "x" },
    { id: 6, meta: { kind: "page view" }, page: 404 },
    { id: 7 },
  ];
  const h = harness({ phases: [events] }, config, ["all"]);
  const report = await h.run();
  await t.step("handled events keep their input order (hash digests are batched)", () => {
    assert.deepEqual(h.ports.all, [
      { id: 1, meta: { kind: "purchase" }, amount: 10, customer: sha256("abc") },
      { id: 3, meta: { kind: "page view" }, page: "/home" },
      { id: 4, meta: { kind: "purchase" }, amount: 3, customer: sha256("ghi") },
      { id: 5, meta: { kind: 7 }, amount: "x" },
      { id: 7 },
    ]);
  });
  await t.step("failures are dead-lettered with the handler path and event type", () => {
    assert.deepEqual(h.dead.letters.map((l) => l.error), [
      'handlers.purchase[0] (to_number) on field "amount": cannot convert "ten" to a number',
      'handlers."page view"[0] (lowercase) on field "page": expected a string, found a number (404)',
    ]);
    assert.deepEqual(h.dead.letters.map((l) => l.message), [events[1], events[5]]);
    assert.deepEqual(h.dead.letters[0].context, {
      step: "handlers.purchase[0]",
      operation: "to_number",
      field: "amount",
      event_type: "purchase",
    });
    assert.deepEqual(routerNode(report).outByPort, { all: 5 });
    assert.equal(routerNode(report).deadLettered, 2);
  });
  await t.step("synchronous handlers give the same result", async () => {
    const sync = harness({ phases: [events] }, {
      ...config,
      handlers: { ...config.handlers, purchase: [config.handlers.purchase[0]] },
    }, ["all"]);
    await sync.run();
    assert.deepEqual(ids(sync.ports.all), [1, 3, 4, 5, 7]);
    assert.equal(sync.ports.all[0].customer, "abc");
    assert.equal(sync.dead.letters.length, 2);
  });
});

Deno.test("RouterNode dead-letters an enrichment that cannot be written, and non-objects", async () => {
  const h = harness(
    { phases: [[{ id: 1, meta: {} }, { id: 2, meta: "text" }, 42, { id: 4 }]] },
    { enrichment_rules: [{ enrichment: { "meta.seen": true } }] },
    ["unmatched"],
  );
  await h.run();
  assert.deepEqual(h.ports.unmatched, [
    { id: 1, meta: { seen: true } },
    { id: 4, meta: { seen: true } },
  ]);
  assert.deepEqual(h.dead.letters.map((l) => l.error), [
    'enrichment_rules[0].enrichment (enrichment) on field "meta.seen": cannot write "meta.seen": "meta" holds a string ("text"), expected an object',
    "expected an event object, found number",
  ]);
});

Deno.test("RouterNode may use out as a destination", async () => {
  const h = harness(
    { phases: [[{ id: 1, ok: true }, { id: 2 }]] },
    { routing_rules: [{ condition: { field: "ok", operator: "exists" }, destination: "out" }] },
    ["out", "unmatched"],
  );
  await h.run();
  assert.deepEqual(ids(h.ports.out), [1]);
  assert.deepEqual(ids(h.ports.unmatched), [2]);
});

/** Validation issues of a workflow whose router is nodes[1]. */
function routerIssues(config: unknown, connect: string[] = []): ConfigIssue[] {
  return harness({ phases: [] }, config, connect).workflow.validate();
}

const PREFIX = 'node "router" (RouterNode): ';

Deno.test("RouterNode reports config errors with their key paths", async (t) => {
  await t.step("unmatched is reserved; port names are checked", () => {
    const issues = routerIssues({
      routing_rules: [{ destination: "ok" }, { destination: "unmatched" }, { destination: "a b" }],
    });
    assert.deepEqual(issues, [
      {
        path: "nodes[1].config.routing_rules[1].destination",
        message: PREFIX +
          'destination "unmatched" is reserved for events that match no rule; connect from_port "unmatched" instead',
      },
      {
        path: "nodes[1].config.routing_rules[2].destination",
        message: PREFIX +
          'destination "a b" is not a valid port name: use letters, digits, "_", "-" and "."',
      },
    ]);
  });
  await t.step("conditions use the filter grammar", () => {
    const issues = routerIssues({
      enrichment_rules: [{
        condition: { field: "a", operator: "exist" },
        enrichment: { x: 1 },
      }],
      routing_rules: [{
        condition: { any: [{ field: "b", operator: "matches", value: "(" }] },
        destination: "d",
      }],
    });
    assert.deepEqual(issues.map((i) => i.path), [
      "nodes[1].config.enrichment_rules[0].condition.operator",
      "nodes[1].config.routing_rules[0].condition.any[0].value",
    ]);
    assert.equal(
      issues[0].message,
      PREFIX + 'unknown operator "exist"; did you mean "exists"?',
    );
  });
  await t.step("handlers are validated as transformations", () => {
    const issues = routerIssues({
      handlers: {
        click: [{ field: "a", operation: "uppercas" }],
        "page view": [{ field: "b", operation: "set" }],
      },
    });
    assert.deepEqual(issues, [
      {
        path: "nodes[1].config.handlers.click[0].operation",
        message: PREFIX + 'unknown operation "uppercas"; did you mean "uppercase"?',
      },
      {
        path: 'nodes[1].config.handlers."page view"[0].value',
        message: PREFIX + 'missing "value" for operation "set"',
      },
    ]);
  });
  await t.step("enrichment keys and templates, event_type_field, unknown keys", () => {
    const issues = routerIssues({
      enrichment_rules: [{ enrichment: { "__proto__.x": 1, "a.b": "${}" } }],
      event_type_field: "a..b",
      routing_rule: [],
    });
    assert.deepEqual(issues.map((i) => i.path), [
      "nodes[1].config.routing_rule",
    ]);
    const second = routerIssues({
      enrichment_rules: [{ enrichment: { "constructor.x": 1, "a.b": "${}" } }],
      event_type_field: "a..b",
    });
    assert.deepEqual(second.map((i) => i.path), [
      'nodes[1].config.enrichment_rules[0].enrichment."constructor.x"',
      'nodes[1].config.enrichment_rules[0].enrichment."a.b"',
      "nodes[1].config.event_type_field",
    ]);
    assert.match(second[0].message, /could modify a prototype/);
    assert.match(second[1].message, /empty placeholder/);
  });
  await t.step("connecting a port that no rule names lists the ports", () => {
    const issues = routerIssues({ routing_rules: [{ destination: "revenue" }] }, ["revenu"]);
    assert.equal(issues.length, 1);
    assert.equal(issues[0].path, "connections[1].from_port");
    assert.match(issues[0].message, /did you mean "revenue"\? \(ports: revenue, unmatched\)/);
  });
});

Deno.test("RouterNode config errors in YAML carry line and column", () => {
  const yaml = [
    "nodes:",
    "  - id: gen",
    "    type: GeneratorNode",
    "    config: {message_count: 1}",
    "  - id: router",
    "    type: RouterNode",
    "    config:",
    "      routing_rules:",
    "        - condition: {field: event_type, operator: equals, value: purchase}",
    "          destination: revenue",
    "        - condition: {field: event_type, operator: in, value: [click, view]}",
    "          destination: unmatched",
    "connections:",
    "  - {from: gen, to: router}",
    "",
  ].join("\n");
  let error: unknown;
  try {
    buildWorkflow(parseWorkflowText(yaml, { file: "r.yaml", env: () => undefined }), {
      registry: registry(),
      clock: new VirtualClock(0),
      deadLetters: new MemoryDeadLetters(),
      logger: createLogger({ level: "silent" }),
    });
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof ConfigError);
  assert.equal(error.issues.length, 1);
  assert.equal(error.issues[0].path, "nodes[1].config.routing_rules[1].destination");
  assert.deepEqual(error.issues[0].position, { file: "r.yaml", line: 12, column: 11 });
});

Deno.test("routerPorts and eventRouter serve the typed Flow builder", async () => {
  assert.deepEqual(routerPorts({ routing_rules: [] }), ["unmatched"]);
  const flow = new Flow({
    registry: registry(),
    clock: new VirtualClock(0),
    deadLetters: new MemoryDeadLetters(),
    logger: createLogger({ level: "silent" }),
  });
  const revenue: Rec[] = [];
  const rest: Rec[] = [];
  const src = flow.add<never, Rec>("src", {
    type: "PhasedSource",
    config: { phases: [[{ t: "purchase" }, { t: "click" }]] },
  });
  const router = flow.add(
    "router",
    eventRouter({
      routing_rules: [{
        condition: { field: "t", operator: "equals", value: "purchase" },
        destination: "revenue",
      }],
    }),
  );
  const toRevenue = flow.add<Rec, never>("revenue", {
    type: "FunctionNode",
    config: { fn: (m: Rec) => void revenue.push(m) },
  });
  const toRest = flow.add<Rec, never>("rest", {
    type: "FunctionNode",
    config: { fn: (m: Rec) => void rest.push(m) },
  });
  flow.connect(src, router)
    .connect(router.output("revenue"), toRevenue)
    .connect(router.output("unmatched"), toRest);
  assert.equal((await flow.run()).status, "completed");
  assert.deepEqual(revenue, [{ t: "purchase" }]);
  assert.deepEqual(rest, [{ t: "click" }]);
});

Deno.test("RouterNode with many ports named by several rules routes each event once per port", async () => {
  // More than 30 ports, some named twice: beyond the generated router's bit set,
  // so the plain loop routes; its results must be the same.
  const ports = Array.from({ length: 40 }, (_, i) => `p${i}`);
  const routing_rules = [
    ...ports.map((destination, i) => ({
      condition: { field: "n", operator: "equals", value: i % 10 },
      destination,
    })),
    { condition: { field: "n", operator: "exists" }, destination: "p35" },
    { destination: "p35" },
  ];
  const events = Array.from({ length: 10 }, (_, n) => ({ id: n, n }));
  const h = harness({ phases: [events] }, { routing_rules }, ports);
  const report = await h.run();
  for (let i = 0; i < 40; i++) {
    const expected = i === 35 ? events.map((e) => e.id) : [i % 10];
    assert.deepEqual(ids(h.ports[`p${i}`]), expected, `p${i}`);
  }
  assert.equal(routerNode(report).outByPort.p35, 10);
});
