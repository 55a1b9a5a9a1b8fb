/**
 * `sluice demo`: runs an embedded pipeline that needs no services, with the
 * live status when stderr is a terminal.
 *
 * @module
 */
import { buildWorkflow, parseWorkflowText } from "../runtime/config.ts";
import { MemoryDeadLetters } from "../runtime/dead_letter.ts";
import { createLogger } from "../runtime/log.ts";
import { Registry } from "../runtime/registry.ts";
import { builtins } from "../actors/mod.ts";
import { type CommandIo, EXIT, formatReport } from "./run.ts";
import { runWorkflowWithStatus } from "./run.ts";
import { LiveStatus } from "./status.ts";

/** The embedded demo workflow. */
export const DEMO_WORKFLOW = `name: demo
nodes:
  - id: events
    type: GeneratorNode
    config: {message_count: 20, rate_per_second: 10, realtime: true}
  - id: out
    type: ConsoleSinkNode
connections:
  - {from: events, to: out}
`;

/**
 * The demo with the live status: longer, and writing to a file, because
 * events printed on the same terminal would scroll the status away.
 *
 * @param path The NDJSON file for the events.
 * @returns The workflow YAML.
 * @example
 * ```ts
 * import { liveDemoWorkflow } from "./demo.ts";
 * console.assert(liveDemoWorkflow("/tmp/x.ndjson").includes('path: "/tmp/x.ndjson"'));
 * ```
 */
export function liveDemoWorkflow(path: string): string {
  return `name: demo
nodes:
  - id: events
    type: GeneratorNode
    config: {message_count: 500, rate_per_second: 50, realtime: true}
  - id: out
    type: FileSinkNode
    config: {path: ${JSON.stringify(path)}}
connections:
  - {from: events, to: out}
`;
}

/** Help text of `sluice demo`. */
export const DEMO_HELP = `Usage: sluice demo

Runs an embedded pipeline that needs no services: generated events to the
console. On a terminal it shows the live status instead and writes the
events to a temporary file. Stop it with Ctrl-C.`;

/**
 * Runs the demo.
 *
 * @param args `--help` or nothing.
 * @param io Output streams.
 * @returns The exit code.
 * @example
 * ```ts ignore
 * import { demoCommand } from "./demo.ts";
 * await demoCommand([]);
 * ```
 */
export async function demoCommand(args: string[], io: CommandIo): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    io.out(DEMO_HELP + "\n");
    return EXIT.ok;
  }
  if (args.length > 0) {
    io.err(`error: unexpected arguments: ${args.join(" ")}\n\n${DEMO_HELP}\n`);
    return EXIT.usage;
  }
  const live = Deno.stderr.isTerminal() ? new LiveStatus(io.err) : undefined;
  let eventsFile: string | undefined;
  if (live && Deno.stdout.isTerminal()) {
    eventsFile = `${await Deno.makeTempDir({ prefix: "sluice-demo-" })}/events.ndjson`;
  }
  const workflow = buildWorkflow(
    parseWorkflowText(eventsFile ? liveDemoWorkflow(eventsFile) : DEMO_WORKFLOW, {
      file: "<demo>",
    }),
    {
      registry: new Registry(builtins),
      deadLetters: new MemoryDeadLetters(),
      logger: createLogger({
        write: (line) => live ? live.log(line) : io.err(line + "\n"),
      }),
    },
  );
  const report = await runWorkflowWithStatus(workflow, io, { live, statusIntervalMs: 0 });
  if (!report) return EXIT.runtime;
  io.err(formatReport(report));
  if (eventsFile) io.err(`events written to ${eventsFile}\n`);
  return report.status === "failed" ? EXIT.runtime : EXIT.ok;
}
