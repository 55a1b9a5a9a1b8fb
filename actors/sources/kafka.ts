/**
 * EventStreamNode: the reference guide's event source (`source_type: kafka`),
 * a Kafka consumer-group member with at-least-once delivery.
 *
 * Event shape: a JSON message whose value is an object is that object; any
 * other value (text, binary, JSON that is not an object, a null tombstone) is
 * wrapped as `{value}`. Unless `metadata: false`, every event also carries
 * `_kafka: {topic, partition, offset, key, headers, timestamp}` (an existing
 * `_kafka` field of the payload is replaced). KafkaSinkNode strips `_kafka`
 * again by default.
 *
 * Delivery: with `auto_commit: false` (the default) a partition's offset is
 * committed only once every downstream actor, sinks included, has finished
 * with every event before it ({@linkcode ActorContext.checkpoint}), in offset
 * order per partition. A crash anywhere means redelivery, never loss.
 *
 * @example A Kafka source in YAML
 * ```yaml
 * - id: events
 *   type: EventStreamNode
 *   config:
 *     source_type: kafka
 *     brokers: ${KAFKA_BROKERS}
 *     topic: user_events
 *     consumer_group: analytics_group
 *     event_format: json
 * ```
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type { Consumer, EachBatchPayload, IHeaders, KafkaMessage } from "kafkajs";
import type { Actor, ActorContext, SourceOutcome } from "../../runtime/actor.ts";
import type { ConfigIssue } from "../../runtime/errors.ts";
import { errorMessage } from "../../runtime/errors.ts";
import type { NodeDef } from "../../runtime/flow.ts";
import type { NodeSpec } from "../../runtime/registry.ts";
import { s, type Schema } from "../../runtime/schema.ts";
import {
  createKafkaClient,
  type KafkaConnectionConfig,
  kafkaConnectionFields,
  retryOptions,
  validateKafkaConnection,
} from "../kafka_client.ts";

/** Where an event came from: added as `_kafka` to every event unless `metadata: false`. */
export interface KafkaMetadata {
  /** The topic. */
  topic: string;
  /** The partition. */
  partition: number;
  /** The message offset. */
  offset: number;
  /** The message key as UTF-8 text, or `null`. */
  key: string | null;
  /** Headers as UTF-8 text (a repeated header is a list). */
  headers: Record<string, string | string[]>;
  /** The message timestamp, epoch milliseconds. */
  timestamp: number;
}

/**
 * An event from Kafka: the JSON object itself, or `{value}` for anything else,
 * plus `_kafka` metadata.
 */
export type KafkaEvent = Record<string, unknown> & { _kafka?: KafkaMetadata };

/** How message values are decoded. */
export type EventFormat = "json" | "text" | "binary";

/** Config of EventStreamNode (times in seconds). */
export interface EventStreamConfig extends KafkaConnectionConfig {
  /** Only `kafka` so far. @default {"kafka"} */
  source_type: "kafka";
  /** Topic or topics to consume (or use `topic_pattern`). */
  topic?: string | string[];
  /** Regular expression of topics to consume. */
  topic_pattern?: string;
  /** Consumer group: processes with the same group split the partitions. */
  consumer_group: string;
  /** Most events emitted per step; offsets are tracked per step. @default {500} */
  batch_size: number;
  /** Let kafkajs commit on fetch (at-most-once on a crash) instead of after delivery. @default {false} */
  auto_commit: boolean;
  /** Start at the oldest message when the group has no committed offset. @default {false} */
  from_beginning: boolean;
  /** How values are decoded. @default {"json"} */
  event_format: EventFormat;
  /** Add `_kafka` to every event. @default {true} */
  metadata: boolean;
  /** Group session timeout. @default {30} */
  session_timeout: number;
  /** Heartbeat interval, also while blocked by backpressure. @default {3} */
  heartbeat_interval: number;
  /** Time the group waits for members to rejoin in a rebalance. @default {60} */
  rebalance_timeout: number;
  /** Longest a fetch waits on the broker for new data. @default {1} */
  max_wait: number;
  /** Most bytes fetched per partition per request. @default {1048576} */
  max_bytes_per_partition: number;
  /** On stop, longest wait for in-flight events to be finished and committed. @default {10} */
  shutdown_timeout: number;
}

