/**
 * `sluice test <file_test.yaml>...`: workflow unit tests. A test file names
 * a workflow file and lists test cases: events to inject into its sources
 * at virtual times, clock steps, and the messages expected at its sinks and
 * in its dead letters. Sources and sinks are replaced by in-memory ones
 * ({@linkcode TestDriver}), so no service is needed and runs are
 * deterministic.
 *
 * @example A test file
 * ```yaml
 * workflow: cli_pipeline.yaml        # relative to this file
 * env: {MIN_VALUE: "10"}             # the only variables ${VAR} sees
 * start_time: 2024-01-01T00:00:00Z   # virtual clock start (default 0)
 * tests:
 *   - name: big values reach the sink
 *     inputs:
 *       events:                      # a source node id
 *         - {at: 0, message: {value: 5}}
 *         - {at: 1.5, messages: [{value: 50}, {value: 7}]}
 *     expect:
 *       out:                         # a sink node id
 *         messages: [{value: 5}, {value: 50}, {value: 7}]
 *     dead_letters: {count: 0}
 * ```
 *
 * @module
 */
import { isMap, isScalar, isSeq, LineCounter, parseDocument } from "yaml";
import { dirname, pathSegments } from "../runtime/config.ts";
import { type DeadLetter, toJsonSafe } from "../runtime/dead_letter.ts";
import { type ConfigIssue, errorMessage, formatIssue } from "../runtime/errors.ts";
import { Registry } from "../runtime/registry.ts";
import { s, type Schema } from "../runtime/schema.ts";
import { suggest } from "../runtime/suggest.ts";
import { builtins } from "../actors/mod.ts";
import { TestDriver } from "../testing/test_driver.ts";
import { checkWorkflowFile } from "./load.ts";
import { type CommandIo, EXIT, parseCommandArgs, stdio } from "./run.ts";

/** Help text of `sluice test`. */
export const TEST_HELP = `Usage: sluice test <file_test.yaml | directory>... [options]

Runs workflow unit tests. A test file names a workflow file and lists test
cases; each case injects events into the workflow's sources at virtual
times, may advance the virtual clock and check outputs on the way, and
compares what reached each sink and the dead letters with what it expects.
Sources and sinks are replaced by in-memory ones: no service is needed and
every run is deterministic. Directories are searched for *_test.yaml files.

Test file:
  workflow: <path>             The workflow file, relative to the test file.
  env: {NAME: value}           Variables for \${VAR} (the process environment is not used).
  start_time: <s | ISO 8601>   Virtual time at the start (default 0).
  tests:
    - name: <text>
      keep: [<node id>]        Sources or sinks to keep instead of replacing.
      inputs:                  Per source node id, events and when to inject them:
        <source>: [{at: <seconds>, message: <event>} | {at: <s>, messages: [...]}]
      steps:                   Then, in order (each step one of):
        - advance: <seconds>
        - send: {<source>: [<event>, ...]}        (at the current virtual time)
        - expect: {<sink>: <match>}               (outputs so far)
      expect: {<sink>: <match>}                   After the inputs end and the workflow drains.
      dead_letters: <match>    Items are {node, error, errorName, attempts, message, context}.
      status: completed        Expected run status (default completed).
  <match> is any of: messages: [...] (exactly these, in order),
  contains: [...] (each matches a distinct output; objects match when every key
  given matches), count: <n>.

Options:
  --filter <text>   Run only the tests whose name contains text.
  -h, --help        This help.

Exit codes: 0 all passed, 1 a test failed, 2 a bad test or workflow file or bad usage.`;

/** What to expect of a list of outputs. */
export interface Expectation {
  /** Exactly these, in this order. */
  messages?: unknown[];
  /** Each matches a distinct item (subset match for objects), in any order. */
  contains?: unknown[];
  /** How many. */
  count?: number;
}

