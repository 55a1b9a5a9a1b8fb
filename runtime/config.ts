/**
 * Workflow files: YAML loading, `${VAR}` interpolation, and errors that name
 * the file, line, column and key path.
 *
 * @module
 */
import { type Document, isMap, isScalar, isSeq, LineCounter, parseDocument } from "yaml";
import { ConfigError, type ConfigIssue } from "./errors.ts";
import type { Registry } from "./registry.ts";
import { s, type Schema } from "./schema.ts";
import type { SupervisionStrategy } from "./supervisor.ts";
import { supervisionSchema } from "./supervisor.ts";
import {
  type ConnectionDeclaration,
  type MailboxConfig,
  mailboxSchema,
  type NodeDeclaration,
  Workflow,
  type WorkflowOptions,
} from "./workflow.ts";

/** A workflow file after parsing and interpolation. */
export interface WorkflowDefinition {
  /** Name. @default {file name without extension} */
  name?: string;
  /** Where dead letters go. */
  dead_letter?: { path?: string };
  /** Defaults for every node. */
  defaults?: { mailbox?: MailboxConfig; supervision?: NodeDeclaration["supervision"] };
  /** Workflow-wide supervision. */
  supervision?: { strategy?: SupervisionStrategy };
  /** The nodes. */
  nodes: NodeDeclaration[];
  /** The connections. */
  connections: ConnectionDeclaration[];
}

const nodeSchema = s.object({
  id: s.string({ doc: "Unique node id." }),
  type: s.string({ doc: "Node type (see `sluice nodes`)." }),
  config: s.any<unknown>({ optional: true, type: "object", doc: "The node type's config." }),
  mailbox: mailboxSchema,
  supervision: supervisionSchema,
});

const connectionSchema = s.object({
  from: s.string({ doc: "Source node id." }),
  to: s.string({ doc: "Target node id." }),
  from_port: s.string({ optional: true, doc: 'Output port of "from". Default "out".' }),
  to_port: s.string({ optional: true, doc: 'Input port of "to". Default "in".' }),
});

/** Schema of a workflow file's top level. */
export const workflowFileSchema: Schema<WorkflowDefinition> = s.object({
  name: s.string({ optional: true, doc: "Workflow name." }),
  dead_letter: s.object({
    path: s.string({ optional: true, doc: "NDJSON file for dead letters." }),
  }, { optional: true, doc: "Where failed messages go." }),
  defaults: s.object({
    mailbox: mailboxSchema,
    supervision: supervisionSchema,
  }, { optional: true, doc: "Defaults for every node." }),
  supervision: s.object({
    strategy: s.enum(["one_for_one", "one_for_all", "rest_for_one"] as const, {
      optional: true,
      doc: "Which actors restart together when one fails.",
    }),
  }, { optional: true }),
  nodes: s.array(nodeSchema, { minItems: 1, doc: "The nodes." }),
  connections: s.array(connectionSchema, { default: [], doc: "The connections." }),
}) as Schema<WorkflowDefinition>;

/** Options of {@linkcode parseWorkflowText}. */
export interface ParseOptions {
  /** File name used in error messages. @default {"<workflow>"} */
  file?: string;
  /** Looks up `${VAR}`. @default {Deno.env.get} */
  env?: (name: string) => string | undefined;
}

/** A parsed workflow with what is needed to report positions and hide secrets. */
export interface ParsedWorkflow {
  /** The definition, interpolated. */
  definition: WorkflowDefinition;
  /** Maps a key path to its position in the file. */
  positionOf(path: string): { line: number; column: number } | undefined;
  /** Values that came from the environment: never to be printed. */
  secrets: string[];
  /** The definition before interpolation (for graphs: `${VAR}` stays as written). */
  raw: WorkflowDefinition;
  /** The file name. */
  file: string;
}

/**
 * `${NAME}` and `${NAME:-default}` with an upper-case NAME are environment
 * variables; lower-case `${now}` or `${user_id}` are left to the nodes' own
 * templates (enrichment rules, `set` transformations).
 */
