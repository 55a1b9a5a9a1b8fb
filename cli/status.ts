/**
 * Run status for the CLI: a health verdict computed from workflow snapshots,
 * the live table redrawn in place on a terminal, the plain periodic status
 * line, and the ticker that drives them.
 *
 * @module
 */
import type { Actor, ActorContext } from "../runtime/actor.ts";
import { type Clock, RealClock } from "../runtime/clock.ts";
import type { NodeSnapshot, WorkflowSnapshot } from "../runtime/metrics.ts";
import { type NodeSpec, Registry } from "../runtime/registry.ts";

/** The health of a running workflow. */
export type HealthStatus = "healthy" | "degraded" | "unhealthy";

/** A health verdict with the reasons for it. */
export interface HealthReport {
  /** `healthy`, `degraded` (working but strained) or `unhealthy` (a node failed). */
  status: HealthStatus;
  /** One line per problem, empty when healthy. */
  reasons: string[];
}

/** Options of {@linkcode assessHealth} and {@linkcode HealthTracker}. */
export interface HealthOptions {
  /** Mailbox utilization above which a node counts as congested. @default {0.8} */
  maxUtilization?: number;
}

/**
 * Judges a snapshot: a failed node makes the workflow unhealthy; a mailbox
 * fuller than `maxUtilization`, a node restarting, or errors and restarts
 * since `baseline` make it degraded.
 *
 * @param current The snapshot to judge.
 * @param baseline An earlier snapshot; errors and restarts count from it.
 *   Without one they count from the start of the run.
 * @param options Thresholds.
 * @returns The verdict.
 * @example An empty workflow is healthy
 * ```ts
 * import { assessHealth } from "./status.ts";
 * const report = assessHealth({ name: "w", time: 0, uptimeMs: 0, nodes: [], deadLetters: 0 });
 * console.assert(report.status === "healthy" && report.reasons.length === 0);
 * ```
 */
export function assessHealth(
  current: WorkflowSnapshot,
  baseline?: WorkflowSnapshot,
  options: HealthOptions = {},
): HealthReport {
  const maxUtilization = options.maxUtilization ?? 0.8;
  const before = new Map(baseline?.nodes.map((n) => [n.id, n]));
  const unhealthy: string[] = [];
  const degraded: string[] = [];
  for (const node of current.nodes) {
    const old = before.get(node.id);
    if (node.state === "failed") {
      unhealthy.push(`node "${node.id}" has failed${node.lastError ? `: ${node.lastError}` : ""}`);
      continue;
    }
    if (node.state === "restarting") degraded.push(`node "${node.id}" is restarting`);
    if (node.mailboxUtilization > maxUtilization) {
      degraded.push(
        `mailbox of "${node.id}" is ${percent(node.mailboxUtilization)} full (above ${
          percent(maxUtilization)
        })`,
      );
    }
    const errors = node.errors - (old?.errors ?? 0);
    if (errors > 0) {
      degraded.push(`node "${node.id}": ${plural(errors, "error")}${since(current, baseline)}`);
    }
    const restarts = node.restarts - (old?.restarts ?? 0);
    if (restarts > 0) {
      degraded.push(`node "${node.id}": ${plural(restarts, "restart")}${since(current, baseline)}`);
    }
  }
  if (unhealthy.length > 0) return { status: "unhealthy", reasons: [...unhealthy, ...degraded] };
  if (degraded.length > 0) return { status: "degraded", reasons: degraded };
  return { status: "healthy", reasons: [] };
}

function since(current: WorkflowSnapshot, baseline: WorkflowSnapshot | undefined): string {
  return baseline
    ? ` in the last ${formatDuration(Math.max(0, current.time - baseline.time))}`
    : "";
}

/** The latest report of a HealthMonitorNode in the workflow. */
export interface MonitorReport {
  /** The monitor's node id. */
  node: string;
  /** Its `health_status`. */
  status: string;
  /** Its alerts. */
  alerts: { type: string; node?: string; message: string }[];
}

