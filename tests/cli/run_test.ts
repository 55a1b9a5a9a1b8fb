import assert from "node:assert/strict";
import { runCommand, type RunCommandOptions } from "../../cli/run.ts";
import type { Ticker } from "../../cli/status.ts";
import { VirtualClock } from "../../runtime/clock.ts";
import { MemoryDeadLetters } from "../../runtime/dead_letter.ts";
import { Registry } from "../../runtime/registry.ts";
import type { NodeSpec } from "../../runtime/registry.ts";
import { s } from "../../runtime/schema.ts";
import { builtins } from "../../actors/mod.ts";

const example = new URL("../../examples/cli_pipeline.yaml", import.meta.url).pathname;

function capture(): {
  io: { out(t: string): void; err(t: string): void };
  out: () => string;
  err: () => string;
} {
  let out = "";
  let err = "";
  return { io: { out: (t) => out += t, err: (t) => err += t }, out: () => out, err: () => err };
}

/** A ticker fired by hand. */
function manualTicker(): {
  ticker: Ticker;
  tick: () => void;
  intervals: number[];
  stopped: () => boolean;
} {
  let fn: (() => void) | undefined;
  let stopped = false;
  const intervals: number[] = [];
  return {
    ticker: (ms, tick) => {
      intervals.push(ms);
      fn = tick;
      return { stop: () => stopped = true };
    },
    tick: () => fn!(),
    intervals,
    stopped: () => stopped,
  };
}

/**
 * A source that emits `count` events, waits until every downstream node has
 * handled them (a checkpoint), reports that, and ends when released.
 */
function gated(): {
  registry: Registry;
  reached: Promise<void>;
  release: () => void;
  seen: unknown[];
} {
  const reached = Promise.withResolvers<void>();
  const release = Promise.withResolvers<void>();
  const seen: unknown[] = [];
  const gate: NodeSpec<{ count: number }> = {
    type: "Gate",
    kind: "source",
    description: "Test source.",
    config: s.object({ count: s.integer({ default: 3 }) }),
    create: (config) => ({
      async run(ctx) {
        for (let n = 0; n < config.count; n++) ctx.emit({ n });
        await ctx.flush();
        ctx.checkpoint(() => reached.resolve());
        const stopped = new Promise<void>((resolve) => {
          if (ctx.signal.aborted) resolve();
          ctx.signal.addEventListener("abort", () => resolve(), { once: true });
        });
        await Promise.race([release.promise, stopped]);
        return "end";
      },
    }),
  };
  const collect: NodeSpec<Record<string, never>> = {
    type: "Collect",
    kind: "sink",
    description: "Test sink.",
    config: s.object({}),
    create: () => ({ handle: (batch) => void seen.push(...batch) }),
  };
  return {
    registry: new Registry(builtins).with(gate, collect),
    reached: reached.promise,
    release: () => release.resolve(),
    seen,
  };
}

