/**
 * Runs the examples under examples/ the way `sluice run` does (in-process,
 * through `runCommand`) and checks what they print and write: exactly where
 * the output is deterministic (window records, counts), structurally where it
 * is not (random ids, wall-clock times, drops that depend on the machine).
 * The demo runs as a subprocess, as `sluice demo` would.
 *
 * Console output is captured by a ConsoleSinkNode that keeps the messages
 * instead of writing them; files go to a temporary OUT_DIR.
 */
import assert from "node:assert/strict";
import { relative } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";
import { runCommand } from "../../cli/run.ts";
import { testCommand } from "../../cli/test.ts";
import { validateCommand } from "../../cli/validate.ts";
import {
  type ClickstreamEvent,
  clickstreamEvent,
  DEMO_HELP,
  demoCommand,
  seededRandom,
  startClickstreamFeed,
} from "../../cli/demo.ts";
import { type Clock, VirtualClock } from "../../runtime/clock.ts";
import { MemoryDeadLetters } from "../../runtime/dead_letter.ts";
import { createLogger } from "../../runtime/log.ts";
import { type NodeSpec, Registry } from "../../runtime/registry.ts";
import { builtins } from "../../actors/mod.ts";
import { ConsoleSinkNode, messageLine } from "../../actors/sinks/console.ts";
import { buildDedupWorkflow } from "../../examples/custom_node.ts";
import { buildPipeline } from "../../examples/pipeline.ts";
import {
  createTopic,
  kafkaTest,
  kcatConsume,
  kcatProduce,
  uniqueTopic,
  waitFor,
} from "../kafka_env.ts";

const ROOT = fromFileUrl(new URL("../../", import.meta.url));
const EXAMPLES = `${ROOT}examples`;
const EXPECTED = fromFileUrl(new URL("./expected/", import.meta.url));

/** A line of the report `sluice run` prints at the end. */
interface ReportRow {
  in: number;
  out: number;
  dropped: number;
  errors: number;
  restarts: number;
  deadLettered: number;
}

/** What a run of an example left behind. */
interface ExampleRun {
  /** The exit code. */
  code: number;
  /** What its ConsoleSinkNodes printed, parsed back from JSON. */
  stdout: Record<string, unknown>[];
  /** Everything written to stderr (logs, the report). */
  err: string;
  /** The report's rows by node id. */
  rows: Map<string, ReportRow>;
  /** Where its files went (OUT_DIR). */
  outDir: string;
  /** Its dead letters. */
  deadLetters: MemoryDeadLetters;
}

interface RunOptions {
  /** Environment variables, besides OUT_DIR. */
  env?: Record<string, string>;
  /** The workflow clock. */
  clock?: Clock;
  /** Aborting it stops the run gracefully. */
  signal?: AbortSignal;
  /** Called with every message a ConsoleSinkNode receives. */
  onConsole?: (message: Record<string, unknown>) => void;
  /** Run the file by a path relative to the working directory. */
  relativePath?: boolean;
}

/** Runs `sluice run examples/<file> --status-interval 0` in-process. */
async function runExample(file: string, options: RunOptions = {}): Promise<ExampleRun> {
  const outDir = await Deno.makeTempDir({ prefix: "sluice-example-" });
  const stdout: Record<string, unknown>[] = [];
  const console: NodeSpec = {
    ...(ConsoleSinkNode as NodeSpec),
    create: () => ({
      handle(batch: unknown[]): void {
        for (const message of batch) {
          const value = JSON.parse(messageLine(message));
          stdout.push(value);
          options.onConsole?.(value);
        }
      },
    }),
  };
  const registry = new Registry([
    ...builtins.filter((spec) => spec.type !== ConsoleSinkNode.type),
    console,
  ]);
  const env: Record<string, string> = { OUT_DIR: outDir, ...options.env };
  const deadLetters = new MemoryDeadLetters();
  let err = "";
  const path = `${EXAMPLES}/${file}`;
  const code = await runCommand(
    [options.relativePath ? relative(Deno.cwd(), path) : path, "--status-interval", "0"],
    { out: () => {}, err: (text) => err += text },
    {
      registry,
      env: (name) => env[name],
      clock: options.clock,
      deadLetters,
      isTerminal: false,
      handleSignals: false,
      signal: options.signal,
      logTime: () => "T",
    },
  );
  return { code, stdout, err, rows: reportRows(err), outDir, deadLetters };
}

