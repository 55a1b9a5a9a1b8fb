/**
 * `sluice run <workflow.yaml>`: runs a workflow until its sources end or
 * SIGINT/SIGTERM, then drains.
 *
 * @module
 */
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import type { Clock } from "../runtime/clock.ts";
import { ConfigError, formatIssue } from "../runtime/errors.ts";
import { type DeadLetterSink, FileDeadLetters } from "../runtime/dead_letter.ts";
import { dirname } from "../runtime/config.ts";
import { createLogger, redact } from "../runtime/log.ts";
import { Registry } from "../runtime/registry.ts";
import type { RunReport, Workflow } from "../runtime/workflow.ts";
import type { WorkflowSnapshot } from "../runtime/metrics.ts";
import { builtins } from "../actors/mod.ts";
import { missingPermissions, requiredPermissions } from "./permissions.ts";
import { resolvePath } from "../actors/sinks/file.ts";
import { checkWorkflowFile } from "./load.ts";
import { type MetricsServer, serveMetrics } from "./metrics_server.ts";
import {
  combineHealth,
  HealthTracker,
  LiveStatus,
  type MonitorReport,
  realTicker,
  statusFields,
  statusLine,
  statusTable,
  tapHealthMonitors,
  type Ticker,
  withRates,
} from "./status.ts";

/** Exit codes of every command. */
export const EXIT = { ok: 0, runtime: 1, usage: 2 } as const;

/** Help text of `sluice run`. */
export const RUN_HELP = `Usage: sluice run <workflow.yaml> [options]

Runs a workflow until its sources end, or until SIGINT/SIGTERM, then drains:
sources stop, in-flight messages flow through, sinks flush. A second signal
stops at once.

While it runs, the status of every node (rate, mailbox depth and
utilization, drops, errors, restarts, dead letters) and the health
(healthy, degraded, unhealthy) are shown: redrawn in place every second
when stderr is a terminal, otherwise as a status line every
--status-interval seconds.

Options:
  --quiet                  No status output; errors only.
  --log-format <fmt>       text (default) or json (status lines become JSON too).
  --status-interval <s>    Seconds between status lines when not on a terminal
                           (default 10; 0 turns them off).
  --metrics-port <n>       Serve Prometheus text at /metrics and health JSON at
                           /health on this port (0 picks a free one).
  --metrics-host <host>    Interface for --metrics-port (default 127.0.0.1).
  --drain-timeout <s>      Longest graceful drain, in seconds (default 30).
  -h, --help               This help.

Exit codes: 0 ok, 1 runtime failure, 2 bad config or usage.`;

/** I/O used by commands (replaceable in tests). */
export interface CommandIo {
  /** Writes to stdout. */
  out(text: string): void;
  /** Writes to stderr. */
  err(text: string): void;
}

/** Standard streams. */
export const stdio: CommandIo = {
  out: (text) => Deno.stdout.writeSync(new TextEncoder().encode(text)),
  err: (text) => Deno.stderr.writeSync(new TextEncoder().encode(text)),
};

/**
 * Parses a command's arguments (options and positionals) and answers the two
 * cases every command answers the same way: a usage error, printed with the
 * command's help, and `--help`.
 *
 * @param args The command's arguments.
 * @param options The command's options, `help` included.
 * @param help The command's help text.
 * @param io Where to print.
 * @returns The parsed values and positionals, or the exit code to return.
 * @example
 * ```ts
 * import { parseCommandArgs } from "./run.ts";
 * const io = { out: () => {}, err: () => {} };
 * const help = { help: { type: "boolean", short: "h", default: false } } as const;
 * console.assert(parseCommandArgs(["--nope"], help, "usage", io) === 2);
 * console.assert(parseCommandArgs(["-h"], help, "usage", io) === 0);
 * ```
 */
export function parseCommandArgs<const O extends ParseArgsOptionsConfig>(
  args: string[],
  options: O,
  help: string,
  io: CommandIo,
) {
  let parsed;
  try {
    parsed = parseArgs({ args, allowPositionals: true, options });
  } catch (error) {
    io.err(`error: ${(error as Error).message}\n\n${help}\n`);
    return EXIT.usage;
  }
  if ((parsed.values as { help?: boolean }).help) {
    io.out(help + "\n");
    return EXIT.ok;
  }
  return parsed;
}