/**
 * Adds what HealthMonitorNodes last reported to a verdict: a monitor that
 * reports anything but `healthy` makes a healthy workflow degraded, and
 * each of its alerts becomes a reason.
 *
 * @param own The verdict computed from the snapshot.
 * @param monitors The monitors' latest reports.
 * @returns The combined verdict.
 * @example A monitor's alert degrades the workflow
 * ```ts
 * import { combineHealth } from "./status.ts";
 * const report = combineHealth({ status: "healthy", reasons: [] }, [{
 *   node: "health",
 *   status: "degraded",
 *   alerts: [{ type: "LOW_THROUGHPUT", message: "0 msg/s, below 1" }],
 * }]);
 * console.assert(report.status === "degraded");
 * console.assert(report.reasons[0] === 'monitor "health": LOW_THROUGHPUT: 0 msg/s, below 1');
 * ```
 */
export function combineHealth(own: HealthReport, monitors: readonly MonitorReport[]): HealthReport {
  const reasons = [...own.reasons];
  let status = own.status;
  for (const monitor of monitors) {
    if (monitor.status !== "healthy" && status === "healthy") status = "degraded";
    for (const alert of monitor.alerts) {
      reasons.push(
        `monitor "${monitor.node}": ${alert.type}${
          alert.node ? ` on "${alert.node}"` : ""
        }: ${alert.message}`,
      );
    }
  }
  return { status, reasons };
}

/**
 * A copy of a registry whose HealthMonitorNode (when registered) also hands
 * every report it emits to `onReport`, so that the CLI can show the
 * monitor's verdict next to its own.
 *
 * @param registry The registry.
 * @param onReport Called with each report a monitor emits.
 * @param type The monitor's type name. @default {"HealthMonitorNode"}
 * @returns The registry to build the workflow with.
 * @example An empty registry
 * ```ts
 * import { tapHealthMonitors } from "./status.ts";
 * import { Registry } from "../runtime/registry.ts";
 * const registry = tapHealthMonitors(new Registry(), () => {});
 * console.assert(registry.types().length === 0);
 * ```
 */
export function tapHealthMonitors(
  registry: Registry,
  onReport: (report: MonitorReport) => void,
  type = "HealthMonitorNode",
): Registry {
  const spec = registry.get(type);
  if (!spec) return registry;
  const tapped: NodeSpec = {
    ...spec,
    create(config, env) {
      return tapActor(spec.create(config, env), (message) => {
        const report = message as { health_status?: unknown; alerts?: unknown };
        if (report && typeof report.health_status === "string") {
          onReport({
            node: env.id,
            status: report.health_status,
            alerts: Array.isArray(report.alerts) ? report.alerts : [],
          });
        }
      });
    },
  };
  return new Registry(registry.types().map((t) => t === type ? tapped : registry.get(t)!));
}

/** An actor whose emitted messages are also passed to `seen`. */
function tapActor(actor: Actor, seen: (message: unknown) => void): Actor {
  const contexts = new WeakMap<ActorContext, ActorContext>();
  const tap = (ctx: ActorContext): ActorContext => {
    let proxy = contexts.get(ctx);
    if (!proxy) {
      proxy = new Proxy(ctx, {
        get(target, prop) {
          if (prop === "emit") {
            return (message: unknown, port?: string) => {
              seen(message);
              target.emit(message, port);
            };
          }
          return Reflect.get(target, prop, target);
        },
      });
      contexts.set(ctx, proxy);
    }
    return proxy;
  };
  const wrapped: Actor = {};
  if (actor.start) wrapped.start = (ctx) => actor.start!(tap(ctx));
  if (actor.run) wrapped.run = (ctx) => actor.run!(tap(ctx));
  if (actor.handle) wrapped.handle = (batch, ctx) => actor.handle!(batch, tap(ctx));
  if (actor.handleMessage) wrapped.handleMessage = (m, ctx) => actor.handleMessage!(m, tap(ctx));
  if (actor.drain) wrapped.drain = (ctx) => actor.drain!(tap(ctx));
  if (actor.close) wrapped.close = () => actor.close!();
  if (actor.checkpointBarrier) wrapped.checkpointBarrier = () => actor.checkpointBarrier!();
  if (actor.checkpointProgress) wrapped.checkpointProgress = () => actor.checkpointProgress!();
  return wrapped;
}