/** Parses the per-node lines of the final report. */
function reportRows(err: string): Map<string, ReportRow> {
  const rows = new Map<string, ReportRow>();
  const line =
    /^ {2}(\S+)\s+in\s+(\d+)\s+out\s+(\d+)\s+dropped (\d+)\s+errors (\d+)\s+restarts (\d+)\s+dead-lettered (\d+)$/gm;
  for (const m of err.matchAll(line)) {
    const [, id, i, o, dropped, errors, restarts, dead] = m;
    rows.set(id, {
      in: Number(i),
      out: Number(o),
      dropped: Number(dropped),
      errors: Number(errors),
      restarts: Number(restarts),
      deadLettered: Number(dead),
    });
  }
  return rows;
}

function row(run: ExampleRun, id: string): ReportRow {
  const r = run.rows.get(id);
  assert.ok(r, `the report has no row for "${id}":\n${run.err}`);
  return r;
}

async function readNdjson(path: string): Promise<Record<string, unknown>[]> {
  const text = await Deno.readTextFile(path);
  return text.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
}

/** JSON with sorted keys, to compare records whatever their key order. */
function canonical(value: unknown): string {
  return JSON.stringify(
    value,
    (_key, v) =>
      v && typeof v === "object" && !Array.isArray(v)
        ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0))
        : v,
  );
}

/** Asserts the same records in any order. */
function assertSameRecords(actual: unknown[], expected: unknown[], what: string): void {
  assert.deepEqual(actual.map(canonical).sort(), expected.map(canonical).sort(), what);
}

function assertOk(run: ExampleRun): void {
  assert.equal(run.code, 0, `exit code ${run.code}:\n${run.err}`);
  assert.match(run.err, /completed in/, run.err);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const EVENT_TYPES = ["click", "view", "purchase"];

/** Checks a generated event against the guide's formula. */
function assertGenerated(e: Record<string, unknown>, i: number, start: number, rate: number): void {
  assert.match(String(e.id), UUID);
  assert.deepEqual({ ...e, id: "" }, {
    id: "",
    timestamp: start + i / rate,
    sequence: i,
    event_type: EVENT_TYPES[i % 3],
    user_id: `user_${i % 100}`,
    data: { value: i * 10, metadata: { test: true } },
  });
}

/** Drives a virtual clock until `running` settles. */
async function advanceUntil<T>(clock: VirtualClock, running: Promise<T>, stepMs = 100): Promise<T> {
  let done = false;
  const result = running.finally(() => done = true);
  while (!done) await clock.advance(stepMs);
  return await result;
}

// ---------------------------------------------------------------------------
// Every example is covered, documented and valid
// ---------------------------------------------------------------------------

/** The YAML examples, and how this file runs them. */
const COVERED: Record<string, string> = {
  "test_stream.yaml": "run",
  "stream_analytics.yaml": "run",
  "sliding_window.yaml": "run",
  "realtime_batching.yaml": "run",
  "backpressure.yaml": "run",
  "custom_event_processor.yaml": "run",
  "event_pipeline.yaml": "run",
  "stream_health.yaml": "run",
  "websocket_stream.yaml": "run against a local feed",
  "kafka_pipeline.yaml": "validated; run when KAFKA_BROKERS is set",
  "cli_pipeline.yaml": "run",
  "cli_pipeline_test.yaml": "sluice test",
};

async function exampleFiles(): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(EXAMPLES)) {
    if (entry.isFile && entry.name.endsWith(".yaml")) files.push(entry.name);
  }
  return files.sort();
}

Deno.test("examples: every YAML example is covered by this file and documented", async (t) => {
  const files = await exampleFiles();
  for (const file of files) {
    await t.step(file, async () => {
      assert.ok(COVERED[file], `${file} is not run by tests/examples/examples_test.ts`);
      if (file.startsWith("cli_pipeline")) return; // The CLI's own fixtures.
      const text = await Deno.readTextFile(`${EXAMPLES}/${file}`);
      const header = text.slice(0, text.indexOf("\nname:"));
      assert.ok(header.split("\n").every((l) => l.startsWith("#")), `${file}: comment header`);
      assert.match(header, /Expect/, `${file}: says what to expect`);
      assert.match(
        header,
        new RegExp(`deno task sluice run examples/${file}`),
        `${file}: run line`,
      );
    });
  }
});

