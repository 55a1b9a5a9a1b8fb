/**
 * CodeNode module of `stream_health.yaml`: validates events and rejects one
 * in ten (sequence numbers ending in 9) by throwing, so the stream has a
 * steady 10% error rate for the health monitor to notice. Rejected events go
 * to the dead letters with the error; the stream goes on.
 *
 * @module
 */

/** An event this module accepts. */
export interface ValidatedEvent {
  /** The event's sequence number. */
  sequence: number;
  /** The event's time, epoch seconds. */
  timestamp: number;
  /** Its type. */
  event_type: string;
  /** Its value. */
  value: number;
}

/**
 * Validates one generated event.
 *
 * @param event A generated event.
 * @returns The fields kept downstream.
 * @throws {RangeError} For every event whose sequence number ends in 9.
 * @example
 * ```ts
 * import validate from "./validate_event.ts";
 * const ok = validate({ sequence: 1, timestamp: 0, event_type: "view", data: { value: 10 } });
 * console.assert(ok.value === 10);
 * ```
 */
export default function validate(
  event: { sequence: number; timestamp: number; event_type: string; data: { value: number } },
): ValidatedEvent {
  if (event.sequence % 10 === 9) {
    throw new RangeError(`event ${event.sequence}: checksum mismatch (simulated bad payload)`);
  }
  return {
    sequence: event.sequence,
    timestamp: event.timestamp,
    event_type: event.event_type,
    value: event.data.value,
  };
}
