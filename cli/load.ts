/**
 * Loading a workflow file for a CLI command: every issue of every stage
 * (syntax, `${VAR}`, file shape, node configs and graph) at once, and the
 * values that came from the environment, so nothing secret is printed.
 *
 * @module
 */
import { buildWorkflow, inspectWorkflowText, type ParsedWorkflow } from "../runtime/config.ts";
import { ConfigError, type ConfigIssue } from "../runtime/errors.ts";
import type { DeadLetterSink } from "../runtime/dead_letter.ts";
import type { Clock } from "../runtime/clock.ts";
import type { Logger } from "../runtime/actor.ts";
import type { Registry } from "../runtime/registry.ts";
import { pathSegments, readWorkflowFile } from "../runtime/config.ts";
import type { Workflow } from "../runtime/workflow.ts";

/** Options of {@linkcode checkWorkflowFile}. */
export interface CheckOptions {
  /** The node types. */
  registry: Registry;
  /** Looks up `${VAR}`. @default {Deno.env.get} */
  env?: (name: string) => string | undefined;
  /** The workflow's clock. */
  clock?: Clock;
  /** The workflow's logger. */
  logger?: Logger;
  /** Chooses the dead-letter sink once the file is parsed. */
  deadLetters?: (parsed: ParsedWorkflow) => DeadLetterSink;
}

/** What {@linkcode checkWorkflowFile} found. */
export interface CheckResult {
  /** Every issue, in file order; empty when the workflow is valid. */
  issues: ConfigIssue[];
  /** Every value read from the environment (to be masked in output). */
  secrets: string[];
  /** The parsed file, unless it could not be read or has YAML syntax errors. */
  parsed?: ParsedWorkflow;
  /** The workflow, when there are no issues. */
  workflow?: Workflow;
}

/**
 * Reads, parses and validates a workflow file, collecting the issues of all
 * stages instead of stopping at the first stage that has any.
 *
 * @param file The YAML file.
 * @param options Registry, environment, clock.
 * @returns The issues, the secrets, and the workflow when valid.
 * @example A missing file is an issue
 * ```ts
 * import { checkWorkflowFile } from "./load.ts";
 * import { Registry } from "../runtime/registry.ts";
 * import { builtins } from "../actors/mod.ts";
 * const result = await checkWorkflowFile("no/such/file.yaml", { registry: new Registry(builtins) });
 * console.assert(result.issues.length === 1 && result.workflow === undefined);
 * ```
 */
export async function checkWorkflowFile(file: string, options: CheckOptions): Promise<CheckResult> {
  let text: string;
  try {
    text = await readWorkflowFile(file);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return { issues: [...error.issues], secrets: [] };
  }
  return checkWorkflowText(text, file, options);
}

/**
 * Like {@linkcode checkWorkflowFile} for text already read.
 *
 * @param text The YAML text.
 * @param file The file name for messages and relative paths.
 * @param options Registry, environment, clock.
 * @returns The issues, the secrets, and the workflow when valid.
 * @example Checking workflow text
 * ```ts
 * import { checkWorkflowText } from "./load.ts";
 * import { Registry } from "../runtime/registry.ts";
 * import { builtins } from "../actors/mod.ts";
 * const result = checkWorkflowText("nodes:\n  - {id: g, type: GeneratorNode}\n", "w.yaml", {
 *   registry: new Registry(builtins),
 * });
 * console.assert(result.issues.length === 0 && result.workflow !== undefined);
 * ```
 */
export function checkWorkflowText(text: string, file: string, options: CheckOptions): CheckResult {
  const env = options.env ?? ((name: string) => Deno.env.get(name));
  const secrets = new Set<string>();
  // Record every value the file pulled from the environment, even when
  // parsing fails part way, so that no message can echo one.
  const recordingEnv = (name: string) => {
    const value = env(name);
    if (value !== undefined && value !== "") secrets.add(value);
    return value;
  };
  const { parsed, issues } = inspectWorkflowText(text, { file, env: recordingEnv });
  if (!parsed) return { issues: sortIssues(issues), secrets: [...secrets] };
  let workflow: Workflow | undefined;
  try {
    workflow = buildWorkflow(parsed, {
      registry: options.registry,
      clock: options.clock,
      logger: options.logger,
      deadLetters: options.deadLetters?.(parsed),
      secrets: () => [...secrets],
    });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    // A later stage repeats or cascades from what an earlier one reported
    // at the same place (a missing variable leaves `${N}` where a number
    // belongs): keep only the first report for a path and what lies under it.
    const reported = issues.map((i) => pathSegments(i.path));
    for (const issue of error.issues) {
      const segments = pathSegments(issue.path);
      if (!reported.some((r) => isPrefix(r, segments))) {
        issues.push(issue);
      }
    }
  }
  if (issues.length > 0) {
    return { issues: sortIssues(issues), secrets: [...secrets], parsed };
  }
  return { issues, secrets: [...secrets], parsed, workflow };
}

function isPrefix(prefix: (string | number)[], path: (string | number)[]): boolean {
  return prefix.length <= path.length && prefix.every((s, i) => s === path[i]);
}

/** File order; issues without a position keep their order at the end. */
function sortIssues(issues: ConfigIssue[]): ConfigIssue[] {
  return issues
    .map((issue, index) => ({ issue, index }))
    .sort((a, b) => {
      const pa = a.issue.position;
      const pb = b.issue.position;
      if (pa && pb) return pa.line - pb.line || pa.column - pb.column || a.index - b.index;
      if (pa) return -1;
      if (pb) return 1;
      return a.index - b.index;
    })
    .map((x) => x.issue);
}