Deno.test("examples: sluice validate accepts every YAML workflow example", async () => {
  const files = (await exampleFiles()).filter((f) => !f.endsWith("_test.yaml"));
  let err = "";
  const code = await validateCommand(files.map((f) => `${EXAMPLES}/${f}`), {
    out: () => {},
    err: (text) => err += text,
  }, {
    // Kafka and feed settings come from the environment; any value will do here.
    env: (name) => ({ KAFKA_BROKERS: "127.0.0.1:9092", FEED_URL: "ws://127.0.0.1:1/feed" })[name],
  });
  assert.equal(code, 0, err);
});

// ---------------------------------------------------------------------------
// The examples that need no service
// ---------------------------------------------------------------------------

Deno.test("examples: test_stream.yaml writes the guide's 1000 test events", async () => {
  const run = await runExample("test_stream.yaml");
  assertOk(run);
  const events = await readNdjson(`${run.outDir}/test_stream.ndjson`);
  assert.equal(events.length, 1000);
  events.forEach((e, i) => assertGenerated(e, i, 1700000000, 100));
  assert.equal(new Set(events.map((e) => e.id)).size, 1000, "ids are unique");
  assert.deepEqual(row(run, "events").out, 1000);
  assert.deepEqual(row(run, "out").in, 1000);
  assert.equal(run.deadLetters.letters.length, 0);
});

Deno.test("examples: stream_analytics.yaml prints the guide's per-stream window metrics", async () => {
  const run = await runExample("stream_analytics.yaml");
  assertOk(run);
  const expected = await readNdjson(`${EXPECTED}stream_analytics.ndjson`);
  assertSameRecords(run.stdout, expected, "window records");
  assert.equal(row(run, "metrics").out, 6);
  assert.equal(row(run, "spans").out, 6);
});

Deno.test("examples: sliding_window.yaml prints 11 overlapping windows in order", async () => {
  const run = await runExample("sliding_window.yaml");
  assertOk(run);
  const expected = await readNdjson(`${EXPECTED}sliding_window.ndjson`);
  // One key, one watermark: windows close in order of their end.
  assert.deepEqual(run.stdout.map(canonical), expected.map(canonical));
  assert.equal(row(run, "late").in, 0);
  assert.equal(await Deno.readTextFile(`${run.outDir}/sliding_window.late.ndjson`), "");
});

Deno.test("examples: realtime_batching.yaml cuts 10 full batches and a final partial one", async () => {
  const run = await runExample("realtime_batching.yaml");
  assertOk(run);
  assert.equal(run.stdout.length, 11);
  run.stdout.forEach((summary, i) => {
    const last = i === 10;
    const size = last ? 50 : 100;
    const first = i * 100;
    // data.value = 10 * sequence.
    const valueSum = 10 * (size * first + size * (size - 1) / 2);
    assert.deepEqual(
      { ...summary, processing_time: 0, processed_at: 0 },
      {
        batch_id: i + 1,
        batch_size: size,
        trigger: last ? "drain" : "size",
        processing_time: 0,
        processed_at: 0,
        first_timestamp: 1700000000 + first / 100,
        last_timestamp: 1700000000 + (first + size - 1) / 100,
        value_sum: valueSum,
      },
      `batch ${i + 1}`,
    );
    assert.ok(typeof summary.processing_time === "number" && summary.processing_time >= 0);
    assert.ok(typeof summary.processed_at === "number" && summary.processed_at > 0);
  });
});