/** One timed input. */
export interface TestInput {
  /** Seconds after the start. */
  at: number;
  /** One event. */
  message?: unknown;
  /** Several events, emitted together. */
  messages?: unknown[];
  /** Output port of the source. @default {"out"} */
  port?: string;
}

/** One step of a test case. */
export interface TestStep {
  /** Seconds to advance the virtual clock. */
  advance?: number;
  /** Events per source, injected at the current virtual time. */
  send?: Record<string, unknown[]>;
  /** Outputs so far, per sink. */
  expect?: Record<string, Expectation>;
  /** Dead letters so far. */
  dead_letters?: Expectation;
}

/** One test case. */
export interface TestCase {
  /** The name printed with its result. */
  name: string;
  /** Node ids not to replace. */
  keep: string[];
  /** Timed inputs per source node id. */
  inputs: Record<string, TestInput[]>;
  /** Steps after the inputs are queued. */
  steps: TestStep[];
  /** Final outputs per sink node id. */
  expect: Record<string, Expectation>;
  /** Final dead letters. */
  dead_letters?: Expectation;
  /** Expected run status. @default {"completed"} */
  status: "completed" | "stopped" | "failed";
}

/** A test file. */
export interface TestFile {
  /** The workflow file, relative to the test file. */
  workflow: string;
  /** Variables for `${VAR}`. */
  env: Record<string, string>;
  /** Virtual start time: epoch seconds or ISO 8601. */
  start_time?: number | string;
  /** The cases. */
  tests: TestCase[];
}

const expectationSchema: Schema<Expectation> = s.object({
  messages: s.array(s.any(), { optional: true, doc: "Exactly these, in order." }),
  contains: s.array(s.any(), { optional: true, doc: "Each matches a distinct item." }),
  count: s.integer({ min: 0, optional: true, doc: "How many." }),
}) as Schema<Expectation>;

const inputSchema: Schema<TestInput> = s.object({
  at: s.number({ min: 0, default: 0, doc: "Seconds after the start." }),
  message: s.any({ optional: true, doc: "One event." }),
  messages: s.array(s.any(), { optional: true, doc: "Several events." }),
  port: s.string({ optional: true, doc: "Output port of the source." }),
}) as Schema<TestInput>;

const stepSchema: Schema<TestStep> = s.object({
  advance: s.number({ min: 0, optional: true, doc: "Seconds to advance." }),
  send: s.record(s.array(s.any()), { optional: true, doc: "Events per source, now." }),
  expect: s.record(expectationSchema, { optional: true, doc: "Outputs so far." }),
  dead_letters: s.object({
    messages: s.array(s.any(), { optional: true }),
    contains: s.array(s.any(), { optional: true }),
    count: s.integer({ min: 0, optional: true }),
  }, { optional: true, doc: "Dead letters so far." }),
}) as Schema<TestStep>;

const caseSchema: Schema<TestCase> = s.object({
  name: s.string({ nonEmpty: true, doc: "The test's name." }),
  keep: s.array(s.string(), { default: [], doc: "Node ids not to replace." }),
  inputs: s.record(s.array(inputSchema), { default: {}, doc: "Timed inputs per source." }),
  steps: s.array(stepSchema, { default: [], doc: "Steps after the inputs are queued." }),
  expect: s.record(expectationSchema, { default: {}, doc: "Final outputs per sink." }),
  dead_letters: s.object({
    messages: s.array(s.any(), { optional: true }),
    contains: s.array(s.any(), { optional: true }),
    count: s.integer({ min: 0, optional: true }),
  }, { optional: true, doc: "Final dead letters." }),
  status: s.enum(["completed", "stopped", "failed"] as const, {
    default: "completed",
    doc: "Expected run status.",
  }),
}) as Schema<TestCase>;

const scalarString = s.any<string>({
  type: "string",
  check: (value, path, issues) => {
    if (typeof value === "string") return value;
    if (typeof value === "number" || typeof value === "boolean") return String(value);
    issues.push({ path, message: `expected a string, number or boolean, found ${typeof value}` });
    return "";
  },
});

