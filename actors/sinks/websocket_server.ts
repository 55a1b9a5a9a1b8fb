/**
 * WebSocketServerSinkNode: serves a path with `Deno.serve` and broadcasts
 * every message to every connected client, each with its own bounded buffer
 * so that one slow client can neither stall the pipeline nor grow memory.
 *
 * @module
 */
import type { Actor, ActorContext, Logger } from "../../runtime/actor.ts";
import { errorMessage } from "../../runtime/errors.ts";
import type { NodeDef } from "../../runtime/flow.ts";
import type { NodeSpec } from "../../runtime/registry.ts";
import { s, type Schema } from "../../runtime/schema.ts";
import { encodeMessage } from "./websocket_client.ts";

/** What happens to a client whose buffer is full. */
export type SlowClientPolicy = "drop_oldest" | "disconnect";

/** The address the server listens on. */
export interface WebSocketServerAddress {
  /** The hostname. */
  hostname: string;
  /** The port (the actual one when `port` was 0). */
  port: number;
}

/** Config of WebSocketServerSinkNode. */
export interface WebSocketServerSinkConfig {
  /** Interface to listen on. @default {"127.0.0.1"} */
  hostname: string;
  /** Port; 0 picks a free one (see `on_listen`). */
  port: number;
  /** The WebSocket path. @default {"/"} */
  path: string;
  /** Bearer token clients must present (secret). Absent: no authentication. */
  token?: string;
  /** How messages become frames. @default {"json"} */
  message_format: "json" | "text" | "binary";
  /** Messages queued per client beyond what its socket holds. @default {1000} */
  client_buffer: number;
  /** What a full client buffer does. @default {"drop_oldest"} */
  slow_client_policy: SlowClientPolicy;
  /** Most clients at once; more are refused with 503. @default {1000} */
  max_clients: number;
  /** Seconds without a pong after which Deno drops a client (0: never). @default {30} */
  idle_timeout: number;
  /** Called with the address once listening (TypeScript only). */
  on_listen?: (address: WebSocketServerAddress) => void;
}

const serverSinkConfig: Schema<WebSocketServerSinkConfig> = s.object({
  hostname: s.string({
    default: "127.0.0.1",
    doc: "Interface to listen on; 0.0.0.0 exposes the server beyond this machine.",
  }),
  port: s.integer({ min: 0, max: 65535, doc: "Port; 0 picks a free one (logged)." }),
  path: s.string({ default: "/", doc: "The WebSocket path; other paths get 404." }),
  token: s.string({
    optional: true,
    nonEmpty: true,
    secret: true,
    doc: "Bearer token required on the handshake (Authorization: Bearer <token> or " +
      "?token=<token>), compared in constant time. Use ${VAR}. Absent: anyone may connect.",
  }),
  message_format: s.enum(["json", "text", "binary"] as const, {
    default: "json",
    doc: "json: JSON text frames; text: strings as they are (other values as JSON); " +
      "binary: bytes or strings as binary frames. Unencodable messages are dead-lettered.",
  }),
  client_buffer: s.integer({
    min: 1,
    default: 1000,
    doc: "Messages queued per client once its socket holds 64 KiB unsent; beyond that the " +
      "slow_client_policy applies.",
  }),
  slow_client_policy: s.enum(["drop_oldest", "disconnect"] as const, {
    default: "drop_oldest",
    doc: "drop_oldest: the client misses its oldest queued messages (counted); disconnect: " +
      "the client is closed with 1008 (counted).",
  }),
  max_clients: s.integer({
    min: 1,
    default: 1000,
    doc: "Most clients at once; more are refused with HTTP 503.",
  }),
  idle_timeout: s.number({
    min: 0,
    default: 30,
    doc: "Seconds without a pong after which a client is dropped (Deno pings clients); 0: never.",
  }),
  on_listen: s.func<(address: WebSocketServerAddress) => void>({
    optional: true,
    doc: "Called with {hostname, port} once listening (TypeScript only).",
  }),
});

/**
 * Compares two strings in time that depends only on the expected one's length.
 *
 * @param given The presented value.
 * @param expected The secret.
 * @returns Whether they are equal.
 * @example Checking a token
 * ```ts
 * import { timingSafeEqual } from "./websocket_server.ts";
 * console.assert(timingSafeEqual("abc", "abc") && !timingSafeEqual("abd", "abc"));
 * ```
 */
export function timingSafeEqual(given: string, expected: string): boolean {
  const a = new TextEncoder().encode(given);
  const b = new TextEncoder().encode(expected);
  let diff = a.length ^ b.length;
  for (let i = 0; i < b.length; i++) diff |= (a[i % Math.max(1, a.length)] ?? 0) ^ b[i];
  return diff === 0;
}

