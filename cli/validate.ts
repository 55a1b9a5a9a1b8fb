/**
 * `sluice validate <workflow.yaml>...`: checks workflow files without
 * running them and reports every issue at once as `file:line:col: path: message`.
 *
 * @module
 */
import { formatIssue } from "../runtime/errors.ts";
import { redact } from "../runtime/log.ts";
import { Registry } from "../runtime/registry.ts";
import { builtins } from "../actors/mod.ts";
import { checkWorkflowFile } from "./load.ts";
import { type CommandIo, EXIT, parseCommandArgs, stdio } from "./run.ts";

/** Help text of `sluice validate`. */
export const VALIDATE_HELP = `Usage: sluice validate <workflow.yaml>... [options]

Checks workflow files without running them: YAML syntax, \${VAR} references,
node types and their configs, ports and connections (no dangling inputs, no
cycles). Every issue is printed at once, one per line, as
file:line:col: key.path: message. Values from the environment are masked.

Options:
  -h, --help   This help.

Exit codes: 0 valid, 2 any issue or bad usage.`;

/** Options of {@linkcode validateCommand} (for tests and embedding). */
export interface ValidateCommandOptions {
  /** The node types. @default {new Registry(builtins)} */
  registry?: Registry;
  /** Looks up `${VAR}`. @default {Deno.env.get} */
  env?: (name: string) => string | undefined;
}

/**
 * Runs `sluice validate`.
 *
 * @param args Arguments after `validate`.
 * @param io Output streams.
 * @param options Registry and environment.
 * @returns The exit code: 0 when every file is valid, 2 otherwise.
 * @example A missing workflow file is a usage error
 * ```ts
 * import { validateCommand } from "./validate.ts";
 * let err = "";
 * const code = await validateCommand(["missing.yaml"], { out: () => {}, err: (t) => err += t });
 * console.assert(code === 2 && err.startsWith("cannot read workflow file missing.yaml"));
 * ```
 */
export async function validateCommand(
  args: string[],
  io: CommandIo = stdio,
  options: ValidateCommandOptions = {},
): Promise<number> {
  const parsedArgs = parseCommandArgs(
    args,
    { help: { type: "boolean", short: "h", default: false } },
    VALIDATE_HELP,
    io,
  );
  if (typeof parsedArgs === "number") return parsedArgs;
  const files = parsedArgs.positionals;
  if (files.length === 0) {
    io.err(`error: expected at least one workflow file\n\n${VALIDATE_HELP}\n`);
    return EXIT.usage;
  }
  const registry = options.registry ?? new Registry(builtins);
  let failed = false;
  for (const file of files) {
    const result = await checkWorkflowFile(file, { registry, env: options.env });
    if (result.issues.length > 0) {
      failed = true;
      const n = result.issues.length;
      const text = result.issues.map((i) => formatIssue(i) + "\n").join("") +
        `invalid: ${n} error${n === 1 ? "" : "s"}${files.length > 1 ? ` in ${file}` : ""}\n`;
      io.err(redact(text, result.secrets));
      continue;
    }
    const nodes = result.workflow!.nodes.length;
    const connections = result.workflow!.connections.length;
    io.out(
      `${files.length > 1 ? `${file}: ` : ""}ok: ${nodes} node${
        nodes === 1 ? "" : "s"
      }, ${connections} connection${connections === 1 ? "" : "s"}\n`,
    );
  }
  return failed ? EXIT.usage : EXIT.ok;
}
