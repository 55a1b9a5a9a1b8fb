/**
 * Fuzzes the message decoding of the two network sources with generated
 * hostile input (seeded, reproducible):
 *
 * - WebSocketNode against a raw TCP server that completes the handshake (or
 *   botches it) and then sends generated frames: valid frames with invalid
 *   UTF-8 or bad JSON, NaN/Infinity literals, deep nesting, `__proto__` keys,
 *   huge and non-minimal lengths, fragments split anywhere, reserved opcodes
 *   and bits, oversized or fragmented control frames, random garbage.
 * - EventStreamNode's decoding (`kafkaEvent`) called directly with generated
 *   Buffers and Uint8Arrays, and (with `KAFKA_BROKERS`) hostile payloads
 *   produced with kcat and consumed through a workflow.
 *
 * Every input must end as a message, a dead letter, or a clean protocol
 * close followed by a reconnect; never a crash, an unhandled rejection or a
 * polluted Object.prototype.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { builtins } from "../../actors/mod.ts";
import {
  type EventFormat,
  KafkaDecodeError,
  type KafkaEvent,
  kafkaEvent,
  type KafkaRecord,
} from "../../actors/sources/kafka.ts";
import type { Logger } from "../../runtime/actor.ts";
import { RealClock } from "../../runtime/clock.ts";
import { type DeadLetter, MemoryDeadLetters } from "../../runtime/dead_letter.ts";
import { Registry } from "../../runtime/registry.ts";
import { Workflow } from "../../runtime/workflow.ts";
import { committedOffsets, createTopic, kafkaTest, uniqueTopic, waitFor } from "../kafka_env.ts";
import { until, withTimeout } from "../peers/ws_peers.ts";
import { assertPrototypeClean, deeplyNested, hostileValue, prng } from "./fuzz_helpers.ts";

// Every test here fails on an unhandled rejection or an uncaught error, wherever it comes from.
const unhandled: unknown[] = [];
globalThis.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  unhandled.push(event.reason);
});
globalThis.addEventListener("error", (event) => {
  event.preventDefault();
  unhandled.push(event.error);
});
function assertNothingUnhandled(): void {
  assert.deepEqual(unhandled.map(String), [], "no unhandled rejection or uncaught error");
}

const encoder = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
const lenientUtf8 = new TextDecoder("utf-8");
const realClock = new RealClock();

type Random = () => number;
const int = (random: Random, n: number) => Math.floor(random() * n);
const pick = <T>(random: Random, list: readonly T[]): T => list[int(random, list.length)];

function randomBytes(random: Random, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = int(random, 256);
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Hostile payloads, shared by both sources
// ---------------------------------------------------------------------------

/** JSON-ish texts that trip parsers: non-JSON literals, deep nesting, prototype keys. */
const JSON_TRICKS: readonly (() => string)[] = [
  () => "NaN",
  () => "[NaN]",
  () => '{"a":Infinity}',
  () => "-Infinity",
  () => "1e999",
  () => "-0",
  () => '{"a":1,}',
  () => "[1 2]",
  () => "{'a':1}",
  () => '{"a":1}{"b":2}',
  () => '"\\ud800"',
  () => '"\\u0000"',
  () => "",
  () => " \t\n",
  () => "\u0000",
  () => "nul",
  () => "null",
  () => "true",
  () => "12",
  () => '"text"',
  () => "[1,2]",
  () => '{"__proto__":{"polluted":true}}',
  () => '{"__proto__":[]}',
  () => '{"constructor":{"prototype":{"polluted":true}}}',
  () => '{"a":{"__proto__":{"polluted":true}},"__proto__":null}',
  () => '{"_kafka":{"topic":"spoofed"},"x":1}',
  () => '\ufeff{"bom":1}',
  () => JSON.stringify(deeplyNested(5000, false)),
  () => JSON.stringify(deeplyNested(3000, true)),
  () => "[".repeat(50_000),
  () => "[".repeat(20_000) + "]".repeat(19_999),
  () => '{"a":"' + "\\".repeat(1001) + '"}',
];

/** Byte sequences that are not UTF-8 (overlong, surrogates, out of range, cut short). */
const BAD_UTF8: readonly ((random: Random) => Uint8Array)[] = [
  () => new Uint8Array([0xc0, 0xaf]),
  () => new Uint8Array([0x22, 0xed, 0xa0, 0x80, 0x22]),
  () => new Uint8Array([0xf4, 0x90, 0x80, 0x80]),
  () => new Uint8Array([0xff, 0xfe]),
  () => new Uint8Array([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xe2, 0x82]),
  () => new Uint8Array([0x80]),
  () => new Uint8Array([0xf8, 0x88, 0x80, 0x80, 0x80]),
  (random) => {
    // Long and ASCII but for one byte: the decoder's ASCII fast path must notice it.
    const text = encoder.encode(JSON.stringify({ k: "a".repeat(40 + int(random, 300)) }));
    text[2 + int(random, text.length - 4)] = 0x80 + int(random, 128);
    return text;
  },
  (random) =>
    concat([new Uint8Array([0xef, 0xbb, 0xbf]), randomBytes(random, 1 + int(random, 40))]),
];