async function gatedFile(): Promise<string> {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/gated.yaml`;
  await Deno.writeTextFile(
    file,
    `nodes:
  - {id: src, type: Gate, config: {count: 3}}
  - {id: sink, type: Collect, config: {}}
connections:
  - {from: src, to: sink}
`,
  );
  return file;
}

Deno.test("runCommand runs a generator into a file and reports per node", async (t) => {
  const dir = await Deno.makeTempDir();
  await t.step("exact file content and report", async () => {
    const { io, out, err } = capture();
    const code = await runCommand([example], io, {
      env: (name) => ({ OUT_DIR: dir } as Record<string, string>)[name],
      clock: new VirtualClock(0),
      deadLetters: new MemoryDeadLetters(),
      isTerminal: false,
      ticker: manualTicker().ticker,
      handleSignals: false,
    });
    assert.equal(code, 0);
    assert.equal(out(), "");
    assert.equal(
      err(),
      "workflow cli_pipeline completed in 0.00s; dead letters: 0\n" +
        "  events           in         0  out         5  dropped 0  errors 0  restarts 0  dead-lettered 0\n" +
        "  out              in         5  out         0  dropped 0  errors 0  restarts 0  dead-lettered 0\n",
    );
    const lines = (await Deno.readTextFile(`${dir}/cli_pipeline.ndjson`)).split("\n");
    assert.equal(lines.pop(), "");
    const events = lines.map((l) => JSON.parse(l));
    // Ids are random UUIDs; everything else is determined by the config.
    for (const e of events) assert.match(e.id, /^[0-9a-f-]{36}$/);
    assert.deepEqual(
      events.map(({ id: _, ...rest }) => rest),
      [0, 1, 2, 3, 4].map((i) => ({
        timestamp: 1700000000 + i / 10,
        sequence: i,
        event_type: ["click", "view", "purchase"][i % 3],
        user_id: `user_${i}`,
        data: { value: i * 10, metadata: { test: true } },
      })),
    );
  });
  await t.step("--quiet prints nothing on success", async () => {
    const { io, out, err } = capture();
    const code = await runCommand([example, "--quiet"], io, {
      env: (name) => ({ OUT_DIR: dir, EVENT_COUNT: "2" } as Record<string, string>)[name],
      clock: new VirtualClock(0),
      deadLetters: new MemoryDeadLetters(),
      handleSignals: false,
    });
    assert.equal(code, 0);
    assert.equal(out() + err(), "");
    assert.equal((await Deno.readTextFile(`${dir}/cli_pipeline.ndjson`)).split("\n").length, 3);
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("runCommand exits 2 on config and usage errors, masking secrets", async (t) => {
  await t.step("config error", async () => {
    const { io, err } = capture();
    const file = new URL("../fixtures/broken/missing_variable.yaml", import.meta.url).pathname;
    const code = await runCommand([file], io, {
      env: (n) => n === "RATE" ? "fast-secret" : undefined,
    });
    assert.equal(code, 2);
    assert.equal(
      err(),
      "error: 3 config errors\n" +
        `  ${file}:7:22: nodes[0].config.message_count: environment variable EVENT_COUNT is not set (write \${EVENT_COUNT:-default} for a default)\n` +
        `  ${file}:8:7: nodes[0].config.rate_per_second: node "events" (GeneratorNode): expected number > 0, found the string "***"\n` +
        `  ${file}:12:13: nodes[1].config.path: environment variable OUT_DIR is not set (write \${OUT_DIR:-default} for a default)\n`,
    );
  });
  await t.step("usage", async () => {
    for (
      const args of [
        [],
        [example, "--log-format", "xml"],
        [example, "--status-interval", "-1"],
        [example, "--metrics-port", "http"],
        [example, "--drain-timeout", "0"],
        [example, "--nope"],
      ]
    ) {
      const { io, err } = capture();
      assert.equal(await runCommand(args, io), 2, args.join(" "));
      assert.match(err(), /^error: /);
    }
  });
});

Deno.test("runCommand exits 1 when the workflow fails", async () => {
  const boom: NodeSpec<Record<string, never>> = {
    type: "Boom",
    kind: "source",
    description: "Fails.",
    config: s.object({}),
    create: () => ({
      run() {
        return Promise.reject(new Error("connection refused"));
      },
    }),
  };
  const dir = await Deno.makeTempDir();
  const file = `${dir}/boom.yaml`;
  await Deno.writeTextFile(
    file,
    `nodes:
  - {id: src, type: Boom, supervision: {max_attempts: 1, initial_delay: 0}}
  - {id: out, type: ConsoleSinkNode}
connections:
  - {from: src, to: out}
`,
  );
  const { io, err } = capture();
  const code = await runCommand([file, "--quiet"], io, {
    registry: new Registry(builtins).with(boom),
    deadLetters: new MemoryDeadLetters(),
    handleSignals: false,
  });
  await Deno.remove(dir, { recursive: true });
  assert.equal(code, 1);
  assert.match(err(), /workflow boom failed/);
  assert.match(
    err(),
    /error: node "src" failed 2 times in a row \(max_attempts 1\); last error: connection refused/,
  );
});

Deno.test("runCommand prints a status line per tick when not on a terminal", async (t) => {
  for (const format of ["text", "json"] as const) {
    await t.step(format, async () => {
      const { registry, reached, release } = gated();
      const file = await gatedFile();
      const { io, err } = capture();
      const manual = manualTicker();
      const clock = new VirtualClock(1_000_000);
      const running = runCommand(
        [file, "--status-interval", "5", "--log-format", format],
        io,
        {
          registry,
          clock,
          ticker: manual.ticker,
          isTerminal: false,
          deadLetters: new MemoryDeadLetters(),
          logTime: () => "T",
          handleSignals: false,
        },
      );
      await reached;
      assert.deepEqual(manual.intervals, [5000]);
      manual.tick();
      const status = err().split("\n")[0];
      if (format === "text") {
        assert.equal(
          status,
          "T INFO  status gated: healthy, up 0ms, dead letters 0 | src 0.0/s | sink 0.0/s queue 0/1000",
        );
      } else {
        assert.deepEqual(JSON.parse(status), {
          time: "T",
          level: "info",
          message: "status",
          workflow: "gated",
          health: "healthy",
          reasons: [],
          uptime_ms: 0,
          dead_letters: 0,
          nodes: [
            {
              id: "src",
              state: "running",
              rate_per_second: 0,
              depth: 0,
              capacity: 0,
              utilization: 0,
              dropped: 0,
              errors: 0,
              restarts: 0,
              dead_lettered: 0,
            },
            {
              id: "sink",
              state: "running",
              rate_per_second: 0,
              depth: 0,
              capacity: 1000,
              utilization: 0,
              dropped: 0,
              errors: 0,
              restarts: 0,
              dead_lettered: 0,
            },
          ],
        });
      }
      release();
      assert.equal(await running, 0);
      assert.ok(manual.stopped());
      await Deno.remove(file.replace(/\/[^/]+$/, ""), { recursive: true });
    });
  }
});

Deno.test("runCommand redraws a live status table in place on a terminal", async () => {
  const { registry, reached, release } = gated();
  const file = await gatedFile();
  const { io, err } = capture();
  const manual = manualTicker();
  const running = runCommand([file], io, {
    registry,
    clock: new VirtualClock(1_000_000),
    ticker: manual.ticker,
    isTerminal: true,
    deadLetters: new MemoryDeadLetters(),
    handleSignals: false,
  });
  await reached;
  assert.deepEqual(manual.intervals, [1000]);
  const first = err();
  manual.tick();
  const table = [
    "sluice: gated up 0ms, healthy, dead letters 0",
    "NODE  TYPE     STATE    RATE/S   QUEUE  UTIL  DROPPED  ERRORS  RESTARTS  DEAD",
    "src   Gate     running     0.0       -     -        0       0         0     0",
    "sink  Collect  running     0.0  0/1000    0%        0       0         0     0",
  ];
  // Drawn once when the run starts (before the first event), then redrawn by the tick.
  assert.match(first, /^sluice: gated up 0ms, healthy, dead letters 0\nNODE /);
  assert.equal(err().slice(first.length), `\x1b[4A\r\x1b[J${table.map((l) => l + "\n").join("")}`);
  release();
  assert.equal(await running, 0);
  // The table is erased at the end and the report printed in its place.
  assert.ok(err().slice(first.length).includes("\x1b[4A\r\x1b[Jworkflow gated completed"));
});

Deno.test("runCommand serves /metrics and /health while the workflow runs", async () => {
  const { registry, reached, release } = gated();
  const file = await gatedFile();
  const { io, err } = capture();
  const listening = Promise.withResolvers<{ hostname: string; port: number }>();
  const options: RunCommandOptions = {
    registry,
    clock: new VirtualClock(1_000_000),
    ticker: manualTicker().ticker,
    isTerminal: false,
    deadLetters: new MemoryDeadLetters(),
    handleSignals: false,
    logTime: () => "T",
    onMetricsListen: (address) => listening.resolve(address),
  };
  const running = runCommand([file, "--metrics-port", "0"], io, options);
  const { hostname, port } = await listening.promise;
  assert.equal(hostname, "127.0.0.1");
  await reached;
  assert.equal(
    err().split("\n")[0],
    `T INFO  metrics at http://127.0.0.1:${port}/metrics and /health`,
  );

  const metrics = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(metrics.status, 200);
  assert.equal(metrics.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  const text = await metrics.text();
  const sample = (name: string, node: string, type: string) =>
    text.split("\n").find((l) =>
      l.startsWith(`${name}{workflow="gated",node="${node}",type="${type}"} `)
    );
  assert.equal(
    sample("sluice_messages_out_total", "src", "Gate"),
    'sluice_messages_out_total{workflow="gated",node="src",type="Gate"} 3',
  );
  assert.equal(
    sample("sluice_messages_in_total", "sink", "Collect"),
    'sluice_messages_in_total{workflow="gated",node="sink",type="Collect"} 3',
  );
  assert.ok(text.includes('sluice_dead_letters_total{workflow="gated"} 0\n'));

  const health = await fetch(`http://127.0.0.1:${port}/health`);
  assert.equal(health.status, 200);
  const body = await health.json();
  assert.equal(body.status, "healthy");
  assert.deepEqual(body.reasons, []);
  assert.deepEqual(
    body.snapshot.nodes.map((n: { id: string; messagesIn: number }) => [n.id, n.messagesIn]),
    [["src", 0], ["sink", 3]],
  );

  const missing = await fetch(`http://127.0.0.1:${port}/nothing`);
  assert.equal(missing.status, 404);
  await missing.body?.cancel();

  release();
  assert.equal(await running, 0);
  // The server is gone once the run is over.
  await assert.rejects(fetch(`http://127.0.0.1:${port}/metrics`));
});

Deno.test("runCommand stops gracefully when its signal aborts", async () => {
  const { registry, reached } = gated();
  const file = await gatedFile();
  const { io, err } = capture();
  const stop = new AbortController();
  const running = runCommand([file], io, {
    registry,
    clock: new VirtualClock(1_000_000),
    ticker: manualTicker().ticker,
    isTerminal: false,
    deadLetters: new MemoryDeadLetters(),
    handleSignals: false,
    logTime: () => "T",
    signal: stop.signal,
  });
  await reached;
  stop.abort();
  assert.equal(await running, 0);
  assert.ok(
    err().startsWith(
      "T INFO  stopping: draining in-flight messages workflow=gated\nworkflow gated stopped",
    ),
  );
});

Deno.test("runCommand shows what a HealthMonitorNode last reported", async () => {
  const reached = Promise.withResolvers<void>();
  const release = Promise.withResolvers<void>();
  // Stands in for the real monitor: emits one report, then waits.
  const monitor: NodeSpec<Record<string, never>> = {
    type: "HealthMonitorNode",
    kind: "source",
    description: "Test monitor.",
    config: s.object({}),
    create: () => ({
      async run(ctx) {
        ctx.emit({
          health_status: "degraded",
          alerts: [{ type: "HIGH_LATENCY", node: "sink", message: "p95 9s, above 5s" }],
        });
        await ctx.flush();
        ctx.checkpoint(() => reached.resolve());
        await release.promise;
        return "end";
      },
    }),
  };
  const registry = new Registry(builtins.filter((spec) => spec.type !== "HealthMonitorNode"))
    .with(monitor);
  const dir = await Deno.makeTempDir();
  const file = `${dir}/monitored.yaml`;
  await Deno.writeTextFile(
    file,
    `nodes:
  - {id: health, type: HealthMonitorNode, config: {}}
  - {id: reports, type: FileSinkNode, config: {path: reports.ndjson}}
connections:
  - {from: health, to: reports}
`,
  );
  const { io, err } = capture();
  const manual = manualTicker();
  const running = runCommand([file], io, {
    registry,
    clock: new VirtualClock(1_000_000),
    ticker: manual.ticker,
    isTerminal: false,
    deadLetters: new MemoryDeadLetters(),
    handleSignals: false,
    logTime: () => "T",
  });
  await reached.promise;
  manual.tick();
  assert.equal(
    err().split("\n")[0],
    'T INFO  status monitored: degraded, up 0ms, dead letters 0 | health 0.0/s | reports 0.0/s queue 0/1000 | degraded: monitor "health": HIGH_LATENCY on "sink": p95 9s, above 5s',
  );
  release.resolve();
  assert.equal(await running, 0);
  // The monitor's output still reaches its sink.
  assert.equal(
    await Deno.readTextFile(`${dir}/reports.ndjson`),
    '{"health_status":"degraded","alerts":[{"type":"HIGH_LATENCY","node":"sink","message":"p95 9s, above 5s"}]}\n',
  );
  await Deno.remove(dir, { recursive: true });
});
