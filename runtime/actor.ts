/**
 * The actor contract: what a node implements and the context the runtime
 * gives it. Supervision and the mailbox are chosen when the actor is spawned;
 * the actor never sees them.
 *
 * @module
 */
import type { Clock } from "./clock.ts";
import type { NodeMetrics, WorkflowSnapshot } from "./metrics.ts";

/** Structured log fields. */
export type LogFields = Record<string, unknown>;

/** A minimal structured logger. */
export interface Logger {
  /** Diagnostic detail. */
  debug(message: string, fields?: LogFields): void;
  /** Normal operation. */
  info(message: string, fields?: LogFields): void;
  /** Something unexpected that the runtime handled. */
  warn(message: string, fields?: LogFields): void;
  /** A failure. */
  error(message: string, fields?: LogFields): void;
}

/**
 * What an actor can do while it runs.
 *
 * @typeParam Out The type of the messages it emits.
 */
export interface ActorContext<Out = unknown> {
  /** The node id. */
  readonly nodeId: string;
  /** The clock every timer must use. */
  readonly clock: Clock;
  /** Aborts when this incarnation of the actor stops (drain, restart, stop). */
  readonly signal: AbortSignal;
  /** The node's logger. */
  readonly log: Logger;
  /** The node's counters. */
  readonly metrics: NodeMetrics;
  /** Output ports that have at least one connection. */
  readonly connectedPorts: ReadonlySet<string>;
  /** How many times this actor was restarted before this incarnation. */
  readonly restarts: number;
  /**
   * Queues a message on an output port; delivered when the runtime flushes
   * after the current batch (or when a source awaits {@linkcode ActorContext.flush}).
   */
  emit(message: Out, port?: string): void;
  /**
   * Queues messages on an output port, in order: the same as calling
   * {@linkcode ActorContext.emit} for each, at a fraction of the cost. The
   * array is taken (it may become the next batch of a receiver as it is):
   * do not use it afterwards.
   */
  emitMany(messages: Out[], port?: string): void;
  /**
   * Delivers queued messages downstream. Sources must await it regularly:
   * under the `block` policy it resolves only when downstream has room.
   */
  flush(): Promise<void> | undefined;
  /** Sends a message that cannot be processed to the dead letters. */
  deadLetter(message: unknown, error: unknown, context?: Record<string, unknown>): void;
  /**
   * Sources: marks the stream after everything emitted so far; `onComplete`
   * runs once every downstream actor, sinks included, has finished with it.
   * This is how sources commit offsets only for delivered messages.
   */
  checkpoint(onComplete: () => void): void;
  /**
   * Runs `task` after `delayMs` on the clock, inside the actor's own loop
   * (never concurrently with `handle`). Cancelled when the incarnation stops.
   *
   * @returns A function that cancels the timer.
   */
  schedule(delayMs: number, task: () => void | Promise<void>): () => void;
  /** Sources: call after (re)connecting so the next failure backs off from the start. */
  resetBackoff(): void;
  /** The whole workflow's metrics now (for health monitoring). */
  snapshot(): WorkflowSnapshot;
}

/** How a source's `run` ended, when it did not throw. */
export type SourceOutcome =
  | "end"
  | { readonly disconnected: unknown };

/**
 * A node's behaviour. Sources implement `run`; processors and sinks
 * implement `map` (one message in, at most one out), `handleMessage` (one
 * message, so that a failure affects that message only) or `handle` (a batch).
 *
 * @typeParam In The type of the messages it receives.
 * @typeParam Out The type of the messages it emits.
 */
export interface Actor<In = unknown, Out = unknown> {
  /** Called when the incarnation starts (and after every restart). */
  start?(ctx: ActorContext<Out>): void | Promise<void>;
  /** Handles a batch of messages. */
  handle?(batch: In[], ctx: ActorContext<Out>): void | Promise<void>;
  /** Handles one message. */
  handleMessage?(message: In, ctx: ActorContext<Out>): void | Promise<void>;
  /**
   * The fast path for one-in, at-most-one-out processors: the result, unless
   * `undefined` or `null`, is emitted on `out`. It must not call `ctx.emit`
   * (a failed call then has nothing to roll back). Takes precedence over
   * `handleMessage` and `handle`.
   */
  map?(
    message: In,
    ctx: ActorContext<Out>,
  ): Out | undefined | null | Promise<Out | undefined | null>;
  /**
   * Sources: produces until the input ends (`"end"` or `undefined`), the
   * connection is lost (`{disconnected}`, or a throw: restarted with backoff),
   * or `ctx.signal` aborts.
   */
  run?(ctx: ActorContext<Out>): Promise<SourceOutcome | void>;
  /** Called once after the last message on a graceful drain: flush buffers. */
  drain?(ctx: ActorContext<Out>): void | Promise<void>;
  /** Releases resources; called on stop and before a restart. */
  close?(): void | Promise<void>;
  /**
   * Stateful nodes: the progress value that must be reached before a
   * checkpoint arriving now may pass (for example the end of the latest open
   * window), or `undefined` when nothing is held.
   */
  checkpointBarrier?(): number | undefined;
  /** Stateful nodes: the progress reached so far (for example the watermark). */
  checkpointProgress?(): number;
}
