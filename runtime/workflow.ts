/**
 * Workflows: the graph builder, validation before anything starts, the run
 * loop of every actor under its supervisor, checkpoints and graceful drain.
 *
 * @module
 */
import type { Actor, ActorContext, Logger, SourceOutcome } from "./actor.ts";
import { backoffDelay } from "./backoff.ts";
import { type Clock, RealClock, type TimerId, VirtualClock, yieldMacrotask } from "./clock.ts";
import { type DeadLetterSink, FileDeadLetters } from "./dead_letter.ts";
import { ConfigError, type ConfigIssue, errorMessage, RestartIntensityError } from "./errors.ts";
import { createLogger, redact, withFields } from "./log.ts";
import { Mailbox, type OverflowPolicy } from "./mailbox.ts";
import { NodeMetrics, type NodeSnapshot, type WorkflowSnapshot } from "./metrics.ts";
import {
  inputPorts,
  type NodeKind,
  type NodeSpec,
  outputPorts,
  type Registry,
} from "./registry.ts";
import { s, type Schema } from "./schema.ts";
import { suggest } from "./suggest.ts";
import {
  DEFAULT_SUPERVISION,
  resolveSupervision,
  RestartIntensity,
  type SupervisionConfig,
  supervisionFromConfig,
  type SupervisionOptions,
  supervisionSchema,
  type SupervisionStrategy,
} from "./supervisor.ts";

/** A node's mailbox, as written in a workflow (`mailbox:`). */
export interface MailboxConfig {
  /** Most messages queued. @default {1000} */
  capacity?: number;
  /** Overflow policy. @default {"block"} */
  overflow?: OverflowPolicy;
  /** Fraction of new messages admitted by `sample` when full. @default {0.1} */
  sample_rate?: number;
  /** Seed of `sample`'s random choices. @default {1} */
  seed?: number;
  /** Most messages handed to the actor at once (it never waits to fill a batch). @default {1024} */
  batch_size?: number;
}

/** Schema of a `mailbox` block. */
export const mailboxSchema: Schema<MailboxConfig | undefined> = s.object({
  capacity: s.integer({ min: 1, optional: true, doc: "Most messages queued." }),
  overflow: s.enum(["block", "drop_oldest", "drop_newest", "sample", "fail"] as const, {
    optional: true,
    doc: "What a full mailbox does.",
  }),
  sample_rate: s.number({ min: 0, max: 1, optional: true, doc: "Fraction admitted by sample." }),
  seed: s.integer({ optional: true, doc: "Seed of sample's random choices." }),
  batch_size: s.integer({
    min: 1,
    optional: true,
    doc: "Most messages handed to the actor at once.",
  }),
}, { optional: true, doc: "The node's mailbox: its capacity and overflow are the backpressure." });

/** A node of a workflow definition. */
export interface NodeDeclaration {
  /** Unique id. */
  id: string;
  /** Registered type name. */
  type: string;
  /** The type's config. */
  config?: unknown;
  /** Mailbox settings. */
  mailbox?: MailboxConfig;
  /** Supervision settings. */
  supervision?: SupervisionConfig;
}

/** A connection of a workflow definition. */
export interface ConnectionDeclaration {
  /** Source node id. */
  from: string;
  /** Target node id. */
  to: string;
  /** Output port of `from`. @default {"out"} */
  from_port?: string;
  /** Input port of `to`. @default {"in"} */
  to_port?: string;
}

/** Options of a {@linkcode Workflow}. */
export interface WorkflowOptions {
  /** The node types available. */
  registry: Registry;
  /** Name shown in status and metrics. @default {"workflow"} */
  name?: string;
  /** Clock for every timer. @default {new RealClock()} */
  clock?: Clock;
  /** Where failed messages go. @default {NDJSON file `sluice-dead-letters.ndjson`} */
  deadLetters?: DeadLetterSink;
  /** Mailbox defaults for every node. */
  defaultMailbox?: MailboxConfig;
  /** Supervision defaults for every node. */
  defaultSupervision?: SupervisionConfig;
  /** Which actors restart together. @default {"one_for_one"} */
  strategy?: SupervisionStrategy;
  /** Logger. @default {text on stderr} */
  logger?: Logger;
  /** Directory relative paths in configs resolve against. @default {Deno.cwd()} */
  baseDir?: string;
  /** Random source for backoff jitter. @default {Math.random} */
  random?: () => number;
  /**
   * Values that must never be written out (those interpolated from the
   * environment): masked in dead letters' errors and context.
   */
  secrets?: () => readonly string[];
}

/** Options of {@linkcode Workflow.run}. */
export interface RunOptions {
  /** Aborting it stops the workflow gracefully. */
  signal?: AbortSignal;
  /** Stop gracefully on SIGINT and SIGTERM (a second signal stops at once). @default {false} */
  handleSignals?: boolean;
  /** Longest a graceful drain may take before in-flight messages are abandoned (counted). @default {30000} */
  drainTimeoutMs?: number;
}

/** What a run did. */
export interface RunReport {
  /** Workflow name. */
  name: string;
  /** `completed` (sources ended), `stopped` (asked to stop) or `failed`. */
  status: "completed" | "stopped" | "failed";
  /** Why it failed. */
  error?: Error;
  /** Run time in clock milliseconds. */
  durationMs: number;
  /** Per-node metrics at the end. */
  nodes: NodeSnapshot[];
  /** Dead letters written. */
  deadLetters: number;
  /** Messages left in mailboxes when a drain deadline passed. */
  abandoned: number;
}

/** A checkpoint travelling with the stream: completes when every path has consumed it. */
interface Checkpoint {
  remaining: number;
  onComplete: () => void;
}

class Escalation extends Error {
  constructor(cause: Error) {
    super(cause.message, { cause });
    this.name = "Escalation";
  }
}

/** Thrown by a handler attempt that failed at message `index` of its batch. */
class BatchCrash {
  constructor(readonly error: unknown, readonly remaining: unknown[]) {}
}

interface ResolvedNode {
  index: number;
  decl: NodeDeclaration;
  spec: NodeSpec;
  config: unknown;
  mailbox: Required<Omit<MailboxConfig, "seed">> & { seed: number };
  supervision: SupervisionOptions;
  outputs: readonly string[];
}

/**
 * A stream-processing graph: nodes (actors) and connections between their ports.
 *
 * @example A generator into a function into memory
 * ```ts
 * import { Registry, Workflow, VirtualClock } from "../mod.ts";
 * import { builtins } from "../actors/mod.ts";
 * const seen: unknown[] = [];
 * const workflow = new Workflow({ registry: new Registry(builtins), clock: new VirtualClock(0) })
 *   .addNode("GeneratorNode", "gen", { message_count: 3, start_time: 0 })
 *   .addNode("FunctionNode", "collect", { fn: (e: unknown) => { seen.push(e); } })
 *   .addConnection("gen", "collect");
 * const report = await workflow.run();
 * console.assert(report.status === "completed" && seen.length === 3);
 * ```
 */
export class Workflow implements AsyncDisposable {
  /** The workflow name. */
  readonly name: string;
  /** The clock. */
  readonly clock: Clock;
  readonly #options: WorkflowOptions;
  readonly #nodes: NodeDeclaration[] = [];
  readonly #connections: ConnectionDeclaration[] = [];
  #cells: Cell[] = [];
  #running = false;
  #stopping = false;
  #hardStopped = false;
  #failure: Error | undefined;
  #deadLetters: DeadLetterSink | undefined;
  #deadLetterCount = 0;
  #deadLettersDirty = false;
  #startedAt = 0;
  #startedAtWall = 0;
  #log: Logger;
  #drainTimer: TimerId | undefined;
  #drainTimeoutMs = 30_000;
  #hardStop = new AbortController();