const testFileSchema: Schema<TestFile> = s.object({
  workflow: s.string({ nonEmpty: true, doc: "The workflow file, relative to this file." }),
  env: s.record(scalarString, { default: {}, doc: "Variables for ${VAR}." }),
  start_time: s.numberOrString({ optional: true, doc: "Epoch seconds or ISO 8601." }),
  tests: s.array(caseSchema, { minItems: 1, doc: "The test cases." }),
}) as Schema<TestFile>;

/** A test file after parsing, with positions for messages. */
export interface ParsedTestFile {
  /** The file name. */
  file: string;
  /** The content; present when `issues` is empty. */
  spec?: TestFile;
  /** Problems, each with its position. */
  issues: ConfigIssue[];
  /** Position of a key path, for later issues. */
  positionOf(path: string): ConfigIssue["position"];
}

/**
 * Parses and checks the shape of a test file.
 *
 * @param text The YAML text.
 * @param file The file name for messages.
 * @returns The test file, or its issues with positions.
 * @example A test file without tests
 * ```ts
 * import { parseTestFile } from "./test.ts";
 * const parsed = parseTestFile("workflow: w.yaml\ntests: []\n", "t.yaml");
 * console.assert(parsed.issues[0].message === "expected at least 1 item(s), found 0");
 * ```
 */
export function parseTestFile(text: string, file: string): ParsedTestFile {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number | undefined): ConfigIssue["position"] => {
    if (offset === undefined) return undefined;
    const { line, col } = lineCounter.linePos(offset);
    return { file, line, column: col };
  };
  const positionOf = (path: string): ConfigIssue["position"] => {
    // deno-lint-ignore no-explicit-any
    let node: any = doc.contents;
    // deno-lint-ignore no-explicit-any
    let key: any;
    for (const segment of pathSegments(path)) {
      if (isMap(node)) {
        // deno-lint-ignore no-explicit-any
        const pair: any = node.items.find((p: any) => isScalar(p.key) && p.key.value === segment);
        if (!pair) break;
        key = pair.key;
        node = pair.value;
      } else if (isSeq(node) && typeof segment === "number" && node.items[segment]) {
        key = undefined;
        node = node.items[segment];
      } else break;
    }
    return at((key ?? node)?.range?.[0]);
  };
  const issues: ConfigIssue[] = doc.errors.map((e) => ({
    path: "",
    message: `YAML syntax error: ${e.message.split("\n")[0]}`,
    position: at(e.pos[0]),
  }));
  if (issues.length > 0) return { file, issues, positionOf };
  const value = doc.toJS({ maxAliasCount: 100 });
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return {
      file,
      issues: [{
        path: "",
        message: "a test file must be a map with `workflow` and `tests`",
        position: { file, line: 1, column: 1 },
      }],
      positionOf,
    };
  }
  const found: ConfigIssue[] = [];
  const spec = testFileSchema.parse(value, "", found);
  if (found.length === 0) {
    if (typeof spec.start_time === "string" && Number.isNaN(Date.parse(spec.start_time))) {
      found.push({
        path: "start_time",
        message: `expected epoch seconds or an ISO 8601 time, found "${spec.start_time}"`,
      });
    }
    spec.tests.forEach((test, i) => {
      for (const [source, inputs] of Object.entries(test.inputs)) {
        inputs.forEach((input, j) => {
          if ((input.message === undefined) === (input.messages === undefined)) {
            found.push({
              path: `tests[${i}].inputs.${key(source)}[${j}]`,
              message: "set exactly one of message and messages",
            });
          }
        });
      }
      test.steps.forEach((step, j) => {
        const kinds = [
          step.advance !== undefined,
          step.send !== undefined,
          step.expect !== undefined || step.dead_letters !== undefined,
        ].filter(Boolean).length;
        if (kinds !== 1) {
          found.push({
            path: `tests[${i}].steps[${j}]`,
            message: "a step is one of advance, send, or expect/dead_letters",
          });
        }
      });
      const check = (e: Expectation | undefined, path: string) => {
        if (e && e.messages === undefined && e.contains === undefined && e.count === undefined) {
          found.push({ path, message: "expected at least one of messages, contains and count" });
        }
      };
      for (const [sink, e] of Object.entries(test.expect)) {
        check(e, `tests[${i}].expect.${key(sink)}`);
      }
      check(test.dead_letters, `tests[${i}].dead_letters`);
      test.steps.forEach((step, j) => {
        for (const [sink, e] of Object.entries(step.expect ?? {})) {
          check(e, `tests[${i}].steps[${j}].expect.${key(sink)}`);
        }
        check(step.dead_letters, `tests[${i}].steps[${j}].dead_letters`);
      });
    });
  }
  for (const issue of found) issue.position = positionOf(issue.path);
  return {
    file,
    spec: found.length === 0 ? spec : undefined,
    issues: byPosition(found),
    positionOf,
  };
}