/** Valid JSON with one byte cut, dropped, added or flipped. */
function mutatedJson(random: Random): Uint8Array {
  const bytes = encoder.encode(JSON.stringify(hostileValue(random)) ?? "{}");
  const at = int(random, bytes.length + 1);
  switch (int(random, 4)) {
    case 0:
      return bytes.slice(0, at);
    case 1:
      return concat([bytes.subarray(0, at), bytes.subarray(at + 1)]);
    case 2:
      return concat([
        bytes.subarray(0, at),
        new Uint8Array([int(random, 256)]),
        bytes.subarray(at),
      ]);
    default: {
      const copy = bytes.slice();
      if (copy.length > 0) copy[Math.min(at, copy.length - 1)] ^= 1 << int(random, 8);
      return copy;
    }
  }
}

/** One hostile payload. */
function hostilePayload(random: Random, allowBig: boolean): Uint8Array {
  const r = random();
  if (r < 0.3) return encoder.encode(JSON.stringify(hostileValue(random)) ?? "null");
  if (r < 0.5) return encoder.encode(pick(random, JSON_TRICKS)());
  if (r < 0.62) return mutatedJson(random);
  if (r < 0.8) return pick(random, BAD_UTF8)(random);
  if (r < 0.95 || !allowBig) return randomBytes(random, int(random, 300));
  // Large, under the node's max_message_size of 1 MiB.
  return encoder.encode(JSON.stringify({ big: "x".repeat(100_000 + int(random, 800_000)) }));
}

/** What a decoder must make of a payload: a value, or a dead letter for a reason. */
type Outcome =
  | { kind: "message"; json: string }
  | { kind: "dead"; reason: "utf8"; bytes: Uint8Array }
  | { kind: "dead"; reason: "json"; text: string };

/** The reference: WHATWG strict UTF-8 (a leading BOM dropped), then JSON.parse. */
function oracle(bytes: Uint8Array): Outcome {
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    return { kind: "dead", reason: "utf8", bytes: bytes.slice() };
  }
  try {
    return { kind: "message", json: JSON.stringify(JSON.parse(text)) ?? "undefined" };
  } catch {
    return { kind: "dead", reason: "json", text };
  }
}

// ---------------------------------------------------------------------------
// WebSocket: a raw server scripting each connection
// ---------------------------------------------------------------------------

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const MAX_MESSAGE = 1024 * 1024;

interface FrameOptions {
  fin?: boolean;
  /** RSV1..3 bits, 0 to 7. */
  rsv?: number;
  mask?: boolean;
  /** Length encoding: the shortest (default) or a longer one on purpose. */
  form?: "min" | 16 | 64;
  /** A length field that lies: the payload sent is `payload`, the header claims this. */
  claimed?: bigint;
}

/** A server-to-client frame (unmasked unless asked). */
function frame(opcode: number, payload: Uint8Array, options: FrameOptions = {}): Uint8Array {
  const n = options.claimed ?? BigInt(payload.length);
  const form = options.form ?? "min";
  const head: number[] = [((options.fin ?? true) ? 0x80 : 0) | ((options.rsv ?? 0) << 4) | opcode];
  const maskBit = options.mask ? 0x80 : 0;
  if (form === "min" && n < 126n) head.push(maskBit | Number(n));
  else if ((form === "min" || form === 16) && n < 65536n) {
    head.push(maskBit | 126, Number(n >> 8n) & 0xff, Number(n) & 0xff);
  } else {
    head.push(maskBit | 127);
    for (let shift = 56n; shift >= 0n; shift -= 8n) head.push(Number((n >> shift) & 0xffn));
  }
  let body = payload;
  if (options.mask) {
    const key = [0x12, 0x34, 0x56, 0x78];
    head.push(...key);
    body = payload.map((b, i) => b ^ key[i & 3]);
  }
  return concat([new Uint8Array(head), body]);
}

const text = (s: string) => encoder.encode(s);
const closeBody = (code: number, reason = "") =>
  concat([new Uint8Array([code >> 8, code & 0xff]), text(reason)]);

/** How a connection ends, and the close code the client must answer with. */
type Ending =
  | { kind: "close"; expectCode: number }
  | { kind: "violation"; expectCode: 1002 | 1009; what: string }
  | { kind: "abrupt" }
  | { kind: "garbage" };

interface Script {
  /** A botched handshake response (index into HOSTILE_HANDSHAKES; then the server hangs up). */
  badHandshake?: number;
  /** Send the first frames in the same write as the handshake response. */
  leftover: boolean;
  /** The bytes after the handshake. */
  body: Uint8Array;
  /** What the frames before the ending must become, in order. */
  expected: Outcome[];
  ending: Ending;
}

