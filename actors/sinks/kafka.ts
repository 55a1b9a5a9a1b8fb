/**
 * KafkaSinkNode: produces every message to a Kafka topic.
 *
 * Each mailbox batch is one `producer.sendBatch` (split into requests of at
 * most `batch_size` messages), awaited before the next batch is taken, so a
 * checkpoint never passes a message the broker has not acknowledged. With
 * `linger`, batches smaller than `batch_size` are held up to `linger` seconds
 * to fill bigger requests; held messages also hold checkpoints back and
 * survive a restart of the node. A send that fails after kafkajs' retries
 * throws: the supervisor restarts the node and the batch is sent again
 * (at-least-once). A message that cannot be serialized goes to dead letters.
 *
 * @example A Kafka sink in YAML
 * ```yaml
 * - id: out
 *   type: KafkaSinkNode
 *   config:
 *     brokers: ${KAFKA_BROKERS}
 *     topic: clean_events
 *     key_field: user_id
 *     acks: -1
 * ```
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type { CompressionTypes, IHeaders, Message, Producer, TopicMessages } from "kafkajs";
import type { Actor, ActorContext } from "../../runtime/actor.ts";
import type { ConfigIssue } from "../../runtime/errors.ts";
import type { NodeDef } from "../../runtime/flow.ts";
import { compilePath, parsePath, type PathGetter } from "../../runtime/path.ts";
import type { NodeSpec } from "../../runtime/registry.ts";
import { describe, s, type Schema } from "../../runtime/schema.ts";
import {
  createKafkaClient,
  type KafkaConnectionConfig,
  kafkaConnectionFields,
  loadKafkajs,
  retryOptions,
  validateKafkaConnection,
} from "../kafka_client.ts";

/** kafkajs' `CompressionTypes` values, so that this module does not load kafkajs. */
const COMPRESSION = { none: 0, gzip: 1 } as const;

/** Broker acknowledgement: -1 all in-sync replicas, 1 the leader, 0 none. */
export type KafkaAcks = -1 | 0 | 1;

/** Config of KafkaSinkNode (times in seconds). */
export interface KafkaSinkConfig extends KafkaConnectionConfig {
  /** Topic to write to (the fallback when `topic_field` is set). */
  topic?: string;
  /** Dot path of a field holding each message's topic. */
  topic_field?: string;
  /** Dot path of the field used as the message key. */
  key_field?: string;
  /** Dot path of the field written as the value. @default {the whole message} */
  value_field?: string;
  /** Static headers added to every message. */
  headers?: Record<string, string>;
  /** Dot path of an object whose entries become headers. */
  headers_field?: string;
  /** Remove the `_kafka` field EventStreamNode adds before writing. @default {true} */
  strip_metadata: boolean;
  /** -1 (all), 1 (leader) or 0 (none); also "all", "leader", "none". @default {-1} */
  acks: KafkaAcks;
  /** kafkajs idempotent producer (needs acks -1; one request in flight). @default {false} */
  idempotent: boolean;
  /** Most messages per produce request. @default {1000} */
  batch_size: number;
  /** Longest a batch smaller than batch_size is held to fill up, seconds. @default {0} */
  linger: number;
  /** Compression of produce requests. @default {"none"} */
  compression: "none" | "gzip";
  /** How long the broker may wait for acknowledgements, seconds. @default {30} */
  ack_timeout: number;
}

const ACKS: Record<string, KafkaAcks> = { all: -1, leader: 1, none: 0 };