/** File order, stable; issues without a position last. */
function byPosition(issues: ConfigIssue[]): ConfigIssue[] {
  const line = (i: ConfigIssue) =>
    i.position ? i.position.line * 1e6 + i.position.column : Infinity;
  return issues.map((issue, index) => ({ issue, index }))
    .sort((a, b) => line(a.issue) - line(b.issue) || a.index - b.index)
    .map((x) => x.issue);
}

function key(name: string): string {
  return /^[A-Za-z_$][\w$-]*$/.test(name) ? name : JSON.stringify(name);
}

/** The outcome of one test case. */
export interface CaseResult {
  /** The case's name. */
  name: string;
  /** Whether every expectation held. */
  passed: boolean;
  /** One entry per failed expectation: a heading and detail lines (diffs). */
  failures: { what: string; lines: string[] }[];
}

/** The outcome of one test file. */
export interface FileResult {
  /** The test file. */
  file: string;
  /** Problems that kept the file from running (exit code 2). */
  issues: ConfigIssue[];
  /** Per case, in order (cases filtered out are absent). */
  cases: CaseResult[];
}

/** Options of {@linkcode runTestFile} and {@linkcode testCommand}. */
export interface TestCommandOptions {
  /** The node types. @default {new Registry(builtins)} */
  registry?: Registry;
  /** Only the cases whose name contains this. */
  filter?: string;
}

/**
 * Runs every case of a test file.
 *
 * @param file The test file.
 * @param options Registry and filter.
 * @returns The results, or the issues that kept the file from running.
 * @example A missing test file
 * ```ts
 * import { runTestFile } from "./test.ts";
 * const result = await runTestFile("no_such_test.yaml");
 * console.assert(result.issues.length === 1 && result.cases.length === 0);
 * ```
 */