/**
 * Prints a config error, one issue per line.
 *
 * @param error The error.
 * @param io Where to print.
 * @param secrets Values to mask.
 * @example Printing a config error
 * ```ts
 * import { printConfigError } from "./run.ts";
 * import { ConfigError } from "../runtime/errors.ts";
 * let text = "";
 * printConfigError(new ConfigError([{ path: "a", message: "b" }]), { out: () => {}, err: (t) => text += t });
 * console.assert(text.includes("a: b"));
 * ```
 */
export function printConfigError(
  error: ConfigError,
  io: CommandIo,
  secrets: readonly string[] = [],
): void {
  const lines = error.issues.map((i) => "  " + formatIssue(i));
  io.err(
    redact(
      `error: ${error.issues.length} config error${error.issues.length === 1 ? "" : "s"}\n${
        lines.join("\n")
      }\n`,
      secrets,
    ),
  );
}

/**
 * Summarises a report in one line per node.
 *
 * @param report The run report.
 * @returns Text.
 * @example Summarising a run
 * ```ts
 * import { formatReport } from "./run.ts";
 * const text = formatReport({ name: "w", status: "completed", durationMs: 5, nodes: [], deadLetters: 0, abandoned: 0 });
 * console.assert(text.includes("completed"));
 * ```
 */
export function formatReport(report: RunReport): string {
  const lines = [
    `workflow ${report.name} ${report.status} in ${(report.durationMs / 1000).toFixed(2)}s` +
    `; dead letters: ${report.deadLetters}${
      report.abandoned ? `; abandoned: ${report.abandoned}` : ""
    }`,
  ];
  for (const n of report.nodes) {
    lines.push(
      `  ${n.id.padEnd(16)} in ${String(n.messagesIn).padStart(9)}  out ${
        String(n.messagesOut).padStart(9)
      }  dropped ${n.dropped}  errors ${n.errors}  restarts ${n.restarts}  dead-lettered ${n.deadLettered}`,
    );
  }
  if (report.error) lines.push(`error: ${report.error.message}`);
  return lines.join("\n") + "\n";
}

/** Options of {@linkcode runCommand} and {@linkcode runWorkflowWithStatus} (tests, embedding). */
export interface RunCommandOptions {
  /** The node types. @default {new Registry(builtins)} */
  registry?: Registry;
  /** Looks up `${VAR}`. @default {Deno.env.get} */
  env?: (name: string) => string | undefined;
  /** The workflow's clock. @default {new RealClock()} */
  clock?: Clock;
  /** Where dead letters go. @default {the file's `dead_letter.path`, or sluice-dead-letters.ndjson} */
  deadLetters?: DeadLetterSink;
  /** Drives the status display. @default {realTicker()} */
  ticker?: Ticker;
  /** Whether stderr is a terminal (live status). @default {Deno.stderr.isTerminal()} */
  isTerminal?: boolean;
  /** Time stamp of log lines. @default {the current time, ISO 8601} */
  logTime?: () => string;
  /** Aborting it stops the workflow gracefully. */
  signal?: AbortSignal;
  /** Stop gracefully on SIGINT/SIGTERM. @default {true} */
  handleSignals?: boolean;
  /** Called when the metrics server listens (with the real port when 0 was asked for). */
  onMetricsListen?: (address: { hostname: string; port: number }) => void;
}

/**
 * Runs `sluice run`.
 *
 * @param args Arguments after `run`.
 * @param io Output streams.
 * @param options Registry, clock, ticker and the like, for tests.
 * @returns The exit code.
 * @example Running a workflow file
 * ```ts ignore
 * import { runCommand } from "./run.ts";
 * Deno.exit(await runCommand(["workflow.yaml"]));
 * ```
 */
