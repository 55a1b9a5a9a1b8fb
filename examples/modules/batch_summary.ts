/**
 * CodeNode module of `realtime_batching.yaml`: turns one BatchNode batch into
 * the reference guide's per-batch result (`batch_results` of
 * `streaming_workflow_processor`), without the messages themselves.
 *
 * @module
 */
import type { Batch } from "../../mod.ts";

/** The guide's per-batch result, with the batch's id, trigger and event-time span. */
export interface BatchSummary {
  /** Sequence number of the batch (1, 2, ...). */
  batch_id: number;
  /** Messages in the batch. */
  batch_size: number;
  /** Why the batch was cut: size, timeout or drain. */
  trigger: string;
  /** Seconds from the batch's first message to its emit. */
  processing_time: number;
  /** When the batch was emitted, epoch seconds. */
  processed_at: number;
  /** Event time of the first message. */
  first_timestamp: number | string | null;
  /** Event time of the last message. */
  last_timestamp: number | string | null;
  /** Sum of the messages' `data.value`. */
  value_sum: number;
}

/**
 * Summarises a batch.
 *
 * @param batch A BatchNode batch of generated events.
 * @returns Its summary.
 * @example
 * ```ts
 * import summarise from "./batch_summary.ts";
 * const summary = summarise({
 *   messages: [{ data: { value: 10 } }, { data: { value: 20 } }],
 *   count: 2, batch_id: 1, trigger: "drain", target_size: 100, timestamp: 0,
 *   processing_latency: 0.5, first_timestamp: 1, last_timestamp: 2,
 * });
 * console.assert(summary.batch_size === 2 && summary.value_sum === 30);
 * ```
 */
export default function summarise(
  batch: Batch<{ data?: { value?: number } }>,
): BatchSummary {
  let sum = 0;
  for (const m of batch.messages) sum += typeof m.data?.value === "number" ? m.data.value : 0;
  return {
    batch_id: batch.batch_id,
    batch_size: batch.count,
    trigger: batch.trigger,
    processing_time: batch.processing_latency,
    processed_at: batch.timestamp,
    first_timestamp: batch.first_timestamp,
    last_timestamp: batch.last_timestamp,
    value_sum: sum,
  };
}