const eventStreamConfig: Schema<EventStreamConfig> = s.object({
  source_type: s.enum(["kafka"] as const, {
    default: "kafka",
    doc: "The event source; only kafka is implemented.",
  }),
  ...kafkaConnectionFields,
  topic: s.stringOrList({ optional: true, doc: "Topic or list of topics to consume." }),
  topic_pattern: s.string({
    optional: true,
    nonEmpty: true,
    doc: "Regular expression of topics to consume (instead of topic).",
  }),
  consumer_group: s.string({
    nonEmpty: true,
    doc: "Consumer group id; processes in one group split the partitions.",
  }),
  batch_size: s.integer({
    min: 1,
    default: 500,
    doc: "Most events emitted per step; each step is one checkpoint (offset commit unit).",
  }),
  auto_commit: s.boolean({
    default: false,
    doc:
      "true: kafkajs commits offsets as messages are fetched (may lose in-flight events on a crash). false: commit only after every downstream node, sinks included, finished them (at-least-once).",
  }),
  from_beginning: s.boolean({
    default: false,
    doc: "Start at the oldest message when the group has no committed offset (else the newest).",
  }),
  event_format: s.enum(["json", "text", "binary"] as const, {
    default: "json",
    doc:
      "json: a JSON object value is the event, any other JSON value is {value}; text: {value: string}; binary: {value: Uint8Array}. Undecodable messages go to dead letters.",
  }),
  metadata: s.boolean({
    default: true,
    doc: "Add _kafka: {topic, partition, offset, key, headers, timestamp} to every event.",
  }),
  session_timeout: s.number({ min: 1, default: 30, doc: "Group session timeout, seconds." }),
  heartbeat_interval: s.number({
    greaterThan: 0,
    default: 3,
    doc: "Heartbeat interval, seconds; heartbeats continue while backpressure blocks the source.",
  }),
  rebalance_timeout: s.number({
    min: 1,
    default: 60,
    doc: "Time the group waits for members to rejoin in a rebalance, seconds.",
  }),
  max_wait: s.number({
    min: 0,
    default: 1,
    doc: "Longest a fetch waits on the broker for new data, seconds.",
  }),
  max_bytes_per_partition: s.integer({
    min: 1024,
    default: 1048576,
    doc: "Most bytes fetched per partition per request.",
  }),
  shutdown_timeout: s.number({
    min: 0,
    default: 10,
    doc: "On stop, longest wait for in-flight events to be finished so their offsets commit.",
  }),
});

// ---- decoding ---------------------------------------------------------------

const utf8 = new TextDecoder("utf-8", { fatal: true });
const utf8Lenient = new TextDecoder("utf-8");

/**
 * Strict UTF-8 decoding, fast: Buffer's decoder is several times faster than
 * a fatal TextDecoder and turns invalid bytes into U+FFFD, so only text that
 * contains U+FFFD is checked again strictly (and throws when invalid).
 */
function utf8Strict(bytes: Uint8Array): string {
  const s = Buffer.isBuffer(bytes) ? bufferText(bytes) : utf8Lenient.decode(bytes);
  return s.includes("\uFFFD") ? utf8.decode(bytes) : s;
}

/**
 * Buffer's UTF-8 text without a leading byte order mark: TextDecoder drops
 * it and Buffer keeps it, and the same bytes must decode the same whichever
 * path they take (a BOM-prefixed JSON value was an event or a dead letter
 * depending on whether it also held a U+FFFD).
 */
function bufferText(bytes: Buffer): string {
  const s = bytes.toString("utf8");
  return bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? s.slice(1) : s;
}

/** Lenient decoding of keys and headers, with a fast path for short ASCII (most keys). */
function text(value: Uint8Array | string | null | undefined): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === "string") return value;
  if (value.length <= 32) {
    let s = "";
    for (let i = 0; i < value.length; i++) {
      const c = value[i];
      if (c > 127) return utf8Lenient.decode(value);
      s += String.fromCharCode(c);
    }
    return s;
  }
  return Buffer.isBuffer(value) ? bufferText(value) : utf8Lenient.decode(value);
}

