/**
 * WebSocketClientSinkNode: sends every message (or batch) to a WebSocket
 * server, reconnecting like WebSocketNode and holding messages in its
 * mailbox while disconnected.
 *
 * @module
 */
import type { Actor, ActorContext } from "../../runtime/actor.ts";
import type { Clock } from "../../runtime/clock.ts";
import { errorMessage } from "../../runtime/errors.ts";
import type { NodeDef } from "../../runtime/flow.ts";
import type { NodeSpec } from "../../runtime/registry.ts";
import { s, type Schema } from "../../runtime/schema.ts";
import {
  closeWithin,
  connectWithTimeout,
  protocolList,
  type ReconnectConfig,
  reconnectFields,
  reconnectSupervision,
  safeUrl,
  validateEndpoint,
  validateProtocols,
  type WebSocketConnection,
  WebSocketConnectionError,
  WebSocketFrameError,
  WebSocketTimeoutError,
} from "../sources/websocket.ts";

/** Config of WebSocketClientSinkNode. Times in seconds. */
export interface WebSocketClientSinkConfig extends ReconnectConfig {
  /** `ws://` or `wss://` URL of the server. */
  url: string;
  /** Longest TCP connect + TLS + handshake. @default {30} */
  connection_timeout: number;
  /** Handshake headers (secret: never logged). */
  auth_headers?: Record<string, string>;
  /** Subprotocols offered. */
  protocols?: string | string[];
  /** How messages become frames. @default {"json"} */
  message_format: "json" | "text" | "binary";
  /** Messages per frame; above 1 each frame is a JSON array (json only). @default {1} */
  batch_size: number;
  /** The mailbox capacity: messages held while disconnected or slow. @default {10000} */
  max_queue_size: number;
  /** What a full mailbox does. @default {"block"} */
  backpressure_strategy: "block" | "drop_oldest" | "drop_newest";
  /** Seconds between pings; nothing received between two pings means a dead connection. */
  heartbeat_interval?: number;
}

const clientSinkConfig: Schema<WebSocketClientSinkConfig> = s.object({
  url: s.string({ nonEmpty: true, doc: "ws:// or wss:// URL of the server." }),
  connection_timeout: s.number({
    greaterThan: 0,
    default: 30,
    doc: "Seconds allowed for TCP connect, TLS and the opening handshake.",
  }),
  auth_headers: s.record(s.string(), {
    optional: true,
    secret: true,
    doc: "Headers sent with the opening handshake; use ${VAR}; never logged.",
  }),
  protocols: s.stringOrList({ optional: true, doc: "Subprotocols offered in the handshake." }),
  message_format: s.enum(["json", "text", "binary"] as const, {
    default: "json",
    doc: "json: JSON text frames; text: strings as they are (other values as JSON); " +
      "binary: Uint8Array or strings as binary frames. A message that cannot be encoded is " +
      "dead-lettered.",
  }),
  batch_size: s.integer({
    min: 1,
    default: 1,
    doc: "Messages per frame; above 1 each frame carries a JSON array of up to batch_size " +
      "messages (json only).",
  }),
  ...reconnectFields,
  max_queue_size: s.integer({
    min: 1,
    default: 10_000,
    doc: "Mailbox capacity: messages held while the connection is down or slow.",
  }),
  backpressure_strategy: s.enum(["block", "drop_oldest", "drop_newest"] as const, {
    default: "block",
    doc: "What the full mailbox does: block holds upstream back; the drops are counted.",
  }),
  heartbeat_interval: s.number({
    greaterThan: 0,
    optional: true,
    doc: "Seconds between pings; nothing received from one ping to the next means a dead " +
      "connection (reconnected).",
  }),
});

/**
 * Encodes one message as a frame payload for a format.
 *
 * @param message The message.
 * @param format The frame format.
 * @returns A string (text frame) or bytes (binary frame).
 * @throws {WebSocketFrameError} When the message cannot be encoded.
 * @example Encoding per format
 * ```ts
 * import { encodeMessage } from "./websocket_client.ts";
 * console.assert(encodeMessage({ a: 1 }, "json") === '{"a":1}');
 * console.assert(encodeMessage("hi", "text") === "hi");
 * ```
 */
export function encodeMessage(
  message: unknown,
  format: "json" | "text" | "binary",
): string | Uint8Array {
  if (format === "binary") {
    if (message instanceof Uint8Array) return message;
    if (message instanceof ArrayBuffer) return new Uint8Array(message);
    if (typeof message === "string") return new TextEncoder().encode(message);
    throw new WebSocketFrameError(
      `message_format binary expects a Uint8Array, ArrayBuffer or string, found ${typeof message}`,
    );
  }
  if (format === "text" && typeof message === "string") return message;
  let text: string | undefined;
  try {
    text = JSON.stringify(message);
  } catch (error) {
    throw new WebSocketFrameError(`message cannot be encoded as JSON: ${errorMessage(error)}`, {
      cause: error,
    });
  }
  if (text === undefined) {
    throw new WebSocketFrameError(`message cannot be encoded as JSON (${typeof message})`);
  }
  return text;
}

class WebSocketClientSinkActor implements Actor {
  readonly #config: WebSocketClientSinkConfig;
  readonly #clock: Clock;
  #conn: WebSocketConnection | undefined;
  #broken: Error | undefined;
  #cancelHeartbeat: (() => void) | undefined;

  constructor(config: WebSocketClientSinkConfig, clock: Clock) {
    this.#config = config;
    this.#clock = clock;
  }