const HOSTILE_HANDSHAKES: readonly ((accept: string) => string)[] = [
  () => "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
  () => "HTTP/1.1 401 Unauthorized\r\n\r\n",
  () =>
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
  (accept) =>
    `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
  (accept) =>
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n`,
  (accept) =>
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: not-offered\r\n\r\n`,
  () => "HTTP/1.1 1O1 Nope\r\n\r\n",
  () => "\u0000\u00ff garbage\r\n\r\n",
  () => "X-Junk: " + "a".repeat(20_000),
  () => "",
];

function handshakeResponse(accept: string): string {
  return `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Accept: ${accept}\r\n\r\n`;
}

/** Markers open every connection's output: one message and one dead letter. */
const markerMessage = (k: number) => JSON.stringify({ __conn: k });
const markerDeadLetter = (k: number) => `!conn ${k}`;

/** The frames of one data message (maybe fragmented, with pings between the fragments). */
function dataFrames(random: Random, payload: Uint8Array): Uint8Array[] {
  const opcode = random() < 0.8 ? 1 : 2;
  const form = random() < 0.1 ? pick(random, [16, 64] as const) : "min";
  if (random() < 0.75 || payload.length < 2) return [frame(opcode, payload, { form })];
  const cuts = new Set<number>();
  const pieces = 1 + int(random, 5);
  for (let i = 0; i < pieces; i++) cuts.add(1 + int(random, payload.length - 1));
  const bounds = [0, ...[...cuts].sort((a, b) => a - b), payload.length];
  const frames: Uint8Array[] = [];
  for (let i = 0; i + 1 < bounds.length; i++) {
    const last = i + 2 === bounds.length;
    frames.push(
      frame(i === 0 ? opcode : 0, payload.subarray(bounds[i], bounds[i + 1]), { fin: last }),
    );
    if (!last && random() < 0.3) frames.push(frame(9, randomBytes(random, int(random, 126))));
  }
  return frames;
}

/** A protocol violation: the client must close with the code given. */
interface Violation {
  bytes: Uint8Array;
  code: 1002 | 1009;
  what: string;
}

/** One generator per kind of violation. */
const VIOLATIONS: readonly ((random: Random) => Violation)[] = [
  (random) => ({
    bytes: frame(pick(random, [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]), randomBytes(random, 20)),
    code: 1002,
    what: "reserved opcode",
  }),
  (random) => ({
    bytes: frame(1, text("{}"), { rsv: 1 + int(random, 7) }),
    code: 1002,
    what: "reserved bits",
  }),
  () => ({
    bytes: frame(1, text('{"m":1}'), { mask: true }),
    code: 1002,
    what: "masked frame",
  }),
  (random) => ({
    bytes: frame(pick(random, [8, 9, 10]), randomBytes(random, 126 + int(random, 300))),
    code: 1002,
    what: "control frame too long",
  }),
  (random) => ({
    bytes: frame(9, randomBytes(random, 20), { fin: false }),
    code: 1002,
    what: "fragmented ping",
  }),
  () => ({
    bytes: frame(0, text("orphan"), { fin: true }),
    code: 1002,
    what: "orphan continuation",
  }),
  () => ({
    bytes: concat([frame(1, text('{"a":'), { fin: false }), frame(1, text("{}"))]),
    code: 1002,
    what: "new message inside a fragmented one",
  }),
  () => ({ bytes: frame(8, new Uint8Array([3])), code: 1002, what: "1-byte close body" }),
  (random) => ({
    bytes: frame(8, closeBody(pick(random, [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000]))),
    code: 1002,
    what: "invalid close code",
  }),
  (random) => ({
    bytes: frame(1, new Uint8Array(0), { claimed: 1n << BigInt(32 + int(random, 31)) }),
    code: 1009,
    what: "length of 4 GiB or more",
  }),
  (random) => ({
    bytes: frame(2, new Uint8Array(0), {
      claimed: BigInt(MAX_MESSAGE + 1 + int(random, 2 ** 31 - MAX_MESSAGE - 2)),
    }),
    code: 1009,
    what: "length above max_message_size",
  }),
  () => ({
    bytes: concat([
      frame(1, text(`"${"y".repeat(600_000)}`), { fin: false }),
      frame(0, new Uint8Array(0), { claimed: 600_000n }),
    ]),
    code: 1009,
    what: "fragments above max_message_size",
  }),
];

