/**
 * HealthMonitorNode: the reference guide's `monitor_stream_health` as a
 * node. Every `interval_seconds` it reads the whole workflow's metrics and
 * emits a health report with the guide's alerts, plus stalled sources and
 * restart storms.
 *
 * @module
 */
import type { Actor, ActorContext } from "../../runtime/actor.ts";
import type { NodeDef } from "../../runtime/flow.ts";
import type { NodeSnapshot, WorkflowSnapshot } from "../../runtime/metrics.ts";
import type { NodeSpec } from "../../runtime/registry.ts";
import { s, type Schema } from "../../runtime/schema.ts";

/** The alert types, in the order a node's alerts are listed. */
export const HEALTH_ALERT_TYPES = [
  "LOW_THROUGHPUT",
  "HIGH_QUEUE_UTILIZATION",
  "HIGH_ERROR_RATE",
  "HIGH_LATENCY",
  "STALLED_SOURCE",
  "HIGH_RESTART_RATE",
] as const;

/** One of {@linkcode HEALTH_ALERT_TYPES}. */
export type HealthAlertType = typeof HEALTH_ALERT_TYPES[number];

/**
 * Thresholds of the checks. At the top level of the config they apply to the
 * whole workflow and are every node's defaults; under `nodes.<id>` they
 * override them for one node.
 */
export interface HealthThresholds {
  /**
   * LOW_THROUGHPUT below this many messages per second. At the top level it
   * applies to the workflow's intake (the sum over the other sources); a
   * node is checked on its own only when `nodes.<id>.min_throughput` is set.
   * @default {1}
   */
  min_throughput?: number;
  /** HIGH_QUEUE_UTILIZATION above this mailbox depth / capacity. @default {0.8} */
  max_queue_utilization?: number;
  /** HIGH_ERROR_RATE above this many errors per message processed in the interval. @default {0.05} */
  max_error_rate?: number;
  /** HIGH_LATENCY above this p95 per-message processing latency, seconds. @default {5} */
  max_latency_seconds?: number;
  /** STALLED_SOURCE after a running source emitted nothing for this long, seconds. @default {60} */
  stall_timeout_seconds?: number;
  /** HIGH_RESTART_RATE above this many restarts in the last minute. @default {3} */
  max_restarts_per_minute?: number;
}

/** Config of HealthMonitorNode (YAML keys, seconds). */
export interface HealthMonitorConfig extends Required<HealthThresholds> {
  /** Seconds between reports. @default {10} */
  interval_seconds: number;
  /** Per-node overrides of the thresholds. */
  nodes?: Record<string, HealthThresholds>;
}

/** One alert of a report. */
export interface HealthAlert {
  /** What is wrong. */
  type: HealthAlertType;
  /** The node concerned; absent for the workflow's intake (LOW_THROUGHPUT). */
  node?: string;
  /**
   * The measured value, in the threshold's unit: messages per second,
   * utilization or error fraction, seconds, or restarts.
   */
  value: number;
  /** The threshold it crossed. */
  threshold: number;
  /** The same in words. */
  message: string;
}

/** What the monitor measured for one node (every node but itself). */
export interface NodeHealth {
  /** `source`, `processor` or `sink`. */
  kind: string;
  /** `running`, `restarting`, `draining`, `done`, `failed` or `stopped`. */
  state: string;
  /** Messages per second over the interval: emitted by a source, received by the others. */
  rate_per_second: number;
  /** Messages processed in the interval (emitted by a source, received by the others). */
  processed: number;
  /** Errors in the interval. */
  errors: number;
  /** `errors / max(processed, 1)` over the interval. */
  error_rate: number;
  /** Mailbox depth / capacity now (0 for sources). */
  queue_utilization: number;
  /** p95 per-message processing latency since the start, seconds. */
  latency_p95_seconds: number;
  /** Seconds since the node last received (a source: emitted) a message. */
  idle_seconds: number;
  /** Supervisor restarts in the last minute. */
  restarts_last_minute: number;
}

/** The workflow-wide numbers of a report, after the guide's `stream_stats`. */
export interface HealthMetrics {
  /** Messages per second emitted by the other sources over the interval. */
  rate_per_second: number;
  /** Seconds the interval lasted. */
  interval_seconds: number;
  /** Errors of every other node over the interval. */
  error_count: number;
  /** Messages processed by every other node over the interval. */
  total_processed: number;
  /** Dead letters written since the start. */
  dead_letters: number;
  /** Per node. */
  nodes: Record<string, NodeHealth>;
}