export async function runTestFile(
  file: string,
  options: TestCommandOptions = {},
): Promise<FileResult> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    return {
      file,
      issues: [{ path: "", message: `cannot read test file ${file}: ${errorMessage(error)}` }],
      cases: [],
    };
  }
  const parsed = parseTestFile(text, file);
  if (!parsed.spec) return { file, issues: parsed.issues, cases: [] };
  const spec = parsed.spec;
  const registry = options.registry ?? new Registry(builtins);
  const workflowFile = resolve(dirname(file), spec.workflow);
  const checked = await checkWorkflowFile(workflowFile, {
    registry,
    env: (name) => Object.hasOwn(spec.env, name) ? spec.env[name] : undefined,
  });
  if (!checked.parsed || !checked.workflow) {
    const where = parsed.positionOf("workflow");
    return {
      file,
      issues: [
        { path: "workflow", message: `the workflow ${workflowFile} is invalid`, position: where },
        ...checked.issues,
      ],
      cases: [],
    };
  }
  const startTime = spec.start_time === undefined
    ? 0
    : typeof spec.start_time === "number"
    ? spec.start_time * 1000
    : Date.parse(spec.start_time);
  // Check every node id a case names before running anything.
  const issues: ConfigIssue[] = [];
  const drivers: (TestDriver | undefined)[] = spec.tests.map((test, i) => {
    try {
      const driver = new TestDriver(checked.parsed!, {
        registry,
        startTime,
        keep: test.keep,
        baseDir: dirname(workflowFile),
      });
      const ids = (path: string, names: string[], known: readonly string[], what: string) => {
        for (const name of names) {
          if (known.includes(name)) continue;
          const hint = suggest(name, known);
          issues.push({
            path: `${path}.${key(name)}`,
            message: `"${name}" is not ${what}${hint ? `; did you mean "${hint}"?` : ""} (${
              known.join(", ") || "none"
            })`,
          });
        }
      };
      const sources = "a replaced source of the workflow";
      const sinks = "a replaced sink of the workflow";
      ids(`tests[${i}].inputs`, Object.keys(test.inputs), driver.sources, sources);
      ids(`tests[${i}].expect`, Object.keys(test.expect), driver.sinks, sinks);
      test.steps.forEach((step, j) => {
        ids(`tests[${i}].steps[${j}].send`, Object.keys(step.send ?? {}), driver.sources, sources);
        ids(`tests[${i}].steps[${j}].expect`, Object.keys(step.expect ?? {}), driver.sinks, sinks);
      });
      return driver;
    } catch (error) {
      issues.push({ path: `tests[${i}].keep`, message: errorMessage(error) });
      return undefined;
    }
  });
  if (issues.length > 0) {
    for (const issue of issues) issue.position = parsed.positionOf(issue.path);
    return { file, issues: byPosition(issues), cases: [] };
  }
  const cases: CaseResult[] = [];
  for (const [i, test] of spec.tests.entries()) {
    if (options.filter !== undefined && !test.name.includes(options.filter)) continue;
    cases.push(await runCase(test, drivers[i]!));
  }
  return { file, issues: [], cases };
}

async function runCase(test: TestCase, driver: TestDriver): Promise<CaseResult> {
  const failures: CaseResult["failures"] = [];
  try {
    for (const [source, inputs] of Object.entries(test.inputs)) {
      for (const input of inputs) {
        driver.send(source, input.messages ?? [input.message], {
          at: input.at * 1000,
          port: input.port,
        });
      }
    }
    for (const [j, step] of test.steps.entries()) {
      if (step.advance !== undefined) await driver.advance(step.advance * 1000);
      else if (step.send) {
        for (const [source, events] of Object.entries(step.send)) driver.send(source, events);
      } else {
        const outputs = driver.outputs;
        for (const [sink, e] of Object.entries(step.expect ?? {})) {
          failures.push(...compare(`step ${j + 1}: ${sink}`, e, outputs[sink]));
        }
        if (step.dead_letters) {
          failures.push(
            ...compare(
              `step ${j + 1}: dead letters`,
              step.dead_letters,
              letters(driver.deadLetters),
            ),
          );
        }
      }
    }
    const result = await driver.finish();
    if (result.report.status !== test.status) {
      failures.push({
        what: `status: expected ${test.status}, got ${result.report.status}${
          result.report.error ? ` (${result.report.error.message})` : ""
        }`,
        lines: [],
      });
    }
    for (const [sink, e] of Object.entries(test.expect)) {
      failures.push(...compare(sink, e, result.outputs[sink]));
    }
    if (test.dead_letters) {
      failures.push(...compare("dead letters", test.dead_letters, letters(result.deadLetters)));
    }
  } catch (error) {
    failures.push({ what: `error: ${errorMessage(error)}`, lines: [] });
    // Let the workflow end so that nothing keeps running after the case.
    await driver.finish().catch(() => {});
  }
  return { name: test.name, passed: failures.length === 0, failures };
}