function decodeHeaders(headers: IHeaders | undefined): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  if (!headers) return out;
  for (const name in headers) {
    const v = headers[name];
    if (v === undefined) continue;
    out[name] = Array.isArray(v) ? v.map((x) => text(x) ?? "") : text(v) ?? "";
  }
  return out;
}

/**
 * The message of a Kafka record as kafkajs delivers it (the fields used here).
 */
export interface KafkaRecord {
  /** Offset, as a decimal string. */
  offset: string;
  /** Key bytes, or null. */
  key?: Uint8Array | null;
  /** Value bytes, or null (a tombstone). */
  value: Uint8Array | null;
  /** Timestamp in epoch milliseconds, as a decimal string. */
  timestamp: string;
  /** Headers. */
  headers?: IHeaders;
}

/** Why a record could not be turned into an event. */
export class KafkaDecodeError extends Error {
  /**
   * Creates the error.
   *
   * @param message What was wrong.
   * @param options Standard error options (`cause`).
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "KafkaDecodeError";
  }
}

/**
 * Turns one Kafka record into an event (see the module docs for the shape).
 *
 * @param record The record.
 * @param topic Its topic.
 * @param partition Its partition.
 * @param format How to decode the value.
 * @param metadata Whether to add `_kafka`.
 * @returns The event.
 * @throws {KafkaDecodeError} When the value is not valid JSON (json) or UTF-8 (json, text).
 * @example
 * ```ts
 * import { kafkaEvent } from "./kafka.ts";
 * const record = { offset: "7", key: null, timestamp: "1700000000000", value: new TextEncoder().encode('{"a":1}') };
 * const e = kafkaEvent(record, "t", 0, "json", true);
 * console.assert(e.a === 1 && e._kafka?.offset === 7 && e._kafka.topic === "t");
 * ```
 */
export function kafkaEvent(
  record: KafkaRecord,
  topic: string,
  partition: number,
  format: EventFormat,
  metadata: boolean,
): KafkaEvent {
  const raw = record.value;
  let event: KafkaEvent;
  if (raw === null || raw === undefined) {
    event = { value: null };
  } else if (format === "binary") {
    event = { value: new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength) };
  } else {
    let str: string;
    try {
      str = utf8Strict(raw);
    } catch (error) {
      throw new KafkaDecodeError("message value is not valid UTF-8", { cause: error });
    }
    if (format === "text") event = { value: str };
    else {
      let parsed: unknown;
      try {
        parsed = JSON.parse(str);
      } catch (error) {
        throw new KafkaDecodeError(`message value is not JSON: ${errorMessage(error)}`, {
          cause: error,
        });
      }
      event = parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)
        ? parsed as KafkaEvent
        : { value: parsed };
    }
  }
  if (metadata) {
    event._kafka = {
      topic,
      partition,
      offset: Number(record.offset),
      key: text(record.key),
      headers: decodeHeaders(record.headers),
      timestamp: Number(record.timestamp),
    };
  }
  return event;
}

function rawForDeadLetter(record: KafkaRecord): unknown {
  if (record.value === null) return null;
  try {
    return utf8.decode(record.value);
  } catch {
    return new Uint8Array(record.value);
  }
}

// ---- offset bookkeeping -----------------------------------------------------

/** A run of offsets of one partition emitted together (one checkpoint). */
export interface OffsetChunk {
  /** `topic:partition`. */
  readonly key: string;
  /** The last offset in the run. */
  readonly last: number;
  /** Whether every downstream actor has finished it. */
  done: boolean;
  /** False once its partition was revoked: completing it commits nothing. */
  live: boolean;
}

interface PartitionState {
  topic: string;
  partition: number;
  chunks: OffsetChunk[];
  /** Next offset after the completed prefix; -1 when nothing completed yet. */
  completed: number;
  /** Next offset confirmed committed by the broker; -1 when none this session. */
  committed: number;
}

/** One offset commit: the next offset to read, as Kafka expects. */
export interface OffsetCommit {
  /** The topic. */
  topic: string;
  /** The partition. */
  partition: number;
  /** The next offset to consume (last finished + 1), as a decimal string. */
  offset: string;
}

