/**
 * WebSocket ingest: JSON messages over loopback through WebSocketNode into a
 * counting FunctionNode, against Deno's own `WebSocket` client parsing the
 * same frames from the same server in the same run.
 *
 * The server runs in a child process (so that it does not share the event
 * loop with the clients) and writes pre-encoded frames as fast as TCP takes
 * them, then closes cleanly; a client's rate is messages / (connect to close).
 *
 * Run alone: `deno run -A bench/websocket_bench.ts`.
 *
 * @module
 */
import { builtins } from "../actors/mod.ts";
import { RealClock } from "../runtime/clock.ts";
import { MemoryDeadLetters } from "../runtime/dead_letter.ts";
import { createLogger } from "../runtime/log.ts";
import { Registry } from "../runtime/registry.ts";
import { Workflow } from "../runtime/workflow.ts";
import type { BenchResult } from "./result.ts";

/** The frame server, run with `deno eval`: prints its port, then serves each connection. */
const SERVER = `
const count = Number(Deno.args[0]);
const enc = new TextEncoder();
const frame = (payload) => {
  const head = payload.length < 126 ? [0x81, payload.length] : [0x81, 126, payload.length >> 8, payload.length & 255];
  const out = new Uint8Array(head.length + payload.length);
  out.set(head);
  out.set(payload, head.length);
  return out;
};
const frames = [];
for (let i = 0; i < 1000; i++) {
  frames.push(frame(enc.encode(JSON.stringify({
    id: "evt-" + i, timestamp: 1700000000 + i / 100, sequence: i,
    event_type: ["click", "view", "purchase"][i % 3], user_id: "user_" + (i % 100),
    data: { value: i * 10, metadata: { test: true } },
  }))));
}
const block = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
let offset = 0;
for (const f of frames) { block.set(f, offset); offset += f.length; }
const writeAll = async (conn, bytes) => { let w = 0; while (w < bytes.length) w += await conn.write(bytes.subarray(w)); };
const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
console.log(listener.addr.port);
for await (const conn of listener) {
  (async () => {
    const buf = new Uint8Array(16384);
    let n = 0;
    while (!new TextDecoder().decode(buf.subarray(0, n)).includes("\\r\\n\\r\\n")) {
      const r = await conn.read(buf.subarray(n));
      if (r === null) return conn.close();
      n += r;
    }
    const key = /sec-websocket-key: *([^\\r]*)/i.exec(new TextDecoder().decode(buf.subarray(0, n)))[1].trim();
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-1", enc.encode(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")));
    const accept = btoa(String.fromCharCode(...digest));
    await writeAll(conn, enc.encode("HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Accept: " + accept + "\\r\\n\\r\\n"));
    try {
      for (let i = 0; i < count / 1000; i++) await writeAll(conn, block);
      await writeAll(conn, new Uint8Array([0x88, 2, 0x03, 0xe8]));
      while ((await conn.read(buf)) !== null);
    } catch { /* the client went away */ }
    try { conn.close(); } catch { /* closed */ }
  })();
}
`;

const clock = new RealClock();

/** Deno's WebSocket: parse every message, count it, stop at the close. */
async function bareClient(url: string, expected: number): Promise<number> {
  const started = clock.monotonic();
  let count = 0;
  let checksum = 0;
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    ws.onmessage = (event) => {
      const m = JSON.parse(event.data as string);
      checksum += m.sequence;
      count++;
    };
    ws.onclose = () => resolve();
    ws.onerror = () => reject(new Error("bare client failed"));
  });
  const elapsed = clock.monotonic() - started;
  if (count !== expected || checksum < 0) {
    throw new Error(`bare client received ${count} of ${expected}`);
  }
  return (count * 1000) / elapsed;
}

/** WebSocketNode -> counting FunctionNode; the server's clean close ends the run. */
async function sluiceClient(url: string, expected: number): Promise<number> {
  let count = 0;
  let checksum = 0;
  const workflow = new Workflow({
    registry: new Registry(builtins),
    deadLetters: new MemoryDeadLetters(),
    logger: createLogger({ level: "silent" }),
  })
    .addNode("WebSocketNode", "feed", { url, auto_reconnect: false, enable_metrics: false })
    .addNode("FunctionNode", "count", {
      batch: (messages: { sequence: number }[]) => {
        for (const m of messages) checksum += m.sequence;
        count += messages.length;
      },
    })
    .addConnection("feed", "count");
  const started = clock.monotonic();
  const report = await workflow.run();
  const elapsed = clock.monotonic() - started;
  if (report.status !== "completed" || count !== expected || checksum < 0) {
    throw new Error(
      `sluice received ${count} of ${expected} (${report.status}${
        report.error ? ": " + report.error.message : ""
      })`,
    );
  }
  return (count * 1000) / elapsed;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Measures WebSocketNode's ingest rate against Deno's WebSocket client.
 *
 * @param messages Messages per run. @default {300000}
 * @param rounds Alternating runs of each client. @default {5}
 * @returns The median sluice rate over the median bare rate (target: at least 0.85).
 */
export async function benchWebSocket(messages = 300_000, rounds = 5): Promise<BenchResult> {
  const server = new Deno.Command(Deno.execPath(), {
    args: ["eval", SERVER, String(messages)],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  try {
    const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error("the frame server exited before listening");
      text += value;
    }
    reader.releaseLock();
    const url = `ws://127.0.0.1:${Number(text.trim())}/feed`;
    // Warm both paths up (JIT) before measuring.
    await bareClient(url, messages);
    await sluiceClient(url, messages);
    const bare: number[] = [];
    const sluice: number[] = [];
    for (let i = 0; i < rounds; i++) {
      bare.push(await bareClient(url, messages));
      sluice.push(await sluiceClient(url, messages));
    }
    const ratio = median(sluice) / median(bare);
    const result: BenchResult = {
      name: "websocket",
      ratio,
      target: "WebSocketNode ingest >= 0.85 x Deno WebSocket client",
      pass: ratio >= 0.85,
      details: {
        messages,
        rounds,
        bare_msgs_per_s_median: Math.round(median(bare)),
        sluice_msgs_per_s_median: Math.round(median(sluice)),
        bare_msgs_per_s_best: Math.round(Math.max(...bare)),
        sluice_msgs_per_s_best: Math.round(Math.max(...sluice)),
        ratio_best: Math.max(...sluice) / Math.max(...bare),
      },
    };
    return result;
  } finally {
    server.kill();
    await server.stdout.cancel().catch(() => {});
    await server.status;
  }
}

if (import.meta.main) {
  const result = await benchWebSocket();
  console.log(JSON.stringify(result, null, 2));
}