function letters(deadLetters: DeadLetter[]): unknown[] {
  return deadLetters.map((l) => ({
    node: l.node,
    error: l.error,
    errorName: l.errorName,
    attempts: l.attempts,
    message: l.message,
    ...(l.context ? { context: l.context } : {}),
  }));
}

/**
 * Compares outputs with an expectation.
 *
 * @param what What is compared (a sink id, `dead letters`).
 * @param expectation The expectation.
 * @param actual The outputs.
 * @returns The failures, empty when the expectation holds.
 * @example Expected and received messages
 * ```ts
 * import { compare } from "./test.ts";
 * console.assert(compare("out", { contains: [{ a: 1 }] }, [{ a: 1, b: 2 }]).length === 0);
 * console.assert(compare("out", { messages: [{ a: 1 }] }, [{ a: 1, b: 2 }]).length === 1);
 * ```
 */
export function compare(
  what: string,
  expectation: Expectation,
  actual: readonly unknown[],
): { what: string; lines: string[] }[] {
  const got = actual.map(normalize);
  const failures: { what: string; lines: string[] }[] = [];
  if (expectation.count !== undefined && got.length !== expectation.count) {
    failures.push({
      what: `${what}: expected ${plural(expectation.count, "message")}, got ${got.length}`,
      lines: [],
    });
  }
  if (expectation.messages !== undefined) {
    const want = expectation.messages.map(canonical);
    const have = got.map(canonical);
    if (want.join("\n") !== have.join("\n")) {
      failures.push({
        what: `${what}: messages differ (- expected, + actual)`,
        lines: diff(want, have),
      });
    }
  }
  if (expectation.contains !== undefined) {
    const missing = unmatched(expectation.contains, got);
    if (missing.length > 0) {
      failures.push({
        what: `${what}: ${
          plural(missing.length, "expected message")
        } not found (- missing, + actual)`,
        lines: [
          ...missing.map((m) => `- ${canonical(m)}`),
          ...cap(got.map((m) => `+ ${canonical(m)}`)),
        ],
      });
    }
  }
  return failures;
}

/** JSON-safe, with `undefined` fields gone, as compared and printed. */
function normalize(value: unknown): unknown {
  const text = JSON.stringify(toJsonSafe(value));
  return text === undefined ? null : JSON.parse(text);
}

/** JSON with sorted keys, so equal values print alike. */
function canonical(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value).sort().map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

/** Whether `actual` has everything `expected` has (objects: the keys given; else equal). */
function matches(expected: unknown, actual: unknown): boolean {
  if (Array.isArray(expected)) {
    return Array.isArray(actual) && actual.length === expected.length &&
      expected.every((e, i) => matches(e, actual[i]));
  }
  if (expected !== null && typeof expected === "object") {
    if (actual === null || typeof actual !== "object" || Array.isArray(actual)) return false;
    return Object.entries(expected).every(([k, e]) =>
      Object.hasOwn(actual, k) && matches(e, (actual as Record<string, unknown>)[k])
    );
  }
  return expected === actual;
}

/** The expected items that cannot each be given a distinct matching actual item. */
function unmatched(expected: readonly unknown[], actual: readonly unknown[]): unknown[] {
  // Bipartite matching (augmenting paths): a greedy pass could pair a loose
  // pattern with the only item a stricter one matches.
  const owner = new Array<number>(actual.length).fill(-1);
  const candidates = expected.map((e) =>
    actual.map((a, j) => matches(e, a) ? j : -1).filter((j) => j >= 0)
  );
  const assign = (i: number, seen: Set<number>): boolean => {
    for (const j of candidates[i]) {
      if (seen.has(j)) continue;
      seen.add(j);
      if (owner[j] < 0 || assign(owner[j], seen)) {
        owner[j] = i;
        return true;
      }
    }
    return false;
  };
  return expected.filter((_, i) => !assign(i, new Set()));
}