const kafkaSinkConfig: Schema<KafkaSinkConfig> = s.object({
  ...kafkaConnectionFields,
  topic: s.string({
    optional: true,
    nonEmpty: true,
    doc: "Topic to write to; the fallback when topic_field is set and missing.",
  }),
  topic_field: s.string({
    optional: true,
    nonEmpty: true,
    doc: "Dot path of a field holding each message's topic.",
  }),
  key_field: s.string({
    optional: true,
    nonEmpty: true,
    doc: "Dot path of the field used as the key (missing: no key).",
  }),
  value_field: s.string({
    optional: true,
    nonEmpty: true,
    doc:
      "Dot path of the field written as the value. Default: the whole message. Strings and bytes are written as they are, other values as JSON.",
  }),
  headers: s.record(s.string(), { optional: true, doc: "Static headers for every message." }),
  headers_field: s.string({
    optional: true,
    nonEmpty: true,
    doc: "Dot path of an object whose entries become headers (after the static ones).",
  }),
  strip_metadata: s.boolean({
    default: true,
    doc: "Remove the _kafka field that EventStreamNode adds before writing.",
  }),
  acks: s.any<KafkaAcks>({
    default: -1,
    type: '-1 | 1 | 0 | "all" | "leader" | "none"',
    doc: "Acknowledgement: -1/all (every in-sync replica), 1/leader, 0/none.",
    check: (value, path, issues) => {
      if (value === -1 || value === 0 || value === 1) return value;
      if (typeof value === "string" && Object.hasOwn(ACKS, value)) return ACKS[value];
      issues.push({
        path,
        message: `expected -1, 1, 0, "all", "leader" or "none", found ${describe(value)}`,
      });
      return -1;
    },
  }),
  idempotent: s.boolean({
    default: false,
    doc: "kafkajs idempotent producer: needs acks -1; one request in flight.",
  }),
  batch_size: s.integer({ min: 1, default: 1000, doc: "Most messages per produce request." }),
  linger: s.number({
    min: 0,
    default: 0,
    doc:
      "Longest a batch smaller than batch_size is held to fill up, seconds (0: send each batch at once).",
  }),
  compression: s.enum(["none", "gzip"] as const, {
    default: "none",
    doc: "Compression of produce requests.",
  }),
  ack_timeout: s.number({
    greaterThan: 0,
    default: 30,
    doc: "How long the broker may wait for acknowledgements, seconds.",
  }),
});

/** A message that cannot be written (no topic, not serializable). */
export class KafkaSerializationError extends Error {
  /**
   * Creates the error.
   *
   * @param message What was wrong.
   * @param options Standard error options (`cause`).
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "KafkaSerializationError";
  }
}

function bytes(value: Uint8Array): Buffer {
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

function scalar(value: unknown, what: string): string | Buffer {
  if (typeof value === "string") return value;
  if (value instanceof Uint8Array) return bytes(value);
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  try {
    const json = JSON.stringify(value);
    if (json === undefined) throw new TypeError(`${typeof value} has no JSON form`);
    return json;
  } catch (error) {
    throw new KafkaSerializationError(`${what} cannot be serialized: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

function withoutMetadata(value: unknown): unknown {
  if (
    value !== null && typeof value === "object" && !Array.isArray(value) &&
    Object.hasOwn(value, "_kafka")
  ) {
    const { _kafka: _, ...rest } = value as Record<string, unknown>;
    return rest;
  }
  return value;
}

/** One message ready to send. */
export interface OutgoingMessage {
  /** The topic. */
  topic: string;
  /** The kafkajs message. */
  message: Message;
}

/**
 * Serializes messages for a KafkaSinkNode config.
 *
 * @example
 * ```ts
 * import { KafkaRecordEncoder } from "./kafka.ts";
 * const encode = new KafkaRecordEncoder({ topic: "out", key_field: "id", strip_metadata: true });
 * const out = encode.encode({ id: 7, _kafka: { offset: 1 }, v: "x" });
 * console.assert(out.topic === "out" && out.message.key === "7" && out.message.value === '{"id":7,"v":"x"}');
 * ```
 */
export class KafkaRecordEncoder {
  #topic: string | undefined;
  #topicField: PathGetter | undefined;
  #keyField: PathGetter | undefined;
  #valueField: PathGetter | undefined;
  #headers: Record<string, string> | undefined;
  #headersField: PathGetter | undefined;
  #strip: boolean;

  /**
   * Creates a KafkaRecordEncoder.
   *
   * @param config The sink's topic, field and header settings.
   */
  constructor(
    config:
      & Pick<
        KafkaSinkConfig,
        "topic" | "topic_field" | "key_field" | "value_field" | "headers" | "headers_field"
      >
      & { strip_metadata?: boolean },
  ) {
    this.#topic = config.topic;
    this.#topicField = config.topic_field ? compilePath(config.topic_field) : undefined;
    this.#keyField = config.key_field ? compilePath(config.key_field) : undefined;
    this.#valueField = config.value_field ? compilePath(config.value_field) : undefined;
    this.#headers = config.headers && Object.keys(config.headers).length > 0
      ? config.headers
      : undefined;
    this.#headersField = config.headers_field ? compilePath(config.headers_field) : undefined;
    this.#strip = config.strip_metadata ?? true;
  }

