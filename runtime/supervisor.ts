/**
 * Supervision as plain data: strategies, restart types, intensity and
 * backoff, plus the restart-intensity bookkeeping.
 *
 * @module
 */
import type { BackoffOptions } from "./backoff.ts";
import { s, type Schema } from "./schema.ts";

/** Which actors restart when one fails. */
export type SupervisionStrategy = "one_for_one" | "one_for_all" | "rest_for_one";

/**
 * When a node is restarted: `permanent` always (even after its input ended),
 * `transient` after a failure, `temporary` never (its messages go to dead
 * letters from then on).
 */
export type RestartType = "permanent" | "transient" | "temporary";

/** What an error thrown while handling a message means. */
export type MessageErrorPolicy = "dead_letter" | "restart";

/** Per-node supervision, resolved (times in milliseconds). */
export interface SupervisionOptions {
  /** When the node is restarted. @default {"transient"} */
  restart: RestartType;
  /** R: restarts allowed in `periodMs` before the workflow fails. @default {5} */
  maxRestarts: number;
  /** P, in milliseconds. @default {60000} */
  periodMs: number;
  /** Delay before each restart. */
  backoff: BackoffOptions;
  /**
   * Consecutive failed attempts (without `resetBackoff`) before the node
   * fails for good; a source's `max_reconnect_attempts`. @default {Infinity}
   */
  maxAttempts: number;
  /** Retries of a failing message before it goes to dead letters. @default {3} */
  maxMessageRetries: number;
  /**
   * `dead_letter`: retry the message, then dead-letter it; the actor carries
   * on (default for processors). `restart`: the error crashes the actor.
   */
  onMessageError: MessageErrorPolicy;
}

/** Supervision defaults. */
export const DEFAULT_SUPERVISION: Readonly<SupervisionOptions> = {
  restart: "transient",
  maxRestarts: 5,
  periodMs: 60_000,
  backoff: { initialDelayMs: 100, factor: 2, maxDelayMs: 30_000, jitter: 0.2 },
  maxAttempts: Infinity,
  maxMessageRetries: 3,
  onMessageError: "dead_letter",
};

/** The YAML form of per-node supervision (seconds, the guide's style). */
export interface SupervisionConfig {
  /** When the node is restarted. */
  restart?: RestartType;
  /** R: restarts allowed within `restart_period`. */
  max_restarts?: number;
  /** P, in seconds. */
  restart_period?: number;
  /** First backoff delay, in seconds. */
  initial_delay?: number;
  /** Growth of the delay per attempt. */
  backoff_factor?: number;
  /** Cap of the delay, in seconds. */
  max_delay?: number;
  /** Randomized fraction of each delay, from 0 to 1. */
  jitter?: number;
  /** Consecutive failed attempts before the node fails for good. */
  max_attempts?: number;
  /** Retries of a failing message before it goes to dead letters. */
  max_message_retries?: number;
  /** What an error thrown while handling a message does. */
  on_message_error?: MessageErrorPolicy;
}

/** Schema of a node's `supervision` block. */
export const supervisionSchema: Schema<SupervisionConfig | undefined> = s.object({
  restart: s.enum(["permanent", "transient", "temporary"] as const, {
    optional: true,
    doc: "When to restart: permanent (always), transient (after a failure), temporary (never).",
  }),
  max_restarts: s.integer({
    min: 0,
    optional: true,
    doc: "R: restarts allowed within restart_period.",
  }),
  restart_period: s.number({ greaterThan: 0, optional: true, doc: "P, in seconds." }),
  initial_delay: s.number({ min: 0, optional: true, doc: "First backoff delay, seconds." }),
  backoff_factor: s.number({ min: 1, optional: true, doc: "Growth of the delay per attempt." }),
  max_delay: s.number({ min: 0, optional: true, doc: "Cap of the delay, seconds." }),
  jitter: s.number({ min: 0, max: 1, optional: true, doc: "Randomized fraction of each delay." }),
  max_attempts: s.integer({
    min: 1,
    optional: true,
    doc: "Consecutive failures before giving up.",
  }),
  max_message_retries: s.integer({ min: 0, optional: true, doc: "Retries of a failing message." }),
  on_message_error: s.enum(["dead_letter", "restart"] as const, {
    optional: true,
    doc: "What an error while handling a message does.",
  }),
}, { optional: true, doc: "How the supervisor treats this node's failures." });

