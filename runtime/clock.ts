/**
 * Clocks: every timer in sluice goes through one, so tests drive timer logic
 * with a {@linkcode VirtualClock} instantly and deterministically.
 *
 * @module
 */

/** An opaque handle returned by {@linkcode Clock.setTimeout}. */
export type TimerId = number;

/** Time source and timer service used by every sluice component. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** A monotonic reading in milliseconds, for durations. */
  monotonic(): number;
  /** Calls `fn` after `ms` milliseconds. */
  setTimeout(fn: () => void, ms: number): TimerId;
  /** Cancels a timer; unknown ids are ignored. */
  clearTimeout(id: TimerId): void;
  /**
   * Resolves after `ms` milliseconds; rejects with `signal.reason` when the
   * signal aborts first.
   */
  sleep(ms: number, options?: { signal?: AbortSignal }): Promise<void>;
}

/**
 * The wall clock: `Date.now()`, `performance.now()` and `setTimeout`.
 *
 * @example Sleeping on the wall clock
 * ```ts
 * import { RealClock } from "./clock.ts";
 * const clock = new RealClock();
 * await clock.sleep(1);
 * console.assert(clock.now() > 0);
 * ```
 */
export class RealClock implements Clock {
  /**
   * The wall-clock time.
   *
   * @returns `Date.now()`: milliseconds since the epoch.
   */
  now(): number {
    return Date.now();
  }
  /**
   * A monotonic reading, for durations.
   *
   * @returns `performance.now()`, in milliseconds.
   */
  monotonic(): number {
    return performance.now();
  }
  /**
   * Schedules `fn` with the global `setTimeout`.
   *
   * @param fn The callback.
   * @param ms The delay in milliseconds; negative delays count as 0.
   * @returns The timer's id.
   */
  setTimeout(fn: () => void, ms: number): TimerId {
    // Deno returns a number; Node's typings (pulled in by npm packages) say
    // Timeout, so normalise the type.
    return setTimeout(fn, Math.max(0, ms)) as unknown as TimerId;
  }
  /**
   * Cancels a timer.
   *
   * @param id The id {@linkcode RealClock.setTimeout} returned.
   */
  clearTimeout(id: TimerId): void {
    clearTimeout(id);
  }
  /**
   * Sleeps, cancellable by `signal`.
   *
   * @param ms The delay in milliseconds.
   * @param options `signal` cancels the sleep.
   * @returns A promise that resolves after `ms`, or rejects with
   * `signal.reason` when the signal aborts first.
   */
  sleep(ms: number, options?: { signal?: AbortSignal }): Promise<void> {
    return sleepWith(this, ms, options?.signal);
  }
}

function sleepWith(
  clock: Clock,
  ms: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clock.clearTimeout(id);
      reject(signal!.reason);
    };
    const id = clock.setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** What a {@linkcode VirtualClock} probe reports about the work in flight. */
export interface ActivityProbe {
  /** Messages are queued or being handled. */
  busy: boolean;
  /** Changes whenever any work is done. */
  signature: number;
  /**
   * Work is starting up (loading code, connecting): time waits for it even
   * without visible progress, up to a few seconds of real time.
   */
  starting?: boolean;
}

/** Event-loop turns a virtual clock always lets pass before it fires a timer. */
const MIN_SETTLE_TURNS = 2;
/** Turns without progress after which busy work is taken to wait on the clock. */
const STALLED_TURNS = 3;
/** Turns a clock waits for a timer to appear before it moves time to the target. */
const EXTRA_TIMER_TURNS = 3;
/**
 * Real time a virtual clock waits for work that is starting up (a module
 * import, a connection) before it takes it to wait on the clock too.
 */
const STARTING_PATIENCE_MS = 5_000;
/** An upper bound, so a probe that never settles cannot hang a test. */
const MAX_SETTLE_TURNS = 10_000;

interface VirtualTimer {
  id: TimerId;
  at: number;
  seq: number;
  fn: () => void;
}