  /**
   * Serializes one message.
   *
   * @param m The message.
   * @returns Its topic and kafkajs message.
   * @throws {KafkaSerializationError} When it has no topic or cannot be serialized.
   */
  encode(m: unknown): OutgoingMessage {
    let topic = this.#topic;
    if (this.#topicField) {
      const t = this.#topicField(m);
      if (typeof t === "string" && t !== "") topic = t;
      else if (t !== undefined && t !== null) {
        throw new KafkaSerializationError(`topic field holds ${describe(t)}, expected a string`);
      }
    }
    if (topic === undefined) {
      throw new KafkaSerializationError("message has no topic field and no topic is configured");
    }
    let value: unknown = this.#valueField ? this.#valueField(m) : m;
    if (this.#strip && !this.#valueField) value = withoutMetadata(value);
    const message: Message = {
      value: value === undefined || value === null ? null : scalar(value, "value"),
    };
    if (this.#keyField) {
      const key = this.#keyField(m);
      if (key !== undefined && key !== null) message.key = scalar(key, "key");
    }
    if (this.#headers || this.#headersField) {
      const headers: IHeaders = { ...this.#headers };
      const extra = this.#headersField?.(m);
      if (extra !== undefined && extra !== null) {
        if (typeof extra !== "object" || Array.isArray(extra)) {
          throw new KafkaSerializationError(
            `headers field holds ${describe(extra)}, expected an object`,
          );
        }
        for (const [k, v] of Object.entries(extra)) {
          if (v !== undefined && v !== null) headers[k] = scalar(v, `header "${k}"`);
        }
      }
      message.headers = headers;
    }
    return { topic, message };
  }
}

/** Progress counters that survive restarts (for checkpoints and held messages). */
interface SinkState {
  /** Messages handled (sent, held or dead-lettered). */
  received: number;
  /** Messages whose send the broker acknowledged (or that were dead-lettered). */
  acked: number;
  /** Messages held by linger, not yet sent. */
  held: OutgoingMessage[];
}

class KafkaSinkActor implements Actor {
  #config: KafkaSinkConfig;
  #nodeId: string;
  #encoder: KafkaRecordEncoder;
  #producer: Producer | undefined;
  #state: SinkState;
  #cancelLinger: (() => void) | undefined;

  constructor(config: KafkaSinkConfig, nodeId: string, persistent: Map<string, unknown>) {
    this.#config = config;
    this.#nodeId = nodeId;
    this.#encoder = new KafkaRecordEncoder(config);
    let state = persistent.get("state") as SinkState | undefined;
    if (!state) {
      state = { received: 0, acked: 0, held: [] };
      persistent.set("state", state);
    }
    this.#state = state;
  }

  async start(ctx: ActorContext): Promise<void> {
    const config = this.#config;
    const kafka = await createKafkaClient(config, {
      clientId: `sluice-${this.#nodeId}`,
      log: ctx.log,
    });
    const { Partitioners } = await loadKafkajs();
    const producer = kafka.producer({
      createPartitioner: Partitioners.DefaultPartitioner,
      idempotent: config.idempotent,
      ...(config.idempotent ? { maxInFlightRequests: 1 } : {}),
      retry: retryOptions(config),
    });
    this.#producer = producer;
    await producer.connect();
    // Messages a crashed incarnation held: send them before anything new.
    if (this.#state.held.length > 0) await this.#sendHeld();
  }

  async handle(batch: unknown[], ctx: ActorContext): Promise<void> {
    const state = this.#state;
    const out: OutgoingMessage[] = state.held.length > 0 ? [...state.held] : [];
    for (const m of batch) {
      try {
        out.push(this.#encoder.encode(m));
      } catch (error) {
        ctx.deadLetter(m, error);
      }
    }
    const lingerMs = this.#config.linger * 1000;
    if (lingerMs > 0 && out.length < this.#config.batch_size) {
      state.held = out;
      state.received += batch.length;
      this.#cancelLinger ??= ctx.schedule(lingerMs, () => {
        this.#cancelLinger = undefined;
        return this.#sendHeld();
      });
      return;
    }
    // On a throw nothing below runs: the runtime retries this batch, and
    // what was held stays held, so nothing is sent twice by this node.
    await this.#send(out);
    this.#cancelLinger?.();
    this.#cancelLinger = undefined;
    state.held = [];
    state.received += batch.length;
    state.acked = state.received;
  }

  async #sendHeld(): Promise<void> {
    const state = this.#state;
    if (state.held.length > 0) await this.#send(state.held);
    state.held = [];
    state.acked = state.received;
  }

  async #send(messages: OutgoingMessage[]): Promise<void> {
    const size = this.#config.batch_size;
    for (let i = 0; i < messages.length; i += size) {
      const byTopic = new Map<string, Message[]>();
      const end = Math.min(messages.length, i + size);
      for (let j = i; j < end; j++) {
        const { topic, message } = messages[j];
        const list = byTopic.get(topic);
        if (list) list.push(message);
        else byTopic.set(topic, [message]);
      }
      const topicMessages: TopicMessages[] = [];
      for (const [topic, list] of byTopic) topicMessages.push({ topic, messages: list });
      await this.#producer!.sendBatch({
        topicMessages,
        acks: this.#config.acks,
        timeout: Math.round(this.#config.ack_timeout * 1000),
        compression: COMPRESSION[this.#config.compression] as CompressionTypes,
      });
    }
  }