const VAR = /\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}/g;
const VAR_START = /\$\{[A-Z_]/;

/**
 * Splits a key path such as `nodes[1].config.a` into segments.
 *
 * @param path The path.
 * @returns Keys and indexes.
 * @example Splitting a key path
 * ```ts
 * import { pathSegments } from "./config.ts";
 * console.assert(JSON.stringify(pathSegments('nodes[1].config."a b"')) === '["nodes",1,"config","a b"]');
 * ```
 */
export function pathSegments(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  const re = /([A-Za-z_$][\w$-]*)|\[(\d+)\]|"((?:[^"\\]|\\.)*)"/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(path))) {
    if (m[1] !== undefined) out.push(m[1]);
    else if (m[2] !== undefined) out.push(Number(m[2]));
    else out.push(JSON.parse(`"${m[3]}"`));
  }
  return out;
}

/**
 * Parses workflow YAML: syntax, interpolation and the top-level shape. Node
 * configs are checked later against the registry ({@linkcode loadWorkflow}).
 *
 * @param text The YAML text.
 * @param options File name and environment.
 * @returns The parsed workflow.
 * @throws {ConfigError} With every syntax, interpolation and shape issue.
 * @example Environment variable defaults
 * ```ts
 * import { parseWorkflowText } from "./config.ts";
 * const parsed = parseWorkflowText(
 *   'nodes:\n  - {id: g, type: GeneratorNode, config: {message_count: "${N:-5}"}}\n',
 *   { env: () => undefined },
 * );
 * console.assert((parsed.definition.nodes[0].config as { message_count: number }).message_count === 5);
 * ```
 */
export function parseWorkflowText(text: string, options: ParseOptions = {}): ParsedWorkflow {
  const { parsed, issues } = inspectWorkflowText(text, options);
  if (issues.length > 0 || !parsed) throw new ConfigError(issues);
  return parsed;
}

/**
 * Parses workflow YAML like {@linkcode parseWorkflowText} but returns the
 * issues instead of throwing, with a best-effort result whenever the YAML
 * itself is readable, so that `sluice validate` can report the issues of
 * every stage at once.
 *
 * @param text The YAML text.
 * @param options File name and environment.
 * @returns The issues found, and the parsed workflow unless the YAML has
 * syntax errors or is not a map.
 * @example Every issue of a workflow file
 * ```ts
 * import { inspectWorkflowText } from "./config.ts";
 * const { parsed, issues } = inspectWorkflowText("nodes: []\nextra: 1\n");
 * console.assert(parsed !== undefined && issues.length === 2);
 * ```
 */
export function inspectWorkflowText(
  text: string,
  options: ParseOptions = {},
): { parsed: ParsedWorkflow | undefined; issues: ConfigIssue[] } {
  const file = options.file ?? "<workflow>";
  const env = options.env ?? ((name: string) => Deno.env.get(name));
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const issues: ConfigIssue[] = [];
  const at = (offset: number | undefined) => {
    if (offset === undefined) return undefined;
    const { line, col } = lineCounter.linePos(offset);
    return { file, line, column: col };
  };
  for (const error of doc.errors) {
    issues.push({
      path: "",
      message: `YAML syntax error: ${error.message.split("\n")[0]}`,
      position: at(error.pos[0]),
    });
  }
  if (issues.length > 0) return { parsed: undefined, issues };
  const toJS = (): unknown => {
    try {
      return doc.toJS({ maxAliasCount: 100 });
    } catch (error) {
      // Unresolved aliases, alias bombs (excessive expansion), bad tags.
      throw new ConfigError([{
        path: "",
        message: `YAML error: ${(error as Error).message}`,
        position: { file, line: 1, column: 1 },
      }], { cause: error });
    }
  };
  const raw = (toJS() ?? {}) as WorkflowDefinition;
  const secrets = interpolate(doc, env, issues, at);
  const positionOf = (path: string) => {
    const pos = positionIn(doc, pathSegments(path), at);
    return pos ? { line: pos.line, column: pos.column } : undefined;
  };
  const value = toJS();
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    issues.push({
      path: "",
      message: "a workflow file must be a map with at least a `nodes` list",
      position: { file, line: 1, column: 1 },
    });
    return { parsed: undefined, issues };
  }
  const shapeIssues: ConfigIssue[] = [];
  const definition = workflowFileSchema.parse(value, "", shapeIssues);
  for (const issue of shapeIssues) {
    // Node configs are checked against their type later; here only the frame.
    issues.push(withPosition(issue, doc, at));
  }
  return { parsed: { definition, positionOf, secrets, raw, file }, issues };
}

