/**
 * WebSocketNode: a WebSocket feed as a source, with the reference guide's
 * configuration (timeouts, auth headers, message formats, batches,
 * reconnection, flow control, metrics, heartbeats) plus subscriptions.
 *
 * The module also holds {@linkcode WebSocketConnection}, the RFC 6455 client
 * that WebSocketNode and WebSocketClientSinkNode share. sluice speaks the
 * protocol itself over `Deno.connect`/`Deno.connectTls` because Deno's stable
 * `WebSocket` cannot stop reading (so `block` could not reach the peer as TCP
 * backpressure) and cannot send pings, while `WebSocketStream` still needs
 * `--unstable-net`. No extension is offered (no permessage-deflate), and
 * proxies are not supported.
 *
 * Decisions:
 * - `batch_size` 1 (the default) emits each parsed message as it is; above 1
 *   the node emits the guide's batches `{messages, count, timestamp,
 *   processing_latency}` (epoch seconds; seconds from the batch's first
 *   message), a partial batch after `batch_timeout`.
 * - Reconnection is the supervisor's: a lost connection returns
 *   `{disconnected}` from `run`, `reconnect_delay`/`exponential_backoff` are
 *   the backoff (factor 2 or 1, capped at 30 s, with the supervisor's
 *   jitter), `max_reconnect_attempts` is `maxAttempts` (counted from the last
 *   successful connect); `auto_reconnect: false` fails the node on the first
 *   loss, except that a clean close by the server then ends the stream. The
 *   final error names the URL (never its query) and the last cause.
 * - `max_queue_size` bounds the messages held between the socket and
 *   downstream while a flush is pending. `block`: reading stops when it is
 *   full, so the server's send buffer grows instead of sluice's memory (the
 *   node holds at most two queues' worth, each plus one 64 KiB read: one
 *   handed to the runtime and waiting for room downstream, one filling);
 *   `drop_oldest`/`drop_newest`:
 *   reading goes on and the queue drops (counted, logged once per episode).
 * - `message_timeout`: no data message for that long means a dead
 *   connection; `heartbeat_interval`: a protocol ping each interval, and a
 *   ping followed by nothing at all (no pong, no data) until the next one
 *   means a dead connection. Time spent blocked by downstream counts for
 *   neither. Server pings are always answered.
 * - `subscribe` is sent once per connection, right after the handshake.
 * - A frame that is not valid UTF-8 (json, text) or JSON (json) goes to the
 *   dead letters with the reason; the stream goes on.
 * - `enable_metrics` logs the node's counters (connections, messages, bytes,
 *   parse errors, drops, queue high water) at every disconnect and at the end.
 * - Timers use the workflow clock (`ctx.schedule`, `ctx.clock`).
 *
 * @module
 */
import type { Actor, ActorContext, Logger, SourceOutcome } from "../../runtime/actor.ts";
import type { Clock } from "../../runtime/clock.ts";
import { type ConfigIssue, errorMessage } from "../../runtime/errors.ts";
import type { NodeDef } from "../../runtime/flow.ts";
import type { NodeSpec } from "../../runtime/registry.ts";
import { s, type Schema } from "../../runtime/schema.ts";
import { DEFAULT_SUPERVISION, type SupervisionOptions } from "../../runtime/supervisor.ts";

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/**
 * A WebSocket connection could not be opened or was lost. The message names
 * the URL (without credentials, query or fragment) and the cause.
 *
 * @example The message names the URL without its query
 * ```ts
 * import { WebSocketConnectionError } from "./websocket.ts";
 * const error = new WebSocketConnectionError("ws://feed.example/a?token=x", new Error("refused"));
 * console.assert(error.message === "ws://feed.example/a: refused");
 * ```
 */
export class WebSocketConnectionError extends Error {
  /** The URL, without credentials, query or fragment. */
  readonly url: string;
  /**
   * Creates the error.
   *
   * @param url The URL (it is stripped of credentials, query and fragment).
   * @param cause What went wrong.
   */
  constructor(url: string, cause: unknown) {
    const safe = safeUrl(url);
    super(`${safe}: ${errorMessage(cause)}`, { cause });
    this.name = "WebSocketConnectionError";
    this.url = safe;
  }
}

/**
 * The server broke the WebSocket protocol (or the handshake); the connection
 * is failed with `code`.
 *
 * @example Carrying the close code
 * ```ts
 * import { WebSocketProtocolError } from "./websocket.ts";
 * console.assert(new WebSocketProtocolError(1002, "masked frame").code === 1002);
 * ```
 */
export class WebSocketProtocolError extends Error {
  /** The close code sent to the peer (1002 protocol error, 1009 too big). */
  readonly code: number;
  /**
   * Creates the error.
   *
   * @param code The close code.
   * @param message What was wrong.
   */
  constructor(code: number, message: string) {
    super(message);
    this.name = "WebSocketProtocolError";
    this.code = code;
  }
}

/**
 * The server answered the opening handshake with something other than
 * `101 Switching Protocols` (for example `401 Unauthorized`).
 *
 * @example A refused upgrade
 * ```ts
 * import { WebSocketHandshakeError } from "./websocket.ts";
 * console.assert(new WebSocketHandshakeError(401, "Unauthorized").message.includes("401"));
 * ```
 */
export class WebSocketHandshakeError extends Error {
  /** The HTTP status. */
  readonly status: number;
  /**
   * Creates the error.
   *
   * @param status The HTTP status.
   * @param statusText Its reason phrase.
   */
  constructor(status: number, statusText: string) {
    super(
      `handshake rejected: expected HTTP 101, found ${status}${statusText ? " " + statusText : ""}`,
    );
    this.name = "WebSocketHandshakeError";
    this.status = status;
  }
}

/**
 * A connection was judged dead: no message within `message_timeout`, no
 * answer to a heartbeat ping, or no connection within `connection_timeout`.
 *
 * @example A dead connection
 * ```ts
 * import { WebSocketTimeoutError } from "./websocket.ts";
 * console.assert(new WebSocketTimeoutError("no message for 5s").name === "WebSocketTimeoutError");
 * ```
 */
export class WebSocketTimeoutError extends Error {
  /**
   * Creates the error.
   *
   * @param message What timed out.
   */
  constructor(message: string) {
    super(message);
    this.name = "WebSocketTimeoutError";
  }
}

/**
 * A frame that the node cannot turn into a message (bad JSON, invalid
 * UTF-8); it goes to the dead letters and the stream goes on.
 *
 * @example A frame that is not a message
 * ```ts
 * import { WebSocketFrameError } from "./websocket.ts";
 * console.assert(new WebSocketFrameError("bad").name === "WebSocketFrameError");
 * ```
 */
export class WebSocketFrameError extends Error {
  /**
   * Creates the error.
   *
   * @param message Why the frame was refused.
   * @param options Standard error options (`cause`).
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "WebSocketFrameError";
  }
}

/**
 * A URL fit for logs and errors: no user info, query or fragment (they often
 * carry tokens).
 *
 * @param url A URL.
 * @returns `protocol//host/path`, or `<invalid url>`.
 * @example Stripping credentials and query
 * ```ts
 * import { safeUrl } from "./websocket.ts";
 * console.assert(safeUrl("wss://u:p@h:9/x?token=s#f") === "wss://h:9/x");
 * ```
 */
export function safeUrl(url: string | URL): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return "<invalid url>";
  }
}