  async drain(): Promise<void> {
    this.#cancelLinger?.();
    this.#cancelLinger = undefined;
    await this.#sendHeld();
  }

  checkpointBarrier(): number | undefined {
    return this.#state.held.length > 0 ? this.#state.received : undefined;
  }

  checkpointProgress(): number {
    return this.#state.acked;
  }

  async close(): Promise<void> {
    this.#cancelLinger?.();
    this.#cancelLinger = undefined;
    const producer = this.#producer;
    this.#producer = undefined;
    await producer?.disconnect();
  }
}

/** The KafkaSinkNode type. */
export const KafkaSinkNode: NodeSpec<KafkaSinkConfig> = {
  type: "KafkaSinkNode",
  kind: "sink",
  description:
    "Produces each message to Kafka (topic, or topic_field per message) with an optional key and headers, JSON values by default. Each batch is acknowledged before the next (acks -1 by default); a failed send crashes the node and the batch is retried after the restart; unserializable messages go to dead letters.",
  config: kafkaSinkConfig,
  permissions: ["--allow-net", "--allow-env", "--allow-read", "--allow-sys"],
  // A failed send is the broker's problem, not the batch's: retry it after
  // every restart instead of dead-lettering it after a few; the restart
  // intensity (max_restarts in restart_period) decides when to give up.
  supervision: () => ({ maxMessageRetries: Infinity }),
  validate(config, path, issues: ConfigIssue[]) {
    validateKafkaConnection(config, path, issues);
    if (config.topic === undefined && config.topic_field === undefined) {
      issues.push({ path: `${path}.topic`, message: "set topic, topic_field or both" });
    }
    for (const key of ["topic_field", "key_field", "value_field", "headers_field"] as const) {
      const p = config[key];
      if (p === undefined) continue;
      try {
        parsePath(p);
      } catch (error) {
        issues.push({ path: `${path}.${key}`, message: (error as Error).message });
      }
    }
    if (config.idempotent && config.acks !== -1) {
      issues.push({
        path: `${path}.acks`,
        message: `idempotent: true needs acks -1 ("all"), found ${config.acks}`,
      });
    }
  },
  create: (config, env) => new KafkaSinkActor(config, env.id, env.persistent),
};

/**
 * A typed KafkaSinkNode for the fluent builder.
 *
 * @param config The node's config.
 * @returns A node definition accepting anything.
 * @example
 * ```ts
 * import { kafkaSink } from "./kafka.ts";
 * console.assert(kafkaSink({ brokers: "localhost:9092", topic: "out" }).type === "KafkaSinkNode");
 * ```
 */
export function kafkaSink(
  config: Partial<KafkaSinkConfig> & Pick<KafkaSinkConfig, "brokers">,
): NodeDef<unknown, never> {
  return { type: "KafkaSinkNode", config };
}