function withPosition(
  issue: ConfigIssue,
  doc: Document,
  at: (offset: number | undefined) => ConfigIssue["position"],
): ConfigIssue {
  return { ...issue, position: positionIn(doc, pathSegments(issue.path), at) };
}

/** The position of the deepest existing node along `segments`. */
function positionIn(
  doc: Document,
  segments: (string | number)[],
  at: (offset: number | undefined) => ConfigIssue["position"],
): ConfigIssue["position"] {
  // deno-lint-ignore no-explicit-any
  let node: any = doc.contents;
  // deno-lint-ignore no-explicit-any
  let keyNode: any = undefined;
  for (const segment of segments) {
    if (isMap(node)) {
      // deno-lint-ignore no-explicit-any
      const pair: any = node.items.find((p: any) => isScalar(p.key) && p.key.value === segment);
      if (!pair) break;
      keyNode = pair.key;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === "number" && node.items[segment]) {
      keyNode = undefined;
      node = node.items[segment];
    } else break;
  }
  const target = keyNode ?? node;
  return at(target?.range?.[0]);
}

/** Replaces `${VAR}` and `${VAR:-default}` in every string scalar of the document. */
function interpolate(
  doc: Document,
  env: (name: string) => string | undefined,
  issues: ConfigIssue[],
  at: (offset: number | undefined) => ConfigIssue["position"],
): string[] {
  const secrets = new Set<string>();
  // deno-lint-ignore no-explicit-any
  const visit = (node: any, path: string) => {
    if (isMap(node)) {
      for (const pair of node.items) {
        // deno-lint-ignore no-explicit-any
        const key = isScalar(pair.key) ? String((pair.key as any).value) : "?";
        visit(pair.value, path ? `${path}.${key}` : key);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item: unknown, i: number) => visit(item, `${path}[${i}]`));
    } else if (isScalar(node) && typeof node.value === "string" && VAR_START.test(node.value)) {
      const text = node.value;
      const whole = text.match(/^\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}$/);
      let missing = false;
      const replaced = text.replace(VAR, (_m, name: string, fallback: string | undefined) => {
        const value = env(name);
        if (value !== undefined && value !== "") {
          secrets.add(value);
          return value;
        }
        if (fallback !== undefined) return fallback;
        missing = true;
        issues.push({
          path,
          message:
            `environment variable ${name} is not set (write \${${name}:-default} for a default)`,
          position: at(node.range?.[0]),
        });
        return "";
      });
      if (missing) return;
      // A whole-value reference to a number or boolean keeps that type (`port: ${PORT}`).
      if (whole && /^(-?\d+(\.\d+)?([eE][-+]?\d+)?|true|false)$/.test(replaced)) {
        node.value = replaced === "true" ? true : replaced === "false" ? false : Number(replaced);
      } else {
        node.value = replaced;
      }
    }
  };
  visit(doc.contents, "");
  return [...secrets];
}

/** Options of {@linkcode loadWorkflow}. */
export interface LoadOptions extends Omit<WorkflowOptions, "name" | "registry" | "baseDir"> {
  /** The node types. */
  registry: Registry;
  /** Looks up `${VAR}`. @default {Deno.env.get} */
  env?: (name: string) => string | undefined;
  /** Directory for relative paths. @default {the file's directory} */
  baseDir?: string;
}

