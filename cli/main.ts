/**
 * The `sluice` command line: `sluice run <workflow.yaml>`.
 *
 * @example
 * ```sh
 * deno run -A jsr:@sluice/sluice/cli run workflow.yaml
 * ```
 *
 * @module
 */
import { EXIT, runCommand, stdio } from "./run.ts";
import type { CommandIo } from "./run.ts";

/** Top-level help. */
export const HELP = `sluice: an actor-based stream runtime for Deno

Usage: sluice <command> [options]

Commands:
  run <workflow.yaml>    Run a workflow until its sources end or SIGINT/SIGTERM.
  demo                   Run the embedded demo pipeline (no services needed).

Run \`sluice <command> --help\` for a command's options.
Exit codes: 0 ok, 1 runtime failure, 2 bad config or usage.`;

/**
 * Runs the CLI with arguments and returns the exit code.
 *
 * @param args Command-line arguments.
 * @param io Output streams.
 * @returns The exit code.
 * @example
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
    case "demo": {
      const { demoCommand } = await import("./demo.ts");
      return await demoCommand(rest, io);
    }
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