Deno.test("examples: backpressure.yaml shows what each strategy drops and delivers", async () => {
  const run = await runExample("backpressure.yaml");
  assertOk(run);
  const delivered = new Map(
    run.stdout.map((r) => [(r.key as { consumer: string }).consumer, r]),
  );
  assert.deepEqual([...delivered.keys()].sort(), [
    "block",
    "drop_newest",
    "drop_oldest",
    "sample",
  ]);
  // block: the generator waited; nothing was lost.
  assert.equal(row(run, "block").dropped, 0);
  assert.equal(row(run, "block").in, 3000);
  assert.deepEqual(
    { count: delivered.get("block")!.count, min: delivered.get("block")!.min },
    { count: 3000, min: 0 },
  );
  assert.equal(delivered.get("block")!.max, 2999);
  for (const strategy of ["drop_oldest", "drop_newest", "sample"]) {
    const r = row(run, strategy);
    // The generator hands over more events at once than the 100 places.
    assert.ok(r.dropped > 0, `${strategy} dropped nothing:\n${run.err}`);
    assert.equal(r.in + r.dropped, 3000, `${strategy}: every event delivered or dropped`);
    assert.equal(
      delivered.get(strategy)!.count,
      r.in,
      `${strategy}: the window counts what got in`,
    );
  }
  // drop_oldest always admits the newest event; drop_newest always the first.
  assert.equal(delivered.get("drop_oldest")!.max, 2999);
  assert.equal(delivered.get("drop_newest")!.min, 0);
  assert.equal(run.deadLetters.letters.length, 0);
});

Deno.test("examples: custom_event_processor.yaml enriches, routes and handles events", async () => {
  const run = await runExample("custom_event_processor.yaml");
  assertOk(run);
  assertSameRecords(
    run.stdout,
    await readNdjson(`${EXPECTED}custom_event_processor.ndjson`),
    "revenue and engagement windows",
  );
  // The guide's routing_stats.
  assert.equal(row(run, "revenue_events").in, 100);
  assert.equal(row(run, "engagement").in, 200);
  assert.equal(row(run, "high_value_file").in, 50);
  assert.equal(row(run, "processor").out, 350);

  const purchases = await readNdjson(`${run.outDir}/revenue_events.ndjson`);
  assert.equal(purchases.length, 100);
  for (const p of purchases) {
    assert.equal(p.event_type, "purchase");
    assert.equal(p.user_type, "registered");
    assert.equal(typeof p.enriched_at, "number");
    assert.equal(p.revenue, (p.data as { value: number }).value);
    assert.equal(p.clicks, undefined, "only the purchase handler ran");
  }
  const highValue = await readNdjson(`${run.outDir}/high_value.ndjson`);
  assert.deepEqual(highValue.map((e) => e.sequence), Array.from({ length: 50 }, (_, i) => 250 + i));
  for (const e of highValue) {
    if (e.event_type === "click") {
      assert.deepEqual([e.clicks, e.url], [1, `/products/${e.sequence}`]);
    }
    if (e.event_type === "view") {
      assert.deepEqual([e.page_views, e.page], [1, `/pages/${e.user_id}`]);
    }
    if (e.event_type === "purchase") assert.equal(e.revenue, e.amount);
  }
});

Deno.test("examples: event_pipeline.yaml filters, transforms and aggregates", async () => {
  const run = await runExample("event_pipeline.yaml");
  assertOk(run);
  assertSameRecords(
    run.stdout,
    await readNdjson(`${EXPECTED}event_pipeline.ndjson`),
    "per-type totals",
  );
  assert.equal(row(run, "event_transform").in, 200, "100 events rejected by the time bound");
  const events = await readNdjson(`${run.outDir}/event_pipeline.ndjson`);
  assert.equal(events.length, 200);
  const first = events[0];
  assert.equal(first.sequence, 100);
  assert.equal(first.parsed_timestamp, "2023-11-14T22:13:30.000Z");
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode("user_0"));
  assert.equal(
    first.user_hash,
    [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join(""),
  );
  assert.deepEqual(first.flat_data, { value: 1000, "metadata.test": true });
});

