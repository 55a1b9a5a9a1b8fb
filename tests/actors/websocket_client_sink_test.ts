import assert from "node:assert/strict";
import { builtins } from "../../actors/mod.ts";
import { encodeMessage } from "../../actors/sinks/websocket_client.ts";
import { VirtualClock } from "../../runtime/clock.ts";
import { MemoryDeadLetters } from "../../runtime/dead_letter.ts";
import { createLogger } from "../../runtime/log.ts";
import { Registry } from "../../runtime/registry.ts";
import { Workflow } from "../../runtime/workflow.ts";
import { type Script, ScriptSource } from "../helpers.ts";
import { freePort, until, withTimeout, WsPeer } from "../peers/ws_peers.ts";

/** Emits each message and flushes. */
function emitAll(messages: unknown[]): Script {
  return async (ctx) => {
    for (const m of messages) ctx.emit(m);
    await ctx.flush();
  };
}

interface Harness {
  wf: Workflow;
  clock: VirtualClock;
  deadLetters: MemoryDeadLetters;
  logged(message: string): Record<string, unknown>[];
  lines: Record<string, unknown>[];
}

function harness(script: Script, config: Record<string, unknown>): Harness {
  const clock = new VirtualClock(0);
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
    random: () => 0,
  })
    .addNode("ScriptSource", "src", { script })
    .addNode("WebSocketClientSinkNode", "sink", config)
    .addConnection("src", "sink");
  return {
    wf,
    clock,
    deadLetters,
    lines,
    logged: (message) => lines.filter((l) => l.message === message),
  };
}

async function nextBackoff(h: Harness, failures: number): Promise<number> {
  await until(
    () => h.logged("actor failed").length === failures && h.clock.pendingTimers === 1,
    `failure ${failures} and its backoff timer`,
  );
  return h.clock.nextTimerAt()! - h.clock.now();
}

const json = (v: unknown) => JSON.stringify(v);

Deno.test("encodeMessage encodes per message_format and refuses what it cannot encode", () => {
  assert.equal(encodeMessage({ a: [1] }, "json"), '{"a":[1]}');
  assert.equal(encodeMessage("x", "json"), '"x"');
  assert.equal(encodeMessage("x", "text"), "x");
  assert.equal(encodeMessage({ a: 1 }, "text"), '{"a":1}');
  assert.deepEqual(encodeMessage("hi", "binary"), new TextEncoder().encode("hi"));
  assert.deepEqual(encodeMessage(new Uint8Array([1, 2]), "binary"), new Uint8Array([1, 2]));
  assert.throws(() => encodeMessage({ n: 1n }, "json"), { name: "WebSocketFrameError" });
  assert.throws(() => encodeMessage(() => 1, "json"), { name: "WebSocketFrameError" });
  assert.throws(() => encodeMessage({ a: 1 }, "binary"), { name: "WebSocketFrameError" });
});

Deno.test("WebSocketClientSinkNode sends every message to the server", async (t) => {
  await t.step("json frames, auth headers, a clean close at the end", async () => {
    const peer = await WsPeer.start();
    try {
      const h = harness(emitAll([{ i: 1 }, { i: 2 }, { n: 1n }, { i: 3 }]), {
        url: peer.url("/ingest"),
        auth_headers: { Authorization: "Bearer s3cr3t" },
      });
      const report = await h.wf.run();
      assert.equal(report.status, "completed");
      const c = peer.connections[0];
      assert.equal(c.headers.authorization, "Bearer s3cr3t");
      assert.equal(await withTimeout(c.closed, 5000, "close"), 1000);
      assert.deepEqual(c.received, [json({ i: 1 }), json({ i: 2 }), json({ i: 3 })]);
      assert.equal(report.deadLetters, 1);
      assert.match(h.deadLetters.letters[0].error, /cannot be encoded as JSON/);
      assert.ok(!JSON.stringify(h.lines).includes("s3cr3t"));
    } finally {
      await peer.close();
    }
  });

  await t.step("batch_size groups messages into JSON arrays", async () => {
    const peer = await WsPeer.start();
    try {
      const h = harness(emitAll([1, 2, 3, 4, 5]), { url: peer.url(), batch_size: 3 });
      await h.wf.run();
      await peer.connections[0].closed;
      assert.deepEqual(peer.connections[0].received, ["[1,2,3]", "[4,5]"]);
    } finally {
      await peer.close();
    }
  });

  await t.step("text and binary frames", async () => {
    const peer = await WsPeer.start();
    try {
      await harness(emitAll(["a", { b: 1 }]), { url: peer.url(), message_format: "text" }).wf
        .run();
      await harness(emitAll([new Uint8Array([7]), "z"]), {
        url: peer.url(),
        message_format: "binary",
      }).wf.run();
      await Promise.all(peer.connections.map((c) => c.closed));
      assert.deepEqual(peer.connections[0].received, ["a", json({ b: 1 })]);
      assert.deepEqual(peer.connections[1].received, [new Uint8Array([7]), new Uint8Array([122])]);
    } finally {
      await peer.close();
    }
  });

  await t.step("batch_size above 1 needs message_format json", () => {
    const issues = new Workflow({ registry: new Registry(builtins).with(ScriptSource) })
      .addNode("ScriptSource", "src", {})
      .addNode("WebSocketClientSinkNode", "sink", {
        url: "ws://127.0.0.1:1/x",
        batch_size: 2,
        message_format: "text",
      })
      .addConnection("src", "sink")
      .validate();
    assert.deepEqual(issues.map((i) => i.path), ["nodes[1].config.batch_size"]);
  });
});