/**
 * Yields to the event loop (one macrotask), so that timers, I/O and signal
 * handlers run even while a pipeline has work queued. This is not a timer:
 * it waits for no amount of time.
 *
 * @returns A promise that resolves on the next macrotask.
 * @example Letting timers and I/O run
 * ```ts
 * import { yieldMacrotask } from "./clock.ts";
 * await yieldMacrotask();
 * ```
 */
export function yieldMacrotask(): Promise<void> {
  // A message on a fresh channel: a real event-loop turn (timers and I/O get
  // theirs) without the 4 ms clamp that nested setTimeout(0) calls suffer.
  // The ports are closed at once, so nothing keeps the process alive.
  return new Promise((resolve) => {
    const { port1, port2 } = new MessageChannel();
    port1.onmessage = () => {
      port1.close();
      resolve();
    };
    port2.postMessage(null);
    port2.close();
  });
}

/**
 * A clock that only moves when told to. Timers fire in time order as
 * {@linkcode VirtualClock.advance} passes them, with the async work each one
 * starts settled before the next fires.
 *
 * @example Driving a timer
 * ```ts
 * import { VirtualClock } from "./clock.ts";
 * const clock = new VirtualClock(0);
 * let fired = false;
 * clock.setTimeout(() => fired = true, 1000);
 * await clock.advance(999);
 * console.assert(!fired);
 * await clock.advance(1);
 * console.assert(fired);
 * ```
 */
export class VirtualClock implements Clock {
  #now: number;
  #timers: VirtualTimer[] = [];
  #probes = new Set<() => ActivityProbe>();
  #nextId = 1;
  #seq = 0;

