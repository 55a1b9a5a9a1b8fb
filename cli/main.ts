/**
 * The `sluice` command line: run, validate, graph and test workflow files,
 * and list the node types.
 *
 * @example Running the CLI from JSR
 * ```sh
 * deno run -A jsr:@sluice/sluice/cli run workflow.yaml
 * deno run -A jsr:@sluice/sluice/cli validate workflow.yaml
 * ```
 *
 * @module
 */
import { EXIT, runCommand, stdio } from "./run.ts";
import type { CommandIo } from "./run.ts";
import { demoCommand } from "./demo.ts";
import { graphCommand } from "./graph.ts";
import { nodesCommand } from "./nodes.ts";
import { testCommand } from "./test.ts";
import { validateCommand } from "./validate.ts";

export type { CommandIo } from "./run.ts";

/** Top-level help. */
export const HELP = `sluice: an actor-based stream runtime for Deno

Usage: sluice <command> [options]

Commands:
  run <workflow.yaml>        Run a workflow until its sources end or SIGINT/SIGTERM,
                             with a live status and optional Prometheus metrics.
  validate <workflow.yaml>   Check workflow files; print every issue as file:line:col.
  graph <workflow.yaml>      Print a workflow as a Mermaid or Graphviz diagram.
  test <file_test.yaml>      Run workflow unit tests with in-memory sources and sinks.
  nodes [TYPE]               List node types, or show one type's config keys.
  demo                       Run the embedded demo pipeline (no services needed).

Run \`sluice <command> --help\` for a command's options.
Exit codes: 0 ok, 1 runtime failure (or a failed test), 2 bad config or usage.`;

/**
 * Runs the CLI with arguments and returns the exit code.
 *
 * @param args Command-line arguments.
 * @param io Output streams.
 * @returns The exit code.
 * @example Printing the help
 * ```ts
 * import { main } from "./main.ts";
 * const code = await main(["--help"], { out: () => {}, err: () => {} });
 * console.assert(code === 0);
 * ```
 */
export async function main(args: string[], io: CommandIo = stdio): Promise<number> {
  const [command, ...rest] = args;
  switch (command) {
    case "run":
      return await runCommand(rest, io);
    case "validate":
      return await validateCommand(rest, io);
    case "graph":
      return await graphCommand(rest, io);
    case "test":
      return await testCommand(rest, io);
    case "nodes":
      return nodesCommand(rest, io);
    case "demo":
      return await demoCommand(rest, io);
    case undefined:
    case "help":
    case "-h":
    case "--help":
      io.out(HELP + "\n");
      return command === undefined ? EXIT.usage : EXIT.ok;
    default:
      io.err(`error: unknown command "${command}"\n\n${HELP}\n`);
      return EXIT.usage;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
