import assert from "node:assert/strict";
import { builtins } from "../../actors/mod.ts";
import {
  timingSafeEqual,
  type WebSocketServerAddress,
} from "../../actors/sinks/websocket_server.ts";
import { type Clock, RealClock, VirtualClock } from "../../runtime/clock.ts";
import { MemoryDeadLetters } from "../../runtime/dead_letter.ts";
import { createLogger } from "../../runtime/log.ts";
import { Registry } from "../../runtime/registry.ts";
import { Workflow } from "../../runtime/workflow.ts";
import { type Script, ScriptSource } from "../helpers.ts";
import { connectClient, type PeerClient, until, withTimeout } from "../peers/ws_peers.ts";

interface Harness {
  wf: Workflow;
  address: Promise<WebSocketServerAddress>;
  deadLetters: MemoryDeadLetters;
  lines: Record<string, unknown>[];
  logged(message: string): Record<string, unknown>[];
}

function harness(script: Script, config: Record<string, unknown>, clock: Clock): Harness {
  let resolveAddress!: (a: WebSocketServerAddress) => void;
  const address = new Promise<WebSocketServerAddress>((resolve) => resolveAddress = resolve);
  const deadLetters = new MemoryDeadLetters();
  const lines: Record<string, unknown>[] = [];
  const wf = new Workflow({
    registry: new Registry(builtins).with(ScriptSource),
    clock,
    deadLetters,
    logger: createLogger({
      level: "debug",
      format: "json",
      time: () => "t",
      write: (line) => lines.push(JSON.parse(line)),
    }),
  })
    .addNode("ScriptSource", "src", { script })
    .addNode("WebSocketServerSinkNode", "live", {
      port: 0,
      path: "/live",
      ...config,
      on_listen: resolveAddress,
    })
    .addConnection("src", "live");
  return {
    wf,
    address,
    deadLetters,
    lines,
    logged: (message) => lines.filter((l) => l.message === message),
  };
}

/** A promise with its resolver. */
function signal(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => resolve = r);
  return { promise, resolve };
}

Deno.test("timingSafeEqual compares whole strings", () => {
  assert.ok(timingSafeEqual("token", "token"));
  assert.ok(!timingSafeEqual("toke", "token"));
  assert.ok(!timingSafeEqual("tokenx", "token"));
  assert.ok(!timingSafeEqual("", "token"));
  assert.ok(!timingSafeEqual("tokeN", "token"));
});

Deno.test("WebSocketServerSinkNode broadcasts to authenticated clients and refuses the rest", async () => {
  const go = signal();
  const h = harness(
    async (ctx) => {
      await go.promise;
      for (let i = 1; i <= 3; i++) ctx.emit({ i });
      ctx.emit({ bad: 1n });
    },
    { token: "t0ken-s3cr3t" },
    new VirtualClock(0),
  );
  const running = h.wf.run();
  const clients: PeerClient[] = [];
  try {
    const { port } = await withTimeout(h.address, 5000, "the server to listen");
    const base = `ws://127.0.0.1:${port}`;
    clients.push(await connectClient(`${base}/live`, { Authorization: "Bearer t0ken-s3cr3t" }));
    clients.push(await connectClient(`${base}/live?token=t0ken-s3cr3t`));
    await assert.rejects(
      connectClient(`${base}/live`, { Authorization: "Bearer wrong" }),
      /401/,
    );
    await assert.rejects(connectClient(`${base}/live?token=t0ken`), /401/);
    await assert.rejects(connectClient(`${base}/live`), /401/);
    await assert.rejects(
      connectClient(`${base}/elsewhere`, { Authorization: "Bearer t0ken-s3cr3t" }),
      /404/,
    );
    const plain = await fetch(`http://127.0.0.1:${port}/live`);
    await plain.body?.cancel();
    assert.equal(plain.status, 426);
    await until(() => h.logged("websocket client connected").length === 2, "2 clients");
    go.resolve();
    const report = await running;
    assert.equal(report.status, "completed");
    for (const client of clients) {
      assert.equal(await withTimeout(client.closed, 5000, "close"), 1001);
      assert.deepEqual(client.received, ['{"i":1}', '{"i":2}', '{"i":3}']);
    }
    assert.equal(report.deadLetters, 1);
    const stopped = h.logged("websocket server stopped")[0];
    assert.equal(stopped.rejected, 3);
    assert.equal(stopped.clients, 2);
    assert.ok(!JSON.stringify(h.lines).includes("t0ken-s3cr3t"), "the token is never logged");
  } finally {
    go.resolve();
    await running.catch(() => {});
    for (const client of clients) await client.close();
  }
});

