/**
 * Test helpers for sluice workflows: a virtual clock and in-memory dead
 * letters, re-exported for `deno test`.
 *
 * @example
 * ```ts
 * import { VirtualClock } from "./mod.ts";
 * const clock = new VirtualClock(0);
 * await clock.advance(1000);
 * console.assert(clock.now() === 1000);
 * ```
 *
 * @module
 */
export { VirtualClock } from "../runtime/clock.ts";
export { MemoryDeadLetters } from "../runtime/dead_letter.ts";