// ---------------------------------------------------------------------------
// The protocol client
// ---------------------------------------------------------------------------

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder("utf-8", { fatal: true });
const MAX_HEAD_BYTES = 16 * 1024;
const READ_CHUNK = 64 * 1024;
/** Header names the client sets itself. */
const RESERVED_HEADERS = new Set([
  "host",
  "upgrade",
  "connection",
  "sec-websocket-key",
  "sec-websocket-version",
  "sec-websocket-protocol",
  "sec-websocket-extensions",
  "content-length",
  "transfer-encoding",
]);
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Options of {@linkcode WebSocketConnection.connect}. */
export interface WebSocketConnectOptions {
  /** Extra handshake headers (for example `Authorization`). */
  headers?: Readonly<Record<string, string>>;
  /** Subprotocols offered, in order of preference. */
  protocols?: readonly string[];
  /** Aborts the TCP connect and the handshake. */
  signal?: AbortSignal;
  /** Largest message accepted, in bytes; larger ones fail the connection with 1009. @default {16777216} */
  maxMessageBytes?: number;
  /** Extra PEM root certificates for `wss:`. */
  caCerts?: string[];
  /** Called for every pong read (while someone reads). */
  onPong?: () => void;
}

/**
 * Receives one data message. `payload` is a view into the connection's read
 * buffer, valid only during the call: copy it to keep it.
 */
export type WebSocketMessageHandler = (payload: Uint8Array, text: boolean) => void;

/**
 * Checks handshake headers: names must be HTTP tokens and not set by the
 * client itself, values must not contain line breaks.
 *
 * @param headers The headers.
 * @returns One problem per bad header (without its value).
 * @example Refusing header injection
 * ```ts
 * import { headerProblems } from "./websocket.ts";
 * console.assert(headerProblems({ "X-Id": "a\r\nb" }).length === 1);
 * console.assert(headerProblems({ Authorization: "Bearer t" }).length === 0);
 * ```
 */
export function headerProblems(
  headers: Readonly<Record<string, string>>,
): { name: string; message: string }[] {
  const out: { name: string; message: string }[] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (!TOKEN.test(name)) {
      out.push({ name, message: `header name ${JSON.stringify(name)} is not a valid HTTP token` });
    } else if (RESERVED_HEADERS.has(name.toLowerCase())) {
      out.push({ name, message: `header "${name}" is set by the WebSocket handshake itself` });
    } else if (typeof value !== "string" || /[\r\n\0]/.test(value)) {
      out.push({ name, message: `header "${name}" must be a string without line breaks` });
    }
  }
  return out;
}

function base64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
  return btoa(binary);
}

function indexOfHeadEnd(buf: Uint8Array, end: number): number {
  for (let i = 3; i < end; i++) {
    if (buf[i] === 10 && buf[i - 1] === 13 && buf[i - 2] === 10 && buf[i - 3] === 13) {
      return i + 1;
    }
  }
  return -1;
}

/** Random bytes for frame masks, refilled in blocks (one syscall per 1024 frames). */
class MaskPool {
  #bytes = new Uint8Array(4096);
  #offset = 4096;
  next(): Uint8Array {
    if (this.#offset === this.#bytes.length) {
      crypto.getRandomValues(this.#bytes);
      this.#offset = 0;
    }
    const mask = this.#bytes.subarray(this.#offset, this.#offset + 4);
    this.#offset += 4;
    return mask;
  }
}
const masks = new MaskPool();

/** An outgoing frame before masking. */
interface OutFrame {
  opcode: number;
  payload: Uint8Array;
}

function encodeFrames(frames: readonly OutFrame[]): Uint8Array {
  let total = 0;
  for (const f of frames) {
    const n = f.payload.length;
    total += (n < 126 ? 2 : n < 65536 ? 4 : 10) + 4 + n;
  }
  const out = new Uint8Array(total);
  let o = 0;
  for (const { opcode, payload } of frames) {
    const n = payload.length;
    out[o++] = 0x80 | opcode;
    if (n < 126) {
      out[o++] = 0x80 | n;
    } else if (n < 65536) {
      out[o++] = 0x80 | 126;
      out[o++] = n >>> 8;
      out[o++] = n & 0xff;
    } else {
      out[o++] = 0x80 | 127;
      const hi = Math.floor(n / 2 ** 32);
      out[o++] = hi >>> 24;
      out[o++] = (hi >>> 16) & 0xff;
      out[o++] = (hi >>> 8) & 0xff;
      out[o++] = hi & 0xff;
      out[o++] = n >>> 24;
      out[o++] = (n >>> 16) & 0xff;
      out[o++] = (n >>> 8) & 0xff;
      out[o++] = n & 0xff;
    }
    // Clients must mask every frame (RFC 6455 §5.3).
    const mask = masks.next();
    out[o] = mask[0];
    out[o + 1] = mask[1];
    out[o + 2] = mask[2];
    out[o + 3] = mask[3];
    o += 4;
    for (let i = 0; i < n; i++) out[o + i] = payload[i] ^ mask[i & 3];
    o += n;
  }
  return out;
}

function closePayload(code: number, reason: string): Uint8Array {
  const text = encoder.encode(reason).subarray(0, 123);
  const out = new Uint8Array(2 + text.length);
  out[0] = code >>> 8;
  out[1] = code & 0xff;
  out.set(text, 2);
  return out;
}

/**
 * A client WebSocket connection (RFC 6455, no extensions) over a Deno TCP or
 * TLS connection. Reading is pull-based: nothing is read from the socket
 * unless {@linkcode WebSocketConnection.read} is called, so a consumer that
 * stops reading makes the server see TCP backpressure. It answers pings,
 * can send pings and counts pongs.
 *
 * @example Reading a feed
 * ```ts ignore
 * import { WebSocketConnection } from "./websocket.ts";
 * const conn = await WebSocketConnection.connect("ws://127.0.0.1:8080/feed", {
 *   headers: { Authorization: "Bearer token" },
 * });
 * const decoder = new TextDecoder();
 * while (await conn.read((payload) => console.log(decoder.decode(payload)))) {
 *   // one call per read from the socket
 * }
 * console.log("closed", conn.closeCode);
 * ```
 */
export class WebSocketConnection {
  /** The subprotocol the server chose, or `""`. */
  readonly protocol: string;
  #conn: Deno.Conn;
  #buf: Uint8Array;
  #start = 0;
  #end = 0;
  #maxMessage: number;
  #fragments: Uint8Array[] = [];
  #fragmentBytes = 0;
  #fragmentText = false;
  #fragmenting = false;
  #reading = false;
  #done = false;
  #aborted: unknown;
  #closeSent = false;
  #closeCode: number | undefined;
  #closeReason = "";
  #bytesReceived = 0;
  #pongs = 0;
  #window: string | undefined;
  #windowFrom = 0;
  #onPong: (() => void) | undefined;
  #writeChain: Promise<void> = Promise.resolve();
  #closed: Promise<void>;
  #resolveClosed!: () => void;

  private constructor(
    conn: Deno.Conn,
    leftover: Uint8Array,
    protocol: string,
    maxMessageBytes: number,
    onPong: (() => void) | undefined,
  ) {
    this.#conn = conn;
    this.#onPong = onPong;
    this.protocol = protocol;
    this.#maxMessage = maxMessageBytes;
    this.#buf = new Uint8Array(Math.max(READ_CHUNK, leftover.length * 2));
    this.#buf.set(leftover);
    this.#end = leftover.length;
    this.#closed = new Promise((resolve) => this.#resolveClosed = resolve);
  }