Deno.test("WebSocketClientSinkNode holds messages while the server is down, then delivers them", async () => {
  const port = freePort();
  const h = harness(emitAll([1, 2, 3]), {
    url: `ws://127.0.0.1:${port}/in`,
    reconnect_delay: 1,
  });
  const running = h.wf.run();
  assert.equal(await nextBackoff(h, 1), 1000);
  assert.equal(h.wf.snapshot().nodes[1].mailbox!.depth, 3, "held in the mailbox");
  const peer = await WsPeer.start({ port });
  try {
    await h.clock.advance(1000);
    const report = await running;
    assert.equal(report.status, "completed");
    await peer.connections[0].closed;
    assert.deepEqual(peer.connections[0].received, ["1", "2", "3"]);
    assert.equal(report.nodes[1].restarts, 1);
  } finally {
    await peer.close();
  }
});

Deno.test("WebSocketClientSinkNode reconnects when the server drops it and goes on", async () => {
  let release!: () => void;
  const second = new Promise<void>((resolve) => release = resolve);
  const peer = await WsPeer.start({
    onConnection: (c) => {
      c.socket.on("message", () => {
        if (c.index === 0 && c.received.length === 3) c.socket.terminate();
      });
    },
  });
  try {
    const h = harness(async (ctx) => {
      await emitAll([1, 2, 3])(ctx);
      await second;
      await emitAll([4, 5, 6])(ctx);
    }, { url: peer.url(), reconnect_delay: 2 });
    const running = h.wf.run();
    await until(() => h.logged("websocket disconnected").length === 1, "the drop to be noticed");
    await h.clock.advance(0); // runs the task that hands the drop to the supervisor
    assert.equal(await nextBackoff(h, 1), 2000);
    await h.clock.advance(2000);
    await peer.waitForConnections(2);
    release();
    const report = await running;
    assert.equal(report.status, "completed");
    await peer.connections[1].closed;
    assert.deepEqual(peer.connections[0].received, ["1", "2", "3"]);
    assert.deepEqual(peer.connections[1].received, ["4", "5", "6"]);
  } finally {
    await peer.close();
  }
});

Deno.test("WebSocketClientSinkNode fails naming the URL when reconnects run out", async () => {
  const port = freePort();
  const h = harness(emitAll([1]), {
    url: `ws://127.0.0.1:${port}/in?key=hidden`,
    reconnect_delay: 1,
    max_reconnect_attempts: 1,
  });
  const running = h.wf.run();
  await h.clock.advance(await nextBackoff(h, 1));
  const report = await running;
  assert.equal(report.status, "failed");
  assert.match(
    report.error!.message,
    new RegExp(`ws://127\\.0\\.0\\.1:${port}/in: .*refused`, "i"),
  );
  assert.ok(!report.error!.message.includes("hidden"));
  assert.equal(report.deadLetters, 1, "the held message is dead-lettered");
});

Deno.test("WebSocketClientSinkNode reconnects when pings go unanswered", async () => {
  let release!: () => void;
  const done = new Promise<void>((resolve) => release = resolve);
  const peer = await WsPeer.start({ autoPong: false });
  try {
    const h = harness(async (ctx) => {
      await emitAll([1])(ctx);
      await done;
    }, { url: peer.url(), heartbeat_interval: 5, reconnect_delay: 1 });
    const running = h.wf.run();
    const first = await peer.waitForConnections(1);
    await until(() => first.received.length === 1, "the first message");
    let pings = 0;
    first.socket.on("ping", () => pings++);
    await h.clock.advance(5000);
    await until(() => pings === 1, "a ping");
    await h.clock.advance(5000);
    assert.equal(await nextBackoff(h, 1), 1000);
    await h.clock.advance(1000);
    await peer.waitForConnections(2);
    release();
    await running;
    assert.match(String(h.logged("actor failed")[0].error), /no pong/);
  } finally {
    await peer.close();
  }
});