/**
 * Merges supervision layers (defaults, node-type defaults, YAML) into resolved options.
 *
 * @param base The resolved options to start from.
 * @param layers Partial options; later layers win.
 * @returns Resolved options.
 * @example Overriding the restart budget
 * ```ts
 * import { DEFAULT_SUPERVISION, resolveSupervision } from "./supervisor.ts";
 * const o = resolveSupervision(DEFAULT_SUPERVISION, { maxRestarts: 1 });
 * console.assert(o.maxRestarts === 1 && o.periodMs === 60000);
 * ```
 */
export function resolveSupervision(
  base: Readonly<SupervisionOptions>,
  ...layers: (Partial<SupervisionOptions> | undefined)[]
): SupervisionOptions {
  let out: SupervisionOptions = { ...base, backoff: { ...base.backoff } };
  for (const layer of layers) {
    if (!layer) continue;
    out = {
      ...out,
      ...Object.fromEntries(Object.entries(layer).filter(([, v]) => v !== undefined)),
      backoff: { ...out.backoff, ...layer.backoff },
    };
  }
  return out;
}

/**
 * Converts the YAML form (seconds) to partial options (milliseconds).
 *
 * @param config The parsed `supervision` block.
 * @returns Partial options.
 * @example Seconds become milliseconds
 * ```ts
 * import { supervisionFromConfig } from "./supervisor.ts";
 * console.assert(supervisionFromConfig({ restart_period: 2 }).periodMs === 2000);
 * ```
 */
export function supervisionFromConfig(
  config: SupervisionConfig | undefined,
): Partial<SupervisionOptions> {
  if (!config) return {};
  const ms = (v: number | undefined) => v === undefined ? undefined : v * 1000;
  const backoff: BackoffOptions = {};
  if (config.initial_delay !== undefined) backoff.initialDelayMs = ms(config.initial_delay);
  if (config.backoff_factor !== undefined) backoff.factor = config.backoff_factor;
  if (config.max_delay !== undefined) backoff.maxDelayMs = ms(config.max_delay);
  if (config.jitter !== undefined) backoff.jitter = config.jitter;
  return {
    restart: config.restart,
    maxRestarts: config.max_restarts,
    periodMs: ms(config.restart_period),
    maxAttempts: config.max_attempts,
    maxMessageRetries: config.max_message_retries,
    onMessageError: config.on_message_error,
    backoff,
  };
}

/**
 * Counts restarts in a sliding period: at most R restarts in P milliseconds.
 *
 * @example Two restarts per second
 * ```ts
 * import { RestartIntensity } from "./supervisor.ts";
 * const intensity = new RestartIntensity(2, 1000);
 * console.assert(intensity.allow(0) && intensity.allow(10));
 * console.assert(!intensity.allow(20));
 * console.assert(intensity.allow(1500));
 * ```
 */
export class RestartIntensity {
  /** R: restarts allowed within `periodMs`. */
  readonly maxRestarts: number;
  /** P: the length of the sliding period, in milliseconds. */
  readonly periodMs: number;
  #times: number[] = [];
  /**
   * Creates a counter that allows `maxRestarts` restarts per `periodMs`.
   *
   * @param maxRestarts R.
   * @param periodMs P in milliseconds.
   */
  constructor(maxRestarts: number, periodMs: number) {
    this.maxRestarts = maxRestarts;
    this.periodMs = periodMs;
  }
  /**
   * Records a restart at `now`.
   *
   * @param now Clock time in milliseconds.
   * @returns Whether the restart is within the budget.
   */
  allow(now: number): boolean {
    this.#times = this.#times.filter((t) => now - t < this.periodMs);
    if (this.#times.length >= this.maxRestarts) return false;
    this.#times.push(now);
    return true;
  }
}