/** A report, as HealthMonitorNode emits it. */
export interface HealthReport {
  /** `healthy` without alerts, `degraded` with any. */
  health_status: "healthy" | "degraded";
  /** The alerts: the workflow's first, then per node in declaration order. */
  alerts: HealthAlert[];
  /** What was measured. */
  metrics: HealthMetrics;
  /** When the report was made: clock time, epoch seconds. */
  timestamp: number;
}

const DEFAULTS: Required<HealthThresholds> = {
  min_throughput: 1,
  max_queue_utilization: 0.8,
  max_error_rate: 0.05,
  max_latency_seconds: 5,
  stall_timeout_seconds: 60,
  max_restarts_per_minute: 3,
};

const DOCS: Record<keyof HealthThresholds, string> = {
  min_throughput:
    "LOW_THROUGHPUT below this many messages/s: at the top level the workflow's intake (sum over the other sources); under nodes.<id>, that node's own rate.",
  max_queue_utilization: "HIGH_QUEUE_UTILIZATION above this mailbox depth / capacity.",
  max_error_rate: "HIGH_ERROR_RATE above this many errors per message processed in the interval.",
  max_latency_seconds: "HIGH_LATENCY above this p95 per-message processing latency, seconds.",
  stall_timeout_seconds: "STALLED_SOURCE after a running source emitted nothing for this long.",
  max_restarts_per_minute: "HIGH_RESTART_RATE above this many restarts in the last minute.",
};

function thresholdFields(withDefaults: boolean) {
  const field = (key: keyof HealthThresholds, max?: number) => {
    const options = { min: 0, max, doc: DOCS[key] };
    return withDefaults
      ? s.number({ ...options, default: DEFAULTS[key] })
      : s.number({ ...options, optional: true });
  };
  return {
    min_throughput: field("min_throughput"),
    max_queue_utilization: field("max_queue_utilization", 1),
    max_error_rate: field("max_error_rate"),
    max_latency_seconds: field("max_latency_seconds"),
    stall_timeout_seconds: field("stall_timeout_seconds"),
    max_restarts_per_minute: field("max_restarts_per_minute"),
  };
}

const healthConfig: Schema<HealthMonitorConfig> = s.object({
  interval_seconds: s.number({ greaterThan: 0, default: 10, doc: "Seconds between reports." }),
  ...thresholdFields(true),
  nodes: s.record(s.object(thresholdFields(false)), {
    optional: true,
    doc: "Per-node overrides of the thresholds: nodes.<id>.max_latency_seconds, ...",
  }),
}) as Schema<HealthMonitorConfig>;

/** How often the monitor checks whether the other sources have ended. */
const END_CHECK_MS = 1000;
const MINUTE_MS = 60_000;
const FINISHED = new Set(["done", "failed", "stopped"]);

interface Sample {
  processed: number;
  errors: number;
}

function processedOf(node: NodeSnapshot): number {
  return node.kind === "source" ? node.messagesOut : node.messagesIn;
}

function round(value: number): number {
  // Drop floating-point noise (0.1 + 0.2) so reports read and compare cleanly.
  return Math.round(value * 1e9) / 1e9;
}

class HealthMonitorActor implements Actor<never, HealthReport> {
  #config: HealthMonitorConfig;
  #previous = new Map<string, Sample>();
  #previousAt = 0;
  /** Restart counts per node, oldest first, at least a minute's worth. */
  #restarts = new Map<string, { at: number; restarts: number }[]>();

  constructor(config: HealthMonitorConfig) {
    this.#config = config;
  }