/** Generates the script of connection `k`. */
function makeScript(random: Random, k: number): Script {
  if (random() < 0.08) {
    return {
      badHandshake: int(random, HOSTILE_HANDSHAKES.length),
      leftover: false,
      body: new Uint8Array(0),
      expected: [],
      ending: { kind: "abrupt" },
    };
  }
  const frames: Uint8Array[] = [
    frame(1, text(markerMessage(k))),
    frame(1, text(markerDeadLetter(k))),
  ];
  const expected: Outcome[] = [];
  const items = int(random, 10);
  for (let i = 0; i < items; i++) {
    const r = random();
    if (r < 0.1) {
      // Control frames between messages: answered or counted, never messages.
      frames.push(frame(random() < 0.5 ? 9 : 10, randomBytes(random, int(random, 126))));
      continue;
    }
    if (r < 0.2) {
      // A run of small ASCII messages in one write, some bad: the decoder's shared window.
      for (let j = 0; j < 20; j++) {
        const payload = random() < 0.8
          ? text(JSON.stringify({ j, s: "a".repeat(int(random, 80)) }))
          : pick(random, BAD_UTF8)(random);
        frames.push(frame(1, payload));
        expected.push(oracle(payload));
      }
      continue;
    }
    const payload = hostilePayload(random, true);
    frames.push(...dataFrames(random, payload));
    expected.push(oracle(payload));
  }
  const end = random();
  let ending: Ending;
  if (end < 0.35) {
    const code = pick(random, [1000, 1001, 1003, 1008, 1011, 3000, 4000, 4999]);
    const body = random() < 0.2 ? new Uint8Array(0) : closeBody(code, random() < 0.5 ? "bye" : "");
    frames.push(frame(8, body));
    // Anything after the close frame must be ignored.
    if (random() < 0.5) frames.push(frame(1, text('{"after":"close"}')));
    ending = { kind: "close", expectCode: body.length === 0 ? 1000 : code };
  } else if (end < 0.8) {
    const v = pick(random, VIOLATIONS)(random);
    frames.push(v.bytes);
    ending = { kind: "violation", expectCode: v.code, what: v.what };
  } else if (end < 0.9) {
    // Cut short: a frame header (maybe a huge but allowed length) and part of the payload.
    const payload = text('{"never":"finished"}');
    frames.push(
      frame(1, payload, { claimed: BigInt(payload.length + 1 + int(random, MAX_MESSAGE / 2)) }),
    );
    ending = { kind: "abrupt" };
  } else {
    frames.push(randomBytes(random, 1 + int(random, 2000)));
    ending = { kind: "garbage" };
  }
  return { leftover: random() < 0.3, body: concat(frames), expected, ending };
}

/** Writes everything; false when the client hung up first. */
async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<boolean> {
  try {
    let written = 0;
    while (written < bytes.length) written += await conn.write(bytes.subarray(written));
    return true;
  } catch {
    return false;
  }
}

/** Reads the client's handshake request; returns its Sec-WebSocket-Key. */
async function readRequest(conn: Deno.Conn): Promise<string> {
  const buf = new Uint8Array(16 * 1024);
  let end = 0;
  while (true) {
    const n = await conn.read(buf.subarray(end));
    if (n === null) throw new Error("the client hung up during the handshake");
    end += n;
    const head = new TextDecoder().decode(buf.subarray(0, end));
    if (head.includes("\r\n\r\n")) {
      const key = /sec-websocket-key:\s*(\S+)/i.exec(head)?.[1];
      if (!key) throw new Error(`no Sec-WebSocket-Key in ${JSON.stringify(head)}`);
      return key;
    }
  }
}

async function acceptFor(key: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-1", text(key + GUID)));
  return btoa(String.fromCharCode(...digest));
}

/**
 * Reads the client's (masked) frames until it hangs up; returns the code of
 * its close frame, `"none"` when it sent none, `"open"` when it did not hang up.
 */
async function clientClose(conn: Deno.Conn, timeoutMs: number): Promise<number | "none" | "open"> {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(4096);
  const reading = (async () => {
    try {
      while (true) {
        const n = await conn.read(buf);
        if (n === null) return true;
        chunks.push(buf.slice(0, n));
      }
    } catch {
      return true;
    }
  })();
  const ended = await withTimeout(reading, timeoutMs, "the client to hang up").catch(() => false);
  if (!ended) return "open";
  const bytes = concat(chunks);
  let p = 0;
  while (bytes.length - p >= 6) {
    const opcode = bytes[p] & 0x0f;
    let len = bytes[p + 1] & 0x7f;
    let at = p + 2;
    if (len === 126) {
      len = (bytes[at] << 8) | bytes[at + 1];
      at += 2;
    } else if (len === 127) {
      len = Number(new DataView(bytes.buffer, bytes.byteOffset + at, 8).getBigUint64(0));
      at += 8;
    }
    const mask = bytes.subarray(at, at + 4);
    const payload = bytes.subarray(at + 4, at + 4 + len).map((b, i) => b ^ mask[i & 3]);
    if (opcode === 8) return payload.length >= 2 ? (payload[0] << 8) | payload[1] : 1005;
    p = at + 4 + len;
  }
  return "none";
}

interface ConnectionResult {
  k: number;
  script: Script;
  /** The client's close code, `"none"` when it hung up without one, `"open"` when it did not. */
  clientClose: number | "none" | "open";
}

/** Splits bytes into writes of random sizes, so frames arrive cut anywhere. */
async function writeInPieces(random: Random, conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let o = 0;
  while (o < bytes.length) {
    const size = 1 + int(random, 2 ** int(random, 17));
    if (!await writeAll(conn, bytes.subarray(o, o + size))) return;
    o += size;
  }
}