  /**
   * Opens a connection: TCP (or TLS for `wss:`) and the opening handshake.
   *
   * @param url A `ws:` or `wss:` URL.
   * @param options Headers, subprotocols, abort signal, size limit.
   * @returns The open connection.
   * @throws {TypeError} When the URL is not `ws:`/`wss:` or a header is invalid.
   * @throws {WebSocketHandshakeError} When the server refuses the upgrade.
   * @throws {WebSocketProtocolError} When the handshake response is malformed.
   */
  static async connect(
    url: string | URL,
    options: WebSocketConnectOptions = {},
  ): Promise<WebSocketConnection> {
    const u = new URL(url);
    if (u.protocol !== "ws:" && u.protocol !== "wss:") {
      throw new TypeError(`expected a ws: or wss: URL, found ${JSON.stringify(u.protocol)}`);
    }
    const headers = options.headers ?? {};
    const problems = headerProblems(headers);
    if (problems.length > 0) throw new TypeError(problems[0].message);
    const protocols = options.protocols ?? [];
    for (const p of protocols) {
      if (!TOKEN.test(p)) throw new TypeError(`subprotocol ${JSON.stringify(p)} is not a token`);
    }
    const signal = options.signal;
    signal?.throwIfAborted();
    const hostname = u.hostname.replace(/^\[(.*)\]$/, "$1");
    const port = u.port ? Number(u.port) : u.protocol === "wss:" ? 443 : 80;
    let conn: Deno.Conn;
    try {
      conn = u.protocol === "wss:"
        ? await abortable(
          Deno.connectTls({ hostname, port, caCerts: options.caCerts }),
          signal,
        )
        : await Deno.connect({ hostname, port, signal });
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      throw error;
    }
    const onAbort = () => {
      try {
        conn.close();
      } catch { /* already closed */ }
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const key = base64(crypto.getRandomValues(new Uint8Array(16)));
      let request = `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\n` +
        `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\n` +
        `Sec-WebSocket-Version: 13\r\n`;
      if (protocols.length > 0) request += `Sec-WebSocket-Protocol: ${protocols.join(", ")}\r\n`;
      for (const [name, value] of Object.entries(headers)) request += `${name}: ${value}\r\n`;
      request += "\r\n";
      await writeAll(conn, encoder.encode(request));
      const { head, leftover } = await readHead(conn);
      const protocol = await checkHandshake(head, key, protocols);
      return new WebSocketConnection(
        conn,
        leftover,
        protocol,
        options.maxMessageBytes ?? 16 * 1024 * 1024,
        options.onPong,
      );
    } catch (error) {
      onAbort();
      if (signal?.aborted) throw signal.reason;
      throw error;
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * Decodes a payload given to the message handler as UTF-8, during the
   * handler call. ASCII payloads (most JSON) are cut from one decode of the
   * whole read instead of one decoder call each.
   *
   * @param payload The payload view.
   * @returns The text.
   * @throws {TypeError} When the payload is not valid UTF-8.
   */
  decodeText(payload: Uint8Array): string {
    const n = payload.length;
    if (n < 32 || payload.buffer !== this.#buf.buffer) return utf8.decode(payload);
    for (let i = 0; i < n; i++) if (payload[i] > 0x7f) return utf8.decode(payload);
    const start = payload.byteOffset;
    const window = this.#window;
    if (
      window === undefined || start < this.#windowFrom ||
      start + n > this.#windowFrom + window.length
    ) {
      // windows-1252 maps every byte to one UTF-16 unit, so offsets carry over;
      // for ASCII it agrees with UTF-8.
      this.#windowFrom = start;
      this.#window = latin1.decode(this.#buf.subarray(start, this.#end));
      return this.#window.slice(0, n);
    }
    const from = start - this.#windowFrom;
    return window.slice(from, from + n);
  }

  /** Bytes read from the socket since the handshake (frames of every kind). */
  get bytesReceived(): number {
    return this.#bytesReceived;
  }
  /** Pongs received. */
  get pongsReceived(): number {
    return this.#pongs;
  }
  /** Whether the connection is finished (closed by either side or aborted). */
  get done(): boolean {
    return this.#done;
  }
  /** The close code the server sent, once closed cleanly. */
  get closeCode(): number | undefined {
    return this.#closeCode;
  }
  /** The close reason the server sent. */
  get closeReason(): string {
    return this.#closeReason;
  }

  /**
   * Reads from the socket until at least one data message is complete and
   * calls `onMessage` for every complete message read (synchronously, in
   * order). Pings are answered and pongs counted on the way.
   *
   * @param onMessage Receives each message; the payload must be copied to be kept.
   * @returns `true` while the connection is open, `false` once the server
   * closed it cleanly (messages before the close were delivered).
   * @throws {WebSocketProtocolError} On a protocol violation (the connection is failed).
   * @throws {Error} When the connection drops without a close frame, or was aborted (the abort reason).
   */
  async read(onMessage: WebSocketMessageHandler): Promise<boolean> {
    if (this.#done) {
      if (this.#aborted !== undefined) throw this.#aborted;
      return false;
    }
    if (this.#reading) throw new TypeError("read() is already in progress on this connection");
    this.#reading = true;
    try {
      while (true) {
        const delivered = this.#parse(onMessage);
        if (this.#done) return false;
        if (delivered > 0) return true;
        this.#makeRoom();
        let n: number | null;
        try {
          n = await this.#conn.read(this.#buf.subarray(this.#end));
        } catch (error) {
          if (this.#aborted !== undefined) throw this.#aborted;
          this.#finish();
          throw error;
        }
        if (this.#aborted !== undefined) throw this.#aborted;
        if (n === null) {
          this.#finish();
          throw new Error(
            this.#closeSent
              ? "the server closed the TCP connection before answering the close frame"
              : "the connection was closed without a close frame (1006)",
          );
        }
        this.#end += n;
        this.#bytesReceived += n;
      }
    } catch (error) {
      if (error instanceof WebSocketProtocolError) this.#fail(error);
      throw error;
    } finally {
      this.#reading = false;
    }
  }

  /**
   * Sends a text (string) or binary message.
   *
   * @param data The message.
   * @returns Resolves once written to the socket (so awaiting it is TCP backpressure).
   */
  send(data: string | Uint8Array): Promise<void> {
    return this.sendAll([data]);
  }

  /**
   * Sends several messages with one socket write.
   *
   * @param messages Text (strings) or binary messages.
   * @returns Resolves once all are written to the socket.
   */
  sendAll(messages: readonly (string | Uint8Array)[]): Promise<void> {
    if (this.#done || this.#closeSent) {
      return Promise.reject(this.#aborted ?? new Error("the connection is closed"));
    }
    const frames: OutFrame[] = new Array(messages.length);
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i];
      frames[i] = typeof m === "string"
        ? { opcode: 1, payload: encoder.encode(m) }
        : { opcode: 2, payload: m };
    }
    return this.#write(encodeFrames(frames));
  }

  /**
   * Sends a ping; the pong shows up in {@linkcode WebSocketConnection.pongsReceived}
   * while someone reads.
   *
   * @param payload At most 125 bytes.
   * @returns Resolves once written.
   */
  ping(payload: Uint8Array = new Uint8Array(0)): Promise<void> {
    if (this.#done || this.#closeSent) return Promise.resolve();
    return this.#write(encodeFrames([{ opcode: 9, payload: payload.subarray(0, 125) }]));
  }

  /**
   * Starts the closing handshake by sending a close frame (once). Keep
   * reading to receive the server's answer, or use {@linkcode WebSocketConnection.close}.
   *
   * @param code The close code. @default {1000}
   * @param reason A short reason.
   * @returns Resolves once written (never rejects).
   */
  sendClose(code = 1000, reason = ""): Promise<void> {
    if (this.#done || this.#closeSent) return Promise.resolve();
    this.#closeSent = true;
    return this.#write(encodeFrames([{ opcode: 8, payload: closePayload(code, reason) }]))
      .catch(() => {});
  }

  /**
   * Closes cleanly: sends a close frame and waits for the server's answer
   * (reading and discarding what arrives before it when nobody else reads),
   * at most until `signal` aborts; then releases the socket.
   *
   * @param code The close code. @default {1000}
   * @param reason A short reason.
   * @param signal Bounds the wait.
   */
  async close(code = 1000, reason = "", signal?: AbortSignal): Promise<void> {
    if (this.#done) return;
    await this.sendClose(code, reason);
    const onAbort = () => this.abort();
    if (signal?.aborted) return this.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      if (this.#reading) {
        await this.#closed;
      } else {
        while (await this.read(() => {}));
      }
    } catch {
      // Dropped or aborted while closing: nothing left to do.
    } finally {
      signal?.removeEventListener("abort", onAbort);
      this.abort();
    }
  }

  /**
   * Drops the TCP connection at once; a pending read rejects with `reason`.
   *
   * @param reason Why (what a pending read rejects with).
   */
  abort(reason: unknown = new Error("the connection was aborted")): void {
    if (this.#done) return;
    this.#aborted = reason;
    this.#finish();
  }

  #finish(): void {
    if (!this.#done) {
      this.#done = true;
      this.#resolveClosed();
    }
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }

  #fail(error: WebSocketProtocolError): void {
    if (this.#done) return;
    const write = this.#closeSent ? Promise.resolve() : this.#write(
      encodeFrames([{ opcode: 8, payload: closePayload(error.code, error.message.slice(0, 100)) }]),
    );
    this.#closeSent = true;
    this.#aborted = error;
    this.#done = true;
    this.#resolveClosed();
    write.catch(() => {}).finally(() => {
      try {
        this.#conn.close();
      } catch { /* already closed */ }
    });
  }

  #write(bytes: Uint8Array): Promise<void> {
    const conn = this.#conn;
    const p = this.#writeChain.then(() => writeAll(conn, bytes));
    this.#writeChain = p.catch(() => {});
    return p;
  }

  /** Makes room at the end of the buffer for the next socket read. */
  #makeRoom(): void {
    let need = READ_CHUNK / 4;
    // An incomplete frame's full size, when its header is already here.
    const available = this.#end - this.#start;
    if (available >= 2) {
      const b = this.#buf;
      const s = this.#start;
      const len7 = b[s + 1] & 0x7f;
      let frameSize = -1;
      if (len7 < 126) frameSize = 2 + len7;
      else if (len7 === 126 && available >= 4) frameSize = 4 + ((b[s + 2] << 8) | b[s + 3]);
      else if (len7 === 127 && available >= 10) {
        frameSize = 10 + (b[s + 6] * 2 ** 24 + ((b[s + 7] << 16) | (b[s + 8] << 8) | b[s + 9]));
      }
      if (frameSize > available) need = Math.max(need, frameSize - available);
    }
    if (this.#start === this.#end) {
      this.#start = this.#end = 0;
    }
    if (this.#buf.length - this.#end >= need) return;
    if (this.#start > 0) {
      this.#buf.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    if (this.#buf.length - this.#end < need) {
      const bigger = new Uint8Array(Math.max(this.#buf.length * 2, this.#end + need));
      bigger.set(this.#buf.subarray(0, this.#end));
      this.#buf = bigger;
    }
  }

  /** Handles every complete frame in the buffer; returns the data messages delivered. */
  #parse(onMessage: WebSocketMessageHandler): number {
    this.#window = undefined;
    const buf = this.#buf;
    const end = this.#end;
    let p = this.#start;
    let delivered = 0;
    while (end - p >= 2 && !this.#done) {
      const b0 = buf[p];
      const b1 = buf[p + 1];
      if (b1 & 0x80) throw new WebSocketProtocolError(1002, "the server sent a masked frame");
      if (b0 & 0x70) throw new WebSocketProtocolError(1002, "reserved bits set (no extension)");
      const fin = (b0 & 0x80) !== 0;
      const opcode = b0 & 0x0f;
      let len = b1 & 0x7f;
      let header = 2;
      if (len === 126) {
        if (end - p < 4) break;
        len = (buf[p + 2] << 8) | buf[p + 3];
        header = 4;
      } else if (len === 127) {
        if (end - p < 10) break;
        if (buf[p + 2] !== 0 || buf[p + 3] !== 0 || buf[p + 4] !== 0 || buf[p + 5] !== 0) {
          throw new WebSocketProtocolError(1009, "frame larger than 4 GiB");
        }
        len = buf[p + 6] * 2 ** 24 + ((buf[p + 7] << 16) | (buf[p + 8] << 8) | buf[p + 9]);
        header = 10;
      }
      if (opcode >= 8) {
        if (!fin || len > 125) {
          throw new WebSocketProtocolError(1002, "fragmented or oversized control frame");
        }
      } else if (len + (opcode === 0 ? this.#fragmentBytes : 0) > this.#maxMessage) {
        throw new WebSocketProtocolError(
          1009,
          `message larger than max_message_size (${this.#maxMessage} bytes)`,
        );
      }
      if (end - p < header + len) break;
      const payload = buf.subarray(p + header, p + header + len);
      p += header + len;
      switch (opcode) {
        case 1:
        case 2:
          if (this.#fragmenting) {
            throw new WebSocketProtocolError(1002, "new message inside a fragmented message");
          }
          if (fin) {
            delivered++;
            onMessage(payload, opcode === 1);
          } else {
            this.#fragmenting = true;
            this.#fragmentText = opcode === 1;
            this.#fragments = [payload.slice()];
            this.#fragmentBytes = len;
          }
          break;
        case 0: {
          if (!this.#fragmenting) {
            throw new WebSocketProtocolError(1002, "continuation frame without a message");
          }
          this.#fragments.push(payload.slice());
          this.#fragmentBytes += len;
          if (fin) {
            const whole = new Uint8Array(this.#fragmentBytes);
            let o = 0;
            for (const f of this.#fragments) {
              whole.set(f, o);
              o += f.length;
            }
            this.#fragments = [];
            this.#fragmentBytes = 0;
            this.#fragmenting = false;
            delivered++;
            onMessage(whole, this.#fragmentText);
          }
          break;
        }
        case 8: {
          if (len === 1) throw new WebSocketProtocolError(1002, "close frame with a 1-byte body");
          const code = len >= 2 ? (payload[0] << 8) | payload[1] : 1005;
          // Echoing a code no endpoint may send (1005, 1006, 1015, 0...) would break the protocol too.
          if (len >= 2 && !isValidCloseCode(code)) {
            throw new WebSocketProtocolError(1002, `close frame with the invalid code ${code}`);
          }
          this.#closeCode = code;
          this.#closeReason = len > 2 ? new TextDecoder().decode(payload.subarray(2)) : "";
          const answer = this.#closeSent ? Promise.resolve() : this.#write(encodeFrames([{
            opcode: 8,
            payload: closePayload(this.#closeCode === 1005 ? 1000 : this.#closeCode, ""),
          }]));
          this.#closeSent = true;
          this.#done = true;
          this.#resolveClosed();
          answer.catch(() => {}).finally(() => {
            try {
              this.#conn.close();
            } catch { /* already closed */ }
          });
          break;
        }
        case 9:
          this.#write(encodeFrames([{ opcode: 10, payload: payload.slice() }])).catch(() => {});
          break;
        case 10:
          this.#pongs++;
          this.#onPong?.();
          break;
        default:
          throw new WebSocketProtocolError(1002, `unknown opcode ${opcode}`);
      }
    }
    this.#start = p;
    return delivered;
  }
}

/** Close codes an endpoint may send (RFC 6455 §7.4, the IANA registry, 3000-4999). */
function isValidCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
    (code >= 3000 && code <= 4999);
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await conn.write(bytes.subarray(written));
}

/** Resolves with `promise`, or rejects when `signal` aborts (closing a late result). */
function abortable(
  promise: Promise<Deno.TlsConn>,
  signal: AbortSignal | undefined,
): Promise<Deno.Conn> {
  if (!signal) return promise;
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      reject(signal.reason);
      promise.then((c) => c.close(), () => {});
    };
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then((c) => {
      signal.removeEventListener("abort", onAbort);
      if (signal.aborted) c.close();
      else resolve(c);
    }, (e) => {
      signal.removeEventListener("abort", onAbort);
      reject(e);
    });
  });
}

async function readHead(conn: Deno.Conn): Promise<{ head: string; leftover: Uint8Array }> {
  const buf = new Uint8Array(MAX_HEAD_BYTES);
  let end = 0;
  while (true) {
    const n = await conn.read(buf.subarray(end));
    if (n === null) {
      throw new WebSocketProtocolError(
        1002,
        "the server closed the connection during the handshake",
      );
    }
    end += n;
    const headEnd = indexOfHeadEnd(buf, end);
    if (headEnd >= 0) {
      return {
        head: latin1.decode(buf.subarray(0, headEnd)),
        leftover: buf.slice(headEnd, end),
      };
    }
    if (end === buf.length) {
      throw new WebSocketProtocolError(
        1002,
        `handshake response longer than ${MAX_HEAD_BYTES} bytes`,
      );
    }
  }
}

async function checkHandshake(
  head: string,
  key: string,
  protocols: readonly string[],
): Promise<string> {
  const lines = head.split("\r\n");
  const status = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(lines[0]);
  if (!status) throw new WebSocketProtocolError(1002, "malformed handshake status line");
  if (status[1] !== "101") throw new WebSocketHandshakeError(Number(status[1]), status[2]);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers.set(name, headers.has(name) ? `${headers.get(name)}, ${value}` : value);
  }
  if ((headers.get("upgrade") ?? "").toLowerCase() !== "websocket") {
    throw new WebSocketProtocolError(1002, 'handshake response without "Upgrade: websocket"');
  }
  const connection = (headers.get("connection") ?? "").toLowerCase().split(",").map((t) =>
    t.trim()
  );
  if (!connection.includes("upgrade")) {
    throw new WebSocketProtocolError(1002, 'handshake response without "Connection: Upgrade"');
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-1", encoder.encode(key + GUID)));
  if (headers.get("sec-websocket-accept") !== base64(digest)) {
    throw new WebSocketProtocolError(1002, "handshake response with a wrong Sec-WebSocket-Accept");
  }
  if (headers.has("sec-websocket-extensions")) {
    throw new WebSocketProtocolError(1002, "the server enabled an extension that was not offered");
  }
  const protocol = headers.get("sec-websocket-protocol") ?? "";
  if (protocol && !protocols.includes(protocol)) {
    throw new WebSocketProtocolError(
      1002,
      `the server chose subprotocol "${protocol}", not offered`,
    );
  }
  return protocol;
}

// ---------------------------------------------------------------------------
// Shared config pieces
// ---------------------------------------------------------------------------

/** The reconnection keys shared by WebSocketNode and WebSocketClientSinkNode. */
export interface ReconnectConfig {
  /** Reconnect after a lost connection. @default {true} */
  auto_reconnect: boolean;
  /** Consecutive failed attempts before the node fails. @default {10} */
  max_reconnect_attempts: number;
  /** Delay before the first reconnect, seconds. @default {1} */
  reconnect_delay: number;
  /** Double the delay after each failed attempt (capped at 30 s). @default {true} */
  exponential_backoff: boolean;
}

/**
 * Maps the reconnect keys onto the supervisor: backoff from
 * `reconnect_delay` (factor 2, or 1 without `exponential_backoff`),
 * `maxAttempts` from `max_reconnect_attempts` (0 without `auto_reconnect`),
 * and a restart budget large enough not to cut the attempts short.
 *
 * @param config The reconnect keys.
 * @returns Partial supervision options.
 * @example The guide's reconnect settings
 * ```ts
 * import { reconnectSupervision } from "./websocket.ts";
 * const o = reconnectSupervision({
 *   auto_reconnect: true, max_reconnect_attempts: 5, reconnect_delay: 2, exponential_backoff: true,
 * });
 * console.assert(o.backoff?.initialDelayMs === 2000 && o.backoff?.factor === 2 && o.maxAttempts === 5);
 * ```
 */
export function reconnectSupervision(config: ReconnectConfig): Partial<SupervisionOptions> {
  return {
    backoff: {
      initialDelayMs: config.reconnect_delay * 1000,
      factor: config.exponential_backoff ? 2 : 1,
    },
    maxAttempts: config.auto_reconnect ? config.max_reconnect_attempts : 0,
    maxRestarts: Math.max(DEFAULT_SUPERVISION.maxRestarts, config.max_reconnect_attempts + 1),
  };
}

/** Schema fields of the reconnect keys. */
export const reconnectFields: {
  auto_reconnect: Schema<boolean>;
  max_reconnect_attempts: Schema<number>;
  reconnect_delay: Schema<number>;
  exponential_backoff: Schema<boolean>;
} = {
  auto_reconnect: s.boolean({
    default: true,
    doc: "Reconnect after a lost connection; when false the first failure fails the node " +
      "(a clean close by the server ends a source).",
  }),
  max_reconnect_attempts: s.integer({
    min: 0,
    default: 10,
    doc: "Consecutive failed connection attempts before the node fails; a successful connect " +
      "starts the count again.",
  }),
  reconnect_delay: s.number({
    min: 0,
    default: 1,
    doc: "Seconds before the first reconnect (the supervisor's jitter may shorten it by up to " +
      "its jitter fraction).",
  }),
  exponential_backoff: s.boolean({
    default: true,
    doc: "Double the delay after each failed attempt, up to the supervisor's max_delay (30 s).",
  }),
};

/**
 * Checks a `ws:`/`wss:` URL and handshake headers, pushing config issues.
 *
 * @param url The configured URL.
 * @param headers The configured headers, if any.
 * @param path The key path of the node's config.
 * @param issues Where problems go.
 * @example An http URL is a config issue
 * ```ts
 * import { validateEndpoint } from "./websocket.ts";
 * const issues: { path: string; message: string }[] = [];
 * validateEndpoint("http://x", undefined, "config", issues);
 * console.assert(issues[0].path === "config.url");
 * ```
 */
export function validateEndpoint(
  url: string,
  headers: Readonly<Record<string, string>> | undefined,
  path: string,
  issues: ConfigIssue[],
): void {
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    issues.push({
      path: `${path}.url`,
      message: `expected a ws:// or wss:// URL, found ${JSON.stringify(url)}`,
    });
  }
  if (parsed && parsed.protocol !== "ws:" && parsed.protocol !== "wss:") {
    issues.push({
      path: `${path}.url`,
      message: `expected a ws:// or wss:// URL, found scheme "${parsed.protocol}"`,
    });
  }
  if (parsed?.hash) {
    issues.push({ path: `${path}.url`, message: "a WebSocket URL must not have a #fragment" });
  }
  for (const problem of headerProblems(headers ?? {})) {
    issues.push({ path: `${path}.auth_headers.${problem.name}`, message: problem.message });
  }
}

/**
 * Normalises `protocols` (a string or a list).
 *
 * @param protocols The configured subprotocols.
 * @returns A list.
 * @example One or several subprotocols
 * ```ts
 * import { protocolList } from "./websocket.ts";
 * console.assert(protocolList("a").join() === "a" && protocolList(undefined).length === 0);
 * ```
 */
export function protocolList(protocols: string | string[] | undefined): string[] {
  if (protocols === undefined) return [];
  return typeof protocols === "string" ? [protocols] : protocols;
}

/**
 * Pushes issues for subprotocol names that are not HTTP tokens.
 *
 * @param protocols The configured subprotocols.
 * @param path The key path of the node's config.
 * @param issues Where problems go.
 * @example Subprotocols must be tokens
 * ```ts
 * import { validateProtocols } from "./websocket.ts";
 * const issues: { path: string; message: string }[] = [];
 * validateProtocols(["ok", "not ok"], "config", issues);
 * console.assert(issues[0].path === "config.protocols[1]");
 * ```
 */
export function validateProtocols(
  protocols: string | string[] | undefined,
  path: string,
  issues: ConfigIssue[],
): void {
  protocolList(protocols).forEach((p, i) => {
    if (!TOKEN.test(p)) {
      issues.push({
        path: typeof protocols === "string" ? `${path}.protocols` : `${path}.protocols[${i}]`,
        message: `subprotocol ${JSON.stringify(p)} is not a valid token`,
      });
    }
  });
}

/**
 * Opens a connection bounded by a timeout on the actor's clock and by its
 * stop signal.
 *
 * @param ctx The actor context (clock and stop signal).
 * @param url The URL.
 * @param timeoutSeconds The connection timeout.
 * @param options Connect options (headers, subprotocols).
 * @returns The connection.
 * @throws {WebSocketTimeoutError} When the timeout passes first.
 * @example Connecting from an actor
 * ```ts ignore
 * import { connectWithTimeout } from "./websocket.ts";
 * // inside start(ctx) or run(ctx):
 * const conn = await connectWithTimeout(ctx, "ws://127.0.0.1:8080/feed", 30, {});
 * ```
 */
export async function connectWithTimeout(
  ctx: Pick<ActorContext, "clock" | "signal">,
  url: string,
  timeoutSeconds: number,
  options: Omit<WebSocketConnectOptions, "signal">,
): Promise<WebSocketConnection> {
  const controller = new AbortController();
  const onStop = () => controller.abort(ctx.signal.reason);
  if (ctx.signal.aborted) onStop();
  ctx.signal.addEventListener("abort", onStop, { once: true });
  // Through the clock directly: a consumer's ctx.schedule tasks do not run while start() awaits.
  const timer = ctx.clock.setTimeout(
    () => controller.abort(new WebSocketTimeoutError(`no connection within ${timeoutSeconds}s`)),
    timeoutSeconds * 1000,
  );
  try {
    return await WebSocketConnection.connect(url, { ...options, signal: controller.signal });
  } finally {
    ctx.clock.clearTimeout(timer);
    ctx.signal.removeEventListener("abort", onStop);
  }
}

/**
 * Closes a connection cleanly, waiting at most `waitMs` on `clock` for the
 * server's close frame.
 *
 * @param conn The connection.
 * @param clock The clock bounding the wait.
 * @param waitMs The longest wait.
 * @param code The close code.
 * @param reason The reason.
 * @example Closing within a second
 * ```ts ignore
 * import { closeWithin } from "./websocket.ts";
 * await closeWithin(conn, ctx.clock, 1000);
 * ```
 */
export async function closeWithin(
  conn: WebSocketConnection,
  clock: Clock,
  waitMs: number,
  code = 1000,
  reason = "",
): Promise<void> {
  const controller = new AbortController();
  const timer = clock.setTimeout(() => controller.abort(), waitMs);
  try {
    await conn.close(code, reason, controller.signal);
  } finally {
    clock.clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------
// WebSocketNode
// ---------------------------------------------------------------------------

/** What a full queue does: `block` stops reading the socket (TCP backpressure). */
export type WebSocketBackpressure = "block" | "drop_oldest" | "drop_newest";

/** Config of WebSocketNode. Times in seconds, as in the reference guide. */
export interface WebSocketConfig extends ReconnectConfig {
  /** `ws://` or `wss://` URL of the feed. */
  url: string;
  /** Longest TCP connect + TLS + handshake. @default {30} */
  connection_timeout: number;
  /** No message for this long: the connection is dead and is reconnected. Absent: never. */
  message_timeout?: number;
  /** Handshake headers (secret: never logged). */
  auth_headers?: Record<string, string>;
  /** How frames become messages. @default {"json"} */
  message_format: "json" | "text" | "binary";
  /** Messages per emitted batch; 1 emits each message as it is. @default {1} */
  batch_size: number;
  /** Longest a partial batch waits, seconds. @default {1} */
  batch_timeout: number;
  /** Messages held between the socket and downstream. @default {10000} */
  max_queue_size: number;
  /** What a full queue does. @default {"block"} */
  backpressure_strategy: WebSocketBackpressure;
  /** Log connection counters on every disconnect and at the end. @default {true} */
  enable_metrics: boolean;
  /** Seconds between pings; a ping with nothing received by the next one means a dead connection. */
  heartbeat_interval?: number;
  /** Messages sent after every connect (strings as text, anything else as JSON). */
  subscribe?: unknown;
  /** Subprotocols offered. */
  protocols?: string | string[];
  /** Largest message accepted, bytes. @default {16777216} */
  max_message_size: number;
}

const websocketConfig: Schema<WebSocketConfig> = s.object({
  url: s.string({ nonEmpty: true, doc: "ws:// or wss:// URL of the feed." }),
  connection_timeout: s.number({
    greaterThan: 0,
    default: 30,
    doc: "Seconds allowed for TCP connect, TLS and the opening handshake.",
  }),
  message_timeout: s.number({
    greaterThan: 0,
    optional: true,
    doc: "Seconds without a data message after which the connection counts as dead and is " +
      "reconnected (time spent blocked by downstream does not count). Absent: never.",
  }),
  auth_headers: s.record(s.string(), {
    optional: true,
    secret: true,
    doc: "Headers sent with the opening handshake (Authorization, API keys). Use ${VAR} " +
      "for secrets; the values are never logged.",
  }),
  message_format: s.enum(["json", "text", "binary"] as const, {
    default: "json",
    doc: "json: each frame (text or binary) is parsed as JSON; text: frames as strings; " +
      "binary: frames as Uint8Array. A frame that does not parse goes to the dead letters.",
  }),
  batch_size: s.integer({
    min: 1,
    default: 1,
    doc: "1 emits every message as it is; above 1 emits batches " +
      "{messages, count, timestamp, processing_latency} as in the reference guide.",
  }),
  batch_timeout: s.number({
    greaterThan: 0,
    default: 1,
    doc: "Seconds a partial batch may wait for more messages (batch_size > 1).",
  }),
  ...reconnectFields,
  max_queue_size: s.integer({
    min: 1,
    default: 10_000,
    doc: "Messages held between the socket and downstream while downstream is busy.",
  }),
  backpressure_strategy: s.enum(["block", "drop_oldest", "drop_newest"] as const, {
    default: "block",
    doc: "What a full queue does: block stops reading the socket, so the server sees TCP " +
      "backpressure; drop_oldest/drop_newest keep reading and drop (counted, logged).",
  }),
  enable_metrics: s.boolean({
    default: true,
    doc: "Log the connection's counters (messages, bytes, parse errors, drops) on every " +
      "disconnect and at the end.",
  }),
  heartbeat_interval: s.number({
    greaterThan: 0,
    optional: true,
    doc: "Seconds between WebSocket pings; when nothing at all (pong or data) arrives between " +
      "one ping and the next, the connection counts as dead. Absent: no pings.",
  }),
  subscribe: s.any({
    optional: true,
    type: "message | list of messages",
    doc: "Sent once after every (re)connect: strings as text frames, anything else as JSON. " +
      "A list sends each item.",
  }),
  protocols: s.stringOrList({ optional: true, doc: "Subprotocols offered in the handshake." }),
  max_message_size: s.integer({
    min: 1,
    default: 16 * 1024 * 1024,
    doc: "Largest message accepted, bytes; a larger one fails the connection (1009).",
  }),
});

/** A batch, shaped as in the reference guide's real-time pipeline. */
export interface WebSocketBatch<T = unknown> {
  /** The messages, in arrival order. */
  messages: T[];
  /** `messages.length`. */
  count: number;
  /** When the batch was emitted, epoch seconds. */
  timestamp: number;
  /** Seconds from the arrival of the batch's first message to its emission. */
  processing_latency: number;
}

/** Counters of one WebSocketNode, kept across reconnects. */
interface SourceStats {
  connections: number;
  messages: number;
  bytes: number;
  parse_errors: number;
  dropped_oldest: number;
  dropped_newest: number;
  queue_high_water: number;
}

function subscribeMessages(subscribe: unknown): (string | Uint8Array)[] {
  if (subscribe === undefined || subscribe === null) return [];
  const list = Array.isArray(subscribe) ? subscribe : [subscribe];
  return list.map((m) => typeof m === "string" || m instanceof Uint8Array ? m : JSON.stringify(m));
}

class WebSocketSourceActor implements Actor<never, unknown> {
  readonly #config: WebSocketConfig;
  readonly #stats: SourceStats;
  #ctx!: ActorContext<unknown>;
  #conn: WebSocketConnection | undefined;
  #queue: unknown[] = [];
  #head = 0;
  #batch: unknown[] = [];
  #batchStartedAt = 0;
  #cancelBatchTimer: (() => void) | undefined;
  #batchDue = false;
  #flushPending: Promise<void> | undefined;
  #paused = false;
  #wakeReader: (() => void) | undefined;
  #dead: Error | undefined;
  #lastMessageAt = 0;
  #gotMessage = false;
  #pingMark: number | undefined;
  #cancelIdle: (() => void) | undefined;
  #cancelHeartbeat: (() => void) | undefined;
  #cancelCloseWait: (() => void) | undefined;
  #dropping = false;
  #log: Logger | undefined;

  constructor(config: WebSocketConfig, persistent: Map<string, unknown>) {
    this.#config = config;
    let stats = persistent.get("stats") as SourceStats | undefined;
    if (!stats) {
      stats = {
        connections: 0,
        messages: 0,
        bytes: 0,
        parse_errors: 0,
        dropped_oldest: 0,
        dropped_newest: 0,
        queue_high_water: 0,
      };
      persistent.set("stats", stats);
    }
    this.#stats = stats;
  }

  async run(ctx: ActorContext<unknown>): Promise<SourceOutcome> {
    this.#ctx = ctx;
    this.#log = ctx.log;
    const config = this.#config;
    const url = safeUrl(config.url);
    let conn: WebSocketConnection;
    try {
      conn = await connectWithTimeout(ctx, config.url, config.connection_timeout, {
        headers: config.auth_headers,
        protocols: protocolList(config.protocols),
        maxMessageBytes: config.max_message_size,
        onPong: () => ctx.log.debug("websocket pong", { url }),
      });
    } catch (error) {
      if (ctx.signal.aborted) return "end";
      return { disconnected: new WebSocketConnectionError(config.url, error) };
    }
    this.#conn = conn;
    ctx.resetBackoff();
    this.#stats.connections++;
    const bytesBefore = conn.bytesReceived;
    let clean = false;
    let cause: unknown;
    const onStop = () => this.#onStop(conn);
    ctx.signal.addEventListener("abort", onStop, { once: true });
    try {
      // Once per connection, before anything is read.
      const subscribe = subscribeMessages(config.subscribe);
      if (subscribe.length > 0) await conn.sendAll(subscribe);
      this.#lastMessageAt = ctx.clock.monotonic();
      this.#startTimers(ctx, conn);
      ctx.log.info("websocket connected", {
        url,
        connection: this.#stats.connections,
        ...(conn.protocol ? { protocol: conn.protocol } : {}),
      });
      while (true) {
        if (this.#mustPause()) {
          if (ctx.signal.aborted) break;
          await this.#waitForRoom();
          continue;
        }
        this.#gotMessage = false;
        const open = await conn.read(this.#onMessage);
        if (this.#gotMessage) this.#lastMessageAt = ctx.clock.monotonic();
        this.#pump();
        if (!open) {
          clean = true;
          break;
        }
      }
    } catch (error) {
      cause = this.#dead ?? error;
    } finally {
      ctx.signal.removeEventListener("abort", onStop);
      this.#cancelTimers();
    }
    this.#stats.bytes += conn.bytesReceived - bytesBefore;
    conn.abort();
    await this.#drainQueue();
    if (ctx.signal.aborted) {
      this.#logStats("websocket closed", { url });
      return "end";
    }
    const reason = clean
      ? new Error(
        `the server closed the connection (code ${conn.closeCode}${
          conn.closeReason ? `, "${conn.closeReason}"` : ""
        })`,
      )
      : cause;
    this.#logStats("websocket disconnected", { url, reason: errorMessage(reason) });
    if (clean && !config.auto_reconnect) return "end";
    return { disconnected: new WebSocketConnectionError(config.url, reason) };
  }

  close(): void {
    this.#conn?.abort();
    this.#cancelTimers();
    this.#cancelBatchTimer?.();
    this.#wakeReader?.();
  }

  #cancelTimers(): void {
    this.#cancelIdle?.();
    this.#cancelHeartbeat?.();
    this.#cancelCloseWait?.();
    this.#cancelIdle = this.#cancelHeartbeat = this.#cancelCloseWait = undefined;
  }

  /** Frame handler: the hot path. */
  #onMessage = (payload: Uint8Array, text: boolean): void => {
    this.#gotMessage = true;
    this.#stats.messages++;
    const format = this.#config.message_format;
    let value: unknown;
    if (format === "binary") {
      value = payload.slice();
    } else {
      let str: string;
      try {
        str = this.#conn!.decodeText(payload);
      } catch (error) {
        this.#reject(
          payload.slice(),
          new WebSocketFrameError(`${text ? "text" : "binary"} frame is not valid UTF-8`, {
            cause: error,
          }),
        );
        return;
      }
      if (format === "text") {
        value = str;
      } else {
        try {
          value = JSON.parse(str);
        } catch (error) {
          this.#reject(
            str,
            new WebSocketFrameError(`frame is not valid JSON: ${errorMessage(error)}`, {
              cause: error,
            }),
          );
          return;
        }
      }
    }
    const size = this.#queue.length - this.#head;
    if (size >= this.#config.max_queue_size) {
      const strategy = this.#config.backpressure_strategy;
      if (strategy === "drop_newest") {
        this.#stats.dropped_newest++;
        this.#noteDrop();
        return;
      }
      if (strategy === "drop_oldest") {
        this.#queue[this.#head++] = undefined;
        this.#stats.dropped_oldest++;
        this.#noteDrop();
        if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
          this.#queue = this.#queue.slice(this.#head);
          this.#head = 0;
        }
      }
      // block: the rest of the current read is kept; reading then stops.
    }
    this.#queue.push(value);
    if (size + 1 > this.#stats.queue_high_water) this.#stats.queue_high_water = size + 1;
  };

  #reject(message: unknown, error: Error): void {
    this.#stats.parse_errors++;
    this.#ctx.deadLetter(message, error, {
      url: safeUrl(this.#config.url),
      message_format: this.#config.message_format,
    });
  }

  #noteDrop(): void {
    if (this.#dropping) return;
    this.#dropping = true;
    this.#ctx.log.warn("websocket queue full: dropping messages", {
      strategy: this.#config.backpressure_strategy,
      max_queue_size: this.#config.max_queue_size,
      dropped_so_far: this.#stats.dropped_oldest + this.#stats.dropped_newest,
    });
  }