Deno.test("examples: stream_health.yaml reports HIGH_ERROR_RATE every second", async () => {
  // The generator is paced on the clock: a virtual one makes 5 s instant.
  const clock = new VirtualClock(1_700_000_000_000);
  const run = await advanceUntil(clock, runExample("stream_health.yaml", { clock }));
  assertOk(run);
  assert.ok(run.stdout.length >= 4, `4 or 5 reports, got ${run.stdout.length}`);
  for (const report of run.stdout.slice(0, 4)) {
    assert.equal(report.health_status, "degraded");
    const alerts = report.alerts as { type: string; node?: string; value: number }[];
    const errorRate = alerts.find((a) => a.type === "HIGH_ERROR_RATE");
    assert.ok(errorRate, `no HIGH_ERROR_RATE in ${JSON.stringify(report)}`);
    assert.equal(errorRate.node, "validate");
    assert.ok(Math.abs(errorRate.value - 0.1) < 0.01, `error rate ${errorRate.value}`);
    assert.equal((report.metrics as Record<string, unknown>).nodes, undefined, "brief");
  }
  assert.deepEqual(
    { errors: row(run, "validate").errors, deadLettered: row(run, "validate").deadLettered },
    { errors: 100, deadLettered: 100 },
  );
  assert.equal(run.deadLetters.letters.length, 100);
  const validated = await readNdjson(`${run.outDir}/validated.ndjson`);
  assert.equal(validated.length, 900);
  assert.ok(validated.every((e) => (e.sequence as number) % 10 !== 9));
  const full = await readNdjson(`${run.outDir}/health_reports.ndjson`);
  assert.equal(full.length, run.stdout.length);
  assert.ok((full[0].metrics as { nodes: Record<string, unknown> }).nodes.validate);
});

Deno.test("examples: cli_pipeline.yaml and its sluice test file pass", async () => {
  const run = await runExample("cli_pipeline.yaml");
  assertOk(run);
  const events = await readNdjson(`${run.outDir}/cli_pipeline.ndjson`);
  events.forEach((e, i) => assertGenerated(e, i, 1700000000, 10));
  assert.equal(events.length, 5);
  let err = "";
  const code = await testCommand([`${EXAMPLES}/cli_pipeline_test.yaml`], {
    out: () => {},
    err: (t) => err += t,
  });
  assert.equal(code, 0, err);
});

Deno.test("examples: pipeline.ts builds a typed Flow that writes windows and batch totals", async () => {
  const outDir = await Deno.makeTempDir({ prefix: "sluice-example-" });
  const report = await buildPipeline({
    outDir,
    clock: new VirtualClock(0),
    deadLetters: new MemoryDeadLetters(),
    logger: createLogger({ level: "silent" }),
  }).run();
  assert.equal(report.status, "completed");
  const windows = await readNdjson(`${outDir}/pipeline_windows.ndjson`);
  // Purchases are every third event (sequence 2, 5, ...); amount = sequence / 10.
  const amounts = (from: number, to: number) => {
    const all: number[] = [];
    for (let s = 2; s < 6000; s += 3) if (s >= from && s < to) all.push(s / 10);
    return all;
  };
  const minute = (n: number) => {
    const a = amounts(n * 3000, (n + 1) * 3000);
    return {
      window_start: 1699999980 + 60 * n,
      window_end: 1700000040 + 60 * n,
      key: {},
      count: a.length,
      sum: a.reduce((x, y) => x + y, 0),
      max: Math.max(...a),
    };
  };
  assert.deepEqual(windows.map((w) => ({ ...w, sum: Math.round(w.sum as number) })), [
    { ...minute(0), sum: Math.round(minute(0).sum) },
    { ...minute(1), sum: Math.round(minute(1).sum) },
  ]);
  const totals = await readNdjson(`${outDir}/pipeline_batches.ndjson`);
  assert.deepEqual(
    totals.map((t) => [t.batch_id, t.count]),
    [1, 2, 3, 4, 5, 6, 7, 8].map((i) => [i, 250]),
  );
  const all = amounts(0, 6000);
  assert.equal(
    Math.round(totals.reduce((sum, t) => sum + (t.total as number), 0)),
    Math.round(all.reduce((x, y) => x + y, 0)),
  );
});

Deno.test("examples: the examples run by the relative path their headers show", async () => {
  // `deno task sluice run examples/<file>` passes a relative path; modules of
  // CodeNodes are relative to the workflow file.
  const run = await runExample("realtime_batching.yaml", { relativePath: true });
  assertOk(run);
  assert.equal(run.stdout.length, 11);
});

// ---------------------------------------------------------------------------
// Examples that need a service
// ---------------------------------------------------------------------------