async function serveScript(
  random: Random,
  conn: Deno.Conn,
  k: number,
  script: Script,
): Promise<ConnectionResult> {
  try {
    const accept = await acceptFor(await readRequest(conn));
    if (script.badHandshake !== undefined) {
      await writeAll(conn, text(HOSTILE_HANDSHAKES[script.badHandshake](accept)));
      await conn.closeWrite().catch(() => {});
      return { k, script, clientClose: await clientClose(conn, 10_000) };
    }
    const head = text(handshakeResponse(accept));
    if (script.leftover) await writeInPieces(random, conn, concat([head, script.body]));
    else {
      await writeAll(conn, head);
      await writeInPieces(random, conn, script.body);
    }
    if (script.ending.kind === "abrupt" || script.ending.kind === "garbage") {
      // Half-close and drain: closing with the client's pongs unread would reset the
      // connection and throw away what the client had not read yet.
      await conn.closeWrite().catch(() => {});
    }
    return { k, script, clientClose: await clientClose(conn, 10_000) };
  } finally {
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
}

/** The last connection: markers, then quiet until the workflow stops and closes it. */
async function serveLast(conn: Deno.Conn, k: number): Promise<void> {
  try {
    const accept = await acceptFor(await readRequest(conn));
    await writeAll(
      conn,
      concat([
        text(handshakeResponse(accept)),
        frame(1, text(markerMessage(k))),
        frame(1, text(markerDeadLetter(k))),
      ]),
    );
    const code = await clientClose(conn, 30_000);
    assert.equal(code, 1001, "the stopping node closes with 1001 going away");
  } finally {
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
}

function recordingLogger(into: { message: string; fields: Record<string, unknown> }[]): Logger {
  const log = (message: string, fields?: Record<string, unknown>) =>
    void into.push({ message, fields: fields ?? {} });
  return { debug: log, info: log, warn: log, error: log };
}

function sameBytes(a: unknown, b: Uint8Array): boolean {
  return a instanceof Uint8Array && a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Compares lists of (possibly huge) texts, reporting the first difference briefly. */
function assertSameTexts(actual: string[], expected: string[], where: string): void {
  const cut = (s: string | undefined) =>
    s === undefined ? "(none)" : s.length > 120 ? `${s.slice(0, 120)}... (${s.length} chars)` : s;
  for (let i = 0; i < Math.max(actual.length, expected.length); i++) {
    if (actual[i] !== expected[i]) {
      assert.fail(
        `${where}: ${actual.length} found, ${expected.length} expected; first difference at ${i}: ` +
          `found ${cut(actual[i])}, expected ${cut(expected[i])}`,
      );
    }
  }
}

/** Checks one connection's messages and dead letters against its script. */
function checkConnection(
  result: ConnectionResult,
  messages: unknown[],
  letters: DeadLetter[],
): void {
  const { k, script } = result;
  const where = `connection ${k} (${script.ending.kind}${
    script.ending.kind === "violation" ? `: ${script.ending.what}` : ""
  })`;
  assert.notEqual(result.clientClose, "open", `${where}: the client hung up`);
  for (const l of letters) assert.equal(l.errorName, "WebSocketFrameError", where);
  if (script.ending.kind === "garbage") return;
  const wantMessages = script.expected.filter((o) => o.kind === "message");
  const wantLetters = script.expected.filter((o) => o.kind === "dead");
  assertSameTexts(
    messages.map((m) => JSON.stringify(m)),
    wantMessages.map((o) => o.json),
    `${where}: messages`,
  );
  assert.equal(letters.length, wantLetters.length, `${where}: dead letters`);
  for (const [i, want] of wantLetters.entries()) {
    const got = letters[i];
    if (want.reason === "utf8") {
      assert.match(got.error, /not valid UTF-8/, where);
      assert.ok(sameBytes(got.message, want.bytes), `${where}: dead letter ${i} keeps the bytes`);
    } else {
      assert.match(got.error, /not valid JSON/, where);
      assert.equal(got.message, want.text, `${where}: dead letter ${i} keeps the text`);
    }
  }
  if (script.ending.kind === "violation" || script.ending.kind === "close") {
    assert.equal(result.clientClose, script.ending.expectCode, `${where}: the client's close code`);
  }
}

Deno.test("WebSocketNode survives a raw server sending generated hostile frames", async () => {
  const CONNECTIONS = 150;
  const BUDGET_MS = 25_000;
  const random = prng(6455);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const out: unknown[] = [];
  const deadLetters = new MemoryDeadLetters();
  const logs: { message: string; fields: Record<string, unknown> }[] = [];
  const wf = new Workflow({
    registry: new Registry(builtins),
    deadLetters,
    logger: recordingLogger(logs),
  })
    .addNode("WebSocketNode", "feed", {
      url: `ws://127.0.0.1:${port}/fuzz`,
      reconnect_delay: 0,
      max_reconnect_attempts: 100_000,
      max_message_size: MAX_MESSAGE,
      connection_timeout: 10,
    })
    .addNode("FunctionNode", "collect", { fn: (m: unknown) => void out.push(m) })
    .addConnection("feed", "collect");
  const started = realClock.monotonic();
  const running = wf.run();
  const results: ConnectionResult[] = [];
  let stopped = false;
  try {
    for (let k = 0; k < CONNECTIONS && realClock.monotonic() - started < BUDGET_MS; k++) {
      const conn = await withTimeout(listener.accept(), 10_000, `connection ${k}`);
      results.push(await serveScript(random, conn, k, makeScript(random, k)));
      assertPrototypeClean();
    }
    const last = results.length;
    const lastConn = await withTimeout(listener.accept(), 10_000, "the last connection");
    const serving = serveLast(lastConn, last);
    // Everything before the last connection's markers has been handled.
    await until(
      () =>
        out.some((m) => JSON.stringify(m) === markerMessage(last)) &&
        deadLetters.letters.some((l) => l.message === markerDeadLetter(last)),
      "the last connection's markers",
      20_000,
    );
    wf.stop();
    stopped = true;
    const report = await running;
    await serving;
    assert.equal(report.status, "stopped", report.error?.message);

    // Split the outputs by connection, at the markers.
    const messagesOf = new Map<number, unknown[]>();
    let current = -1;
    for (const m of out) {
      const marker = (m as { __conn?: unknown } | null)?.__conn;
      if (typeof marker === "number" && JSON.stringify(m) === markerMessage(marker)) {
        current = marker;
        messagesOf.set(current, []);
      } else messagesOf.get(current)!.push(m);
    }
    const lettersOf = new Map<number, DeadLetter[]>();
    current = -1;
    for (const l of deadLetters.letters) {
      const match = typeof l.message === "string" ? /^!conn (\d+)$/.exec(l.message) : null;
      if (match) {
        current = Number(match[1]);
        lettersOf.set(current, []);
      } else lettersOf.get(current)!.push(l);
    }
    const counts = { close: 0, violation: 0, abrupt: 0, garbage: 0, handshake: 0 };
    for (const result of results) {
      if (result.script.badHandshake !== undefined) {
        counts.handshake++;
        assert.ok(
          !messagesOf.has(result.k),
          `connection ${result.k}: nothing after a bad handshake`,
        );
        assert.equal(result.clientClose, "none", `connection ${result.k}: the client hung up`);
        continue;
      }
      counts[result.script.ending.kind]++;
      checkConnection(result, messagesOf.get(result.k) ?? [], lettersOf.get(result.k) ?? []);
    }
    const node = report.nodes.find((n) => n.id === "feed")!;
    // Markers excluded; garbage connections may add a few of either.
    const markers = results.length + 1 - counts.handshake;
    const messagesIn = results.reduce((n, r) => n + r.script.expected.length, 0);
    const sink = report.nodes.find((n) => n.id === "collect")!;
    console.log(
      `  figures: in ${messagesIn} data messages (+ garbage), out ${out.length - markers}, ` +
        `dead-lettered ${deadLetters.letters.length - markers}, dropped ${sink.dropped}, ` +
        `duplicated 0; connections ${results.length + 1} (${counts.close} closed cleanly, ` +
        `${counts.violation} protocol violations closed 1002/1009, ${counts.abrupt} cut short, ` +
        `${counts.garbage} garbage, ${counts.handshake} bad handshakes); restarts ` +
        `${node.restarts}; ${Math.round(realClock.monotonic() - started)} ms`,
    );
    assert.equal(node.restarts, results.length, "every scripted connection ended in one reconnect");
    assert.equal(sink.dropped, 0);
    assert.equal(
      logs.filter((l) => l.message === "websocket connected").length,
      results.length + 1 - counts.handshake,
    );
    assert.ok(counts.violation > 10 && counts.close > 10, JSON.stringify(counts));
    const violations = new Set(
      results.map((r) => r.script.ending.kind === "violation" ? r.script.ending.what : "")
        .filter(Boolean),
    );
    assert.equal(
      violations.size,
      VIOLATIONS.length,
      `every kind of violation sent: ${[...violations]}`,
    );
    assertPrototypeClean();
    assertNothingUnhandled();
  } finally {
    if (!stopped) {
      wf.stop();
      await running.catch(() => {});
    }
    listener.close();
  }
});

// ---------------------------------------------------------------------------
// Kafka: kafkaEvent directly
// ---------------------------------------------------------------------------

/** A container for the bytes as kafkajs or a caller might hand them over. */
function container(random: Random, bytes: Uint8Array): Uint8Array {
  switch (int(random, 4)) {
    case 0:
      return Buffer.from(bytes);
    case 1:
      return bytes.slice();
    case 2: {
      // A view into a larger buffer, garbage on both sides.
      const before = int(random, 16);
      const whole = randomBytes(random, before + bytes.length + int(random, 16));
      whole.set(bytes, before);
      return whole.subarray(before, before + bytes.length);
    }
    default: {
      // A Buffer slice of a bigger Buffer, as kafkajs decodes a fetch response.
      const whole = Buffer.alloc(bytes.length + 32, 0x5a);
      whole.set(bytes, 7);
      return whole.subarray(7, 7 + bytes.length);
    }
  }
}

function hostileHeaders(random: Random): KafkaRecord["headers"] {
  if (random() < 0.3) return undefined;
  const headers: Record<string, Buffer | string | (Buffer | string)[] | undefined> = {};
  const names = ["__proto__", "constructor", "toString", "h", "", "ü", "a.b"];
  for (let i = int(random, 4); i > 0; i--) {
    const value = () =>
      random() < 0.5
        ? Buffer.from(hostilePayload(random, false))
        : (JSON.stringify(hostileValue(random)) ?? "");
    const v = random() < 0.2 ? [value(), value()] : random() < 0.1 ? undefined : value();
    Object.defineProperty(headers, pick(random, names), {
      value: v,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return headers as KafkaRecord["headers"];
}

function checkMetadata(event: KafkaEvent, record: KafkaRecord, where: string): void {
  const meta = event._kafka!;
  assert.equal(meta.topic, "fuzz", where);
  assert.equal(meta.partition, 3, where);
  assert.equal(meta.offset, Number(record.offset), where);
  assert.equal(meta.timestamp, Number(record.timestamp), where);
  const key = record.key === null || record.key === undefined
    ? null
    : lenientUtf8.decode(record.key);
  assert.equal(meta.key, key, `${where}: the key, leniently decoded`);
  assert.equal(Object.getPrototypeOf(meta.headers), Object.prototype, `${where}: headers`);
  const wanted = Object.entries(record.headers ?? {}).filter(([, v]) => v !== undefined);
  assert.deepEqual(Object.keys(meta.headers), wanted.map(([k]) => k), `${where}: header names`);
  for (const v of Object.values(meta.headers)) {
    assert.ok(typeof v === "string" || (Array.isArray(v) && v.every((x) => typeof x === "string")));
  }
}

Deno.test("kafkaEvent turns every generated record into an event or a KafkaDecodeError", () => {
  const random = prng(9092);
  const started = realClock.monotonic();
  const tally = { json: 0, text: 0, binary: 0, dead: 0, tombstones: 0 };
  let i = 0;
  for (; i < 6000 && realClock.monotonic() - started < 15_000; i++) {
    const tombstone = random() < 0.02;
    const bytes = hostilePayload(random, random() < 0.01);
    const value = tombstone ? null : container(random, bytes);
    const record: KafkaRecord = {
      offset: String(int(random, 2 ** 53)),
      key: random() < 0.3 ? null : container(random, hostilePayload(random, false)),
      value,
      timestamp: String(1_700_000_000_000 + int(random, 1e9)),
      headers: hostileHeaders(random),
    };
    const format = pick(random, ["json", "text", "binary"] as const satisfies EventFormat[]);
    const metadata = random() < 0.7;
    const where = `record ${i} (${format}, ${bytes.length} bytes)`;
    let event: KafkaEvent | undefined;
    let error: unknown;
    try {
      event = kafkaEvent(record, "fuzz", 3, format, metadata);
    } catch (e) {
      error = e;
    }
    if (error !== undefined && !(error instanceof KafkaDecodeError)) {
      throw new Error(`${where}: threw something other than a KafkaDecodeError`, { cause: error });
    }
    if (tombstone) {
      tally.tombstones++;
      assert.equal(event?.value, null, where);
    } else if (format === "binary") {
      assert.ok(event, where);
      assert.ok(sameBytes(event.value, bytes), `${where}: the bytes, exactly`);
    } else {
      const want = oracle(bytes);
      if (want.kind === "dead" && (format === "json" || want.reason === "utf8")) {
        assert.ok(error instanceof KafkaDecodeError, `${where}: expected a KafkaDecodeError`);
        assert.match(error.message, want.reason === "utf8" ? /not valid UTF-8/ : /not JSON/);
      } else if (format === "text") {
        assert.ok(event, where);
        assert.equal(event.value, strictUtf8.decode(bytes), `${where}: the text`);
      } else {
        assert.ok(event && want.kind === "message", `${where}: ${error}`);
        // A payload's own _kafka is replaced by the metadata, or kept without it.
        const { _kafka: _, ...rest } = event;
        const parsed = JSON.parse(strictUtf8.decode(bytes));
        const isObject = parsed !== null && typeof parsed === "object" && !Array.isArray(parsed);
        if (isObject && metadata) delete parsed._kafka;
        assert.equal(
          JSON.stringify(metadata ? rest : event),
          JSON.stringify(isObject ? parsed : { value: parsed }),
          `${where}: the parsed value`,
        );
      }
    }
    if (event) {
      tally[format]++;
      if (metadata) checkMetadata(event, record, where);
      else if (format !== "json") assert.equal(event._kafka, undefined, where);
    } else tally.dead++;
    if (i % 100 === 0) assertPrototypeClean();
  }
  assertPrototypeClean();
  assertNothingUnhandled();
  console.log(
    `  figures: in ${i}, out ${i - tally.dead} (json ${tally.json}, text ${tally.text}, ` +
      `binary ${tally.binary}, tombstones ${tally.tombstones}), dead-lettered ${tally.dead}, ` +
      `dropped 0, duplicated 0, restarts 0`,
  );
  assert.ok(tally.dead > 500 && tally.json > 500, JSON.stringify(tally));
});

// ---------------------------------------------------------------------------
// Kafka: hostile payloads through the broker
// ---------------------------------------------------------------------------

kafkaTest(
  "EventStreamNode consumes hostile payloads produced by kcat: events or dead letters, no crash",
  async (t, brokers) => {
    const random = prng(1729);
    const topic = uniqueTopic("fuzz-decode");
    const group = `${topic}-g`;
    await createTopic(brokers, topic, 1);
    const dir = await Deno.makeTempDir({ prefix: "sluice-fuzz-" });
    const payloads: Uint8Array[] = [];
    // Every trick and bad sequence once, then generated ones; a broker takes up to 1 MB.
    for (const trick of JSON_TRICKS) payloads.push(text(trick()));
    for (const bad of BAD_UTF8) payloads.push(bad(random));
    payloads.push(text(JSON.stringify(deeplyNested(100_000, false))));
    while (payloads.length < 300) payloads.push(hostilePayload(random, false));
    const files: string[] = [];
    for (const [i, payload] of payloads.entries()) {
      // Empty payloads would be skipped by kcat; a tombstone is covered by the direct test.
      const file = `${dir}/m${String(i).padStart(4, "0")}`;
      await Deno.writeFile(file, payload.length > 0 ? payload : text(" "));
      if (payload.length === 0) payloads[i] = text(" ");
      files.push(file);
    }
    try {
      // One file, one message, in order, on partition 0: offset i is payload i.
      const produced = await new Deno.Command("kcat", {
        args: ["-P", "-b", brokers, "-t", topic, "-p", "0", ...files],
        stdout: "null",
        stderr: "piped",
        signal: AbortSignal.timeout(60_000),
      }).output();
      assert.ok(produced.success, new TextDecoder().decode(produced.stderr));
      const seen: KafkaEvent[] = [];
      const deadLetters = new MemoryDeadLetters();
      const wf = new Workflow({
        registry: new Registry(builtins),
        deadLetters,
        logger: recordingLogger([]),
      })
        .addNode("EventStreamNode", "events", {
          brokers,
          topic,
          consumer_group: group,
          from_beginning: true,
          batch_size: 50,
          session_timeout: 10,
          heartbeat_interval: 1,
          max_wait: 0.2,
        })
        .addNode("FunctionNode", "collect", { fn: (e: KafkaEvent) => void seen.push(e) })
        .addConnection("events", "collect");
      const running = wf.run();
      await waitFor(
        `${payloads.length} events and dead letters`,
        () => seen.length + deadLetters.letters.length >= payloads.length,
        60_000,
      );
      await waitFor("every offset committed", async () => {
        const committed = await committedOffsets(brokers, group, topic);
        return committed.get(0) === payloads.length;
      }, 30_000);
      wf.stop();
      const report = await running;
      const expected = payloads.map(oracle);
      const wantLetters = expected.filter((o) => o.kind === "dead").length;
      console.log(
        `  figures: in ${payloads.length}, out ${seen.length}, dead-lettered ` +
          `${deadLetters.letters.length}, dropped ${
            report.nodes.find((n) => n.id === "collect")!.dropped
          }, duplicated ${seen.length + deadLetters.letters.length - payloads.length}, restarts ${
            report.nodes.find((n) => n.id === "events")!.restarts
          }`,
      );

      await t.step("the workflow never crashed", () => {
        assert.equal(report.status, "stopped", report.error?.message);
        assert.equal(report.nodes.find((n) => n.id === "events")!.restarts, 0);
        assert.equal(report.nodes.find((n) => n.id === "collect")!.dropped, 0);
      });
      await t.step("each payload became exactly what the reference decoder says", () => {
        assert.equal(seen.length + deadLetters.letters.length, payloads.length, "once each");
        for (const e of seen) {
          const want = expected[e._kafka!.offset];
          assert.equal(want.kind, "message", `offset ${e._kafka!.offset}`);
          const { _kafka: _, ...rest } = e;
          const parsed = JSON.parse(want.kind === "message" ? want.json : "null");
          const isObject = parsed !== null && typeof parsed === "object" && !Array.isArray(parsed);
          if (isObject) delete parsed._kafka;
          assert.equal(JSON.stringify(rest), JSON.stringify(isObject ? parsed : { value: parsed }));
        }
        assert.equal(deadLetters.letters.length, wantLetters);
      });
      await t.step("dead letters carry the reason and the record's coordinates", () => {
        for (const l of deadLetters.letters) {
          assert.equal(l.errorName, "KafkaDecodeError");
          const offset = (l.context as { offset: number }).offset;
          assert.deepEqual(l.context, { topic, partition: 0, offset, key: null });
          const want = expected[offset];
          assert.equal(want.kind, "dead", `offset ${offset}`);
          if (want.kind === "dead" && want.reason === "utf8") {
            assert.match(l.error, /not valid UTF-8/);
            assert.ok(sameBytes(l.message, want.bytes), `offset ${offset}: the raw bytes`);
          } else assert.match(l.error, /not JSON/);
        }
      });
      await t.step("Object.prototype is untouched", () => {
        assertPrototypeClean();
        assertNothingUnhandled();
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