  #mustPause(): boolean {
    return this.#config.backpressure_strategy === "block" &&
      this.#queue.length - this.#head >= this.#config.max_queue_size;
  }

  #waitForRoom(): Promise<void> {
    this.#paused = true;
    return new Promise<void>((resolve) => {
      this.#wakeReader = () => {
        this.#wakeReader = undefined;
        resolve();
      };
    }).finally(() => {
      this.#paused = false;
      // Time spent blocked by downstream is not silence of the peer.
      this.#lastMessageAt = this.#ctx.clock.monotonic();
      this.#pingMark = undefined;
    });
  }

  /** Moves queued messages downstream unless a flush is still pending. */
  #pump(): void {
    if (this.#flushPending) return;
    const ctx = this.#ctx;
    const queue = this.#queue;
    const head = this.#head;
    if (queue.length > head) {
      this.#queue = [];
      this.#head = 0;
      if (this.#config.batch_size === 1) {
        for (let i = head; i < queue.length; i++) ctx.emit(queue[i]);
      } else {
        for (let i = head; i < queue.length; i++) this.#addToBatch(queue[i]);
      }
      if (this.#dropping) this.#dropping = false;
    }
    if (this.#batchDue && this.#batch.length > 0) this.#emitBatch();
    this.#batchDue = false;
    const pending = ctx.flush();
    if (pending) {
      this.#flushPending = pending.then(
        () => {
          this.#flushPending = undefined;
          this.#pump();
        },
        (error) => {
          this.#flushPending = undefined;
          ctx.log.warn("websocket flush failed", { error: errorMessage(error) });
          this.#wakeReader?.();
        },
      );
      return;
    }
    this.#wakeReader?.();
  }

  #addToBatch(message: unknown): void {
    if (this.#batch.length === 0) {
      this.#batchStartedAt = this.#ctx.clock.monotonic();
      this.#cancelBatchTimer = this.#ctx.schedule(this.#config.batch_timeout * 1000, () => {
        this.#cancelBatchTimer = undefined;
        this.#batchDue = true;
        this.#pump();
      });
    }
    this.#batch.push(message);
    if (this.#batch.length >= this.#config.batch_size) this.#emitBatch();
  }

  #emitBatch(): void {
    const ctx = this.#ctx;
    const messages = this.#batch;
    this.#batch = [];
    this.#cancelBatchTimer?.();
    this.#cancelBatchTimer = undefined;
    const batch: WebSocketBatch = {
      messages,
      count: messages.length,
      timestamp: ctx.clock.now() / 1000,
      processing_latency: (ctx.clock.monotonic() - this.#batchStartedAt) / 1000,
    };
    ctx.emit(batch);
  }

  /** Delivers everything still held (queue and partial batch) and waits for it. */
  async #drainQueue(): Promise<void> {
    while (this.#flushPending) await this.#flushPending;
    this.#batchDue = true;
    this.#pump();
    while (this.#flushPending) await this.#flushPending;
  }

  #startTimers(ctx: ActorContext<unknown>, conn: WebSocketConnection): void {
    const config = this.#config;
    if (config.message_timeout !== undefined) {
      const timeoutMs = config.message_timeout * 1000;
      const check = () => {
        const now = ctx.clock.monotonic();
        const idle = this.#paused ? 0 : now - this.#lastMessageAt;
        if (idle >= timeoutMs) {
          this.#declareDead(
            conn,
            new WebSocketTimeoutError(`no message for ${config.message_timeout}s`),
          );
          return;
        }
        this.#cancelIdle = ctx.schedule(timeoutMs - idle, check);
      };
      this.#cancelIdle = ctx.schedule(timeoutMs, check);
    }
    if (config.heartbeat_interval !== undefined) {
      const intervalMs = config.heartbeat_interval * 1000;
      this.#pingMark = undefined;
      const tick = () => {
        if (!this.#paused) {
          if (this.#pingMark !== undefined && conn.bytesReceived === this.#pingMark) {
            this.#declareDead(
              conn,
              new WebSocketTimeoutError(
                `no pong (nor anything else) within ${config.heartbeat_interval}s of a ping`,
              ),
            );
            return;
          }
          this.#pingMark = conn.bytesReceived;
          conn.ping().catch(() => {});
        }
        this.#cancelHeartbeat = ctx.schedule(intervalMs, tick);
      };
      this.#cancelHeartbeat = ctx.schedule(intervalMs, tick);
    }
  }

  #declareDead(conn: WebSocketConnection, error: Error): void {
    this.#dead = error;
    this.#ctx.log.warn("websocket connection is dead", {
      url: safeUrl(this.#config.url),
      reason: error.message,
    });
    conn.abort(error);
  }

  #onStop(conn: WebSocketConnection): void {
    if (this.#paused) {
      // Blocked by downstream: no point reading on to find the close answer.
      conn.abort();
      this.#wakeReader?.();
      return;
    }
    // The read loop goes on until the server answers the close frame, for at
    // most a second (ctx.schedule tasks stop with the incarnation, so the clock).
    void conn.sendClose(1001, "going away");
    const clock = this.#ctx.clock;
    const timer = clock.setTimeout(() => conn.abort(), 1000);
    this.#cancelCloseWait = () => clock.clearTimeout(timer);
  }

  #logStats(message: string, fields: Record<string, unknown>): void {
    if (!this.#config.enable_metrics) return;
    this.#log?.info(message, { ...fields, ...this.#stats });
  }
}

