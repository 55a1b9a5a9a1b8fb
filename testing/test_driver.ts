/**
 * TestDriver: runs a whole workflow deterministically in memory. Its source
 * nodes are replaced by in-memory sources that emit the events you send at
 * the virtual times you choose, its sink nodes by collectors, and every
 * timer runs on a {@linkcode VirtualClock}, so no service is needed.
 *
 * @module
 */
import type { Actor, ActorContext, Logger } from "../runtime/actor.ts";
import { VirtualClock } from "../runtime/clock.ts";
import {
  buildWorkflow,
  dirname,
  type ParsedWorkflow,
  parseWorkflowText,
  readWorkflowFile,
} from "../runtime/config.ts";
import type { WorkflowDefinition } from "../runtime/config.ts";
import { type DeadLetter, MemoryDeadLetters } from "../runtime/dead_letter.ts";
import { ConfigError } from "../runtime/errors.ts";
import { createLogger } from "../runtime/log.ts";
import type { WorkflowSnapshot } from "../runtime/metrics.ts";
import { inputPorts, type NodeSpec, Registry } from "../runtime/registry.ts";
import { s } from "../runtime/schema.ts";
import { suggest } from "../runtime/suggest.ts";
import {
  type ConnectionDeclaration,
  type NodeDeclaration,
  type RunReport,
  Workflow,
} from "../runtime/workflow.ts";
import { builtins } from "../actors/mod.ts";

/** Options of a {@linkcode TestDriver}. */
export interface TestDriverOptions {
  /** The node types of the workflow. @default {new Registry(builtins)} */
  registry?: Registry;
  /** Virtual time at the start, epoch milliseconds. @default {0} */
  startTime?: number;
  /** Ids of source or sink nodes to keep as they are instead of replacing them. */
  keep?: Iterable<string>;
  /** Logger of the workflow. @default {silent} */
  logger?: Logger;
  /** Directory relative paths resolve against. @default {the workflow file's directory} */
  baseDir?: string;
  /** Virtual milliseconds a drain may take once stopped. @default {30000} */
  drainTimeoutMs?: number;
  /**
   * Virtual milliseconds {@linkcode TestDriver.finish} lets the workflow run
   * after the last input before stopping it (for sources kept that never end).
   * @default {86400000}
   */
  finishTimeoutMs?: number;
}

/** Options of {@linkcode TestDriver.fromWorkflowText} and {@linkcode TestDriver.fromFile}. */
export interface TestDriverTextOptions extends TestDriverOptions {
  /** File name for error messages. @default {"<workflow>"} or the path */
  file?: string;
  /**
   * Looks up `${VAR}`. @default {none: every variable needs a `${VAR:-default}`},
   * so tests do not depend on the machine they run on.
   */
  env?: (name: string) => string | undefined;
}

/** Options of {@linkcode TestDriver.send}. */
export interface SendOptions {
  /**
   * When to emit, in virtual milliseconds since the driver's start time.
   * @default {now}
   */
  at?: number;
  /** Output port of the source to emit on. @default {"out"} */
  port?: string;
}

/** What a finished test run produced. */
export interface TestResult {
  /** Messages each replaced sink received, in order, by sink node id. */
  outputs: Record<string, unknown[]>;
  /** Every dead letter, in order. */
  deadLetters: DeadLetter[];
  /** The run report. */
  report: RunReport;
}

interface Pending {
  at: number;
  messages: unknown[];
  port: string;
}

/** The queue of one replaced source, shared by its incarnations. */
class Feed {
  readonly queue: Pending[] = [];
  finished = false;
  #waiters = new Set<() => void>();
  push(item: Pending): void {
    // Ordered by time, then by the order of the sends.
    let i = this.queue.length;
    while (i > 0 && this.queue[i - 1].at > item.at) i--;
    this.queue.splice(i, 0, item);
    this.#wake();
  }
  finish(): void {
    this.finished = true;
    this.#wake();
  }
  /** Resolves on the next push or finish, or when `signal` aborts. */
  changed(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.#waiters.delete(done);
        signal.removeEventListener("abort", done);
        resolve();
      };
      this.#waiters.add(done);
      signal.addEventListener("abort", done, { once: true });
    });
  }
  #wake(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }
}