  /**
   * Creates an empty workflow; add nodes and connections, then run it.
   *
   * @param options Registry, clock, defaults.
   */
  constructor(options: WorkflowOptions) {
    this.#options = options;
    this.name = options.name ?? "workflow";
    this.clock = options.clock ?? new RealClock();
    this.#log = options.logger ?? createLogger();
  }

  /**
   * Adds a node.
   *
   * @param type A registered node type.
   * @param id A unique id.
   * @param config The type's config.
   * @param options Mailbox and supervision of this node.
   * @returns This workflow.
   * @throws {TypeError} When the workflow is running.
   */
  addNode(
    type: string,
    id: string,
    config?: unknown,
    options: { mailbox?: MailboxConfig; supervision?: SupervisionConfig } = {},
  ): this {
    this.#assertNotRunning();
    this.#nodes.push({ id, type, config, ...options });
    return this;
  }

  /**
   * Connects an output port of one node to an input port of another.
   *
   * @param from Source node id.
   * @param to Target node id.
   * @param fromPort Output port. @default {"out"}
   * @param toPort Input port. @default {"in"}
   * @returns This workflow.
   * @throws {TypeError} When the workflow is running.
   */
  addConnection(from: string, to: string, fromPort = "out", toPort = "in"): this {
    this.#assertNotRunning();
    this.#connections.push({ from, to, from_port: fromPort, to_port: toPort });
    return this;
  }

  /** The declared nodes. */
  get nodes(): readonly NodeDeclaration[] {
    return this.#nodes;
  }
  /** The declared connections. */
  get connections(): readonly ConnectionDeclaration[] {
    return this.#connections;
  }

  /**
   * Checks the whole graph without starting anything.
   *
   * @returns Every issue found, each with its key path (`nodes[1].config.topic`).
   */
  validate(): ConfigIssue[] {
    return this.#resolve().issues;
  }

  /**
   * Output ports of a node after config resolution (router destinations
   * included).
   *
   * @param id The node id.
   * @returns The port names, or `undefined` for an unknown node.
   */
  outputPortsOf(id: string): readonly string[] | undefined {
    return this.#resolve().nodes.find((n) => n.decl.id === id)?.outputs;
  }