/** Bytes a client's socket may hold unsent before its own queue is used. */
const SOCKET_HIGH_WATER = 64 * 1024;
/** How often backlogged clients are retried, on the workflow clock. */
const PUMP_INTERVAL_MS = 10;

interface Client {
  id: number;
  socket: WebSocket;
  queue: (string | Uint8Array)[];
  head: number;
  dropped: number;
  dropping: boolean;
}

class WebSocketServerSinkActor implements Actor {
  readonly #config: WebSocketServerSinkConfig;
  #server: Deno.HttpServer<Deno.NetAddr> | undefined;
  #clients = new Set<Client>();
  #backlogged = new Set<Client>();
  #nextId = 1;
  #log: Logger | undefined;
  #ctx: ActorContext | undefined;
  #pumpScheduled = false;
  #stats = { clients: 0, rejected: 0, dropped: 0, slow_disconnects: 0 };

  constructor(config: WebSocketServerSinkConfig) {
    this.#config = config;
  }

  start(ctx: ActorContext): void {
    this.#ctx = ctx;
    this.#log = ctx.log;
    const config = this.#config;
    this.#server = Deno.serve({
      hostname: config.hostname,
      port: config.port,
      onListen: () => {},
      onError: (error) => {
        ctx.log.warn("websocket server request failed", { error: errorMessage(error) });
        return new Response("internal error", { status: 500 });
      },
    }, (request) => this.#accept(request));
    const address = { hostname: this.#server.addr.hostname, port: this.#server.addr.port };
    ctx.log.info("websocket server listening", { ...address, path: config.path });
    config.on_listen?.(address);
  }

