/**
 * CodeNode module of `backpressure.yaml`: a deliberately slow consumer. It
 * spends a fixed amount of CPU on every message (rounds of an integer hash),
 * then passes on which consumer handled which event.
 *
 * @module
 */
import type { CodeContext } from "../../mod.ts";

/** What the consumer emits per message. */
export interface Consumed {
  /** The CodeNode's id: the backpressure strategy in backpressure.yaml. */
  consumer: string;
  /** The event's sequence number. */
  sequence: number;
  /** The event's time, so a window downstream can count by event time. */
  timestamp: number;
  /** The result of the busy work (kept so it cannot be optimised away). */
  checksum: number;
}

/** Hash rounds per message: about 0.1 ms of CPU on a 2020s laptop core. */
export const WORK_ROUNDS = 2_500;

/**
 * Busy work: `rounds` rounds of a 32-bit integer hash of `seed`.
 *
 * @param seed The input.
 * @param rounds How many rounds.
 * @returns The hash.
 * @example
 * ```ts
 * import { busyWork } from "./slow_consumer.ts";
 * console.assert(busyWork(1, 10) === busyWork(1, 10));
 * ```
 */
export function busyWork(seed: number, rounds: number): number {
  let h = seed | 0;
  for (let i = 0; i < rounds; i++) {
    h = Math.imul(h ^ (h >>> 16), 0x45d9f3b) + i;
  }
  return h >>> 0;
}

/**
 * Handles one event slowly.
 *
 * @param event A generated event.
 * @param ctx The CodeNode's context.
 * @returns The consumer's record of it.
 * @example
 * ```ts
 * import consume from "./slow_consumer.ts";
 * const out = consume({ sequence: 3, timestamp: 1 }, { nodeId: "block", time: 0 });
 * console.assert(out.consumer === "block" && out.sequence === 3);
 * ```
 */
export default function consume(
  event: { sequence: number; timestamp: number },
  ctx: CodeContext,
): Consumed {
  return {
    consumer: ctx.nodeId,
    sequence: event.sequence,
    timestamp: event.timestamp,
    checksum: busyWork(event.sequence, WORK_ROUNDS),
  };
}