export async function runCommand(
  args: string[],
  io: CommandIo = stdio,
  options: RunCommandOptions = {},
): Promise<number> {
  const parsedArgs = parseCommandArgs(
    args,
    {
      quiet: { type: "boolean", default: false },
      "log-format": { type: "string", default: "text" },
      "drain-timeout": { type: "string", default: "30" },
      "status-interval": { type: "string", default: "10" },
      "metrics-port": { type: "string" },
      "metrics-host": { type: "string", default: "127.0.0.1" },
      help: { type: "boolean", short: "h", default: false },
    },
    RUN_HELP,
    io,
  );
  if (typeof parsedArgs === "number") return parsedArgs;
  const { values, positionals } = parsedArgs;
  if (positionals.length !== 1) {
    io.err(`error: expected one workflow file, got ${positionals.length}\n\n${RUN_HELP}\n`);
    return EXIT.usage;
  }
  const format = values["log-format"];
  if (format !== "text" && format !== "json") {
    io.err(`error: --log-format must be text or json, got "${format}"\n`);
    return EXIT.usage;
  }
  const drainSeconds = Number(values["drain-timeout"]);
  if (!(drainSeconds > 0)) {
    io.err(`error: --drain-timeout must be a positive number of seconds\n`);
    return EXIT.usage;
  }
  const statusSeconds = Number(values["status-interval"]);
  if (!(statusSeconds >= 0)) {
    io.err(`error: --status-interval must be a number of seconds >= 0\n`);
    return EXIT.usage;
  }
  let metricsPort: number | undefined;
  if (values["metrics-port"] !== undefined) {
    metricsPort = Number(values["metrics-port"]);
    if (!Number.isInteger(metricsPort) || metricsPort < 0 || metricsPort > 65535) {
      io.err(
        `error: --metrics-port must be a port number (0-65535), got "${values["metrics-port"]}"\n`,
      );
      return EXIT.usage;
    }
  }
  const file = positionals[0];
  const live = !values.quiet && (options.isTerminal ?? Deno.stderr.isTerminal())
    ? new LiveStatus(io.err)
    : undefined;
  let secrets: readonly string[] = [];
  const logger = createLogger({
    level: values.quiet ? "error" : "info",
    format,
    write: (line) => live ? live.log(line) : io.err(line + "\n"),
    redact: () => secrets,
    time: options.logTime,
  });
  const baseDir = dirname(file);
  const monitors = new Map<string, MonitorReport>();
  const result = await checkWorkflowFile(file, {
    registry: tapHealthMonitors(
      options.registry ?? new Registry(builtins),
      (report) => monitors.set(report.node, report),
    ),
    env: options.env,
    clock: options.clock,
    logger,
    deadLetters: (parsed) =>
      options.deadLetters ?? new FileDeadLetters(
        resolvePath(baseDir, parsed.definition.dead_letter?.path ?? "sluice-dead-letters.ndjson"),
      ),
  });
  secrets = result.secrets;
  if (!result.workflow) {
    printConfigError(new ConfigError(result.issues), io, secrets);
    return EXIT.usage;
  }
  const needed = requiredPermissions(
    result.workflow,
    options.registry ?? new Registry(builtins),
    metricsPort === undefined ? [] : ["--allow-net"],
  );
  const missing = missingPermissions(needed);
  if (missing.length > 0) {
    io.err(
      `error: this workflow needs ${missing.join(" ")} (in all: ${needed.join(" ")})\n` +
        `  deno run ${needed.join(" ")} jsr:@sluice/sluice/cli run ${file}\n`,
    );
    return EXIT.usage;
  }
  const report = await runWorkflowWithStatus(result.workflow, io, {
    ...options,
    quiet: values.quiet,
    live,
    json: format === "json",
    statusIntervalMs: statusSeconds * 1000,
    metricsPort,
    metricsHost: values["metrics-host"],
    secrets,
    drainTimeoutMs: drainSeconds * 1000,
    log: (line, fields) => logger.info(line, fields),
    monitors: () => [...monitors.values()],
  });
  if (report === undefined) return EXIT.runtime;
  if (!values.quiet || report.status === "failed") {
    io.err(redact(formatReport(report), secrets));
  }
  return report.status === "failed" ? EXIT.runtime : EXIT.ok;
}