  async run(ctx: ActorContext<HealthReport>): Promise<"end"> {
    const clock = ctx.clock;
    const intervalMs = this.#config.interval_seconds * 1000;
    const first = ctx.snapshot();
    this.#record(first, ctx.nodeId, clock.monotonic());
    this.#warnUnknownNodes(first, ctx);
    let nextReport = clock.monotonic() + intervalMs;
    while (!ctx.signal.aborted) {
      const snapshot = ctx.snapshot();
      // A source never ends by itself: stop once the rest of the input has
      // ended, or the workflow would never drain.
      if (this.#othersEnded(snapshot, ctx.nodeId)) return "end";
      const now = clock.monotonic();
      if (now >= nextReport) {
        ctx.emit(this.#report(snapshot, ctx.nodeId, now));
        await ctx.flush();
        nextReport = Math.max(nextReport + intervalMs, now + 1);
        continue;
      }
      try {
        await clock.sleep(Math.min(END_CHECK_MS, nextReport - now), { signal: ctx.signal });
      } catch {
        break;
      }
    }
    return "end";
  }

  #othersEnded(snapshot: WorkflowSnapshot, self: string): boolean {
    return snapshot.nodes.every((n) =>
      n.kind !== "source" || n.id === self || FINISHED.has(n.state)
    );
  }

  #warnUnknownNodes(snapshot: WorkflowSnapshot, ctx: ActorContext<HealthReport>): void {
    const known = new Set(snapshot.nodes.map((n) => n.id));
    for (const id of Object.keys(this.#config.nodes ?? {})) {
      if (!known.has(id)) {
        ctx.log.warn(`nodes.${id}: no node "${id}" in the workflow; its thresholds are unused`);
      }
    }
  }

  /** Stores the counters the next interval is measured from. */
  #record(snapshot: WorkflowSnapshot, self: string, now: number): void {
    for (const node of snapshot.nodes) {
      if (node.id === self) continue;
      this.#previous.set(node.id, { processed: processedOf(node), errors: node.errors });
      let history = this.#restarts.get(node.id);
      if (!history) this.#restarts.set(node.id, history = []);
      history.push({ at: now, restarts: node.restarts });
      // Keep the newest sample that is at least a minute old as the baseline.
      while (history.length > 1 && now - history[1].at >= MINUTE_MS) history.shift();
    }
    this.#previousAt = now;
  }