Deno.test("examples: websocket_stream.yaml processes a feed in the guide's batches", async () => {
  const streamEnded = Promise.withResolvers<number>();
  const feed = startClickstreamFeed({
    durationSeconds: 1,
    ratePerSecond: 200,
    onStreamEnd: (sent) => streamEnded.resolve(sent),
  });
  const stop = new AbortController();
  const processedIds: unknown[] = [];
  const seenAll = Promise.withResolvers<void>();
  try {
    const running = runExample("websocket_stream.yaml", {
      env: { FEED_URL: feed.url, API_TOKEN: "test-token" },
      signal: stop.signal,
      onConsole: (result) => {
        for (const m of result.processed_messages as { id: unknown }[]) processedIds.push(m.id);
        if (processedIds.length >= 200) seenAll.resolve();
      },
    });
    // A run that ends before the feed is consumed fails the test instead of hanging it.
    const early = running.then((r) => {
      throw new Error(`the run ended early (exit ${r.code}):\n${r.err}`);
    });
    early.catch(() => {});
    assert.equal(await Promise.race([streamEnded.promise, early]), 200);
    // No second stream: the reconnect finds nobody listening.
    await feed.close();
    await Promise.race([seenAll.promise, early]);
    stop.abort();
    const run = await running;
    assert.equal(run.code, 0, run.err);
    assert.deepEqual(
      processedIds.slice(0, 200),
      Array.from({ length: 200 }, (_, i) => `evt-${i}`),
    );
    for (const result of run.stdout) {
      assert.equal(result.error_count, 0);
      assert.equal(result.total_processed, (result.processed_messages as unknown[]).length);
      assert.ok((result.total_processed as number) <= 100, "batches of at most batch_size");
      assert.match(String(result.batch_id), /^\d{4}-\d\d-\d\dT/);
    }
    assert.ok(!run.err.includes("test-token"), "the API token is never printed");
  } finally {
    stop.abort();
    await feed.close();
  }
});

kafkaTest(
  "examples: kafka_pipeline.yaml filters a topic into another, at least once",
  async (_t, brokers) => {
    const input = uniqueTopic("example-in");
    const output = uniqueTopic("example-out");
    await createTopic(brokers, input);
    await createTopic(brokers, output);
    // The events of the file's header.
    await kcatProduce(brokers, input, [
      '{"event_type":"click","user_id":"u1"}',
      '{"event_type":"view","user_id":"u2"}',
      '{"event_type":"purchase"}',
      "not json",
      '{"event_type":"purchase","user_id":"u3"}',
    ]);
    const stop = new AbortController();
    const running = runExample("kafka_pipeline.yaml", {
      env: { KAFKA_BROKERS: brokers, KAFKA_INPUT_TOPIC: input, KAFKA_OUTPUT_TOPIC: output },
      signal: stop.signal,
    });
    try {
      await waitFor(
        "two events on the output topic",
        async () => (await kcatConsume(brokers, output)).length >= 2,
        60_000,
      );
    } finally {
      stop.abort();
    }
    const run = await running;
    assert.equal(run.code, 0, run.err);
    const out = await kcatConsume(brokers, output);
    assert.deepEqual(out.map((m) => m.key), ["u1", "u3"]);
    const values = out.map((m) => JSON.parse(m.value));
    assert.deepEqual(values.map((v) => v.event_type), ["CLICK", "PURCHASE"]);
    assert.ok(values.every((v) => /^[0-9a-f]{64}$/.test(v.user_hash)));
    assert.equal(run.deadLetters.letters.length, 1, "the line that is not JSON");
  },
);

// ---------------------------------------------------------------------------
// The demo
// ---------------------------------------------------------------------------