/**
 * Per-partition bookkeeping of what may be committed: a partition's commit
 * offset advances only past the longest prefix of completed chunks, in the
 * order they were emitted, so a commit never passes an event that is still in
 * flight, and never goes backwards.
 *
 * @example
 * ```ts
 * import { OffsetTracker } from "./kafka.ts";
 * const t = new OffsetTracker();
 * const a = t.add("t", 0, 9);
 * const b = t.add("t", 0, 19);
 * t.complete(b);
 * console.assert(t.commits().length === 0); // 0..9 still in flight
 * t.complete(a);
 * console.assert(t.commits()[0].offset === "20" && t.pending === 0);
 * ```
 */
export class OffsetTracker {
  #parts = new Map<string, PartitionState>();
  #pending = 0;

  /** Chunks emitted and not yet completed (of partitions still assigned). */
  get pending(): number {
    return this.#pending;
  }

  /**
   * Records a chunk of one partition, emitted after every earlier chunk.
   *
   * @param topic The topic.
   * @param partition The partition.
   * @param last The chunk's last offset.
   * @returns The chunk, to pass to {@linkcode OffsetTracker.complete}.
   */
  add(topic: string, partition: number, last: number): OffsetChunk {
    const key = `${topic}:${partition}`;
    let state = this.#parts.get(key);
    if (!state) {
      state = { topic, partition, chunks: [], completed: -1, committed: -1 };
      this.#parts.set(key, state);
    }
    const chunk: OffsetChunk = { key, last, done: false, live: true };
    state.chunks.push(chunk);
    this.#pending++;
    return chunk;
  }

  /**
   * Marks a chunk finished downstream.
   *
   * @param chunk A chunk from {@linkcode OffsetTracker.add}.
   */
  complete(chunk: OffsetChunk): void {
    if (chunk.done || !chunk.live) return;
    chunk.done = true;
    this.#pending--;
    const state = this.#parts.get(chunk.key)!;
    const chunks = state.chunks;
    let i = 0;
    while (i < chunks.length && chunks[i].done) {
      if (chunks[i].last + 1 > state.completed) state.completed = chunks[i].last + 1;
      i++;
    }
    if (i > 0) chunks.splice(0, i);
  }

  /**
   * The commits due: partitions whose completed prefix passed the committed offset.
   *
   * @returns One entry per such partition.
   */
  commits(): OffsetCommit[] {
    const out: OffsetCommit[] = [];
    for (const state of this.#parts.values()) {
      if (state.completed > state.committed) {
        out.push({
          topic: state.topic,
          partition: state.partition,
          offset: String(state.completed),
        });
      }
    }
    return out;
  }

  /**
   * Records commits the broker accepted.
   *
   * @param commits Entries from {@linkcode OffsetTracker.commits}.
   */
  committed(commits: readonly OffsetCommit[]): void {
    for (const c of commits) {
      const state = this.#parts.get(`${c.topic}:${c.partition}`);
      const offset = Number(c.offset);
      if (state && offset > state.committed) state.committed = offset;
    }
  }

  /**
   * Forgets partitions that are no longer assigned to this member: their
   * in-flight chunks will be redelivered to the new owner, and completing them
   * here commits nothing.
   *
   * @param assignment Topic to partitions now assigned.
   */
  retain(assignment: Readonly<Record<string, readonly number[]>>): void {
    for (const [key, state] of this.#parts) {
      if (assignment[state.topic]?.includes(state.partition)) continue;
      for (const chunk of state.chunks) {
        if (!chunk.done) this.#pending--;
        chunk.live = false;
      }
      this.#parts.delete(key);
    }
  }
}

// ---- the actor --------------------------------------------------------------

interface Waiter {
  resolve: () => void;
}

class EventStreamActor implements Actor<never, KafkaEvent> {
  #config: EventStreamConfig;
  #nodeId: string;
  #consumer: Consumer | undefined;
  #tracker = new OffsetTracker();
  #stopping = false;
  /** A flush that backpressure blocked, carried over a rebalance. */
  #blocked: Promise<void> | undefined;
  /** The running eachBatch call, awaited before disconnecting. */
  #inBatch: Promise<void> | undefined;
  #committing: Promise<void> | undefined;
  #commitAgain = false;
  #idleWaiters: Waiter[] = [];