  #restartsLastMinute(node: NodeSnapshot, now: number): number {
    const history = this.#restarts.get(node.id) ?? [];
    let baseline = history[0]?.restarts ?? 0;
    for (const sample of history) {
      if (now - sample.at >= MINUTE_MS) baseline = sample.restarts;
      else break;
    }
    return node.restarts - baseline;
  }

  #thresholds(id: string): Required<HealthThresholds> {
    return { ...this.#config, ...this.#config.nodes?.[id] };
  }

  #report(snapshot: WorkflowSnapshot, self: string, now: number): HealthReport {
    const seconds = (now - this.#previousAt) / 1000;
    const perSecond = (count: number) => seconds > 0 ? round(count / seconds) : 0;
    const alerts: HealthAlert[] = [];
    const nodeAlerts: HealthAlert[] = [];
    const nodes: Record<string, NodeHealth> = {};
    let intake = 0;
    let hasSources = false;
    let errorCount = 0;
    let totalProcessed = 0;
    const alert = (
      list: HealthAlert[],
      type: HealthAlertType,
      node: string | undefined,
      value: number,
      threshold: number,
      what: string,
    ) =>
      list.push({
        type,
        ...(node === undefined ? {} : { node }),
        value,
        threshold,
        message: `${node === undefined ? "workflow" : `node "${node}"`}: ${what}`,
      });
    for (const n of snapshot.nodes) {
      if (n.id === self) continue;
      const before = this.#previous.get(n.id) ?? { processed: 0, errors: 0 };
      const processed = processedOf(n) - before.processed;
      const errors = n.errors - before.errors;
      const health: NodeHealth = {
        kind: n.kind,
        state: n.state,
        rate_per_second: perSecond(processed),
        processed,
        errors,
        error_rate: round(errors / Math.max(processed, 1)),
        queue_utilization: round(n.mailboxUtilization),
        latency_p95_seconds: round(n.latencyMs.p95 / 1000),
        idle_seconds: round(n.idleMs / 1000),
        restarts_last_minute: this.#restartsLastMinute(n, now),
      };
      nodes[n.id] = health;
      errorCount += errors;
      totalProcessed += processed;
      if (n.kind === "source") {
        hasSources = true;
        intake += processed;
      }
      const t = this.#thresholds(n.id);
      const own = this.#config.nodes?.[n.id];
      if (own?.min_throughput !== undefined && health.rate_per_second < own.min_throughput) {
        alert(
          nodeAlerts,
          "LOW_THROUGHPUT",
          n.id,
          health.rate_per_second,
          own.min_throughput,
          `${health.rate_per_second} messages/s, below ${own.min_throughput}`,
        );
      }
      if (n.kind !== "source" && health.queue_utilization > t.max_queue_utilization) {
        alert(
          nodeAlerts,
          "HIGH_QUEUE_UTILIZATION",
          n.id,
          health.queue_utilization,
          t.max_queue_utilization,
          `mailbox ${Math.round(health.queue_utilization * 100)}% full, above ${
            Math.round(t.max_queue_utilization * 100)
          }%`,
        );
      }
      if (errors > 0 && health.error_rate > t.max_error_rate) {
        alert(
          nodeAlerts,
          "HIGH_ERROR_RATE",
          n.id,
          health.error_rate,
          t.max_error_rate,
          `${errors} errors for ${processed} messages in the interval, above ${t.max_error_rate}`,
        );
      }
      if (health.latency_p95_seconds > t.max_latency_seconds) {
        alert(
          nodeAlerts,
          "HIGH_LATENCY",
          n.id,
          health.latency_p95_seconds,
          t.max_latency_seconds,
          `p95 latency ${health.latency_p95_seconds}s, above ${t.max_latency_seconds}s`,
        );
      }
      if (
        n.kind === "source" && (n.state === "running" || n.state === "restarting") &&
        health.idle_seconds > t.stall_timeout_seconds
      ) {
        alert(
          nodeAlerts,
          "STALLED_SOURCE",
          n.id,
          health.idle_seconds,
          t.stall_timeout_seconds,
          `nothing emitted for ${health.idle_seconds}s, longer than ${t.stall_timeout_seconds}s`,
        );
      }
      if (health.restarts_last_minute > t.max_restarts_per_minute) {
        alert(
          nodeAlerts,
          "HIGH_RESTART_RATE",
          n.id,
          health.restarts_last_minute,
          t.max_restarts_per_minute,
          `${health.restarts_last_minute} restarts in the last minute, above ${t.max_restarts_per_minute}`,
        );
      }
    }
    const rate = perSecond(intake);
    if (hasSources && rate < this.#config.min_throughput) {
      alert(
        alerts,
        "LOW_THROUGHPUT",
        undefined,
        rate,
        this.#config.min_throughput,
        `${rate} messages/s in from the sources, below ${this.#config.min_throughput}`,
      );
    }
    alerts.push(...nodeAlerts);
    this.#record(snapshot, self, now);
    return {
      health_status: alerts.length === 0 ? "healthy" : "degraded",
      alerts,
      metrics: {
        rate_per_second: rate,
        interval_seconds: round(seconds),
        error_count: errorCount,
        total_processed: totalProcessed,
        dead_letters: snapshot.deadLetters,
        nodes,
      },
      timestamp: snapshot.time / 1000,
    };
  }
}

/** The HealthMonitorNode type. */
export const HealthMonitorNode: NodeSpec<HealthMonitorConfig> = {
  type: "HealthMonitorNode",
  kind: "source",
  description:
    "Every interval_seconds, reads the whole workflow's metrics and emits {health_status, alerts, metrics, timestamp}: health_status is healthy or degraded; alerts are {type, node?, value, threshold, message} for LOW_THROUGHPUT, HIGH_QUEUE_UTILIZATION, HIGH_ERROR_RATE, HIGH_LATENCY, STALLED_SOURCE and HIGH_RESTART_RATE, with thresholds per workflow and per node (nodes.<id>). It is a source that ends once every other source has ended.",
  config: healthConfig,
  create: (config) => new HealthMonitorActor(config),
};

/**
 * A typed HealthMonitorNode for the fluent builder.
 *
 * @param config The node's config (YAML keys, seconds).
 * @returns A node definition emitting {@linkcode HealthReport}s.
 * @example Monitoring one node's latency
 * ```ts
 * import { healthMonitor } from "./health.ts";
 * const def = healthMonitor({ interval_seconds: 30, nodes: { enrich: { max_latency_seconds: 1 } } });
 * console.assert(def.type === "HealthMonitorNode");
 * ```
 */
export function healthMonitor(
  config: Partial<HealthMonitorConfig> = {},
): NodeDef<never, HealthReport> {
  return { type: "HealthMonitorNode", config };
}