Deno.test("startClickstreamFeed sends every connection the same events, then closes it", async () => {
  const feed = startClickstreamFeed({ durationSeconds: 0.3, ratePerSecond: 100 });
  try {
    const receive = () =>
      new Promise<{ events: ClickstreamEvent[]; code: number }>((resolve, reject) => {
        const events: ClickstreamEvent[] = [];
        const socket = new WebSocket(feed.url);
        socket.onmessage = (e) => events.push(JSON.parse(e.data));
        socket.onclose = (e) => resolve({ events, code: e.code });
        socket.onerror = () => reject(new Error("socket error"));
      });
    const [a, b] = await Promise.all([receive(), receive()]);
    assert.equal(a.code, 1000);
    assert.equal(a.events.length, 30);
    const withoutTime = (events: ClickstreamEvent[]) => events.map((e) => ({ ...e, timestamp: 0 }));
    assert.deepEqual(withoutTime(a.events), withoutTime(b.events));
    const random = seededRandom(1);
    assert.deepEqual(
      withoutTime(a.events),
      withoutTime(a.events.map((_, i) => clickstreamEvent(i, 0, random))),
    );
    assert.equal(a.events[0].event_type, "heartbeat");
  } finally {
    await feed.close();
  }
});

Deno.test("demoCommand checks its arguments", async (t) => {
  const call = async (args: string[]) => {
    let out = "";
    let err = "";
    const code = await demoCommand(args, { out: (s) => out += s, err: (s) => err += s }, {
      isTerminal: false,
      handleSignals: false,
    });
    return { code, out, err };
  };
  await t.step("--help", async () => {
    const r = await call(["--help"]);
    assert.equal(r.code, 0);
    assert.equal(r.out, DEMO_HELP + "\n");
  });
  await t.step("a duration that is not a positive number", async () => {
    for (const bad of ["0", "-1", "abc", "Infinity"]) {
      const r = await call([`--duration=${bad}`]);
      assert.equal(r.code, 2, bad);
      assert.match(r.err, /--duration must be a positive number of seconds/);
    }
  });
  await t.step("an unknown option", async () => {
    const r = await call(["--bogus"]);
    assert.equal(r.code, 2);
    assert.match(r.err, /bogus/);
  });
});

Deno.test("demoCommand windows every event the filter lets through", async () => {
  let out = "";
  let err = "";
  const code = await demoCommand(
    ["--duration", "1", "--rate", "200"],
    { out: (s) => out += s, err: (s) => err += s },
    { isTerminal: false, handleSignals: false },
  );
  assert.equal(code, 0, err);
  const rows = reportRows(err);
  assert.equal(rows.get("feed")?.out, 200, err);
  const windows = out.trim().split("\n").map((l) => JSON.parse(l));
  const counted = windows.reduce((sum, w) => sum + w.count, 0);
  assert.equal(counted, rows.get("router")?.in, "each routed event is in exactly one window");
  assert.equal(windows.length, rows.get("results")?.in);
  // Heartbeats (every 50th event) and bots are filtered out.
  assert.ok(rows.get("router")!.in < 200 - 4);
});

Deno.test("sluice demo --duration 3 exits 0 and prints window results", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "cli/main.ts", "demo", "--duration", "3"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, stderr);
  const windows = stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.ok(windows.length > 0, stderr);
  for (const w of windows) {
    assert.ok(w.window_end - w.window_start === 5, JSON.stringify(w));
    assert.ok(["page_view", "click", "add_to_cart", "purchase"].includes(w.key.event_type));
    assert.ok(w.count > 0);
  }
  assert.ok(windows.some((w) => "distinct_count" in w), "engagement windows");
  assert.ok(windows.some((w) => "sum" in w), "revenue windows");
  assert.match(stderr, /workflow demo completed/);
});

Deno.test("examples: custom_node.ts registers DedupNode, which hands its outputs over whole", async () => {
  const unique: Record<string, unknown>[] = [];
  const repeats: Record<string, unknown>[] = [];
  const report = await buildDedupWorkflow({
    unique: (e) => void unique.push(e),
    duplicates: (e) => void repeats.push(e),
    clock: new VirtualClock(0),
    deadLetters: new MemoryDeadLetters(),
    logger: createLogger({ level: "silent" }),
  }).run();
  assert.equal(report.status, "completed");
  // 1000 generated events over user_0 .. user_99: the first of each id is unique.
  assert.deepEqual(unique.map((e) => e.sequence), Array.from({ length: 100 }, (_, i) => i));
  assert.equal(repeats.length, 900);
  assert.deepEqual(repeats.slice(0, 3).map((e) => e.sequence), [100, 101, 102], "in order");
  const dedup = report.nodes.find((n) => n.id === "dedup")!;
  assert.deepEqual(dedup.outByPort, { out: 100, duplicates: 900 });
});
