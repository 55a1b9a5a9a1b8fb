/**
 * Real WebSocket peers for tests: a server and a client from the npm `ws`
 * package, run in-process under Deno's npm support, on 127.0.0.1 only.
 *
 * @module
 */
import { WebSocket, WebSocketServer } from "ws";
import type { IncomingMessage } from "node:http";
import { RealClock } from "../../runtime/clock.ts";

const clock = new RealClock();

/** One connection accepted by a {@linkcode WsPeer}. */
export interface PeerConnection {
  /** 0 for the first connection, then 1, 2, ... */
  readonly index: number;
  /** The server side of the socket. */
  readonly socket: WebSocket;
  /** The handshake request headers (lower-case names). */
  readonly headers: IncomingMessage["headers"];
  /** The request path and query. */
  readonly path: string;
  /** Messages received from the client: strings for text frames, bytes for binary. */
  readonly received: (string | Uint8Array)[];
  /** Resolves when the socket is closed, with the close code. */
  readonly closed: Promise<number>;
}

/** Options of {@linkcode WsPeer.start}. */
export interface WsPeerOptions {
  /** Port to listen on. @default {0 (a free port)} */
  port?: number;
  /** Whether the server answers pings. @default {true} */
  autoPong?: boolean;
  /** Runs for every connection (send a script of frames, go silent, drop...). */
  onConnection?: (connection: PeerConnection) => void | Promise<void>;
  /** Accepts or refuses a handshake (for example by its headers). @default {accept all} */
  accept?: (request: IncomingMessage) => boolean;
}

/**
 * A `ws` server on 127.0.0.1 recording every connection.
 *
 * @example
 * ```ts ignore
 * const peer = await WsPeer.start({ onConnection: (c) => c.socket.send("hi") });
 * // ... connect to peer.url("/feed") ...
 * await peer.close();
 * ```
 */
export class WsPeer {
  /** The listening port. */
  readonly port: number;
  /** Every connection accepted so far, in order. */
  readonly connections: PeerConnection[] = [];
  readonly #server: WebSocketServer;
  #waiters: { count: number; resolve: () => void }[] = [];

  private constructor(server: WebSocketServer, port: number) {
    this.#server = server;
    this.port = port;
  }

  /**
   * Starts a server.
   *
   * @param options Port, pong behaviour, per-connection script.
   * @returns The listening peer.
   */
  static async start(options: WsPeerOptions = {}): Promise<WsPeer> {
    const server = new WebSocketServer({
      host: "127.0.0.1",
      port: options.port ?? 0,
      autoPong: options.autoPong ?? true,
      verifyClient: options.accept
        ? (info: { req: IncomingMessage }) => options.accept!(info.req)
        : undefined,
      handleProtocols: (protocols: Set<string>) => protocols.values().next().value ?? false,
    });
    await new Promise<void>((resolve, reject) => {
      server.once("listening", () => resolve());
      server.once("error", reject);
    });
    const address = server.address();
    const port = typeof address === "object" && address ? address.port : 0;
    const peer = new WsPeer(server, port);
    server.on("connection", (socket: WebSocket, request: IncomingMessage) => {
      const received: (string | Uint8Array)[] = [];
      socket.on("message", (data: Uint8Array, isBinary: boolean) => {
        received.push(isBinary ? new Uint8Array(data) : new TextDecoder().decode(data));
      });
      socket.on("error", () => {});
      const closed = new Promise<number>((resolve) => socket.once("close", resolve));
      const connection: PeerConnection = {
        index: peer.connections.length,
        socket,
        headers: request.headers,
        path: request.url ?? "",
        received,
        closed,
      };
      peer.connections.push(connection);
      peer.#waiters = peer.#waiters.filter((w) => {
        if (peer.connections.length < w.count) return true;
        w.resolve();
        return false;
      });
      void options.onConnection?.(connection);
    });
    return peer;
  }

  /**
   * The URL of a path on this server.
   *
   * @param path A path, with query if needed. @default {"/feed"}
   */
  url(path = "/feed"): string {
    return `ws://127.0.0.1:${this.port}${path}`;
  }

  /**
   * Waits until `count` connections were accepted (bounded in real time).
   *
   * @param count How many.
   * @param timeoutMs The longest wait. @default {10000}
   * @returns The connection number `count - 1`.
   */
  async waitForConnections(count: number, timeoutMs = 10_000): Promise<PeerConnection> {
    if (this.connections.length < count) {
      await withTimeout(
        new Promise<void>((resolve) => this.#waiters.push({ count, resolve })),
        timeoutMs,
        `${count} connection(s) to the peer`,
      );
    }
    return this.connections[count - 1];
  }

  /** Drops every connection and stops listening. */
  async close(): Promise<void> {
    for (const socket of this.#server.clients) socket.terminate();
    await Promise.all(this.connections.map((c) => c.closed));
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/**
 * A port that was free a moment ago on 127.0.0.1 (for a peer that is down at start).
 *
 * @returns The port.
 */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** A `ws` client with everything it received. */
export interface PeerClient {
  /** The client socket. */
  readonly socket: WebSocket;
  /** Messages received: strings for text frames, bytes for binary. */
  readonly received: (string | Uint8Array)[];
  /** Resolves with the close code when the socket closes. */
  readonly closed: Promise<number>;
  /** Closes the client and waits until it is closed. */
  close(): Promise<void>;
}

/**
 * Connects a `ws` client.
 *
 * @param url The URL.
 * @param headers Handshake headers.
 * @returns The open client, or rejects with the handshake error (for example `Unexpected server response: 401`).
 */
export async function connectClient(
  url: string,
  headers: Record<string, string> = {},
): Promise<PeerClient> {
  const socket = new WebSocket(url, { headers });
  const received: (string | Uint8Array)[] = [];
  socket.on("message", (data: Uint8Array, isBinary: boolean) => {
    received.push(isBinary ? new Uint8Array(data) : new TextDecoder().decode(data));
  });
  const closed = new Promise<number>((resolve) => socket.once("close", resolve));
  await new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("error", (error: Error) => reject(error));
  });
  socket.on("error", () => {});
  return {
    socket,
    received,
    closed,
    async close() {
      if (socket.readyState !== WebSocket.CLOSED) {
        socket.terminate();
      }
      await closed;
    },
  };
}

/**
 * Polls `condition` every 5 ms of real time until it holds.
 *
 * @param condition What to wait for.
 * @param what Named in the timeout error.
 * @param timeoutMs The longest wait. @default {10000}
 * @throws {Error} When the time runs out.
 */
export async function until(
  condition: () => boolean,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = clock.monotonic() + timeoutMs;
  while (!condition()) {
    if (clock.monotonic() > deadline) {
      throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    }
    await clock.sleep(5);
  }
}

/**
 * Rejects when `promise` does not settle within `timeoutMs` of real time.
 *
 * @param promise The promise.
 * @param timeoutMs The bound.
 * @param what Named in the error.
 * @returns The promise's value.
 */
export async function withTimeout<T>(
  promise: Promise<T>,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const controller = new AbortController();
  try {
    return await Promise.race([
      promise,
      clock.sleep(timeoutMs, { signal: controller.signal }).then(() => {
        throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
      }),
    ]);
  } finally {
    controller.abort();
  }
}
