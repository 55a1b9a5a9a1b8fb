/**
 * `sluice run <workflow.yaml>`: runs a workflow until its sources end or
 * SIGINT/SIGTERM, then drains.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { buildWorkflow, parseWorkflowText } from "../runtime/config.ts";
import { ConfigError, formatIssue } from "../runtime/errors.ts";
import { FileDeadLetters } from "../runtime/dead_letter.ts";
import { createLogger, redact } from "../runtime/log.ts";
import { Registry } from "../runtime/registry.ts";
import type { RunReport } from "../runtime/workflow.ts";
import { builtins } from "../actors/mod.ts";
import { resolvePath } from "../actors/sinks/file.ts";

/** Exit codes of every command. */
export const EXIT = { ok: 0, runtime: 1, usage: 2 } as const;

/** Help text of `sluice run`. */
export const RUN_HELP = `Usage: sluice run <workflow.yaml> [options]

Runs a workflow until its sources end, or until SIGINT/SIGTERM, then drains:
sources stop, in-flight messages flow through, sinks flush.

Options:
  --quiet              No status output; errors only.
  --log-format <fmt>   text (default) or json.
  --drain-timeout <s>  Longest graceful drain, in seconds (default 30).
  -h, --help           This help.

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
 * Prints a config error, one issue per line.
 *
 * @param error The error.
 * @param io Where to print.
 * @param secrets Values to mask.
 * @example
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
 * @example
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

/**
 * Runs `sluice run`.
 *
 * @param args Arguments after `run`.
 * @param io Output streams.
 * @returns The exit code.
 * @example
 * ```ts ignore
 * import { runCommand } from "./run.ts";
 * Deno.exit(await runCommand(["examples/generator.yaml"]));
 * ```
 */
export async function runCommand(args: string[], io: CommandIo = stdio): Promise<number> {
  let parsedArgs;
  try {
    parsedArgs = parseArgs({
      args,
      allowPositionals: true,
      options: {
        quiet: { type: "boolean", default: false },
        "log-format": { type: "string", default: "text" },
        "drain-timeout": { type: "string", default: "30" },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (error) {
    io.err(`error: ${(error as Error).message}\n\n${RUN_HELP}\n`);
    return EXIT.usage;
  }
  const { values, positionals } = parsedArgs;
  if (values.help) {
    io.out(RUN_HELP + "\n");
    return EXIT.ok;
  }
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
  const file = positionals[0];
  let secrets: readonly string[] = [];
  const logger = createLogger({
    level: values.quiet ? "error" : "info",
    format,
    write: (line) => io.err(line + "\n"),
    redact: () => secrets,
  });
  let workflow;
  try {
    const parsed = parseWorkflowText(await readWorkflowFile(file), { file });
    secrets = parsed.secrets;
    const baseDir = dirname(file);
    workflow = buildWorkflow(parsed, {
      registry: new Registry(builtins),
      logger,
      baseDir,
      deadLetters: new FileDeadLetters(
        resolvePath(baseDir, parsed.definition.dead_letter?.path ?? "sluice-dead-letters.ndjson"),
      ),
    });
  } catch (error) {
    if (error instanceof ConfigError) {
      printConfigError(error, io, secrets);
      return EXIT.usage;
    }
    throw error;
  }
  const report = await workflow.run({
    handleSignals: true,
    drainTimeoutMs: drainSeconds * 1000,
  });
  if (!values.quiet || report.status === "failed") {
    io.err(redact(formatReport(report), secrets));
  }
  return report.status === "failed" ? EXIT.runtime : EXIT.ok;
}

/**
 * Reads a workflow file, turning a read failure into a {@linkcode ConfigError}.
 *
 * @param file The path.
 * @returns The text.
 * @throws {ConfigError} When the file cannot be read.
 * @example
 * ```ts ignore
 * import { readWorkflowFile } from "./run.ts";
 * const text = await readWorkflowFile("workflow.yaml");
 * ```
 */
export async function readWorkflowFile(file: string): Promise<string> {
  try {
    return await Deno.readTextFile(file);
  } catch (error) {
    throw new ConfigError([{
      path: "",
      message: `cannot read workflow file ${file}: ${(error as Error).message}`,
    }], { cause: error });
  }
}

/**
 * The directory of a path (`.` when it has none).
 *
 * @param path A file path.
 * @returns Its directory.
 * @example
 * ```ts
 * import { dirname } from "./run.ts";
 * console.assert(dirname("a/b.yaml") === "a" && dirname("b.yaml") === ".");
 * ```
 */
export function dirname(path: string): string {
  const i = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  if (i < 0) return ".";
  return i === 0 ? "/" : path.slice(0, i);
}