  handle(batch: unknown[], ctx: ActorContext): void {
    const frames: (string | Uint8Array)[] = [];
    for (const m of batch) {
      try {
        frames.push(encodeMessage(m, this.#config.message_format));
      } catch (error) {
        ctx.deadLetter(m, error);
      }
    }
    if (frames.length === 0 || this.#clients.size === 0) return;
    for (const client of this.#clients) {
      for (const frame of frames) {
        if (!this.#offer(client, frame)) break;
      }
    }
    this.#schedulePump();
  }

  drain(): void {
    // Graceful end: hand every queued frame to its socket before closing.
    for (const client of this.#backlogged) {
      while (client.head < client.queue.length) {
        if (!this.#send(client, client.queue[client.head++])) break;
      }
    }
    this.#backlogged.clear();
  }

  async close(): Promise<void> {
    for (const client of this.#clients) {
      try {
        client.socket.close(1001, "server shutting down");
      } catch { /* already closing */ }
    }
    this.#clients.clear();
    this.#backlogged.clear();
    const server = this.#server;
    this.#server = undefined;
    if (server) {
      await server.shutdown();
      this.#log?.info("websocket server stopped", { ...this.#stats });
    }
  }

  #accept(request: Request): Response {
    const config = this.#config;
    const url = new URL(request.url);
    if (url.pathname !== config.path) return new Response("not found", { status: 404 });
    if ((request.headers.get("upgrade") ?? "").toLowerCase() !== "websocket") {
      return new Response("expected a WebSocket upgrade", {
        status: 426,
        headers: { upgrade: "websocket" },
      });
    }
    if (config.token !== undefined) {
      const auth = request.headers.get("authorization") ?? "";
      const presented = /^bearer /i.test(auth)
        ? auth.slice(7).trim()
        : url.searchParams.get("token") ?? "";
      if (!timingSafeEqual(presented, config.token)) {
        this.#stats.rejected++;
        this.#log?.warn("websocket client refused: bad or missing token");
        return new Response("unauthorized", {
          status: 401,
          headers: { "www-authenticate": 'Bearer realm="sluice"' },
        });
      }
    }
    if (this.#clients.size >= config.max_clients) {
      this.#stats.rejected++;
      return new Response("too many clients", { status: 503 });
    }
    const { socket, response } = Deno.upgradeWebSocket(request, {
      idleTimeout: config.idle_timeout,
    });
    const client: Client = {
      id: this.#nextId++,
      socket,
      queue: [],
      head: 0,
      dropped: 0,
      dropping: false,
    };
    socket.onopen = () => {
      if (!this.#server) {
        socket.close(1001, "server shutting down");
        return;
      }
      this.#clients.add(client);
      this.#stats.clients++;
      this.#log?.info("websocket client connected", { client: client.id });
    };
    socket.onclose = (event) => {
      const known = this.#clients.delete(client);
      this.#backlogged.delete(client);
      if (known) {
        this.#log?.info("websocket client disconnected", {
          client: client.id,
          code: event.code,
          dropped: client.dropped,
        });
      }
    };
    socket.onerror = () => {};
    return response;
  }

  /** Queues or sends one frame; returns false once the client is gone. */
  #offer(client: Client, frame: string | Uint8Array): boolean {
    const pending = client.queue.length - client.head;
    if (pending === 0 && client.socket.bufferedAmount < SOCKET_HIGH_WATER) {
      return this.#send(client, frame);
    }
    if (pending >= this.#config.client_buffer) {
      if (this.#config.slow_client_policy === "disconnect") {
        this.#disconnectSlow(client);
        return false;
      }
      client.queue[client.head++] = "";
      client.dropped++;
      this.#stats.dropped++;
      if (!client.dropping) {
        client.dropping = true;
        this.#log?.warn("websocket client too slow: dropping its oldest messages", {
          client: client.id,
          client_buffer: this.#config.client_buffer,
          dropped_so_far: client.dropped,
        });
      }
      if (client.head > 1024 && client.head * 2 > client.queue.length) {
        client.queue = client.queue.slice(client.head);
        client.head = 0;
      }
    }
    client.queue.push(frame);
    this.#backlogged.add(client);
    return true;
  }

  #send(client: Client, frame: string | Uint8Array): boolean {
    if (client.socket.readyState !== WebSocket.OPEN) {
      this.#clients.delete(client);
      this.#backlogged.delete(client);
      return false;
    }
    try {
      client.socket.send(frame);
      return true;
    } catch {
      this.#clients.delete(client);
      this.#backlogged.delete(client);
      return false;
    }
  }

  #disconnectSlow(client: Client): void {
    this.#stats.slow_disconnects++;
    this.#clients.delete(client);
    this.#backlogged.delete(client);
    this.#log?.warn("websocket client too slow: disconnected", {
      client: client.id,
      client_buffer: this.#config.client_buffer,
      buffered_bytes: client.socket.bufferedAmount,
      slow_disconnects: this.#stats.slow_disconnects,
    });
    try {
      client.socket.close(1008, "too slow: client buffer full");
    } catch { /* already closing */ }
  }

  #schedulePump(): void {
    if (this.#pumpScheduled || this.#backlogged.size === 0 || !this.#ctx) return;
    this.#pumpScheduled = true;
    this.#ctx.schedule(PUMP_INTERVAL_MS, () => {
      this.#pumpScheduled = false;
      this.#pump();
    });
  }

  /** Moves queued frames into sockets that have room again. */
  #pump(): void {
    for (const client of this.#backlogged) {
      while (
        client.head < client.queue.length && client.socket.bufferedAmount < SOCKET_HIGH_WATER
      ) {
        if (!this.#send(client, client.queue[client.head++])) break;
      }
      if (client.head >= client.queue.length) {
        client.queue = [];
        client.head = 0;
        client.dropping = false;
        this.#backlogged.delete(client);
      }
    }
    this.#schedulePump();
  }
}

/** The WebSocketServerSinkNode type. */
export const WebSocketServerSinkNode: NodeSpec<WebSocketServerSinkConfig> = {
  type: "WebSocketServerSinkNode",
  kind: "sink",
  description:
    "Serves a WebSocket path with Deno.serve and broadcasts every message to every connected " +
    "client. Optional bearer token (header or ?token=), checked in constant time. Each client " +
    "has a bounded buffer; a slow client loses its oldest messages or is disconnected, so it " +
    "never stalls the pipeline or grows memory. Drops and disconnects are counted and logged.",
  config: serverSinkConfig,
  permissions: ["--allow-net"],
  validate(config, path, issues) {
    if (!config.path.startsWith("/")) {
      issues.push({
        path: `${path}.path`,
        message: `expected a path starting with "/", found ${JSON.stringify(config.path)}`,
      });
    }
  },
  create: (config) => new WebSocketServerSinkActor(config),
};

/**
 * A typed WebSocketServerSinkNode.
 *
 * @param config The node's config (`port` at least).
 * @returns A node definition accepting anything JSON can encode.
 * @example A typed broadcast sink for the fluent builder
 * ```ts
 * import { webSocketServerSink } from "./websocket_server.ts";
 * const sink = webSocketServerSink({ port: 8765, path: "/live" });
 * console.assert(sink.type === "WebSocketServerSinkNode");
 * ```
 */
export function webSocketServerSink(
  config: Partial<WebSocketServerSinkConfig> & { port: number },
): NodeDef<unknown, never> {
  return { type: "WebSocketServerSinkNode", config };
}
