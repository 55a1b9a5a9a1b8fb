/**
 * Exponential backoff with jitter, as pure functions.
 *
 * @module
 */

/** Backoff settings. Times in milliseconds. */
export interface BackoffOptions {
  /** Delay before the first retry. @default {100} */
  initialDelayMs?: number;
  /** Growth per attempt; 1 disables the exponential growth. @default {2} */
  factor?: number;
  /** Upper bound of a delay. @default {30000} */
  maxDelayMs?: number;
  /**
   * Fraction of the delay that is randomized: the delay is drawn uniformly
   * from `[d * (1 - jitter), d]`. @default {0.2}
   */
  jitter?: number;
}

/**
 * The delay before retry number `attempt` (1-based).
 *
 * @param attempt 1 for the first retry.
 * @param options The backoff settings.
 * @param random A number in [0, 1); pass a seeded source for reproducible runs.
 * @returns The delay in milliseconds.
 * @throws {RangeError} When `attempt` is not a positive integer.
 * @example Delays without jitter
 * ```ts
 * import { backoffDelay } from "./backoff.ts";
 * const opts = { initialDelayMs: 100, factor: 2, maxDelayMs: 1000, jitter: 0 };
 * console.assert(backoffDelay(1, opts) === 100);
 * console.assert(backoffDelay(3, opts) === 400);
 * console.assert(backoffDelay(10, opts) === 1000);
 * ```
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  random: number = 0.5,
): number {
  if (!Number.isInteger(attempt) || attempt < 1) {
    throw new RangeError(`attempt must be a positive integer, got ${attempt}`);
  }
  const initial = options.initialDelayMs ?? 100;
  const factor = options.factor ?? 2;
  const cap = options.maxDelayMs ?? 30_000;
  const jitter = Math.min(1, Math.max(0, options.jitter ?? 0.2));
  // Capping the exponent keeps the product finite (0 * Infinity is NaN).
  const growth = Math.pow(factor, Math.min(attempt - 1, 1024));
  const base = initial <= 0 ? 0 : Math.min(cap, initial * growth);
  return base * (1 - jitter * random);
}

/**
 * The whole schedule of delays for `attempts` retries.
 *
 * @param attempts How many retries.
 * @param options The backoff settings.
 * @param random A source of numbers in [0, 1).
 * @returns One delay per retry.
 * @example The first three delays
 * ```ts
 * import { backoffSchedule } from "./backoff.ts";
 * const delays = backoffSchedule(3, { initialDelayMs: 10, jitter: 0 });
 * console.assert(delays.join() === "10,20,40");
 * ```
 */
export function backoffSchedule(
  attempts: number,
  options: BackoffOptions = {},
  random: () => number = () => 0.5,
): number[] {
  const out: number[] = [];
  for (let i = 1; i <= attempts; i++) {
    out.push(backoffDelay(i, options, random()));
  }
  return out;
}