  /**
   * Creates a clock stopped at `startMs`.
   *
   * @param startMs The initial time, in epoch milliseconds. @default {0}
   */
  constructor(startMs = 0) {
    this.#now = startMs;
  }
  /**
   * The virtual time.
   *
   * @returns Milliseconds since the epoch.
   */
  now(): number {
    return this.#now;
  }
  /**
   * The virtual time (virtual time is monotonic).
   *
   * @returns The same value as {@linkcode VirtualClock.now}.
   */
  monotonic(): number {
    return this.#now;
  }
  /**
   * Schedules `fn` at now + ms; it fires during a later
   * {@linkcode VirtualClock.advance}.
   *
   * @param fn The callback.
   * @param ms The delay in milliseconds; negative delays count as 0.
   * @returns The timer's id.
   * @throws {RangeError} When `ms` is `NaN`.
   */
  setTimeout(fn: () => void, ms: number): TimerId {
    if (Number.isNaN(ms)) throw new RangeError("VirtualClock.setTimeout: delay is NaN");
    const id = this.#nextId++;
    this.#timers.push({
      id,
      at: this.#now + Math.max(0, ms),
      seq: this.#seq++,
      fn,
    });
    return id;
  }
  /**
   * Cancels a timer; unknown ids are ignored.
   *
   * @param id The id {@linkcode VirtualClock.setTimeout} returned.
   */
  clearTimeout(id: TimerId): void {
    const index = this.#timers.findIndex((t) => t.id === id);
    if (index >= 0) this.#timers.splice(index, 1);
  }
  /**
   * Resolves when virtual time reaches now + ms.
   *
   * @param ms The delay in milliseconds.
   * @param options `signal` cancels the sleep.
   * @returns A promise that resolves once time has advanced by `ms`, or
   * rejects with `signal.reason` when the signal aborts first.
   */
  sleep(ms: number, options?: { signal?: AbortSignal }): Promise<void> {
    return sleepWith(this, ms, options?.signal);
  }
  /** How many timers are scheduled. */
  get pendingTimers(): number {
    return this.#timers.length;
  }
  /**
   * When the next timer fires.
   *
   * @returns Its time in epoch milliseconds, or `undefined` when none is
   * scheduled.
   */
  nextTimerAt(): number | undefined {
    let next: number | undefined;
    for (const t of this.#timers) if (next === undefined || t.at < next) next = t.at;
    return next;
  }
  /**
   * Moves time forward by `ms`, firing every timer due on the way in order,
   * and letting the work each timer starts settle before the next.
   *
   * @param ms How far to move, in milliseconds.
   * @returns A promise that resolves once time has moved and the last timer's
   * work has settled.
   * @throws {RangeError} When `ms` is negative or `NaN`.
   */
  async advance(ms: number): Promise<void> {
    if (!(ms >= 0)) throw new RangeError(`advance expects ms >= 0, got ${ms}`);
    await this.advanceTo(this.#now + ms);
  }
  /**
   * Moves time forward to `targetMs` (see {@linkcode VirtualClock.advance});
   * a target in the past fires due timers but never moves time back.
   *
   * @param targetMs The time to reach, in epoch milliseconds.
   * @returns A promise that resolves once time has moved.
   */
  async advanceTo(targetMs: number): Promise<void> {
    while (true) {
      await this.#settleTurns();
      let due = this.#popDue(targetMs);
      // Work that just settled may still be on its way to scheduling a timer.
      for (let turn = 0; !due && turn < EXTRA_TIMER_TURNS; turn++) {
        await yieldMacrotask();
        due = this.#popDue(targetMs);
      }
      if (!due) break;
      this.#now = Math.max(this.#now, due.at);
      due.fn();
    }
    this.#now = Math.max(this.#now, targetMs);
    await yieldMacrotask();
  }

  /**
   * Registers a probe of the work in flight (a workflow registers one while
   * it runs). Time does not move while a probe reports work that is still
   * progressing, so a timer never fires ahead of messages already on their way.
   *
   * @param probe Returns whether work is queued or in flight, and a number
   * that changes whenever any work is done.
   * @returns A function that removes the probe.
   */
  watch(probe: () => ActivityProbe): () => void {
    this.#probes.add(probe);
    return () => this.#probes.delete(probe);
  }

  /**
   * Yields event-loop turns until the watched work is idle, or stuck (no
   * progress for a few turns: waiting on this clock or on outside I/O).
   */
  async #settleTurns(): Promise<void> {
    let signature = NaN;
    let still = 0;
    let startingSince: number | undefined;
    for (let turn = 0; turn < MAX_SETTLE_TURNS; turn++) {
      await yieldMacrotask();
      let busy = false;
      let starting = false;
      let sum = 0;
      for (const probe of this.#probes) {
        const activity = probe();
        busy ||= activity.busy;
        starting ||= activity.starting === true;
        sum += activity.signature;
      }
      if (starting) {
        // Start-up does real I/O that shows no progress until it is done:
        // wait for it in real time rather than count it as stalled.
        startingSince ??= performance.now();
        if (performance.now() - startingSince < STARTING_PATIENCE_MS) {
          await new Promise((resolve) => setTimeout(resolve, 1));
          still = 0;
          continue;
        }
      }
      if (!busy && turn + 1 >= MIN_SETTLE_TURNS) return;
      if (sum === signature) {
        if (++still >= STALLED_TURNS && turn + 1 >= MIN_SETTLE_TURNS) return;
      } else {
        signature = sum;
        still = 0;
      }
    }
  }

  /**
   * Lets pending work settle without moving time.
   *
   * @param rounds Event-loop turns to yield. @default {2}
   * @returns A promise that resolves after those turns.
   */
  async settle(rounds = 2): Promise<void> {
    for (let i = 0; i < rounds; i++) await yieldMacrotask();
  }
  #popDue(targetMs: number): VirtualTimer | undefined {
    let best = -1;
    for (let i = 0; i < this.#timers.length; i++) {
      const t = this.#timers[i];
      if (t.at > targetMs) continue;
      if (
        best < 0 || t.at < this.#timers[best].at ||
        (t.at === this.#timers[best].at && t.seq < this.#timers[best].seq)
      ) best = i;
    }
    return best < 0 ? undefined : this.#timers.splice(best, 1)[0];
  }
}