/** The WebSocketNode type. */
export const WebSocketNode: NodeSpec<WebSocketConfig> = {
  type: "WebSocketNode",
  kind: "source",
  description:
    "Reads a WebSocket feed (ws:// or wss://) with the reference guide's configuration: " +
    "handshake auth headers, json/text/binary frames, optional batches, reconnection with " +
    "backoff through the supervisor, a bounded queue whose block strategy becomes TCP " +
    "backpressure on the server, pings and an idle timeout. Bad frames go to dead letters.",
  config: websocketConfig,
  permissions: ["--allow-net"],
  validate(config, path, issues) {
    validateEndpoint(config.url, config.auth_headers, path, issues);
    validateProtocols(config.protocols, path, issues);
    if (config.subscribe !== undefined) {
      const list = Array.isArray(config.subscribe) ? config.subscribe : [config.subscribe];
      list.forEach((m, i) => {
        if (typeof m === "string" || m instanceof Uint8Array) return;
        try {
          if (JSON.stringify(m) === undefined) throw new TypeError("not serialisable");
        } catch (error) {
          issues.push({
            path: Array.isArray(config.subscribe) ? `${path}.subscribe[${i}]` : `${path}.subscribe`,
            message: `expected a string or a JSON value, found one that cannot be serialised (${
              errorMessage(error)
            })`,
          });
        }
      });
    }
  },
  supervision: (config) => reconnectSupervision(config),
  create: (config, env) => new WebSocketSourceActor(config, env.persistent),
};

/**
 * A typed WebSocketNode for the fluent builder.
 *
 * @typeParam T The type of the parsed messages.
 * @param config The node's config (`url` at least).
 * @returns A node definition emitting `T` (or batches of `T` with `batch_size` > 1).
 * @example A typed feed for the fluent builder
 * ```ts
 * import { webSocket } from "./websocket.ts";
 * const feed = webSocket<{ price: number }>({ url: "wss://feed.example/prices" });
 * console.assert(feed.type === "WebSocketNode");
 * ```
 */
export function webSocket<T = unknown>(
  config: Partial<WebSocketConfig> & { url: string },
): NodeDef<never, T> {
  return { type: "WebSocketNode", config };
}