  constructor(config: EventStreamConfig, nodeId: string) {
    this.#config = config;
    this.#nodeId = nodeId;
  }

  async run(ctx: ActorContext<KafkaEvent>): Promise<SourceOutcome> {
    const config = this.#config;
    const kafka = await createKafkaClient(config, {
      clientId: `sluice-${this.#nodeId}`,
      log: ctx.log,
    });
    const consumer = kafka.consumer({
      groupId: config.consumer_group,
      sessionTimeout: Math.round(config.session_timeout * 1000),
      heartbeatInterval: Math.round(config.heartbeat_interval * 1000),
      rebalanceTimeout: Math.round(config.rebalance_timeout * 1000),
      maxWaitTimeInMs: Math.round(config.max_wait * 1000),
      maxBytesPerPartition: config.max_bytes_per_partition,
      allowAutoTopicCreation: false,
      retry: retryOptions(config),
    });
    this.#consumer = consumer;
    const crashed = Promise.withResolvers<unknown>();
    consumer.on(consumer.events.CRASH, (event) => {
      if (event.payload.restart) {
        ctx.log.warn("kafka consumer crashed; kafkajs restarts it", {
          error: errorMessage(event.payload.error),
        });
      } else crashed.resolve(event.payload.error);
    });
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      const assignment = event.payload.memberAssignment;
      this.#tracker.retain(assignment);
      this.#wakeIdle();
      // Completions that arrived while kafkajs was rejoining were not committed.
      this.#commitSoon(ctx);
      ctx.log.info("kafka consumer joined group", {
        group: event.payload.groupId,
        assignment: Object.entries(assignment).map(([t, ps]) => `${t}:${ps.join(",")}`).join(
          " ",
        ),
      });
      ctx.resetBackoff();
    });
    consumer.on(consumer.events.COMMIT_OFFSETS, (event) => {
      // The only reliable confirmation: consumer.commitOffsets() resolves
      // without committing anything while kafkajs restarts its consumer.
      this.#tracker.committed(
        event.payload.topics.flatMap(({ topic, partitions }) =>
          partitions.map((p) => ({
            topic,
            partition: Number(p.partition),
            offset: String(p.offset),
          }))
        ),
      );
    });
    consumer.on(consumer.events.REBALANCING, () => {
      // Commit what is finished before the partitions move (best effort: the
      // group may already be past the point where commits are accepted).
      this.#commitSoon(ctx);
    });
    const aborted = Promise.withResolvers<void>();
    const onAbort = () => aborted.resolve();
    if (ctx.signal.aborted) onAbort();
    else ctx.signal.addEventListener("abort", onAbort, { once: true });
    try {
      await consumer.connect();
      const topics = config.topic_pattern !== undefined
        ? [new RegExp(config.topic_pattern)]
        : typeof config.topic === "string"
        ? [config.topic]
        : config.topic!;
      await consumer.subscribe({ topics, fromBeginning: config.from_beginning });
      await consumer.run({
        autoCommit: config.auto_commit,
        eachBatchAutoResolve: config.auto_commit,
        eachBatch: (payload) => {
          const p = this.#eachBatch(payload, ctx);
          this.#inBatch = p;
          return p;
        },
      });
    } catch (error) {
      ctx.signal.removeEventListener("abort", onAbort);
      await this.#disconnect(ctx);
      if (ctx.signal.aborted) return "end";
      return { disconnected: error };
    }
    const outcome = await Promise.race([
      aborted.promise.then(() => undefined),
      crashed.promise.then((error) => ({ error })),
    ]);
    ctx.signal.removeEventListener("abort", onAbort);
    this.#stopping = true;
    if (this.#inBatch) await this.#inBatch.catch(() => {});
    if (outcome === undefined) {
      // Stopping: what was emitted is still flowing downstream; commit it once finished.
      await this.#waitIdle(ctx, config.shutdown_timeout * 1000);
      await this.#commitNow(ctx);
      if (this.#tracker.pending > 0) {
        ctx.log.warn("stopping with events still in flight; they will be redelivered", {
          chunks: this.#tracker.pending,
        });
      }
    }
    await this.#disconnect(ctx);
    if (outcome) {
      ctx.log.warn("kafka consumer failed; the supervisor restarts it", {
        error: errorMessage(outcome.error),
      });
      return { disconnected: outcome.error };
    }
    return "end";
  }

  async #eachBatch(payload: EachBatchPayload, ctx: ActorContext<KafkaEvent>): Promise<void> {
    const { batch, resolveOffset, heartbeat, isRunning, isStale } = payload;
    // A flush still blocked from before a rebalance: nothing new until it is through.
    if (this.#blocked) await this.#waitBlocked(this.#blocked, heartbeat, ctx);
    const config = this.#config;
    const { topic, partition } = batch;
    const messages: KafkaMessage[] = batch.messages;
    const format = config.event_format;
    const metadata = config.metadata;
    const step = config.batch_size;
    const track = !config.auto_commit;
    for (let start = 0; start < messages.length; start += step) {
      if (this.#stopping || ctx.signal.aborted || !isRunning() || isStale()) return;
      const end = Math.min(messages.length, start + step);
      for (let i = start; i < end; i++) {
        const record = messages[i] as KafkaRecord;
        let event: KafkaEvent;
        try {
          event = kafkaEvent(record, topic, partition, format, metadata);
        } catch (error) {
          // Counted as done: it is in the dead letters, which are flushed before the checkpoint passes.
          ctx.deadLetter(rawForDeadLetter(record), error, {
            topic,
            partition,
            offset: Number(record.offset),
            key: text(record.key),
          });
          continue;
        }
        ctx.emit(event);
      }
      const last = messages[end - 1].offset;
      const pending = ctx.flush();
      if (track) {
        const chunk = this.#tracker.add(topic, partition, Number(last));
        ctx.checkpoint(() => {
          this.#tracker.complete(chunk);
          this.#commitSoon(ctx);
          if (this.#tracker.pending === 0) this.#wakeIdle();
        });
      }
      // Moves kafkajs' fetch position only; nothing is committed here unless auto_commit.
      resolveOffset(last);
      if (pending) await this.#waitBlocked(pending, heartbeat, ctx);
    }
  }

  /**
   * Waits for a flush blocked by backpressure, heartbeating so that the group
   * keeps this member: fetching stays stopped (eachBatch has not returned), but
   * the session does not expire.
   */
  async #waitBlocked(
    pending: Promise<void>,
    heartbeat: () => Promise<void>,
    ctx: ActorContext<KafkaEvent>,
  ): Promise<void> {
    this.#blocked = pending;
    let settled = false;
    const done = pending.then(() => {
      settled = true;
    }, () => {
      settled = true;
    });
    const interval = this.#config.heartbeat_interval * 1000;
    while (!settled) {
      const timer = new AbortController();
      await Promise.race([
        done,
        ctx.clock.sleep(interval, { signal: timer.signal }).catch(() => {}),
      ]);
      timer.abort();
      if (settled) break;
      try {
        await heartbeat();
      } catch (error) {
        // A rebalance: commit what is finished, then let kafkajs rejoin; the
        // blocked flush is awaited again before the next batch.
        await this.#commitNow(ctx);
        throw error;
      }
    }
    this.#blocked = undefined;
  }

  #commitSoon(ctx: ActorContext<KafkaEvent>): void {
    if (this.#committing) {
      this.#commitAgain = true;
      return;
    }
    if (this.#tracker.commits().length === 0) return;
    this.#committing = this.#commitLoop(ctx).finally(() => {
      this.#committing = undefined;
    });
  }

  async #commitLoop(ctx: ActorContext<KafkaEvent>): Promise<void> {
    do {
      this.#commitAgain = false;
      const commits = this.#tracker.commits();
      if (commits.length === 0) return;
      try {
        await this.#consumer!.commitOffsets(commits);
        // Not confirmed (kafkajs was between sessions): the next completion or join retries.
        if (this.#tracker.commits().length > 0 && !this.#commitAgain) return;
      } catch (error) {
        // Kept as due: the next completion (or the stop) commits them again.
        ctx.log.warn("kafka offset commit failed; retried with the next commit", {
          error: errorMessage(error),
        });
        return;
      }
    } while (this.#commitAgain);
  }

  async #commitNow(ctx: ActorContext<KafkaEvent>): Promise<void> {
    if (this.#committing) await this.#committing;
    if (this.#tracker.commits().length === 0) return;
    this.#committing = this.#commitLoop(ctx).finally(() => {
      this.#committing = undefined;
    });
    await this.#committing;
  }

  #wakeIdle(): void {
    if (this.#tracker.pending > 0) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w.resolve();
  }

  /** Resolves when every emitted chunk is finished downstream, or after `timeoutMs`. */
  async #waitIdle(ctx: ActorContext<KafkaEvent>, timeoutMs: number): Promise<void> {
    if (this.#tracker.pending === 0) return;
    const idle = Promise.withResolvers<void>();
    this.#idleWaiters.push(idle);
    const timer = new AbortController();
    await Promise.race([
      idle.promise,
      ctx.clock.sleep(timeoutMs, { signal: timer.signal }).catch(() => {}),
    ]);
    timer.abort();
  }

  async #disconnect(ctx: ActorContext<KafkaEvent>): Promise<void> {
    const consumer = this.#consumer;
    if (!consumer) return;
    try {
      await consumer.disconnect();
    } catch (error) {
      ctx.log.warn("kafka consumer disconnect failed", { error: errorMessage(error) });
    }
  }
}