  #resolve(): { issues: ConfigIssue[]; nodes: ResolvedNode[] } {
    const issues: ConfigIssue[] = [];
    const registry = this.#options.registry;
    const byId = new Map<string, ResolvedNode>();
    const nodes: ResolvedNode[] = [];
    // Nodes whose type is unknown or whose config is broken: their own issue is
    // reported once, without follow-on errors about their ports and connections.
    const unresolved = new Set<string>();
    const brokenConfig = new Set<string>();
    const defaultMailbox = mailboxSchema.parse(
      this.#options.defaultMailbox,
      "defaults.mailbox",
      issues,
    ) ?? {};
    const defaultSupervision = supervisionFromConfig(
      supervisionSchema.parse(this.#options.defaultSupervision, "defaults.supervision", issues),
    );
    this.#nodes.forEach((decl, index) => {
      const path = `nodes[${index}]`;
      if (typeof decl.id !== "string" || decl.id === "") {
        issues.push({ path: `${path}.id`, message: "every node needs a non-empty string id" });
        return;
      }
      if (!/^[A-Za-z0-9_.-]+$/.test(decl.id)) {
        issues.push({
          path: `${path}.id`,
          message: `node id "${decl.id}" may only contain letters, digits, "_", "-" and "."`,
        });
      }
      if (byId.has(decl.id)) {
        issues.push({
          path: `${path}.id`,
          message: `duplicate node id "${decl.id}" (first declared at nodes[${
            byId.get(decl.id)!.index
          }])`,
        });
        return;
      }
      const spec = typeof decl.type === "string" ? registry.get(decl.type) : undefined;
      if (!spec) unresolved.add(decl.id);
      if (!spec) {
        const hint = typeof decl.type === "string" ? registry.suggest(decl.type) : undefined;
        issues.push({
          path: `${path}.type`,
          message: `node "${decl.id}": unknown node type ${JSON.stringify(decl.type)}${
            hint ? `; did you mean "${hint}"?` : ""
          } (run \`sluice nodes\` for the list)`,
        });
        return;
      }
      const before = issues.length;
      const config = spec.config.parse(decl.config ?? {}, `${path}.config`, issues);
      if (issues.length === before) spec.validate?.(config, `${path}.config`, issues);
      const configOk = issues.length === before;
      if (!configOk) brokenConfig.add(decl.id);
      for (let i = before; i < issues.length; i++) {
        issues[i] = {
          ...issues[i],
          message: `node "${decl.id}" (${spec.type}): ${issues[i].message}`,
        };
      }
      const mailbox = mailboxSchema.parse(decl.mailbox, `${path}.mailbox`, issues) ?? {};
      const supervision = supervisionSchema.parse(decl.supervision, `${path}.supervision`, issues);
      const fromSpec = configOk ? spec.mailbox?.(config) ?? {} : {};
      const resolved: ResolvedNode = {
        index,
        decl,
        spec,
        config,
        mailbox: {
          capacity: mailbox.capacity ?? fromSpec.capacity ?? defaultMailbox.capacity ?? 1000,
          overflow: mailbox.overflow ?? fromSpec.overflow ?? defaultMailbox.overflow ?? "block",
          sample_rate: mailbox.sample_rate ?? fromSpec.sampleRate ?? defaultMailbox.sample_rate ??
            0.1,
          seed: mailbox.seed ?? defaultMailbox.seed ?? index + 1,
          batch_size: mailbox.batch_size ?? defaultMailbox.batch_size ?? 1024,
        },
        supervision: resolveSupervision(
          DEFAULT_SUPERVISION,
          spec.kind === "processor" ? {} : { onMessageError: "restart" },
          defaultSupervision,
          configOk ? spec.supervision?.(config) : undefined,
          supervisionFromConfig(supervision),
        ),
        outputs: configOk ? outputPorts(spec, config) : [],
      };
      byId.set(decl.id, resolved);
      nodes.push(resolved);
    });

    const incoming = new Map<string, number>();
    const adjacency = new Map<string, string[]>();
    this.#connections.forEach((c, i) => {
      const path = `connections[${i}]`;
      const from = byId.get(c.from);
      const to = byId.get(c.to);
      const known = [...byId.keys()];
      const unknownNode = (key: "from" | "to", id: unknown) => {
        const hint = typeof id === "string" ? suggest(id, known) : undefined;
        issues.push({
          path: `${path}.${key}`,
          message: `unknown node ${JSON.stringify(id)}${hint ? `; did you mean "${hint}"?` : ""}`,
        });
      };
      if (!from && !unresolved.has(c.from)) unknownNode("from", c.from);
      if (!to && !unresolved.has(c.to)) unknownNode("to", c.to);
      if (to || unresolved.has(c.to)) incoming.set(c.to, (incoming.get(c.to) ?? 0) + 1);
      if (!from || !to) return;
      const fromPort = c.from_port ?? "out";
      const toPort = c.to_port ?? "in";
      if (from.spec.kind === "sink") {
        issues.push({
          path: `${path}.from`,
          message: `node "${c.from}" is a sink (${from.spec.type}) and has no outputs`,
        });
      } else if (!brokenConfig.has(c.from) && !from.outputs.includes(fromPort)) {
        const hint = suggest(fromPort, from.outputs);
        issues.push({
          path: `${path}.from_port`,
          message: `node "${c.from}" (${from.spec.type}) has no output port "${fromPort}"${
            hint ? `; did you mean "${hint}"?` : ""
          } (ports: ${from.outputs.join(", ") || "none"})`,
        });
      }
      const inputs = inputPorts(to.spec);
      if (to.spec.kind === "source") {
        issues.push({
          path: `${path}.to`,
          message: `node "${c.to}" is a source (${to.spec.type}) and takes no input`,
        });
      } else if (!inputs.includes(toPort)) {
        issues.push({
          path: `${path}.to_port`,
          message: `node "${c.to}" (${to.spec.type}) has no input port "${toPort}" (ports: ${
            inputs.join(", ")
          })`,
        });
      }
      adjacency.set(c.from, [...(adjacency.get(c.from) ?? []), c.to]);
    });
    for (const node of nodes) {
      if (node.spec.kind !== "source" && !incoming.has(node.decl.id)) {
        issues.push({
          path: `nodes[${node.index}]`,
          message: `node "${node.decl.id}" (${node.spec.type}) has no input connection`,
        });
      }
    }
    if (nodes.length > 0 && unresolved.size === 0 && !nodes.some((n) => n.spec.kind === "source")) {
      issues.push({ path: "nodes", message: "the workflow has no source node" });
    }
    const cycle = findCycle([...byId.keys()], adjacency);
    if (cycle) {
      issues.push({
        path: "connections",
        message: `the connections form a cycle: ${cycle.join(" -> ")}`,
      });
    }
    if (this.#nodes.length === 0) {
      issues.push({ path: "nodes", message: "the workflow has no nodes" });
    }
    return { issues, nodes };
  }

  /**
   * Validates, starts every actor and resolves when the workflow has drained
   * (sources ended, or {@linkcode Workflow.stop}), or failed.
   *
   * @param options Cancellation, signal handling, drain deadline.
   * @returns What the run did.
   * @throws {ConfigError} When validation finds any issue.
   * @throws {TypeError} When the workflow is already running.
   */
  async run(options: RunOptions = {}): Promise<RunReport> {
    this.#assertNotRunning();
    const { issues, nodes } = this.#resolve();
    if (issues.length > 0) throw new ConfigError(issues);
    this.#running = true;
    this.#drainTimeoutMs = options.drainTimeoutMs ?? 30_000;
    this.#startedAt = this.clock.monotonic();
    this.#startedAtWall = this.clock.now();
    this.#deadLetters = this.#options.deadLetters ??
      new FileDeadLetters("sluice-dead-letters.ndjson");

    const cells = new Map<string, Cell>();
    const host = this.#host();
    for (const node of nodes) {
      const cell = new Cell(host, node, this.#log);
      cells.set(node.decl.id, cell);
    }
    this.#cells = [...cells.values()];
    for (const c of this.#connections) {
      cells.get(c.from)!.connect(c.from_port ?? "out", cells.get(c.to)!);
    }
    const onAbort = () => this.stop();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    // Under a virtual clock, time waits for messages already on their way.
    const unwatch = this.clock instanceof VirtualClock
      ? this.clock.watch(() => {
        let busy = false;
        let starting = false;
        let signature = 0;
        for (const cell of this.#cells) {
          busy ||= cell.busy;
          starting ||= cell.starting;
          signature += cell.metrics.messagesIn + cell.metrics.messagesOut +
            cell.metrics.restarts + (cell.mailbox?.depth ?? 0);
        }
        return { busy, signature, starting };
      })
      : () => {};
    const removeSignals = options.handleSignals ? this.#listenToSignals() : () => {};
    if (options.signal?.aborted) this.stop();
    try {
      // After the drain deadline, actors stuck in a handler are not waited for.
      const hardStopped = new Promise<void>((resolve) =>
        this.#hardStop.signal.addEventListener("abort", () => resolve(), { once: true })
      );
      await Promise.race([Promise.all(this.#cells.map((cell) => cell.run())), hardStopped]);
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
      unwatch();
      removeSignals();
      if (this.#drainTimer !== undefined) this.clock.clearTimeout(this.#drainTimer);
      await this.#deadLetters.close();
      this.#running = false;
    }
    const abandoned = this.#cells.reduce((sum, c) => sum + c.abandoned, 0);
    return {
      name: this.name,
      status: this.#failure ? "failed" : this.#stopping ? "stopped" : "completed",
      error: this.#failure,
      durationMs: this.clock.monotonic() - this.#startedAt,
      nodes: this.snapshot().nodes,
      deadLetters: this.#deadLetterCount,
      abandoned,
    };
  }

  /**
   * Stops gracefully: sources stop, in-flight messages flow through, sinks
   * flush. After the drain deadline, what is still queued is abandoned and
   * counted in the report.
   */
  stop(): void {
    if (!this.#running || this.#stopping) return;
    this.#stopping = true;
    this.#log.info("stopping: draining in-flight messages", { workflow: this.name });
    for (const cell of this.#cells) if (cell.kind === "source") cell.stopSource();
    this.#drainTimer = this.clock.setTimeout(() => this.#abandon(), this.#drainTimeoutMs);
  }

  /** Whether {@linkcode Workflow.stop} was called or the workflow failed. */
  get stopping(): boolean {
    return this.#stopping;
  }

  #abandon(): void {
    if (this.#hardStopped) return;
    this.#hardStopped = true;
    this.#log.warn("drain deadline passed: abandoning queued messages", { workflow: this.name });
    this.#hardStop.abort(new Error("drain deadline passed"));
    for (const cell of this.#cells) cell.abandon();
  }

  /** The view of this workflow that its cells use; not public API. */
  #host(): CellHost {
    // deno-lint-ignore no-this-alias
    const wf = this;
    return {
      clock: this.clock,
      get startedAtWallClock() {
        return wf.#startedAtWall;
      },
      get hardStopped() {
        return wf.#hardStopped;
      },
      get hardStopSignal() {
        return wf.#hardStop.signal;
      },
      get stopping() {
        return wf.#stopping;
      },
      strategy: this.#options.strategy ?? "one_for_one",
      cells: () => this.#cells,
      // Absolute, so file and module paths do not depend on how they are joined.
      baseDir: absolutePath(this.#options.baseDir ?? "."),
      random: () => (this.#options.random ?? Math.random)(),
      fail: (error) => this.#fail(error),
      deadLetter: (node, message, error, attempts, context) =>
        this.#writeDeadLetter(node, message, error, attempts, context),
      flushDeadLetters: () => this.#flushDeadLetters(),
      snapshot: () => this.snapshot(),
    };
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    this.#log.error("workflow failed", { workflow: this.name, error: error.message });
    this.stop();
  }

  #writeDeadLetter(
    node: string,
    message: unknown,
    error: unknown,
    attempts: number,
    context?: Record<string, unknown>,
  ): void {
    this.#deadLetterCount++;
    this.#deadLettersDirty = true;
    const secrets = this.#options.secrets?.() ?? [];
    this.#deadLetters!.write({
      time: new Date(this.clock.now()).toISOString(),
      node,
      error: redact(errorMessage(error), secrets),
      errorName: error instanceof Error ? error.name : typeof error,
      attempts,
      message,
      ...(context ? { context: redactContext(context, secrets) } : {}),
    });
  }

  /** Makes dead letters durable before a checkpoint passes. */
  #flushDeadLetters(): Promise<void> | undefined {
    if (!this.#deadLettersDirty) return undefined;
    this.#deadLettersDirty = false;
    return this.#deadLetters!.flush();
  }

  /**
   * Metrics of every node now.
   *
   * @returns The snapshot.
   */
  snapshot(): WorkflowSnapshot {
    const now = this.clock.now();
    return {
      name: this.name,
      time: now,
      uptimeMs: this.#running || this.#startedAt ? this.clock.monotonic() - this.#startedAt : 0,
      nodes: this.#cells.map((c) => c.snapshot(now)),
      deadLetters: this.#deadLetterCount,
    };
  }

  #listenToSignals(): () => void {
    const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
    const handler = () => {
      if (this.#stopping) this.#abandon();
      else this.stop();
    };
    for (const sig of signals) Deno.addSignalListener(sig, handler);
    return () => {
      for (const sig of signals) Deno.removeSignalListener(sig, handler);
    };
  }

  #assertNotRunning(): void {
    if (this.#running) throw new TypeError(`workflow "${this.name}" is already running`);
  }

  /**
   * Asks the workflow to stop (for `await using`); does not wait for the
   * drain.
   *
   * @returns A resolved promise.
   */
  [Symbol.asyncDispose](): Promise<void> {
    this.stop();
    return Promise.resolve();
  }
}

/** Masks secrets in a dead letter's context, keeping its shape when it can. */
function redactContext(
  context: Record<string, unknown>,
  secrets: readonly string[],
): Record<string, unknown> {
  if (secrets.length === 0) return context;
  try {
    return JSON.parse(redact(JSON.stringify(context), secrets));
  } catch {
    return { redacted: redact(String(JSON.stringify(context)), secrets) };
  }
}

function absolutePath(path: string): string {
  if (path.startsWith("/") || /^[A-Za-z]:[\\/]/.test(path)) return path;
  const cwd = Deno.cwd();
  if (path === ".") return cwd;
  return `${cwd.replace(/[\\/]+$/, "")}/${path.replace(/^\.\//, "")}`;
}

function findCycle(ids: string[], adjacency: Map<string, string[]>): string[] | undefined {
  const state = new Map<string, 1 | 2>();
  const stack: string[] = [];
  const visit = (id: string): string[] | undefined => {
    state.set(id, 1);
    stack.push(id);
    for (const next of adjacency.get(id) ?? []) {
      const st = state.get(next);
      if (st === 1) return [...stack.slice(stack.indexOf(next)), next];
      if (st === undefined) {
        const found = visit(next);
        if (found) return found;
      }
    }
    stack.pop();
    state.set(id, 2);
    return undefined;
  };
  for (const id of ids) {
    if (!state.has(id)) {
      const found = visit(id);
      if (found) return found;
    }
  }
  return undefined;
}

/** What a cell needs from its workflow. */
interface CellHost {
  readonly clock: Clock;
  readonly startedAtWallClock: number;
  readonly hardStopped: boolean;
  readonly hardStopSignal: AbortSignal;
  readonly stopping: boolean;
  readonly strategy: SupervisionStrategy;
  readonly baseDir: string;
  cells(): readonly Cell[];
  random(): number;
  fail(error: Error): void;
  deadLetter(
    node: string,
    message: unknown,
    error: unknown,
    attempts: number,
    context?: Record<string, unknown>,
  ): void;
  flushDeadLetters(): Promise<void> | undefined;
  snapshot(): WorkflowSnapshot;
}

type CellState = "starting" | "running" | "restarting" | "draining" | "done" | "failed" | "stopped";

/** One node at run time: its mailbox, actor incarnation and supervisor. */
/**
 * How many direct hand-overs are on the stack now: past the limit, batches
 * queue in mailboxes instead, so a long chain of idle nodes cannot exhaust
 * the call stack.
 */
let directDepth = 0;
const MAX_DIRECT_DEPTH = 32;

class Cell {
  readonly id: string;
  readonly kind: NodeKind;
  readonly spec: NodeSpec;
  readonly mailbox: Mailbox<unknown, Checkpoint> | undefined;
  readonly metrics: NodeMetrics = new NodeMetrics();
  readonly supervision: SupervisionOptions;
  abandoned: number = 0;
  /** Messages of the batch being handled now. */
  #inFlight = 0;
  /** Between a failure and the supervisor's decision (busy for the virtual clock). */
  #recovering = false;
  /** The run loop is parked waiting for messages: a sender may hand a batch over directly. */
  #idle = false;
  /** A batch handed over directly whose handling went asynchronous; the run loop finishes it. */
  #handover: Promise<void> | undefined;
  #wf: CellHost;
  #node: ResolvedNode;
  #log: Logger;
  #edges = new Map<string, Cell[]>();
  #targets: Cell[] = [];
  #openInputs = 0;
  #intensity: RestartIntensity;
  #state: CellState = "starting";
  #dead = false;
  #actor: Actor | undefined;
  #ctx: ActorContext | undefined;
  #incarnation: AbortController | undefined;
  #timers = new Set<TimerId>();
  #tasks: (() => void | Promise<void>)[] = [];
  /**
   * Messages emitted on `out` since the last flush: the first `#outCount`
   * slots. Handed over at each flush and replaced by an array sized like the
   * last one: filling a preallocated array costs a store per message, where
   * growing one copies it again and again.
   */
  #outMain: unknown[] = new Array(16);
  #outCount = 0;
  /** The targets of `out` (empty when unconnected). */
  #mainTargets: Cell[] = [];
  /** Ports other than `out`, by slot: emitted messages, names and targets. */
  #otherSlots = new Map<string, number>();
  #otherBuffers: unknown[][] = [];
  /** Messages emitted per slot since the last flush (nothing is kept for unconnected ports). */
  #otherCounts: number[] = [];
  #otherConnected: boolean[] = [];
  #otherPorts: string[] = [];
  /**
   * Slots of the messages emitted on ports other than `out`, in order (the
   * first `#otherLogCount`), for rollback.
   */
  #otherLog: number[] = [];
  #otherLogCount = 0;
  #held: { barrier: number; checkpoint: Checkpoint }[] = [];
  #restartRequested = false;
  #failedAttempts = 0;
  #batchAttempts = 0;
  #connectedPorts = new Set<string>();
  #persistent = new Map<string, unknown>();
  #lastYield = 0;

  constructor(wf: CellHost, node: ResolvedNode, log: Logger) {
    this.#wf = wf;
    this.#node = node;
    this.id = node.decl.id;
    this.kind = node.spec.kind;
    this.spec = node.spec;
    this.supervision = node.supervision;
    this.#log = withFields(log, { node: this.id });
    this.#intensity = new RestartIntensity(
      node.supervision.maxRestarts,
      node.supervision.periodMs,
    );
    if (this.kind !== "source") {
      this.mailbox = new Mailbox<unknown, Checkpoint>({
        capacity: node.mailbox.capacity,
        overflow: node.mailbox.overflow,
        sampleRate: node.mailbox.sample_rate,
        seed: node.mailbox.seed,
        owner: this.id,
        onDrop: (message, reason) => {
          if (reason === "fail") {
            this.metrics.deadLettered++;
            wf.deadLetter(
              this.id,
              message,
              new Error(`mailbox of "${this.id}" was full (overflow policy "fail")`),
              0,
            );
          }
        },
      });
    }
  }

  /** The actor's `start` is running (for the virtual clock: time waits for it). */
  starting = false;

  /** Work is queued in the mailbox or being handled. */
  get busy(): boolean {
    if (this.#state === "done" || this.#dead) return false;
    return this.#recovering || (this.mailbox?.depth ?? 0) > 0 || this.#inFlight > 0 ||
      this.#tasks.length > 0;
  }

  connect(port: string, target: Cell): void {
    const list = this.#edges.get(port) ?? [];
    list.push(target);
    this.#edges.set(port, list);
    if (port === "out") this.#mainTargets = list;
    this.#targets.push(target);
    this.#connectedPorts.add(port);
    target.#openInputs++;
  }

  snapshot(now: number): NodeSnapshot {
    const m = this.metrics;
    const mailbox = this.mailbox?.counters();
    const dropped = mailbox
      ? mailbox.dropped.drop_oldest + mailbox.dropped.drop_newest + mailbox.dropped.sample +
        mailbox.dropped.fail
      : 0;
    return {
      id: this.id,
      type: this.spec.type,
      kind: this.kind,
      state: this.#state,
      messagesIn: m.messagesIn,
      messagesOut: m.messagesOut,
      outByPort: Object.fromEntries(m.outByPort),
      ratePerSecond: m.rate(now, this.kind === "source" ? m.messagesOut : m.messagesIn),
      errors: m.errors,
      restarts: m.restarts,
      deadLettered: m.deadLettered,
      mailbox,
      mailboxUtilization: mailbox ? mailbox.depth / mailbox.capacity : 0,
      dropped,
      latencyMs: {
        p50: m.latency.quantile(0.5),
        p95: m.latency.quantile(0.95),
        p99: m.latency.quantile(0.99),
        mean: m.latency.mean,
      },
      idleMs: now - (m.lastActivity || this.#wf.startedAtWallClock),
      lastError: m.lastError,
    };
  }

  // ---- context -----------------------------------------------------------

  #makeContext(signal: AbortSignal): ActorContext {
    const wf = this.#wf;
    return {
      nodeId: this.id,
      clock: wf.clock,
      signal,
      log: this.#log,
      metrics: this.metrics,
      connectedPorts: this.#connectedPorts,
      restarts: this.metrics.restarts,
      emit: (message: unknown, port?: string) => {
        if (port === undefined || port === "out") this.#outMain[this.#outCount++] = message;
        else this.#emitOther(message, port);
      },
      emitMany: (messages: unknown[], port?: string) => {
        if (port === undefined || port === "out") this.#emitManyMain(messages);
        else this.#emitManyOther(messages, port);
      },
      flush: this.kind === "source" ? () => this.#flushSource() : () => this.flush(),
      deadLetter: (message, error, context) => {
        this.metrics.deadLettered++;
        wf.deadLetter(this.id, message, error, 1, context);
      },
      checkpoint: (onComplete) => {
        this.flush();
        this.#forward({ remaining: 1, onComplete });
      },
      schedule: (delayMs, task) => {
        const id = wf.clock.setTimeout(() => {
          this.#timers.delete(id);
          if (signal.aborted) return;
          if (this.kind === "source") {
            void Promise.resolve().then(task).then(() => this.flush()).catch((e) =>
              this.#log.error("timer task failed", { error: errorMessage(e) })
            );
          } else {
            this.#tasks.push(task);
            this.mailbox!.interrupt();
          }
        }, delayMs);
        this.#timers.add(id);
        return () => {
          wf.clock.clearTimeout(id);
          this.#timers.delete(id);
        };
      },
      resetBackoff: () => {
        this.#failedAttempts = 0;
      },
      snapshot: () => wf.snapshot(),
    };
  }

  // ---- delivery ----------------------------------------------------------

  /**
   * A source's flush. Sources are where all work starts, so they also yield
   * to the event loop every few milliseconds of busy work: a pipeline whose
   * actors never wait would otherwise starve timers, I/O and signals.
   */
  #flushSource(): Promise<void> | undefined {
    const pending = this.flush();
    const now = performance.now();
    if (now - this.#lastYield < 8) return pending;
    this.#lastYield = now;
    return pending ? pending.then(yieldMacrotask) : yieldMacrotask();
  }

  #emitOther(message: unknown, port: string): void {
    const slot = this.#slotOf(port);
    const count = this.#otherCounts[slot]++;
    if (this.#otherConnected[slot]) this.#otherBuffers[slot][count] = message;
    this.#otherLog[this.#otherLogCount++] = slot;
  }

  #emitManyMain(messages: unknown[]): void {
    const n = messages.length;
    if (this.#outCount === 0) {
      // Taken as it is: it becomes the next chunk.
      this.#outMain = messages;
      this.#outCount = n;
      return;
    }
    const out = this.#outMain;
    let count = this.#outCount;
    for (let i = 0; i < n; i++) out[count++] = messages[i];
    this.#outCount = count;
  }

  #emitManyOther(messages: unknown[], port: string): void {
    const n = messages.length;
    if (n === 0) return;
    const slot = this.#slotOf(port);
    const count = this.#otherCounts[slot];
    if (this.#otherConnected[slot]) {
      if (count === 0) {
        this.#otherBuffers[slot] = messages;
      } else {
        const out = this.#otherBuffers[slot];
        for (let i = 0; i < n; i++) out[count + i] = messages[i];
      }
    }
    this.#otherCounts[slot] = count + n;
    const log = this.#otherLog;
    let logCount = this.#otherLogCount;
    for (let i = 0; i < n; i++) log[logCount++] = slot;
    this.#otherLogCount = logCount;
  }

  /** The slot of a port other than `out`, created at its first use. */
  #slotOf(port: string): number {
    // Nodes have few ports: a scan by identity (port names are usually the
    // same string constants) beats hashing the name per message.
    const ports = this.#otherPorts;
    const scan = ports.length < 8 ? ports.length : 8;
    for (let k = 0; k < scan; k++) if (ports[k] === port) return k;
    let slot = this.#otherSlots.get(port);
    if (slot === undefined) {
      slot = this.#otherPorts.length;
      this.#otherSlots.set(port, slot);
      this.#otherPorts.push(port);
      this.#otherBuffers.push(new Array(16));
      this.#otherCounts.push(0);
      this.#otherConnected.push(this.#edges.has(port));
    }
    return slot;
  }

  /**
   * Delivers what was emitted since the last flush. Each emitted array is
   * handed to the first target's mailbox as it is (one chunk per port and
   * flush: a hop costs per batch, not per message); further targets get
   * copies, as every receiver owns its batch.
   */
  flush(): Promise<void> | undefined {
    let pending: Promise<void>[] | undefined;
    if (this.#outCount > 0) {
      const messages = this.#outMain;
      const count = this.#outCount;
      this.#outCount = 0;
      const targets = this.#mainTargets;
      if (targets.length > 0) {
        // Exactly the emitted messages (the array was preallocated).
        messages.length = count;
        this.#outMain = new Array(count < 16 ? 16 : count);
        const p = this.#deliver("out", messages, count, targets);
        if (p) (pending ??= []).push(p);
      } else {
        // Unconnected: counted only; the array is kept for the next batch.
        this.#deliver("out", messages, count, undefined);
      }
    }
    if (this.#otherLogCount > 0) {
      this.#otherLogCount = 0;
      const buffers = this.#otherBuffers;
      const counts = this.#otherCounts;
      for (let slot = 0; slot < buffers.length; slot++) {
        const count = counts[slot];
        if (count === 0) continue;
        counts[slot] = 0;
        const port = this.#otherPorts[slot];
        if (!this.#otherConnected[slot]) {
          this.#deliver(port, [], count, undefined);
          continue;
        }
        const messages = buffers[slot];
        messages.length = count;
        buffers[slot] = new Array(count < 16 ? 16 : count);
        const p = this.#deliver(port, messages, count, this.#edges.get(port));
        if (p) (pending ??= []).push(p);
      }
    }
    if (!pending) return undefined;
    return pending.length === 1 ? pending[0] : Promise.all(pending).then(() => {});
  }

  #deliver(
    port: string,
    messages: unknown[],
    count: number,
    targets: readonly Cell[] | undefined,
  ): Promise<void> | undefined {
    const m = this.metrics;
    m.messagesOut += count;
    m.outByPort.set(port, (m.outByPort.get(port) ?? 0) + count);
    m.lastActivity = this.#wf.clock.now();
    if (!targets || targets.length === 0) return undefined;
    if (targets.length === 1) return targets[0].accept(messages, this.id);
    let pending: Promise<void>[] | undefined;
    for (let k = 0; k < targets.length; k++) {
      const p = targets[k].accept(k === 0 ? messages : messages.slice(), this.id);
      if (p) (pending ??= []).push(p);
    }
    if (!pending) return undefined;
    return pending.length === 1 ? pending[0] : Promise.all(pending).then(() => {});
  }

  /**
   * Takes `messages` (the array is handed over, never reused by the sender).
   * When this node is idle (its mailbox empty, its loop parked), the batch
   * is handled at once, on the sender's stack, exactly as the loop would
   * handle it next: no queueing and no wake-up per batch, so a chain of idle
   * nodes passes small batches as cheaply as large ones.
   */
  accept(messages: unknown[], from: string): Promise<void> | undefined {
    if (this.#idle && directDepth < MAX_DIRECT_DEPTH && this.#canTakeDirectly(messages.length)) {
      return this.#direct(messages);
    }
    if (this.#dead || this.#wf.hardStopped) {
      for (let i = 0; i < messages.length; i++) {
        const message = messages[i];
        this.metrics.deadLettered++;
        this.#wf.deadLetter(
          this.id,
          message,
          new Error(`node "${this.id}" is not running (sent by "${from}")`),
          0,
        );
      }
      return undefined;
    }
    return this.mailbox!.hand(messages);
  }

  #canTakeDirectly(count: number): boolean {
    const box = this.mailbox!;
    // A batch the loop would take in one go: no larger than its batch size or the capacity.
    return count <= this.#node.mailbox.batch_size && count <= box.capacity &&
      this.#handover === undefined && !this.#restartRequested && !this.#dead &&
      this.#tasks.length === 0 && box.depth === 0 && box.pendingMarkers === 0 && !box.closed &&
      !this.#wf.hardStopped;
  }

  #direct(batch: unknown[]): Promise<void> | undefined {
    // Not idle until this batch is done: re-entrant sends queue in the mailbox.
    this.#idle = false;
    this.mailbox!.bypass(batch.length);
    this.metrics.messagesIn += batch.length;
    this.#inFlight = batch.length;
    let processing: Promise<void> | undefined;
    let pending: Promise<void> | undefined;
    directDepth++;
    try {
      try {
        processing = this.#process(batch);
      } catch (error) {
        processing = Promise.reject(error);
      }
      if (processing === undefined) pending = this.#directDone();
    } finally {
      directDepth--;
    }
    if (processing !== undefined) {
      // Asynchronous, or a message failed: the loop finishes it, with the
      // usual failure handling, before anything else.
      this.#handover = processing;
      processing.catch(() => {}); // the loop awaits it; no unhandled rejection meanwhile
      this.mailbox!.interrupt();
      return undefined;
    }
    return pending;
  }

  /** After a directly handed batch was handled: deliver its output. */
  #directDone(): Promise<void> | undefined {
    const pending = this.#batchHandled();
    // Still parked; while its output is blocked, senders queue instead.
    if (pending === undefined) this.#idle = true;
    return pending;
  }

  /** A batch was handled (by the loop or directly): reset the failure state, deliver its output. */
  #batchHandled(): Promise<void> | undefined {
    this.#inFlight = 0;
    this.#batchAttempts = 0;
    // A batch handled after a restart: the next failure backs off from the start.
    this.#failedAttempts = 0;
    return this.flush();
  }

  /** Undoes what a failed handler attempt emitted since the marks were taken. */
  #rollback(mainLength: number, otherLength: number): void {
    this.#outCount = mainLength;
    while (this.#otherLogCount > otherLength) {
      this.#otherCounts[this.#otherLog[--this.#otherLogCount]]--;
    }
  }

  // ---- checkpoints -------------------------------------------------------

  #forward(checkpoint: Checkpoint): void {
    const targets = this.#targets;
    checkpoint.remaining += targets.length - 1;
    for (const target of targets) target.#acceptCheckpoint(checkpoint);
    if (checkpoint.remaining === 0) checkpoint.onComplete();
  }

  #acceptCheckpoint(checkpoint: Checkpoint): void {
    // After the drain deadline, messages ahead of it may have been abandoned:
    // the checkpoint must never complete (no commit past lost messages).
    if (this.#wf.hardStopped) return;
    if (this.#state === "done") {
      if (--checkpoint.remaining === 0) checkpoint.onComplete();
      return;
    }
    this.mailbox!.mark(checkpoint);
  }

  async #passCheckpoints(): Promise<void> {
    const reached = this.mailbox!.takeMarkers();
    if (reached.length === 0 && this.#held.length === 0) return;
    const flushed = this.#wf.flushDeadLetters();
    if (flushed) await flushed;
    const actor = this.#actor;
    for (const checkpoint of reached) {
      const barrier = this.#dead ? undefined : actor?.checkpointBarrier?.();
      if (barrier === undefined && this.#held.length === 0) this.#forward(checkpoint);
      else this.#held.push({ barrier: barrier ?? -Infinity, checkpoint });
    }
    this.#releaseHeld(false);
  }

  #releaseHeld(all: boolean): void {
    if (this.#held.length === 0) return;
    const progress = all || this.#dead ? Infinity : this.#actor?.checkpointProgress?.() ?? Infinity;
    while (this.#held.length > 0 && this.#held[0].barrier <= progress) {
      this.#forward(this.#held.shift()!.checkpoint);
    }
  }

  // ---- lifecycle ---------------------------------------------------------

  async #startIncarnation(): Promise<void> {
    this.#incarnation = new AbortController();
    this.#ctx = this.#makeContext(this.#incarnation.signal);
    this.#actor = this.spec.create(this.#node.config, {
      id: this.id,
      clock: this.#wf.clock,
      baseDir: this.#wf.baseDir,
      persistent: this.#persistent,
    });
    this.#state = "running";
    this.starting = true;
    try {
      await this.#actor.start?.(this.#ctx);
    } finally {
      this.starting = false;
    }
  }

  async #closeIncarnation(): Promise<void> {
    this.#incarnation?.abort(new Error(`node "${this.id}" stopped`));
    for (const id of this.#timers) this.#wf.clock.clearTimeout(id);
    this.#timers.clear();
    this.#tasks = [];
    const actor = this.#actor;
    this.#actor = undefined;
    try {
      await actor?.close?.();
    } catch (error) {
      this.#log.warn("close failed", { error: errorMessage(error) });
    }
  }

  requestRestart(): void {
    if (this.#state === "done" || this.#dead) return;
    this.#restartRequested = true;
    this.#incarnation?.abort(new Error(`node "${this.id}" restarted by its supervisor`));
    this.mailbox?.interrupt();
  }

  stopSource(): void {
    this.#incarnation?.abort(new Error("workflow stopping"));
  }

  abandon(): void {
    this.#incarnation?.abort(new Error("drain deadline passed"));
    this.abandoned += this.#inFlight;
    if (this.mailbox) {
      const left = this.mailbox.drainAll();
      this.abandoned += left.length;
      this.mailbox.close();
    }
  }

  /** Supervisor decision after a failure; throws Escalation when the budget is spent. */
  async #onFailure(error: unknown): Promise<void> {
    this.#recovering = true;
    try {
      await this.#decide(error);
    } finally {
      this.#recovering = false;
    }
  }

  /** The supervisor's decision after a failure; throws Escalation when the budget is spent. */
  async #decide(error: unknown): Promise<void> {
    const m = this.metrics;
    m.errors++;
    m.lastError = errorMessage(error);
    this.#log.error("actor failed", { error: m.lastError });
    await this.#closeIncarnation();
    const sup = this.supervision;
    const now = this.#wf.clock.now();
    this.#failedAttempts++;
    if (sup.restart === "temporary") {
      throw new Escalation(
        new Error(`node "${this.id}" failed and is temporary: ${m.lastError}`, { cause: error }),
      );
    }
    if (this.#failedAttempts > sup.maxAttempts) {
      throw new Escalation(
        new Error(
          `node "${this.id}" failed ${this.#failedAttempts} times in a row (max_attempts ${sup.maxAttempts}); last error: ${m.lastError}`,
          { cause: error },
        ),
      );
    }
    if (!this.#intensity.allow(now)) {
      throw new Escalation(
        new RestartIntensityError(this.id, sup.maxRestarts, sup.periodMs / 1000, error),
      );
    }
    if (this.#wf.hardStopped) throw new Escalation(new Error("drain deadline passed"));
    this.#state = "restarting";
    const delay = backoffDelay(this.#failedAttempts, sup.backoff, this.#wf.random());
    try {
      const sleeping = this.#wf.clock.sleep(delay, { signal: this.#wf.hardStopSignal });
      this.#recovering = false;
      await sleeping;
    } catch (error) {
      if (this.#wf.hardStopSignal.aborted) {
        throw new Escalation(new Error("drain deadline passed"));
      }
      throw error;
    }
    m.restarts++;
    this.#log.info("restarting", { attempt: this.#failedAttempts, delayMs: Math.round(delay) });
    this.#restartSiblings();
  }

  #restartSiblings(): void {
    const strategy = this.#wf.strategy;
    if (strategy === "one_for_one") return;
    const cells = this.#wf.cells();
    const index = cells.indexOf(this);
    for (let i = 0; i < cells.length; i++) {
      if (i === index) continue;
      if (strategy === "one_for_all" || (strategy === "rest_for_one" && i > index)) {
        cells[i].requestRestart();
      }
    }
  }

  #becomeDead(error: Error, permanentFailure: boolean): void {
    this.#dead = true;
    this.#state = "failed";
    if (permanentFailure) this.#wf.fail(error);
    else {this.#log.warn("node stopped for good; its messages go to dead letters", {
        error: error.message,
      });}
    if (this.mailbox) {
      for (const message of this.mailbox.drainAll()) {
        this.metrics.deadLettered++;
        this.#wf.deadLetter(this.id, message, error, 0);
      }
    }
  }

  async run(): Promise<void> {
    try {
      if (this.kind === "source") await this.#runSource();
      else await this.#runConsumer();
    } catch (error) {
      // A bug in the runtime itself: fail the workflow rather than hang.
      this.#wf.fail(error instanceof Error ? error : new Error(String(error)));
      this.#state = "failed";
    } finally {
      await this.#closeIncarnation();
      if (this.#state !== "failed") this.#state = this.#wf.hardStopped ? "stopped" : "done";
      for (const target of this.#targets) target.#inputFinished();
    }
  }

  #inputFinished(): void {
    if (--this.#openInputs === 0) this.mailbox!.close();
  }

  async #runSource(): Promise<void> {
    while (!this.#wf.hardStopped) {
      try {
        if (this.#wf.stopping && !this.#restartRequested) break;
        this.#restartRequested = false;
        await this.#startIncarnation();
        const outcome: SourceOutcome | void = await this.#actor!.run!(this.#ctx!);
        const pending = this.flush();
        if (pending) await pending;
        if (this.#restartRequested) {
          await this.#closeIncarnation();
          continue;
        }
        if (this.#wf.stopping) break;
        if (outcome && typeof outcome === "object") {
          await this.#onFailure(outcome.disconnected);
          continue;
        }
        if (this.supervision.restart === "permanent") {
          await this.#closeIncarnation();
          continue;
        }
        break;
      } catch (error) {
        if (error instanceof Escalation) {
          this.#becomeDead(error.cause as Error, this.supervision.restart !== "temporary");
          return;
        }
        if (this.#wf.stopping || this.#restartRequested) {
          const pending = this.flush();
          if (pending) await pending.catch(() => {});
          if (this.#restartRequested) {
            await this.#closeIncarnation();
            continue;
          }
          break;
        }
        try {
          await this.#onFailure(error);
        } catch (escalation) {
          if (escalation instanceof Escalation) {
            this.#becomeDead(escalation.cause as Error, this.supervision.restart !== "temporary");
            return;
          }
          throw escalation;
        }
      }
    }
  }

  async #runConsumer(): Promise<void> {
    const box = this.mailbox!;
    const batchSize = this.#node.mailbox.batch_size;
    let retry: unknown[] | undefined;
    let started = false;
    while (!this.#wf.hardStopped) {
      if (this.#dead) {
        // Dead letters for whatever still arrives, until the inputs end.
        const wait = box.ready();
        if (wait) await wait;
        for (const message of box.tryReceive(box.depth)) {
          this.metrics.deadLettered++;
          this.#wf.deadLetter(this.id, message, new Error(`node "${this.id}" has failed`), 0);
        }
        await this.#passCheckpoints();
        if (box.done) return;
        continue;
      }
      try {
        if (!started || this.#restartRequested) {
          if (started) await this.#closeIncarnation();
          this.#restartRequested = false;
          await this.#startIncarnation();
          started = true;
        }
        if (retry === undefined && this.#tasks.length === 0 && this.#handover === undefined) {
          const wait = box.ready();
          if (wait) {
            this.#idle = true;
            try {
              await wait;
            } finally {
              this.#idle = false;
            }
          }
          if (this.#restartRequested && this.#handover === undefined) continue;
        }
        const handover = this.#handover;
        if (handover !== undefined) {
          this.#handover = undefined;
          await handover;
          const p = this.#batchHandled();
          if (p) await p;
        }
        const failure = box.takeFailure();
        if (failure) throw new BatchCrash(failure, []);
        while (this.#tasks.length > 0) {
          const task = this.#tasks.shift()!;
          await task();
          const p = this.flush();
          if (p) await p;
        }
        const batch = retry ?? box.tryReceive(batchSize);
        if (batch.length > 0) {
          if (retry === undefined) this.metrics.messagesIn += batch.length;
          retry = undefined;
          this.#inFlight = batch.length;
          const processing = this.#process(batch);
          if (processing) await processing;
          const p = this.#batchHandled();
          if (p) await p;
        }
        if (box.pendingMarkers > 0 || this.#held.length > 0) await this.#passCheckpoints();
        if (box.done && this.#tasks.length === 0) break;
      } catch (error) {
        this.#inFlight = 0;
        this.#recovering = true;
        // What was handled before the crash is valid output: deliver it (the
        // failed message's own output was rolled back).
        try {
          const p = this.flush();
          if (p) await p;
        } catch (flushError) {
          this.#log.warn("could not deliver output before restart", {
            error: errorMessage(flushError),
          });
        }
        const crash = error instanceof BatchCrash ? error : new BatchCrash(error, retry ?? []);
        retry = undefined;
        if (crash.remaining.length > 0) {
          this.#batchAttempts++;
          if (this.#batchAttempts > this.supervision.maxMessageRetries) {
            for (const message of crash.remaining) {
              this.metrics.deadLettered++;
              this.#wf.deadLetter(this.id, message, crash.error, this.#batchAttempts);
            }
            this.#batchAttempts = 0;
          } else {
            retry = crash.remaining;
          }
        }
        try {
          await this.#onFailure(crash.error);
          started = false;
        } catch (escalation) {
          if (escalation instanceof Escalation) {
            if (retry) {
              for (const message of retry) {
                this.metrics.deadLettered++;
                this.#wf.deadLetter(this.id, message, crash.error, this.#batchAttempts);
              }
              retry = undefined;
            }
            this.#becomeDead(escalation.cause as Error, this.supervision.restart !== "temporary");
            continue;
          }
          throw escalation;
        }
      }
    }
    if (this.#wf.hardStopped) return;
    // Graceful drain: the inputs ended and the mailbox is empty.
    this.#state = "draining";
    try {
      await this.#actor?.drain?.(this.#ctx!);
      const p = this.flush();
      if (p) await p;
    } catch (error) {
      this.metrics.errors++;
      this.metrics.lastError = errorMessage(error);
      this.#log.error("drain failed", { error: this.metrics.lastError });
      this.#wf.fail(error instanceof Error ? error : new Error(String(error)));
    }
    const flushed = this.#wf.flushDeadLetters();
    if (flushed) await flushed;
    this.#releaseHeld(true);
  }

  /**
   * Runs one batch through the actor with message-level failure handling;
   * synchronous when the actor's `map` is.
   */
  #process(batch: unknown[]): Promise<void> | undefined {
    const started = this.#wf.clock.monotonic();
    const pending = this.#actor!.map ? this.#mapFrom(batch, 0) : this.#processOther(batch);
    if (pending) return pending.then(() => this.#recordLatency(started, batch.length));
    this.#recordLatency(started, batch.length);
  }

  #recordLatency(started: number, count: number): void {
    const clock = this.#wf.clock;
    this.metrics.latency.record((clock.monotonic() - started) / count, count);
    this.metrics.lastActivity = clock.now();
  }

  /**
   * `handleMessage` or `handle`: synchronous while the actor is, so a batch
   * costs no promise unless the actor returns one or fails.
   */
  #processOther(batch: unknown[]): Promise<void> | undefined {
    const actor = this.#actor!;
    if (actor.handleMessage) return this.#handleFrom(batch, 0);
    if (!actor.handle) return undefined;
    const mainLength = this.#outCount;
    const otherLength = this.#otherLogCount;
    let r;
    try {
      r = actor.handle(batch, this.#ctx!);
    } catch (error) {
      return this.#handleFailed(batch, error, mainLength, otherLength);
    }
    if (r instanceof Promise) {
      return r.then(
        undefined,
        (error) => this.#handleFailed(batch, error, mainLength, otherLength),
      );
    }
    return undefined;
  }

  /** `handleMessage` from message `start`, synchronous until a call returns a promise or fails. */
  #handleFrom(batch: unknown[], start: number): Promise<void> | undefined {
    const actor = this.#actor!;
    const ctx = this.#ctx!;
    for (let i = start; i < batch.length; i++) {
      const mainLength = this.#outCount;
      const otherLength = this.#otherLogCount;
      let r;
      try {
        r = actor.handleMessage!(batch[i], ctx);
      } catch (error) {
        return this.#handleMessageFailed(batch, i, error, mainLength, otherLength);
      }
      if (r instanceof Promise) return this.#handleAsync(batch, i, r, mainLength, otherLength);
    }
    return undefined;
  }

  async #handleAsync(
    batch: unknown[],
    index: number,
    pending: Promise<void>,
    mainLength: number,
    otherLength: number,
  ): Promise<void> {
    try {
      await pending;
    } catch (error) {
      return await this.#handleMessageFailed(batch, index, error, mainLength, otherLength);
    }
    await this.#handleFrom(batch, index + 1);
  }

  async #handleMessageFailed(
    batch: unknown[],
    index: number,
    error: unknown,
    mainLength: number,
    otherLength: number,
  ): Promise<void> {
    this.#rollback(mainLength, otherLength);
    if (this.supervision.onMessageError === "restart") {
      throw new BatchCrash(error, batch.slice(index));
    }
    await this.#retryMessage(batch[index], error);
    await this.#handleFrom(batch, index + 1);
  }

  /** A failed `handle`: undo its output, then find the failing messages one at a time. */
  async #handleFailed(
    batch: unknown[],
    error: unknown,
    mainLength: number,
    otherLength: number,
  ): Promise<void> {
    const actor = this.#actor!;
    const ctx = this.#ctx!;
    this.#rollback(mainLength, otherLength);
    if (this.supervision.onMessageError === "restart") throw new BatchCrash(error, batch);
    if (batch.length === 1) return await this.#retryMessage(batch[0], error);
    for (const message of batch) {
      const main = this.#outCount;
      const other = this.#otherLogCount;
      try {
        const r = actor.handle!([message], ctx);
        if (r !== undefined) await r;
      } catch (e) {
        this.#rollback(main, other);
        await this.#retryMessage(message, e);
      }
    }
  }

  /**
   * The `map` fast path from message `start`: results go straight into the
   * outbox (a failed call emitted nothing, so nothing is rolled back). Stays
   * synchronous until a result is a promise or a message fails.
   */
  #mapFrom(batch: unknown[], start: number): Promise<void> | undefined {
    const actor = this.#actor!;
    const ctx = this.#ctx!;
    const map = actor.map!;
    const n = batch.length;
    for (let i = start; i < n; i++) {
      let r;
      try {
        r = map.call(actor, batch[i], ctx);
      } catch (error) {
        return this.#mapFailed(batch, i, error);
      }
      if (r instanceof Promise) return this.#mapAsync(batch, i, r);
      if (r !== undefined && r !== null) this.#outMain[this.#outCount++] = r;
    }
    return undefined;
  }

  async #mapAsync(batch: unknown[], index: number, pending: Promise<unknown>): Promise<void> {
    let r;
    try {
      r = await pending;
    } catch (error) {
      return await this.#mapFailed(batch, index, error);
    }
    if (r !== undefined && r !== null) this.#outMain[this.#outCount++] = r;
    await this.#mapFrom(batch, index + 1);
  }

  async #mapFailed(batch: unknown[], index: number, error: unknown): Promise<void> {
    if (this.supervision.onMessageError === "restart") {
      throw new BatchCrash(error, batch.slice(index));
    }
    await this.#retryMessage(batch[index], error);
    await this.#mapFrom(batch, index + 1);
  }

  async #retryMessage(message: unknown, firstError: unknown): Promise<void> {
    const actor = this.#actor!;
    const ctx = this.#ctx!;
    this.metrics.errors++;
    this.metrics.lastError = errorMessage(firstError);
    let lastError = firstError;
    for (let attempt = 1; attempt <= this.supervision.maxMessageRetries; attempt++) {
      const mainLength = this.#outCount;
      const otherLength = this.#otherLogCount;
      try {
        if (actor.map) {
          const r = await actor.map(message, ctx);
          if (r !== undefined && r !== null) this.#outMain[this.#outCount++] = r;
          return;
        }
        const r = actor.handleMessage
          ? actor.handleMessage(message, ctx)
          : actor.handle!([message], ctx);
        if (r !== undefined) await r;
        return;
      } catch (error) {
        this.#rollback(mainLength, otherLength);
        lastError = error;
      }
    }
    this.metrics.deadLettered++;
    this.#wf.deadLetter(
      this.id,
      message,
      lastError,
      this.supervision.maxMessageRetries + 1,
    );
  }
}