class FeedSource implements Actor {
  #feed: Feed;
  constructor(feed: Feed) {
    this.#feed = feed;
  }
  async run(ctx: ActorContext): Promise<"end"> {
    const feed = this.#feed;
    while (!ctx.signal.aborted) {
      const next = feed.queue[0];
      if (!next) {
        if (feed.finished) return "end";
        await feed.changed(ctx.signal);
        continue;
      }
      const delay = next.at - ctx.clock.now();
      if (delay > 0) {
        // Wait for the time to come, or for an earlier send.
        const wait = new AbortController();
        const onAbort = () => wait.abort();
        ctx.signal.addEventListener("abort", onAbort, { once: true });
        const changed = feed.changed(wait.signal).then(() => wait.abort());
        try {
          await ctx.clock.sleep(delay, { signal: wait.signal });
        } catch {
          // Woken early: look at the queue again.
        } finally {
          wait.abort();
          ctx.signal.removeEventListener("abort", onAbort);
          await changed;
        }
        continue;
      }
      feed.queue.shift();
      for (const message of next.messages) ctx.emit(message, next.port);
      const pending = ctx.flush();
      if (pending) await pending;
    }
    return "end";
  }
}

/** Event-loop turns without progress after which the workflow counts as settled. */
const QUIET_TURNS = 3;

const TEST_SOURCE = "TestDriverSource";
const TEST_SINK = "TestDriverSink";

interface SourceConfig {
  feed: Feed;
  ports: readonly string[];
}

interface SinkConfig {
  collect: (batch: unknown[]) => void;
}

const sourceSpec: NodeSpec<SourceConfig> = {
  type: TEST_SOURCE,
  kind: "source",
  description: "TestDriver: emits the events sent to it at their virtual times.",
  config: s.any<SourceConfig>(),
  outputs: (config) => config.ports,
  create: (config) => new FeedSource(config.feed),
};

function sinkSpec(inputs: readonly string[]): NodeSpec<SinkConfig> {
  return {
    type: TEST_SINK,
    kind: "sink",
    description: "TestDriver: collects the messages it receives.",
    config: s.any<SinkConfig>(),
    inputs,
    create: (config) => ({
      handle(batch: unknown[]) {
        config.collect(batch);
      },
    }),
  };
}

/** The parts of a workflow a driver rebuilds. */
interface Blueprint {
  name?: string;
  nodes: readonly NodeDeclaration[];
  connections: readonly ConnectionDeclaration[];
  defaults?: WorkflowDefinition["defaults"];
  strategy?: NonNullable<WorkflowDefinition["supervision"]>["strategy"];
  baseDir?: string;
}

/**
 * Drives a workflow under test: send events to its sources, advance the
 * virtual clock, and read what reached its sinks and dead letters.
 *
 * Sources (nodes of kind `source`) are replaced by in-memory sources that
 * emit what {@linkcode TestDriver.send} queues at the given virtual times
 * and end when {@linkcode TestDriver.finish} is called; sinks (kind `sink`)
 * are replaced by collectors. Ports, mailboxes and every processor stay as
 * they are.
 *
 * @example A generator → file workflow, tested without files
 * ```ts
 * import { TestDriver } from "./test_driver.ts";
 * const driver = TestDriver.fromWorkflowText(`
 * nodes:
 *   - {id: events, type: GeneratorNode}
 *   - {id: out, type: FileSinkNode, config: {path: out.ndjson}}
 * connections:
 *   - {from: events, to: out}
 * `);
 * driver.send("events", [{ n: 1 }]);
 * driver.send("events", [{ n: 2 }], { at: 5000 });
 * await driver.advance(1000);
 * console.assert(driver.output("out").length === 1);
 * const { outputs } = await driver.finish();
 * console.assert(JSON.stringify(outputs.out) === '[{"n":1},{"n":2}]');
 * ```
 */
export class TestDriver {
  /** The clock of the run. */
  readonly clock: VirtualClock;
  /** The workflow that runs (with the replacements). */
  readonly workflow: Workflow;
  /** Ids of the replaced sources, in declaration order. */
  readonly sources: readonly string[];
  /** Ids of the replaced sinks, in declaration order. */
  readonly sinks: readonly string[];
  readonly #startTime: number;
  readonly #feeds = new Map<string, { feed: Feed; ports: readonly string[] }>();
  readonly #outputs: Record<string, unknown[]> = {};
  readonly #deadLetters = new MemoryDeadLetters();
  readonly #options: TestDriverOptions;
  #running: Promise<RunReport> | undefined;
  #report: RunReport | undefined;
  #failure: unknown;
  #finished = false;