/**
 * Builds a workflow from parsed YAML and validates it against the registry;
 * every issue carries the file, line, column and key path.
 *
 * @param parsed The parsed file.
 * @param options Registry, clock, dead letters.
 * @returns The workflow, ready to run.
 * @throws {ConfigError} With every issue found.
 * @example Building a workflow from YAML text
 * ```ts
 * import { buildWorkflow, parseWorkflowText } from "./config.ts";
 * import { Registry } from "./registry.ts";
 * import { builtins } from "../actors/mod.ts";
 * const parsed = parseWorkflowText("nodes:\n  - {id: g, type: GeneratorNode}\n");
 * const workflow = buildWorkflow(parsed, { registry: new Registry(builtins) });
 * console.assert(workflow.nodes.length === 1);
 * ```
 */
export function buildWorkflow(parsed: ParsedWorkflow, options: LoadOptions): Workflow {
  const def = parsed.definition;
  const baseDir = options.baseDir ?? dirname(parsed.file);
  const workflow = new Workflow({
    ...options,
    name: def.name ?? basename(parsed.file).replace(/\.[^.]+$/, ""),
    baseDir,
    defaultMailbox: def.defaults?.mailbox,
    defaultSupervision: def.defaults?.supervision,
    strategy: def.supervision?.strategy,
  });
  for (const node of def.nodes) {
    workflow.addNode(node.type, node.id, node.config, {
      mailbox: node.mailbox,
      supervision: node.supervision,
    });
  }
  for (const c of def.connections) {
    workflow.addConnection(c.from, c.to, c.from_port ?? "out", c.to_port ?? "in");
  }
  const issues = workflow.validate();
  if (issues.length > 0) {
    throw new ConfigError(issues.map((issue) => {
      const pos = parsed.positionOf(issue.path);
      return pos ? { ...issue, position: { file: parsed.file, ...pos } } : issue;
    }));
  }
  return workflow;
}

/**
 * Reads, parses and validates a workflow file.
 *
 * @param path The YAML file.
 * @param options Registry, clock, environment.
 * @returns The workflow and the parsed file.
 * @throws {ConfigError} With every issue found.
 * @example Loading and running a workflow file
 * ```ts ignore
 * import { loadWorkflow } from "./config.ts";
 * import { Registry } from "./registry.ts";
 * import { builtins } from "../actors/mod.ts";
 * const { workflow } = await loadWorkflow("workflow.yaml", { registry: new Registry(builtins) });
 * await workflow.run();
 * ```
 */
export async function loadWorkflow(
  path: string,
  options: LoadOptions,
): Promise<{ workflow: Workflow; parsed: ParsedWorkflow }> {
  const text = await readWorkflowFile(path);
  const parsed = parseWorkflowText(text, { file: path, env: options.env });
  return { workflow: buildWorkflow(parsed, options), parsed };
}

/**
 * Reads a workflow file, turning a read failure into a {@linkcode ConfigError}
 * that names the file.
 *
 * @param path The file.
 * @returns Its text.
 * @throws {ConfigError} When the file cannot be read.
 * @example A missing file is a config error
 * ```ts
 * import { readWorkflowFile } from "./config.ts";
 * import { ConfigError } from "./errors.ts";
 * const error = await readWorkflowFile("no/such/workflow.yaml").catch((e) => e);
 * console.assert(error instanceof ConfigError);
 * ```
 */
export async function readWorkflowFile(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    throw new ConfigError([{
      path: "",
      message: `cannot read workflow file ${path}: ${(error as Error).message}`,
    }], { cause: error });
  }
}

/**
 * The directory of a path (`.` when it has none).
 *
 * @param path A file path.
 * @returns Its directory.
 * @example Directories of paths
 * ```ts
 * import { dirname } from "./config.ts";
 * console.assert(dirname("a/b.yaml") === "a" && dirname("b.yaml") === ".");
 * ```
 */
export function dirname(path: string): string {
  const i = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  if (i < 0) return ".";
  return i === 0 ? "/" : path.slice(0, i);
}

function basename(path: string): string {
  const i = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  return path.slice(i + 1);
}