/**
 * Health over a sliding window: errors and restarts count when they
 * happened within the last `windowMs` of the workflow's clock, so a single
 * error degrades the status for a while rather than for one tick.
 *
 * @example Assessing a snapshot
 * ```ts
 * import { HealthTracker } from "./status.ts";
 * const tracker = new HealthTracker({ windowMs: 60_000 });
 * const report = tracker.assess({ name: "w", time: 0, uptimeMs: 0, nodes: [], deadLetters: 0 });
 * console.assert(report.status === "healthy");
 * ```
 */
export class HealthTracker {
  #windowMs: number;
  #options: HealthOptions;
  #history: WorkflowSnapshot[] = [];

  /** @param options The window (default 60 s of clock time) and thresholds. */
  constructor(options: HealthOptions & { windowMs?: number } = {}) {
    this.#windowMs = options.windowMs ?? 60_000;
    if (!(this.#windowMs > 0)) {
      throw new RangeError(`windowMs must be > 0, got ${options.windowMs}`);
    }
    this.#options = options;
  }

  /**
   * Judges a snapshot against the oldest one kept within the window, then
   * keeps it.
   *
   * @param snapshot The current snapshot.
   * @returns The verdict.
   */
  assess(snapshot: WorkflowSnapshot): HealthReport {
    const history = this.#history;
    history.push(snapshot);
    // Keep the newest snapshot that is at least a window old as the baseline.
    while (history.length > 1 && history[1].time <= snapshot.time - this.#windowMs) {
      history.shift();
    }
    // While the run is younger than the window, every error is within it.
    const baseline = history[0] !== snapshot && snapshot.uptimeMs > this.#windowMs
      ? history[0]
      : undefined;
    return assessHealth(snapshot, baseline, this.#options);
  }
}

/**
 * Replaces each node's `ratePerSecond` by its rate since `previous` (messages
 * emitted for sources, received otherwise), so that a display ticking every
 * second shows the last second's rate. Without a usable previous snapshot
 * (none, or no clock time between them) the snapshot is returned as it is.
 *
 * @param current The snapshot now.
 * @param previous The snapshot of the previous tick.
 * @returns The snapshot with rates over the interval.
 * @example Rates between two snapshots
 * ```ts
 * import { withRates } from "./status.ts";
 * const node = { id: "a", kind: "processor", messagesIn: 0, messagesOut: 0, ratePerSecond: 0 };
 * const before = { name: "w", time: 0, uptimeMs: 0, nodes: [node], deadLetters: 0 };
 * const after = { ...before, time: 2000, nodes: [{ ...node, messagesIn: 50 }] };
 * // deno-lint-ignore no-explicit-any
 * console.assert(withRates(after as any, before as any).nodes[0].ratePerSecond === 25);
 * ```
 */
export function withRates(
  current: WorkflowSnapshot,
  previous?: WorkflowSnapshot,
): WorkflowSnapshot {
  const elapsed = previous ? current.time - previous.time : 0;
  if (!previous || !(elapsed > 0)) return current;
  const before = new Map(previous.nodes.map((n) => [n.id, n]));
  const count = (n: NodeSnapshot) => n.kind === "source" ? n.messagesOut : n.messagesIn;
  return {
    ...current,
    nodes: current.nodes.map((n) => {
      const old = before.get(n.id);
      if (!old) return n;
      return { ...n, ratePerSecond: Math.max(0, count(n) - count(old)) * 1000 / elapsed };
    }),
  };
}

/**
 * Calls `tick` every `intervalMs` until the returned handle is stopped. The
 * CLI uses {@linkcode realTicker}; tests pass one they fire by hand.
 */
export type Ticker = (intervalMs: number, tick: () => void) => { stop(): void };

/**
 * A ticker on a clock (the wall clock by default): the status display is
 * CLI presentation, not workflow time.
 *
 * @param clock The clock. @default {new RealClock()}
 * @returns The ticker.
 * @example Ticking on a virtual clock
 * ```ts
 * import { realTicker } from "./status.ts";
 * import { VirtualClock } from "../runtime/clock.ts";
 * const clock = new VirtualClock(0);
 * let ticks = 0;
 * const handle = realTicker(clock)(1000, () => ticks++);
 * await clock.advance(3000);
 * handle.stop();
 * console.assert(ticks === 3);
 * ```
 */
export function realTicker(clock: Clock = new RealClock()): Ticker {
  return (intervalMs, tick) => {
    if (!(intervalMs > 0)) throw new RangeError(`intervalMs must be > 0, got ${intervalMs}`);
    let stopped = false;
    let id = 0;
    const schedule = () => {
      id = clock.setTimeout(() => {
        if (stopped) return;
        schedule();
        tick();
      }, intervalMs);
    };
    schedule();
    return {
      stop() {
        stopped = true;
        clock.clearTimeout(id);
      },
    };
  };
}

/**
 * The status table: a header line, then one row per node with its state,
 * rate, mailbox depth and utilization, drops, errors, restarts and dead
 * letters, then the health reasons.
 *
 * @param snapshot The workflow snapshot.
 * @param health The verdict to show.
 * @returns The lines, without newlines.
 * @example The status table of an empty workflow
 * ```ts
 * import { statusTable } from "./status.ts";
 * const lines = statusTable(
 *   { name: "w", time: 0, uptimeMs: 2000, nodes: [], deadLetters: 0 },
 *   { status: "healthy", reasons: [] },
 * );
 * console.assert(lines[0] === "sluice: w up 2s, healthy, dead letters 0");
 * ```
 */
export function statusTable(snapshot: WorkflowSnapshot, health: HealthReport): string[] {
  const lines = [
    `sluice: ${snapshot.name} up ${
      formatDuration(snapshot.uptimeMs)
    }, ${health.status}, dead letters ${snapshot.deadLetters}`,
  ];
  const header = [
    "NODE",
    "TYPE",
    "STATE",
    "RATE/S",
    "QUEUE",
    "UTIL",
    "DROPPED",
    "ERRORS",
    "RESTARTS",
    "DEAD",
  ];
  const rows = snapshot.nodes.map((n) => [
    n.id,
    n.type,
    n.state,
    n.ratePerSecond.toFixed(1),
    n.mailbox ? `${n.mailbox.depth}/${n.mailbox.capacity}` : "-",
    n.mailbox ? percent(n.mailboxUtilization) : "-",
    String(n.dropped),
    String(n.errors),
    String(n.restarts),
    String(n.deadLettered),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  // Text columns align left, numbers right.
  const format = (cells: string[]) =>
    cells.map((c, i) => i < 3 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join("  ").trimEnd();
  lines.push(format(header), ...rows.map(format));
  for (const reason of health.reasons) lines.push(`  ${health.status}: ${reason}`);
  return lines;
}

/**
 * One status line for logs (non-terminal output): the health, uptime and
 * dead letters, then per node its rate, its mailbox depth and whichever
 * problem counters are not zero.
 *
 * @param snapshot The workflow snapshot.
 * @param health The verdict to show.
 * @returns The line, without a newline.
 * @example The status line of an empty workflow
 * ```ts
 * import { statusLine } from "./status.ts";
 * const line = statusLine(
 *   { name: "w", time: 0, uptimeMs: 10_000, nodes: [], deadLetters: 0 },
 *   { status: "healthy", reasons: [] },
 * );
 * console.assert(line === "status w: healthy, up 10s, dead letters 0");
 * ```
 */
export function statusLine(snapshot: WorkflowSnapshot, health: HealthReport): string {
  const parts = [
    `status ${snapshot.name}: ${health.status}, up ${
      formatDuration(snapshot.uptimeMs)
    }, dead letters ${snapshot.deadLetters}`,
  ];
  for (const n of snapshot.nodes) parts.push(nodeSummary(n));
  for (const reason of health.reasons) parts.push(`${health.status}: ${reason}`);
  return parts.join(" | ");
}

function nodeSummary(n: NodeSnapshot): string {
  const bits = [`${n.id} ${n.ratePerSecond.toFixed(1)}/s`];
  if (n.state !== "running") bits.push(n.state);
  if (n.mailbox) bits.push(`queue ${n.mailbox.depth}/${n.mailbox.capacity}`);
  if (n.dropped) bits.push(`dropped ${n.dropped}`);
  if (n.errors) bits.push(`errors ${n.errors}`);
  if (n.restarts) bits.push(`restarts ${n.restarts}`);
  if (n.deadLettered) bits.push(`dead ${n.deadLettered}`);
  return bits.join(" ");
}

/**
 * The status as structured fields (for `--log-format json`).
 *
 * @param snapshot The workflow snapshot.
 * @param health The verdict.
 * @returns Plain data.
 * @example Status fields of an empty workflow
 * ```ts
 * import { statusFields } from "./status.ts";
 * const fields = statusFields(
 *   { name: "w", time: 0, uptimeMs: 0, nodes: [], deadLetters: 0 },
 *   { status: "healthy", reasons: [] },
 * );
 * console.assert(fields.health === "healthy");
 * ```
 */
export function statusFields(
  snapshot: WorkflowSnapshot,
  health: HealthReport,
): Record<string, unknown> {
  return {
    workflow: snapshot.name,
    health: health.status,
    reasons: health.reasons,
    uptime_ms: Math.round(snapshot.uptimeMs),
    dead_letters: snapshot.deadLetters,
    nodes: snapshot.nodes.map((n) => ({
      id: n.id,
      state: n.state,
      rate_per_second: Math.round(n.ratePerSecond * 100) / 100,
      depth: n.mailbox?.depth ?? 0,
      capacity: n.mailbox?.capacity ?? 0,
      utilization: Math.round(n.mailboxUtilization * 1000) / 1000,
      dropped: n.dropped,
      errors: n.errors,
      restarts: n.restarts,
      dead_lettered: n.deadLettered,
    })),
  };
}

/** ANSI: cursor up `n` lines, to column 1, clear to the end of the screen. */
function erase(lines: number): string {
  return lines > 0 ? `\x1b[${lines}A\r\x1b[J` : "";
}

/**
 * A block of lines redrawn in place on a terminal (ANSI cursor movement).
 * Log lines written through {@linkcode LiveStatus.log} appear above the
 * block instead of being overwritten by it.
 *
 * @example Redrawing in place
 * ```ts
 * import { LiveStatus } from "./status.ts";
 * let screen = "";
 * const live = new LiveStatus((text) => screen += text, { columns: () => 80 });
 * live.render(["a", "b"]);
 * live.render(["c"]);
 * console.assert(screen === "a\nb\n\x1b[2A\r\x1b[Jc\n");
 * ```
 */
export class LiveStatus {
  #write: (text: string) => void;
  #columns: () => number;
  #drawn = 0;
  #last: string[] = [];

  /**
   * Creates a renderer with nothing drawn yet.
   *
   * @param write Writes to the terminal.
   * @param options `columns`: the terminal width, to cut lines that would
   *   wrap and break the redraw. @default {the console width, or 120}
   */
  constructor(write: (text: string) => void, options: { columns?: () => number } = {}) {
    this.#write = write;
    this.#columns = options.columns ?? consoleColumns;
  }

  /**
   * Replaces the block with `lines`; lines wider than the terminal are cut.
   *
   * @param lines The new block.
   */
  render(lines: string[]): void {
    const width = Math.max(10, this.#columns());
    const cut = lines.map((l) => l.length > width - 1 ? l.slice(0, width - 2) + "…" : l);
    this.#write(erase(this.#drawn) + cut.map((l) => l + "\n").join(""));
    this.#drawn = cut.length;
    this.#last = lines;
  }

  /**
   * Writes a line above the block (a log line), then redraws the block.
   *
   * @param line The line; a final newline is added when missing.
   */
  log(line: string): void {
    const text = line.endsWith("\n") ? line : line + "\n";
    this.#write(erase(this.#drawn) + text);
    this.#drawn = 0;
    if (this.#last.length > 0) this.render(this.#last);
  }

  /** Removes the block from the screen. */
  clear(): void {
    if (this.#drawn > 0) this.#write(erase(this.#drawn));
    this.#drawn = 0;
    this.#last = [];
  }
}

function consoleColumns(): number {
  try {
    // A pseudo-terminal without a size reports 0 columns.
    return Deno.consoleSize().columns || 120;
  } catch {
    return 120;
  }
}

/**
 * A duration for humans: `850ms`, `12s`, `3m05s`, `2h01m`.
 *
 * @param ms Milliseconds.
 * @returns The text.
 * @example Minutes and seconds
 * ```ts
 * import { formatDuration } from "./status.ts";
 * console.assert(formatDuration(185_000) === "3m05s");
 * ```
 */
export function formatDuration(ms: number): string {
  if (Math.round(ms) < 1000) return `${Math.round(ms)}ms`;
  const s = Math.max(1, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

function percent(fraction: number): string {
  return `${Math.round(fraction * 100)}%`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}