/** Options of {@linkcode runWorkflowWithStatus}. */
export interface RunWithStatusOptions extends RunCommandOptions {
  /** No status output. */
  quiet?: boolean;
  /** The live display, when on a terminal. */
  live?: LiveStatus;
  /** Status lines as JSON fields rather than text. */
  json?: boolean;
  /** Milliseconds between plain status lines; 0 for none. @default {10000} */
  statusIntervalMs?: number;
  /** Port of the metrics server; none when absent. */
  metricsPort?: number;
  /** Interface of the metrics server. @default {"127.0.0.1"} */
  metricsHost?: string;
  /** Values to mask. */
  secrets?: readonly string[];
  /** Longest graceful drain. */
  drainTimeoutMs?: number;
  /** Writes a status or info line. */
  log?: (line: string, fields?: Record<string, unknown>) => void;
  /** The latest reports of the workflow's HealthMonitorNodes (see {@linkcode tapHealthMonitors}). */
  monitors?: () => readonly MonitorReport[];
}

/**
 * Runs a workflow with the CLI's status display and metrics endpoint: the
 * live table on a terminal, periodic status lines otherwise, and
 * `/metrics` and `/health` when a metrics port is given.
 *
 * @param workflow The workflow to run.
 * @param io Output streams.
 * @param options Display, metrics and run options.
 * @returns The run report, or `undefined` when the metrics server could not start.
 * @example Running with a status callback
 * ```ts
 * import { runWorkflowWithStatus } from "./run.ts";
 * import { Registry, VirtualClock, Workflow, MemoryDeadLetters } from "../mod.ts";
 * import { builtins } from "../actors/mod.ts";
 * const workflow = new Workflow({ registry: new Registry(builtins), clock: new VirtualClock(0), deadLetters: new MemoryDeadLetters() })
 *   .addNode("GeneratorNode", "g", { message_count: 2 })
 *   .addNode("FunctionNode", "f", { fn: () => {} })
 *   .addConnection("g", "f");
 * const report = await runWorkflowWithStatus(workflow, { out: () => {}, err: () => {} }, { quiet: true });
 * console.assert(report?.status === "completed");
 * ```
 */
export async function runWorkflowWithStatus(
  workflow: Workflow,
  io: CommandIo,
  options: RunWithStatusOptions = {},
): Promise<RunReport | undefined> {
  const secrets = options.secrets ?? [];
  const tracker = new HealthTracker();
  const assess = (snapshot: WorkflowSnapshot) =>
    combineHealth(tracker.assess(snapshot), options.monitors?.() ?? []);
  const live = options.quiet ? undefined : options.live;
  const log = options.log ?? ((line: string) => io.err(line + "\n"));
  let server: MetricsServer | undefined;
  if (options.metricsPort !== undefined) {
    try {
      server = serveMetrics({
        snapshot: () => workflow.snapshot(),
        health: assess,
        port: options.metricsPort,
        hostname: options.metricsHost,
        secrets,
        onListen: options.onMetricsListen,
      });
    } catch (error) {
      io.err(
        `error: cannot serve metrics on ${
          options.metricsHost ?? "127.0.0.1"
        }:${options.metricsPort}: ${(error as Error).message}\n`,
      );
      return undefined;
    }
    if (!options.quiet) {
      log(`metrics at http://${hostForUrl(server.hostname)}:${server.port}/metrics and /health`);
    }
  }
  const ticker = options.ticker ?? realTicker();
  let previous: WorkflowSnapshot | undefined;
  const tick = () => {
    const current = workflow.snapshot();
    const snapshot = withRates(current, previous);
    previous = current;
    const health = assess(snapshot);
    if (live) live.render(statusTable(snapshot, health).map((l) => redact(l, secrets)));
    else if (options.json) log("status", statusFields(snapshot, health));
    else log(redact(statusLine(snapshot, health), secrets));
  };
  const intervalMs = live ? 1000 : options.statusIntervalMs ?? 10_000;
  const ticking = !options.quiet && intervalMs > 0 ? ticker(intervalMs, tick) : undefined;
  try {
    const running = workflow.run({
      handleSignals: options.handleSignals ?? true,
      signal: options.signal,
      drainTimeoutMs: options.drainTimeoutMs,
    });
    // The actors exist as soon as run() returns its promise: draw at once
    // (and measure the first interval's rates from here).
    if (live) tick();
    else previous = workflow.snapshot();
    return await running;
  } finally {
    ticking?.stop();
    live?.clear();
    await server?.shutdown();
  }
}

function hostForUrl(hostname: string): string {
  return hostname.includes(":") ? `[${hostname}]` : hostname;
}