  async start(ctx: ActorContext): Promise<void> {
    const config = this.#config;
    let conn: WebSocketConnection;
    try {
      conn = await connectWithTimeout(ctx, config.url, config.connection_timeout, {
        headers: config.auth_headers,
        protocols: protocolList(config.protocols),
      });
    } catch (error) {
      throw new WebSocketConnectionError(config.url, error);
    }
    this.#conn = conn;
    ctx.resetBackoff();
    ctx.log.info("websocket connected", { url: safeUrl(config.url) });
    // Read in the background: answers pings, notices a close or a drop at
    // once (rather than at the next send), and feeds the heartbeat.
    void this.#readLoop(conn, ctx);
    if (config.heartbeat_interval !== undefined) this.#startHeartbeat(conn, ctx);
  }

  async handle(batch: unknown[], ctx: ActorContext): Promise<void> {
    if (this.#broken || !this.#conn) {
      throw this.#broken ?? new WebSocketConnectionError(this.#config.url, "not connected");
    }
    const { message_format: format, batch_size: batchSize } = this.#config;
    const frames: (string | Uint8Array)[] = [];
    if (batchSize > 1) {
      for (let i = 0; i < batch.length; i += batchSize) {
        const group = batch.slice(i, i + batchSize);
        try {
          frames.push(encodeMessage(group, "json"));
        } catch {
          // Find the culprits one by one; the rest of the group still goes.
          const good: unknown[] = [];
          for (const m of group) {
            try {
              encodeMessage(m, "json");
              good.push(m);
            } catch (error) {
              ctx.deadLetter(m, error, { url: safeUrl(this.#config.url) });
            }
          }
          if (good.length > 0) frames.push(encodeMessage(good, "json"));
        }
      }
    } else {
      for (const m of batch) {
        try {
          frames.push(encodeMessage(m, format));
        } catch (error) {
          ctx.deadLetter(m, error, { url: safeUrl(this.#config.url) });
        }
      }
    }
    if (frames.length === 0) return;
    try {
      await this.#conn.sendAll(frames);
    } catch (error) {
      // Crashes the actor: the batch is retried after a reconnect.
      throw this.#broken ?? new WebSocketConnectionError(this.#config.url, error);
    }
  }

  async close(): Promise<void> {
    this.#cancelHeartbeat?.();
    const conn = this.#conn;
    this.#conn = undefined;
    if (conn && !conn.done) await closeWithin(conn, this.#clock, 1000, 1000, "");
  }

  async #readLoop(conn: WebSocketConnection, ctx: ActorContext): Promise<void> {
    let cause: unknown;
    try {
      while (await conn.read(() => {}));
      cause = new Error(
        `the server closed the connection (code ${conn.closeCode}${
          conn.closeReason ? `, "${conn.closeReason}"` : ""
        })`,
      );
    } catch (error) {
      cause = error;
    }
    if (this.#conn !== conn) return; // closed by us
    this.#broken = new WebSocketConnectionError(this.#config.url, cause);
    ctx.log.warn("websocket disconnected", {
      url: safeUrl(this.#config.url),
      reason: errorMessage(cause),
    });
    // A timer task that throws crashes the actor, so the supervisor reconnects
    // now rather than when the next message arrives.
    ctx.schedule(0, () => {
      if (this.#broken) throw this.#broken;
    });
  }

  #startHeartbeat(conn: WebSocketConnection, ctx: ActorContext): void {
    const seconds = this.#config.heartbeat_interval!;
    let mark: number | undefined;
    const tick = () => {
      if (mark !== undefined && conn.bytesReceived === mark) {
        const error = new WebSocketTimeoutError(
          `no pong (nor anything else) within ${seconds}s of a ping`,
        );
        this.#broken = new WebSocketConnectionError(this.#config.url, error);
        conn.abort(error);
        throw this.#broken;
      }
      mark = conn.bytesReceived;
      conn.ping().catch(() => {});
      this.#cancelHeartbeat = ctx.schedule(seconds * 1000, tick);
    };
    this.#cancelHeartbeat = ctx.schedule(seconds * 1000, tick);
  }
}

/** The WebSocketClientSinkNode type. */
export const WebSocketClientSinkNode: NodeSpec<WebSocketClientSinkConfig> = {
  type: "WebSocketClientSinkNode",
  kind: "sink",
  description:
    "Sends each message (or JSON arrays of batch_size messages) to a WebSocket server as it " +
    "arrives, reconnecting with backoff through the supervisor; while disconnected messages " +
    "wait in the mailbox (max_queue_size, backpressure_strategy). A failed send is retried " +
    "after the reconnect, so delivery is at least once for frames the socket accepted.",
  config: clientSinkConfig,
  permissions: ["--allow-net"],
  validate(config, path, issues) {
    validateEndpoint(config.url, config.auth_headers, path, issues);
    validateProtocols(config.protocols, path, issues);
    if (config.batch_size > 1 && config.message_format !== "json") {
      issues.push({
        path: `${path}.batch_size`,
        message:
          `batch_size above 1 sends JSON arrays and needs message_format json, found "${config.message_format}"`,
      });
    }
  },
  supervision: (config) => reconnectSupervision(config),
  mailbox: (config) => ({
    capacity: config.max_queue_size,
    overflow: config.backpressure_strategy,
  }),
  create: (config, env) => new WebSocketClientSinkActor(config, env.clock),
};

/**
 * A typed WebSocketClientSinkNode.
 *
 * @param config The node's config (`url` at least).
 * @returns A node definition accepting anything JSON can encode.
 * @example A typed sink for the fluent builder
 * ```ts
 * import { webSocketClientSink } from "./websocket_client.ts";
 * const sink = webSocketClientSink({ url: "ws://127.0.0.1:9000/ingest" });
 * console.assert(sink.type === "WebSocketClientSinkNode");
 * ```
 */
export function webSocketClientSink(
  config: Partial<WebSocketClientSinkConfig> & { url: string },
): NodeDef<unknown, never> {
  return { type: "WebSocketClientSinkNode", config };
}
