/**
 * `sluice graph <workflow.yaml> --format mermaid|dot`: a workflow as a
 * diagram. Labels come from the file as written (`${VAR}` stays as it is),
 * so values from the environment never appear.
 *
 * @module
 */
import type { ParsedWorkflow } from "../runtime/config.ts";
import { formatIssue } from "../runtime/errors.ts";
import { redact } from "../runtime/log.ts";
import { Registry } from "../runtime/registry.ts";
import type { MailboxConfig, Workflow } from "../runtime/workflow.ts";
import { builtins } from "../actors/mod.ts";
import { checkWorkflowFile } from "./load.ts";
import { type CommandIo, EXIT, parseCommandArgs, stdio } from "./run.ts";

/** Help text of `sluice graph`. */
export const GRAPH_HELP = `Usage: sluice graph <workflow.yaml> [options]

Prints the workflow as a diagram: one box per node (id, type, mailbox
capacity and overflow policy, output ports when there are several), one
arrow per connection, labelled with its ports unless they are out -> in.
Values are shown as written in the file: \${VAR} is not expanded.

Options:
  --format <fmt>   mermaid (default) or dot (Graphviz).
  -h, --help       This help.

Exit codes: 0 ok, 2 invalid workflow or bad usage.`;

/** Diagram formats of {@linkcode workflowGraph}. */
export type GraphFormat = "mermaid" | "dot";

/** Options of {@linkcode graphCommand}. */
export interface GraphCommandOptions {
  /** The node types. @default {new Registry(builtins)} */
  registry?: Registry;
  /** Looks up `${VAR}`. @default {Deno.env.get} */
  env?: (name: string) => string | undefined;
}

/**
 * Runs `sluice graph`.
 *
 * @param args Arguments after `graph`.
 * @param io Output streams.
 * @param options Registry and environment.
 * @returns The exit code.
 * @example An unknown format is a usage error
 * ```ts
 * import { graphCommand } from "./graph.ts";
 * const code = await graphCommand(["--format", "svg", "w.yaml"], { out: () => {}, err: () => {} });
 * console.assert(code === 2);
 * ```
 */
export async function graphCommand(
  args: string[],
  io: CommandIo = stdio,
  options: GraphCommandOptions = {},
): Promise<number> {
  const parsedArgs = parseCommandArgs(
    args,
    {
      format: { type: "string", default: "mermaid" },
      help: { type: "boolean", short: "h", default: false },
    },
    GRAPH_HELP,
    io,
  );
  if (typeof parsedArgs === "number") return parsedArgs;
  const { values, positionals } = parsedArgs;
  const format = values.format;
  if (format !== "mermaid" && format !== "dot") {
    io.err(`error: --format must be mermaid or dot, got "${format}"\n`);
    return EXIT.usage;
  }
  if (positionals.length !== 1) {
    io.err(`error: expected one workflow file, got ${positionals.length}\n\n${GRAPH_HELP}\n`);
    return EXIT.usage;
  }
  const registry = options.registry ?? new Registry(builtins);
  const result = await checkWorkflowFile(positionals[0], { registry, env: options.env });
  if (!result.workflow || !result.parsed) {
    const n = result.issues.length;
    io.err(redact(
      result.issues.map((i) => formatIssue(i) + "\n").join("") +
        `invalid: ${n} error${n === 1 ? "" : "s"}\n`,
      result.secrets,
    ));
    return EXIT.usage;
  }
  io.out(workflowGraph(result.parsed, result.workflow, registry, format, result.secrets));
  return EXIT.ok;
}

interface GraphNode {
  key: string;
  kind: string;
  lines: string[];
}

interface GraphEdge {
  from: string;
  to: string;
  label?: string;
}

/**
 * Renders a valid workflow as Mermaid or Graphviz DOT text. Ids, types,
 * mailbox settings and ports come from `parsed.raw` (the file before
 * interpolation); output ports come from `workflow.outputPortsOf`, and
 * anything derived from interpolated values is masked with `secrets`.
 *
 * @param parsed The parsed file.
 * @param workflow The workflow built from it (for output ports).
 * @param registry The node types (for kinds and config-derived mailboxes).
 * @param format `mermaid` or `dot`.
 * @param secrets Values to mask.
 * @returns The diagram, ending with a newline.
 * @example Graphviz text of a workflow
 * ```ts
 * import { workflowGraph } from "./graph.ts";
 * import { buildWorkflow, parseWorkflowText } from "../runtime/config.ts";
 * import { Registry } from "../runtime/registry.ts";
 * import { builtins } from "../actors/mod.ts";
 * const registry = new Registry(builtins);
 * const parsed = parseWorkflowText("nodes:\n  - {id: g, type: GeneratorNode}\n", { file: "w.yaml" });
 * const text = workflowGraph(parsed, buildWorkflow(parsed, { registry }), registry, "dot");
 * console.assert(text.includes('"g" [label="g\\nGeneratorNode", shape=ellipse];'));
 * ```
 */