/** A line diff (longest common subsequence) of expected and actual lines. */
function diff(want: string[], have: string[]): string[] {
  const n = want.length;
  const m = have.length;
  const lcs = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i][j] = want[i] === have[j]
        ? lcs[i + 1][j + 1] + 1
        : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && want[i] === have[j]) {
      out.push(`  ${want[i++]}`);
      j++;
    } else if (i < n && (j === m || lcs[i + 1][j] >= lcs[i][j + 1])) {
      out.push(`- ${want[i++]}`);
    } else {
      out.push(`+ ${have[j++]}`);
    }
  }
  return cap(out);
}

function cap(lines: string[], max = 40): string[] {
  return lines.length > max
    ? [...lines.slice(0, max), `  … ${lines.length - max} more line(s)`]
    : lines;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function resolve(baseDir: string, path: string): string {
  if (path.startsWith("/") || /^[A-Za-z]:[\\/]/.test(path)) return path;
  return baseDir === "." ? path : `${baseDir.replace(/[\\/]+$/, "")}/${path}`;
}

/**
 * Runs `sluice test`.
 *
 * @param args Arguments after `test`.
 * @param io Output streams.
 * @param options Registry.
 * @returns 0 when every test passed, 1 when one failed, 2 for a bad file or usage.
 * @example A missing test file is a usage error
 * ```ts
 * import { testCommand } from "./test.ts";
 * let err = "";
 * const code = await testCommand(["missing_test.yaml"], { out: () => {}, err: (t) => err += t });
 * console.assert(code === 2 && err.includes("cannot read test file missing_test.yaml"));
 * ```
 */
export async function testCommand(
  args: string[],
  io: CommandIo = stdio,
  options: TestCommandOptions = {},
): Promise<number> {
  const parsedArgs = parseCommandArgs(
    args,
    {
      filter: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    TEST_HELP,
    io,
  );
  if (typeof parsedArgs === "number") return parsedArgs;
  const { values, positionals } = parsedArgs;
  if (positionals.length === 0) {
    io.err(`error: expected at least one test file or directory\n\n${TEST_HELP}\n`);
    return EXIT.usage;
  }
  const files: string[] = [];
  for (const path of positionals) files.push(...await testFiles(path));
  if (files.length === 0) {
    io.err(`error: no *_test.yaml files in ${positionals.join(", ")}\n`);
    return EXIT.usage;
  }
  let passed = 0;
  let failed = 0;
  let bad = 0;
  for (const file of files) {
    const result = await runTestFile(file, { ...options, filter: values.filter ?? options.filter });
    if (result.issues.length > 0) {
      bad++;
      io.err(`${file}: cannot run\n${result.issues.map((i) => `  ${formatIssue(i)}\n`).join("")}`);
      continue;
    }
    io.out(`${file}\n`);
    for (const c of result.cases) {
      if (c.passed) passed++;
      else failed++;
      io.out(`  ${c.passed ? "ok  " : "FAIL"}  ${c.name}\n`);
      for (const f of c.failures) {
        io.out(`        ${f.what}\n${f.lines.map((l) => `          ${l}\n`).join("")}`);
      }
    }
  }
  io.out(
    `${plural(passed + failed, "test")}: ${passed} passed, ${failed} failed${
      bad ? `; ${plural(bad, "file")} could not be run` : ""
    }\n`,
  );
  return bad > 0 ? EXIT.usage : failed > 0 ? EXIT.runtime : EXIT.ok;
}

/** The file itself, or the `*_test.yaml` / `*_test.yml` files under a directory, sorted. */
async function testFiles(path: string): Promise<string[]> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch {
    return [path]; // reported as unreadable by runTestFile
  }
  if (!info.isDirectory) return [path];
  const found: string[] = [];
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(dir)) {
      const full = `${dir.replace(/[\\/]+$/, "")}/${entry.name}`;
      if (entry.isDirectory) await walk(full);
      else if (/_test\.ya?ml$/.test(entry.name)) found.push(full);
    }
  };
  await walk(path);
  return found.sort();
}
