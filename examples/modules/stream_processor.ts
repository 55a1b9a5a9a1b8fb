/**
 * CodeNode module of `websocket_stream.yaml`: the reference guide's
 * `stream_processor`. It gets one batch from the WebSocketNode
 * ({messages, count, timestamp, processing_latency}) and returns the guide's
 * result: the processed messages, how many, how many failed, and a batch id.
 *
 * @module
 */
import type { CodeContext } from "../../mod.ts";

/** One processed message, as in the guide. */
export interface ProcessedMessage {
  /** The message's `id`, or null. */
  id: unknown;
  /** When it was processed, ISO 8601 (the workflow clock). */
  timestamp: string;
  /** The message's `data`, or null. */
  data: unknown;
  /** Always true. */
  processed: true;
}

/** The guide's result for one batch. */
export interface StreamResult {
  /** The messages that could be processed. */
  processed_messages: ProcessedMessage[];
  /** How many. */
  total_processed: number;
  /** Messages that were neither an object nor a JSON object string. */
  error_count: number;
  /** When the batch was processed, ISO 8601. */
  batch_id: string;
}

/**
 * Processes one batch of feed messages.
 *
 * @param batch A WebSocketNode batch (`batch_size` > 1), or a single message.
 * @param ctx The CodeNode's context (its `time` stamps the results).
 * @returns The guide's per-batch result.
 * @example
 * ```ts
 * import process from "./stream_processor.ts";
 * const result = process(
 *   { messages: [{ id: "a", data: { x: 1 } }, '{"id":"b"}', "not json"], count: 3 },
 *   { nodeId: "stream_processor", time: 0 },
 * );
 * console.assert(result.total_processed === 2 && result.error_count === 1);
 * console.assert(result.batch_id === "1970-01-01T00:00:00.000Z");
 * ```
 */
export default function process(
  batch: { messages?: unknown[] } | Record<string, unknown>,
  ctx: CodeContext,
): StreamResult {
  const messages = Array.isArray(batch.messages) ? batch.messages : [batch];
  const now = new Date(ctx.time).toISOString();
  const processed: ProcessedMessage[] = [];
  let errors = 0;
  for (const message of messages) {
    let value: unknown = message;
    if (typeof message === "string") {
      try {
        value = JSON.parse(message);
      } catch {
        errors++;
        continue;
      }
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      errors++;
      continue;
    }
    const record = value as Record<string, unknown>;
    processed.push({
      id: record.id ?? null,
      timestamp: now,
      data: record.data ?? null,
      processed: true,
    });
  }
  return {
    processed_messages: processed,
    total_processed: processed.length,
    error_count: errors,
    batch_id: now,
  };
}