export function workflowGraph(
  parsed: ParsedWorkflow,
  workflow: Workflow,
  registry: Registry,
  format: GraphFormat,
  secrets: readonly string[] = [],
): string {
  const def = parsed.definition;
  const raw = parsed.raw as unknown as RawFile;
  const rawNodes = Array.isArray(raw.nodes) ? raw.nodes : [];
  const rawConnections = Array.isArray(raw.connections) ? raw.connections : [];
  const rawDefaults = raw.defaults?.mailbox;
  const indexOf = new Map(def.nodes.map((n, i) => [n.id, i]));
  const nodes: GraphNode[] = def.nodes.map((node, i) => {
    const written = rawNodes[i] ?? {};
    const spec = registry.get(node.type)!;
    const lines = [text(written.id ?? node.id), text(written.type ?? node.type)];
    if (spec.kind !== "source") {
      // The mailbox as written, else as the node type derives it from its
      // (interpolated, so masked) config, else the file's defaults.
      const mine = written.mailbox ?? {};
      const derived = spec.mailbox?.(spec.config.parse(node.config ?? {}, "", [])) ?? {};
      const mask = (v: unknown) => v === undefined ? undefined : redact(String(v), secrets);
      const capacity = mine.capacity ?? mask(derived.capacity) ?? rawDefaults?.capacity ?? 1000;
      const overflow = mine.overflow ?? mask(derived.overflow) ?? rawDefaults?.overflow ??
        "block";
      const rate = mine.sample_rate ?? mask(derived.sampleRate) ?? rawDefaults?.sample_rate ?? 0.1;
      lines.push(
        `mailbox ${text(capacity)}, ${text(overflow)}${
          overflow === "sample" ? ` ${text(rate)}` : ""
        }`,
      );
    }
    const ports = workflow.outputPortsOf(node.id) ?? [];
    if (spec.kind !== "sink" && !(ports.length === 1 && ports[0] === "out")) {
      lines.push(`outputs: ${redact(ports.join(", ") || "none", secrets)}`);
    }
    return { key: `n${i}`, kind: spec.kind, lines };
  });
  const edges: GraphEdge[] = def.connections.map((c, i) => {
    const written = rawConnections[i] ?? {};
    const fromPort = text(written.from_port ?? c.from_port ?? "out");
    const toPort = text(written.to_port ?? c.to_port ?? "in");
    const label = toPort !== "in"
      ? `${fromPort} -> ${toPort}`
      : fromPort !== "out"
      ? fromPort
      : undefined;
    return { from: `n${indexOf.get(c.from)}`, to: `n${indexOf.get(c.to)}`, label };
  });
  const name = text(raw.name ?? workflow.name);
  return format === "dot" ? dot(name, nodes, edges) : mermaid(name, nodes, edges);
}

interface RawFile {
  name?: unknown;
  defaults?: { mailbox?: RawMailbox };
  nodes?: { id?: unknown; type?: unknown; mailbox?: RawMailbox }[];
  connections?: { from_port?: unknown; to_port?: unknown }[];
}

type RawMailbox = { [K in keyof MailboxConfig]?: unknown };

function text(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value) ?? String(value);
}

function mermaidText(value: string): string {
  return value.replace(/&/g, "#amp;").replace(/"/g, "#quot;").replace(/</g, "#lt;").replace(
    />/g,
    "#gt;",
  );
}

function mermaid(name: string, nodes: GraphNode[], edges: GraphEdge[]): string {
  const out = ["---", `title: ${JSON.stringify(name)}`, "---", "flowchart LR"];
  for (const node of nodes) {
    const label = `"${node.lines.map(mermaidText).join("<br/>")}"`;
    // Sources are stadiums, sinks cylinders, processors boxes.
    const shape = node.kind === "source"
      ? `([${label}])`
      : node.kind === "sink"
      ? `[(${label})]`
      : `[${label}]`;
    out.push(`  ${node.key}${shape}`);
  }
  for (const edge of edges) {
    out.push(
      edge.label === undefined
        ? `  ${edge.from} --> ${edge.to}`
        : `  ${edge.from} -->|"${mermaidText(edge.label)}"| ${edge.to}`,
    );
  }
  return out.join("\n") + "\n";
}

function dotString(value: string): string {
  return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`;
}

function dot(name: string, nodes: GraphNode[], edges: GraphEdge[]): string {
  const out = [
    `digraph ${dotString(name)} {`,
    "  rankdir=LR;",
    "  node [shape=box];",
  ];
  // Node ids as written, unless two are written alike (`${A:-x}`, `${B:-x}`).
  const unique = new Set(nodes.map((n) => n.lines[0])).size === nodes.length;
  const id = new Map(nodes.map((n) => [n.key, unique ? dotString(n.lines[0]) : n.key]));
  for (const node of nodes) {
    const shape = node.kind === "source"
      ? ", shape=ellipse"
      : node.kind === "sink"
      ? ", shape=cylinder"
      : "";
    out.push(`  ${id.get(node.key)} [label=${dotString(node.lines.join("\n"))}${shape}];`);
  }
  for (const edge of edges) {
    const label = edge.label === undefined ? "" : ` [label=${dotString(edge.label)}]`;
    out.push(`  ${id.get(edge.from)} -> ${id.get(edge.to)}${label};`);
  }
  out.push("}");
  return out.join("\n") + "\n";
}