/**
 * A fast client and a paused one; the source sends `count` messages of 8 KiB,
 * 8 at a time, each time waiting until the fast client has them, then waits
 * for `finish` before ending.
 */
async function slowClientRun(policy: "drop_oldest" | "disconnect", count: number) {
  const go = signal();
  const finish = signal();
  const clients: { fast?: PeerClient; slow?: PeerClient } = {};
  const payload = "x".repeat(8 * 1024);
  const h = harness(
    async (ctx) => {
      await go.promise;
      for (let i = 0; i < count; i += 8) {
        for (let j = i; j < Math.min(count, i + 8); j++) ctx.emit(`${j} ${payload}`);
        await ctx.flush();
        const sent = Math.min(count, i + 8);
        await until(() => clients.fast!.received.length >= sent, `fast client to get ${sent}`);
      }
      await finish.promise;
    },
    { client_buffer: 100, slow_client_policy: policy, message_format: "text" },
    new RealClock(),
  );
  const running = h.wf.run();
  const { port } = await withTimeout(h.address, 5000, "the server to listen");
  clients.fast = await connectClient(`ws://127.0.0.1:${port}/live`);
  clients.slow = await connectClient(`ws://127.0.0.1:${port}/live`);
  clients.slow.socket.pause();
  await until(() => h.logged("websocket client connected").length === 2, "2 clients");
  go.resolve();
  return { h, running, clients: clients as Required<typeof clients>, finish };
}

const seq = (m: string | Uint8Array) => Number(String(m).split(" ")[0]);

Deno.test("WebSocketServerSinkNode drops a slow client's oldest messages without stalling the rest", async () => {
  const COUNT = 3000; // 24 MiB: more than the socket buffers of the paused client hold
  const { h, running, clients, finish } = await slowClientRun("drop_oldest", COUNT);
  try {
    await until(
      () => clients.fast.received.length === COUNT,
      "the fast client to get everything",
      30_000,
    );
    assert.deepEqual(clients.fast.received.map(seq), Array.from({ length: COUNT }, (_, i) => i));
    assert.equal(h.logged("websocket client too slow: dropping its oldest messages").length, 1);
    clients.slow.socket.resume();
    finish.resolve();
    const report = await running;
    assert.equal(report.status, "completed");
    await withTimeout(clients.slow.closed, 10_000, "the slow client to close");
    const got = clients.slow.received.map(seq);
    const dropped = h.logged("websocket server stopped")[0].dropped as number;
    assert.ok(dropped > 0);
    assert.equal(got.length + dropped, COUNT, "every message was delivered or counted as dropped");
    assert.equal(got.at(-1), COUNT - 1, "the newest messages survive");
    assert.deepEqual(got, [...got].sort((a, b) => a - b), "in order");
  } finally {
    finish.resolve();
    await running.catch(() => {});
    await clients.fast.close();
    await clients.slow.close();
  }
});

Deno.test("WebSocketServerSinkNode disconnects a slow client under the disconnect policy", async () => {
  const COUNT = 3000;
  const { h, running, clients, finish } = await slowClientRun("disconnect", COUNT);
  try {
    await until(
      () => clients.fast.received.length === COUNT,
      "the fast client to get everything",
      30_000,
    );
    const disconnected = h.logged("websocket client too slow: disconnected");
    assert.equal(disconnected.length, 1);
    assert.equal(disconnected[0].slow_disconnects, 1);
    clients.slow.socket.resume();
    assert.equal(await withTimeout(clients.slow.closed, 10_000, "the slow client's close"), 1008);
    assert.ok(clients.slow.received.length < COUNT);
    finish.resolve();
    const report = await running;
    assert.equal(report.status, "completed");
    assert.equal(h.logged("websocket server stopped")[0].slow_disconnects, 1);
  } finally {
    finish.resolve();
    await running.catch(() => {});
    await clients.fast.close();
    await clients.slow.close();
  }
});