/** The EventStreamNode type. */
export const EventStreamNode: NodeSpec<EventStreamConfig> = {
  type: "EventStreamNode",
  kind: "source",
  description:
    "Consumes Kafka topics in a consumer group (source_type: kafka) and emits one event per message: the JSON object, or {value} for text, binary and non-object JSON, with _kafka: {topic, partition, offset, key, headers, timestamp}. Offsets are committed only after every downstream node, sinks included, finished the events (at-least-once); undecodable messages go to dead letters with topic, partition and offset.",
  config: eventStreamConfig,
  permissions: ["--allow-net", "--allow-env", "--allow-read", "--allow-sys"],
  validate(config, path, issues: ConfigIssue[]) {
    validateKafkaConnection(config, path, issues);
    const hasTopic = config.topic !== undefined &&
      (typeof config.topic === "string" ? config.topic !== "" : config.topic.length > 0);
    if (hasTopic === (config.topic_pattern !== undefined)) {
      issues.push({
        path: `${path}.topic`,
        message: "set exactly one of topic (a name or a list of names) and topic_pattern",
      });
    }
    if (Array.isArray(config.topic) && config.topic.some((t) => t === "")) {
      issues.push({ path: `${path}.topic`, message: "expected non-empty topic names" });
    }
    if (config.topic_pattern !== undefined) {
      try {
        new RegExp(config.topic_pattern);
      } catch (error) {
        issues.push({
          path: `${path}.topic_pattern`,
          message: `expected a regular expression, found ${JSON.stringify(config.topic_pattern)} (${
            errorMessage(error)
          })`,
        });
      }
    }
    if (config.heartbeat_interval >= config.session_timeout) {
      issues.push({
        path: `${path}.heartbeat_interval`,
        message:
          `expected less than session_timeout (${config.session_timeout}s), found ${config.heartbeat_interval}s`,
      });
    }
  },
  create: (config, env) => new EventStreamActor(config, env.id),
};

/**
 * A typed EventStreamNode for the fluent builder.
 *
 * @param config The node's config (`source_type` may be left out).
 * @returns A node definition emitting {@linkcode KafkaEvent}s.
 * @example
 * ```ts
 * import { eventStream } from "./kafka.ts";
 * const def = eventStream({ brokers: "localhost:9092", topic: "events", consumer_group: "g" });
 * console.assert(def.type === "EventStreamNode");
 * ```
 */
export function eventStream(
  config:
    & Partial<EventStreamConfig>
    & Pick<EventStreamConfig, "brokers" | "consumer_group">,
): NodeDef<never, KafkaEvent> {
  return { type: "EventStreamNode", config };
}