  /**
   * Parses workflow YAML and prepares a driver for it.
   *
   * @param text The YAML text.
   * @param options Registry, environment, replacements.
   * @returns The driver.
   * @throws {ConfigError} When the workflow is invalid (with file positions).
   */
  static fromWorkflowText(text: string, options: TestDriverTextOptions = {}): TestDriver {
    const parsed = parseWorkflowText(text, {
      file: options.file ?? "<workflow>",
      env: options.env ?? (() => undefined),
    });
    return new TestDriver(parsed, options);
  }

  /**
   * Reads a workflow file and prepares a driver for it.
   *
   * @param path The YAML file.
   * @param options Registry, environment, replacements.
   * @returns The driver.
   * @throws {ConfigError} When the file cannot be read or the workflow is invalid.
   */
  static async fromFile(path: string, options: TestDriverTextOptions = {}): Promise<TestDriver> {
    const text = await readWorkflowFile(path);
    return TestDriver.fromWorkflowText(text, { ...options, file: options.file ?? path });
  }

  /**
   * Creates a driver for a copy of the workflow in which every source and
   * sink not named in `keep` is replaced by an in-memory one.
   *
   * @param workflow A parsed workflow file, a workflow definition, or a
   *   {@linkcode Workflow} (its nodes and connections; its mailbox and
   *   supervision defaults are not visible and not copied).
   * @param options Registry, start time, replacements.
   * @throws {ConfigError} When the workflow is invalid.
   * @throws {RangeError} When `keep` names an unknown node.
   */
  constructor(
    workflow: ParsedWorkflow | WorkflowDefinition | Workflow,
    options: TestDriverOptions = {},
  ) {
    this.#options = options;
    const registry = options.registry ?? new Registry(builtins);
    this.#startTime = options.startTime ?? 0;
    this.clock = new VirtualClock(this.#startTime);
    const silent = createLogger({ level: "silent" });
    const blueprint = toBlueprint(workflow);
    // Validate the workflow as written (with positions when it came from a file).
    const original = "positionOf" in workflow
      ? buildWorkflow(workflow, { registry, logger: silent, baseDir: options.baseDir })
      : checked(blueprint, registry);
    const keep = new Set(options.keep ?? []);
    for (const id of keep) {
      if (!blueprint.nodes.some((n) => n.id === id)) {
        const hint = suggest(id, blueprint.nodes.map((n) => n.id));
        throw new RangeError(
          `keep names unknown node "${id}"${hint ? `; did you mean "${hint}"?` : ""}`,
        );
      }
    }
    const sources: string[] = [];
    const sinks: string[] = [];
    const sinkInputs = new Set<string>();
    const replaced = blueprint.nodes.map((decl) => {
      const spec = registry.get(decl.type)!;
      if (keep.has(decl.id)) return decl;
      if (spec.kind === "source") {
        sources.push(decl.id);
        const ports = original.outputPortsOf(decl.id) ?? ["out"];
        const feed = new Feed();
        this.#feeds.set(decl.id, { feed, ports });
        // No supervision: a `permanent` source would start over after its end.
        return { id: decl.id, type: TEST_SOURCE, config: { feed, ports } };
      }
      if (spec.kind === "sink") {
        sinks.push(decl.id);
        for (const port of inputPorts(spec)) sinkInputs.add(port);
        const out: unknown[] = [];
        this.#outputs[decl.id] = out;
        return {
          id: decl.id,
          type: TEST_SINK,
          config: { collect: (batch: unknown[]) => out.push(...batch) },
          mailbox: decl.mailbox,
        };
      }
      return decl;
    });
    this.sources = sources;
    this.sinks = sinks;
    let testRegistry = registry;
    if (sources.length > 0) testRegistry = testRegistry.with(sourceSpec);
    if (sinks.length > 0) testRegistry = testRegistry.with(sinkSpec([...sinkInputs]));
    this.workflow = new Workflow({
      registry: testRegistry,
      name: original.name,
      clock: this.clock,
      deadLetters: this.#deadLetters,
      logger: options.logger ?? silent,
      baseDir: options.baseDir ?? blueprint.baseDir,
      defaultMailbox: blueprint.defaults?.mailbox,
      defaultSupervision: blueprint.defaults?.supervision,
      strategy: blueprint.strategy,
    });
    for (const node of replaced) {
      this.workflow.addNode(node.type, node.id, node.config, {
        mailbox: node.mailbox,
        supervision: "supervision" in node ? node.supervision : undefined,
      });
    }
    for (const c of blueprint.connections) {
      this.workflow.addConnection(c.from, c.to, c.from_port ?? "out", c.to_port ?? "in");
    }
    const issues = this.workflow.validate();
    if (issues.length > 0) throw new ConfigError(issues);
  }

  /**
   * Queues events for a replaced source; it emits them, in order and as one
   * batch, when the virtual clock reaches `at`.
   *
   * @param sourceId A replaced source's node id.
   * @param events The messages.
   * @param options When (virtual ms since the start; default now) and on which port.
   * @returns This driver.
   * @throws {RangeError} For an unknown source or port, or a time in the past.
   * @throws {TypeError} After {@linkcode TestDriver.finish}.
   */
  send(sourceId: string, events: readonly unknown[], options: SendOptions = {}): this {
    if (this.#finished) throw new TypeError("send after finish(): the inputs have ended");
    const entry = this.#feeds.get(sourceId);
    if (!entry) {
      const hint = suggest(sourceId, this.#feeds.keys());
      throw new RangeError(
        `"${sourceId}" is not a replaced source${
          hint ? `; did you mean "${hint}"?` : ""
        } (sources: ${this.sources.join(", ") || "none"})`,
      );
    }
    if (!Array.isArray(events)) {
      throw new TypeError(`send expects an array of events, found ${typeof events}`);
    }
    const port = options.port ?? "out";
    if (!entry.ports.includes(port)) {
      throw new RangeError(
        `source "${sourceId}" has no output port "${port}" (ports: ${entry.ports.join(", ")})`,
      );
    }
    const now = this.clock.now() - this.#startTime;
    const at = options.at ?? now;
    if (!(at >= now)) {
      throw new RangeError(`at must be >= the current virtual time ${now} ms, got ${at}`);
    }
    entry.feed.push({ at: this.#startTime + at, messages: [...events], port });
    return this;
  }

  /**
   * Moves virtual time forward, emitting what was sent for that time and
   * firing every timer on the way; the workflow starts on the first call.
   * Before each timer fires, the work started by the previous one runs to
   * completion, as if it took no time.
   *
   * @param ms Virtual milliseconds.
   * @returns A promise that resolves once time has moved and the work it
   * started has settled.
   * @throws {RangeError} When `ms` is negative or `NaN`.
   * @throws {Error} What the workflow's run rejected with, if it did.
   */
  async advance(ms: number): Promise<void> {
    if (!(ms >= 0)) throw new RangeError(`advance expects ms >= 0, got ${ms}`);
    this.#start();
    const target = this.clock.now() + ms;
    while (true) {
      await this.#quiesce();
      const next = this.clock.nextTimerAt();
      if (next === undefined || next > target) break;
      await this.clock.advanceTo(next);
    }
    await this.clock.advanceTo(target);
    await this.#quiesce();
    this.#rethrow();
  }

  /**
   * Ends the inputs: every replaced source emits what is left at its time
   * and ends, virtual time moves on until the workflow has drained.
   * Processors drain as soon as their inputs end: timers they set that are
   * due later do not fire (use {@linkcode TestDriver.advance} first to let them).
   *
   * @returns The outputs, dead letters and report.
   */
  async finish(): Promise<TestResult> {
    this.#start();
    if (!this.#finished) {
      this.#finished = true;
      for (const { feed } of this.#feeds.values()) feed.finish();
    }
    const limit = this.clock.now() + this.#lastInputDelay() +
      (this.#options.finishTimeoutMs ?? 86_400_000);
    let stopped = false;
    let idle = 0;
    while (!this.#done()) {
      await this.#quiesce();
      if (this.#done()) break;
      const next = this.clock.nextTimerAt();
      if (next !== undefined && (next <= limit || stopped)) {
        idle = 0;
        await this.clock.advanceTo(next);
        continue;
      }
      if (!stopped && (next !== undefined || this.clock.now() >= limit)) {
        // Time is up (a kept source that never ends, a periodic timer): stop gracefully.
        stopped = true;
        this.workflow.stop();
        continue;
      }
      // Nothing scheduled: the workflow waits for real I/O (a kept sink or
      // connector). Give it turns, but do not spin forever on a deadlock.
      if (++idle > 2000) {
        throw new Error(
          `the workflow did not finish and has no timers pending; node states: ${
            this.workflow.snapshot().nodes.map((n) => `${n.id}=${n.state}`).join(", ")
          }`,
        );
      }
    }
    this.#rethrow();
    return {
      outputs: this.outputs,
      deadLetters: [...this.#deadLetters.letters],
      report: this.#report!,
    };
  }

  /** Messages each replaced sink has received so far, by sink id. */
  get outputs(): Record<string, unknown[]> {
    return Object.fromEntries(Object.entries(this.#outputs).map(([id, m]) => [id, [...m]]));
  }

  /**
   * Messages one replaced sink has received so far.
   *
   * @param sinkId A replaced sink's node id.
   * @returns The messages, in order.
   * @throws {RangeError} For an unknown sink.
   */
  output(sinkId: string): unknown[] {
    const out = this.#outputs[sinkId];
    if (!out) {
      const hint = suggest(sinkId, Object.keys(this.#outputs));
      throw new RangeError(
        `"${sinkId}" is not a replaced sink${hint ? `; did you mean "${hint}"?` : ""} (sinks: ${
          this.sinks.join(", ") || "none"
        })`,
      );
    }
    return [...out];
  }

  /** Dead letters so far. */
  get deadLetters(): DeadLetter[] {
    return [...this.#deadLetters.letters];
  }

  /**
   * The workflow's metrics now.
   *
   * @returns A snapshot of every node's counters.
   */
  snapshot(): WorkflowSnapshot {
    return this.workflow.snapshot();
  }

  #start(): void {
    if (this.#running) return;
    this.#running = this.workflow.run({ drainTimeoutMs: this.#options.drainTimeoutMs });
    this.#running.then(
      (report) => this.#report = report,
      (error) => this.#failure = error ?? new Error("workflow run failed"),
    );
  }

  #done(): boolean {
    return this.#report !== undefined || this.#failure !== undefined;
  }

  /**
   * Yields event-loop turns until the workflow's progress stops changing:
   * everything that takes no virtual time (message passing, drains) is done.
   */
  async #quiesce(): Promise<void> {
    let last = "";
    let stable = 0;
    for (let turn = 0; turn < 10_000 && stable < QUIET_TURNS && !this.#done(); turn++) {
      await this.clock.settle(1);
      const now = this.#progress();
      stable = now === last ? stable + 1 : 0;
      last = now;
    }
  }

  #progress(): string {
    const nodes = this.workflow.snapshot().nodes.map((n) =>
      `${n.state}:${n.messagesIn}:${n.messagesOut}:${
        n.mailbox?.depth ?? 0
      }:${n.errors}:${n.restarts}:${n.deadLettered}`
    );
    let collected = 0;
    for (const out of Object.values(this.#outputs)) collected += out.length;
    return `${
      nodes.join(",")
    }|${collected}|${this.#deadLetters.letters.length}|${this.clock.pendingTimers}|${this.clock.nextTimerAt()}`;
  }

  #rethrow(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }

  #lastInputDelay(): number {
    let last = this.clock.now();
    for (const { feed } of this.#feeds.values()) {
      for (const item of feed.queue) last = Math.max(last, item.at);
    }
    return last - this.clock.now();
  }
}

function toBlueprint(input: ParsedWorkflow | WorkflowDefinition | Workflow): Blueprint {
  if (input instanceof Workflow) {
    return { name: input.name, nodes: input.nodes, connections: input.connections };
  }
  const def = "positionOf" in input ? input.definition : input;
  if (def === null || typeof def !== "object" || !Array.isArray(def.nodes)) {
    throw new TypeError("TestDriver expects a workflow, a parsed workflow file or a definition");
  }
  const file = "positionOf" in input ? input.file : undefined;
  return {
    name: def.name ?? (file ? file.replace(/^.*[\\/]/, "").replace(/\.[^.]+$/, "") : undefined),
    nodes: def.nodes,
    connections: def.connections ?? [],
    defaults: def.defaults,
    strategy: def.supervision?.strategy,
    baseDir: file ? dirname(file) : undefined,
  };
}

function checked(blueprint: Blueprint, registry: Registry): Workflow {
  const workflow = new Workflow({
    registry,
    name: blueprint.name,
    defaultMailbox: blueprint.defaults?.mailbox,
    defaultSupervision: blueprint.defaults?.supervision,
    strategy: blueprint.strategy,
    logger: createLogger({ level: "silent" }),
  });
  for (const n of blueprint.nodes) {
    workflow.addNode(n.type, n.id, n.config, { mailbox: n.mailbox, supervision: n.supervision });
  }
  for (const c of blueprint.connections) {
    workflow.addConnection(c.from, c.to, c.from_port ?? "out", c.to_port ?? "in");
  }
  const issues = workflow.validate();
  if (issues.length > 0) throw new ConfigError(issues);
  return workflow;
}
