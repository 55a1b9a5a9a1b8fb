import assert from "node:assert/strict";
import { builtins } from "../../actors/mod.ts";
import { WebSocketNode } from "../../actors/sources/websocket.ts";
import { VirtualClock } from "../../runtime/clock.ts";
import { MemoryDeadLetters } from "../../runtime/dead_letter.ts";
import { createLogger } from "../../runtime/log.ts";
import { type NodeSpec, Registry } from "../../runtime/registry.ts";
import { type MailboxConfig, Workflow } from "../../runtime/workflow.ts";
import { freePort, type PeerConnection, until, withTimeout, WsPeer } from "../peers/ws_peers.ts";

function registry(...specs: NodeSpec[]): Registry {
  const mine = new Set(specs.map((s) => s.type));
  return new Registry([...builtins.filter((b) => !mine.has(b.type)), ...specs]);
}

interface Harness {
  wf: Workflow;
  clock: VirtualClock;
  out: unknown[];
  deadLetters: MemoryDeadLetters;
  lines: Record<string, unknown>[];
  logged(message: string): Record<string, unknown>[];
}

/** WebSocketNode -> collecting FunctionNode, on a virtual clock, with captured JSON logs. */
function harness(
  config: Record<string, unknown>,
  options: { collect?: (m: unknown) => void | Promise<void>; mailbox?: MailboxConfig } = {},
): Harness {
  const clock = new VirtualClock(0);
  const out: unknown[] = [];
  const deadLetters = new MemoryDeadLetters();
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: "debug",
    format: "json",
    time: () => "t",
    write: (line) => lines.push(JSON.parse(line)),
  });
  const wf = new Workflow({
    registry: registry(WebSocketNode),
    clock,
    deadLetters,
    logger,
    random: () => 0, // no jitter: backoff delays are exact
  })
    .addNode("WebSocketNode", "ws", config)
    .addNode("FunctionNode", "collect", {
      fn: options.collect ?? ((m: unknown) => {
        out.push(m);
      }),
    }, { mailbox: options.mailbox })
    .addConnection("ws", "collect");
  return {
    wf,
    clock,
    out,
    deadLetters,
    lines,
    logged: (message) => lines.filter((l) => l.message === message),
  };
}

/**
 * Waits until the node has failed `failures` times in all and the supervisor's
 * backoff sleep is the only timer left; returns its delay.
 */
async function nextBackoff(h: Harness, failures: number): Promise<number> {
  await until(
    () => h.logged("actor failed").length === failures && h.clock.pendingTimers === 1,
    `failure ${failures} and its reconnect backoff timer`,
  );
  return h.clock.nextTimerAt()! - h.clock.now();
}

/** Waits until the node logged its `n`-th connection. */
function connected(h: Harness, n = 1): Promise<void> {
  return until(() => h.logged("websocket connected").length >= n, `connection ${n}`);
}

const json = (v: unknown) => JSON.stringify(v);

Deno.test("WebSocketNode validates the reference guide's configuration", async (t) => {
  const guideExample = {
    url: "wss://streaming.example.com/feed",
    connection_timeout: 30.0,
    message_timeout: 5.0,
    auth_headers: { Authorization: "Bearer abc", "X-Client-ID": "production-client" },
    message_format: "json",
    batch_size: 100,
    batch_timeout: 1.0,
    auto_reconnect: true,
    max_reconnect_attempts: 5,
    reconnect_delay: 2.0,
    exponential_backoff: true,
    max_queue_size: 10000,
    backpressure_strategy: "drop_oldest",
    enable_metrics: true,
    heartbeat_interval: 30.0,
  };
  const issuesOf = (config: unknown) =>
    new Workflow({ registry: registry(WebSocketNode) })
      .addNode("WebSocketNode", "ws", config)
      .validate();

  await t.step("accepts every key of the guide's example", () => {
    assert.deepEqual(issuesOf(guideExample), []);
  });

  await t.step("maps the reconnect keys onto the supervisor", () => {
    const parsed = WebSocketNode.config.parse(guideExample, "config", []);
    const sup = WebSocketNode.supervision!(parsed);
    assert.deepEqual(sup.backoff, { initialDelayMs: 2000, factor: 2 });
    assert.equal(sup.maxAttempts, 5);
    const noBackoff = WebSocketNode.supervision!({ ...parsed, exponential_backoff: false });
    assert.equal(noBackoff.backoff?.factor, 1);
    const noReconnect = WebSocketNode.supervision!({ ...parsed, auto_reconnect: false });
    assert.equal(noReconnect.maxAttempts, 0);
  });

  await t.step("defaults: json, one message at a time, block, reconnecting", () => {
    const issues: { path: string; message: string }[] = [];
    const c = WebSocketNode.config.parse({ url: "ws://127.0.0.1:1/x" }, "config", issues);
    assert.deepEqual(issues, []);
    assert.equal(c.message_format, "json");
    assert.equal(c.batch_size, 1);
    assert.equal(c.backpressure_strategy, "block");
    assert.equal(c.auto_reconnect, true);
    assert.equal(c.max_reconnect_attempts, 10);
    assert.equal(c.message_timeout, undefined);
    assert.equal(c.heartbeat_interval, undefined);
  });

  await t.step("reports bad URLs, headers, subprotocols and keys with their paths", () => {
    assert.deepEqual(
      issuesOf({ url: "ws://h/x", batch_sise: 10 }).map((i) => i.path),
      ["nodes[0].config.batch_sise"],
    );
    // Cross-field checks run once the schema is satisfied.
    const crossField = issuesOf({
      url: "https://example.com/feed",
      auth_headers: { "X-Ok": "a\r\nInjected: 1", Upgrade: "h2c", "bad name": "v" },
      protocols: ["good", "bad protocol"],
    }).map((i) => i.path).sort();
    assert.deepEqual(crossField, [
      "nodes[0].config.auth_headers.Upgrade",
      "nodes[0].config.auth_headers.X-Ok",
      "nodes[0].config.auth_headers.bad name",
      "nodes[0].config.protocols[1]",
      "nodes[0].config.url",
    ]);
    const message = issuesOf({ url: "ws://h/x", auth_headers: { "X-Ok": "s3cr3t\r\n" } })[0]
      .message;
    assert.ok(!message.includes("s3cr3t"), "a header value never appears in an issue");
  });
});

Deno.test("WebSocketNode turns json, text and binary frames into messages", async (t) => {
  const encoder = new TextEncoder();
  const script = (c: PeerConnection) => {
    c.socket.send(json({ n: 1 }));
    c.socket.send(encoder.encode(json({ n: 2 })), { binary: true });
    c.socket.send("{not json");
    c.socket.send(new Uint8Array([0xff, 0xfe]), { binary: true });
    // A fragmented message: two frames, one message.
    c.socket.send(json({ n: 3 }).slice(0, 4), { fin: false });
    c.socket.send(json({ n: 3 }).slice(4), { fin: true });
    c.socket.send(json({ n: 4 }));
  };
  const peer = await WsPeer.start({ onConnection: script });
  try {
    await t.step("json: text and binary frames parse; bad ones are dead letters", async () => {
      const h = harness({ url: peer.url() });
      const running = h.wf.run();
      await until(() => h.out.length === 4, "4 messages");
      h.wf.stop();
      const report = await running;
      assert.deepEqual(h.out, [{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }]);
      assert.equal(report.deadLetters, 2);
      const [badJson, badUtf8] = h.deadLetters.letters;
      assert.equal(badJson.message, "{not json");
      assert.equal(badJson.errorName, "WebSocketFrameError");
      assert.match(badJson.error, /not valid JSON/);
      assert.deepEqual(badJson.context, { url: peer.url(), message_format: "json" });
      assert.match(badUtf8.error, /binary frame is not valid UTF-8/);
      assert.deepEqual(badUtf8.message, new Uint8Array([0xff, 0xfe]));
    });

    await t.step("text: frames are strings", async () => {
      const h = harness({ url: peer.url(), message_format: "text" });
      const running = h.wf.run();
      await until(() => h.out.length === 5, "5 messages");
      h.wf.stop();
      await running;
      assert.deepEqual(h.out, [
        json({ n: 1 }),
        json({ n: 2 }),
        "{not json",
        json({ n: 3 }),
        json({ n: 4 }),
      ]);
      assert.equal(h.deadLetters.letters.length, 1);
    });

    await t.step("binary: frames are bytes", async () => {
      const h = harness({ url: peer.url(), message_format: "binary" });
      const running = h.wf.run();
      await until(() => h.out.length === 6, "6 messages");
      h.wf.stop();
      await running;
      assert.ok(h.out.every((m) => m instanceof Uint8Array));
      assert.deepEqual(h.out[3], new Uint8Array([0xff, 0xfe]));
      assert.equal(new TextDecoder().decode(h.out[4] as Uint8Array), json({ n: 3 }));
      assert.equal(h.deadLetters.letters.length, 0);
    });
  } finally {
    await peer.close();
  }
});

Deno.test("WebSocketNode decodes UTF-8 text, ASCII or not, many frames per read", async () => {
  const sent: { i: number; text: string }[] = Array.from({ length: 500 }, (_, i) => ({
    i,
    text: i % 3 === 0
      ? `café ünïcødé 😀 ${"ä".repeat(i % 50)}`
      : `plain ascii ${"a".repeat(i % 70)}`,
  }));
  // Larger than the 64 KiB read buffer, with a 64-bit length.
  sent.push({ i: 500, text: "ü".repeat(100_000) }, { i: 501, text: "a".repeat(200_000) });
  const peer = await WsPeer.start({
    onConnection: (c) => {
      for (const m of sent) c.socket.send(json(m));
    },
  });
  try {
    const h = harness({ url: peer.url() });
    const running = h.wf.run();
    await until(() => h.out.length === sent.length, "every message");
    h.wf.stop();
    await running;
    assert.deepEqual(h.out, sent);
  } finally {
    await peer.close();
  }
});

Deno.test("WebSocketNode sends auth headers, subprotocols and the subscription once per connection", async () => {
  const peer = await WsPeer.start({
    onConnection: (c) => {
      c.socket.once("message", () => {
        // After the subscription: one message, then the connection drops.
        c.socket.send(json({ connection: c.index }));
        if (c.index === 0) c.socket.terminate();
      });
    },
  });
  try {
    const h = harness({
      url: peer.url("/feed?channel=a"),
      auth_headers: { Authorization: "Bearer s3cr3t-token", "X-Client-ID": "production-client" },
      protocols: ["feed.v2", "feed.v1"],
      subscribe: [{ op: "subscribe", channel: "trades" }, "hello"],
      reconnect_delay: 2,
    });
    const running = h.wf.run();
    await until(() => h.out.length === 1, "the first message");
    assert.equal(await nextBackoff(h, 1), 2000);
    await h.clock.advance(2000);
    await until(() => h.out.length === 2, "the message of the second connection");
    h.wf.stop();
    const report = await running;
    assert.equal(report.status, "stopped");
    assert.deepEqual(h.out, [{ connection: 0 }, { connection: 1 }]);
    assert.equal(peer.connections.length, 2);
    for (const c of peer.connections) {
      assert.equal(c.headers["authorization"], "Bearer s3cr3t-token");
      assert.equal(c.headers["x-client-id"], "production-client");
      assert.equal(c.headers["sec-websocket-protocol"], "feed.v2, feed.v1");
      assert.equal(c.path, "/feed?channel=a");
      await until(() => c.received.length === 2, "the subscription");
      assert.deepEqual(c.received, [json({ op: "subscribe", channel: "trades" }), "hello"]);
    }
    assert.equal(h.logged("websocket connected")[0].protocol, "feed.v2");
    const all = JSON.stringify(h.lines);
    assert.ok(!all.includes("s3cr3t-token"), "the auth header never appears in logs");
    assert.ok(!all.includes("channel=a"), "the query string never appears in logs");
  } finally {
    await peer.close();
  }
});

Deno.test("WebSocketNode reconnects when the feed drops mid-stream and keeps what arrived", async () => {
  const peer = await WsPeer.start({
    onConnection: (c) => {
      const base = c.index * 3;
      for (let i = 1; i <= 3; i++) c.socket.send(json({ seq: base + i }));
      if (c.index === 0) c.socket.terminate();
    },
  });
  try {
    const h = harness({ url: peer.url(), reconnect_delay: 0.5 });
    const running = h.wf.run();
    await until(() => h.out.length === 3, "the first 3 messages");
    assert.equal(await nextBackoff(h, 1), 500);
    await h.clock.advance(500);
    await until(() => h.out.length === 6, "6 messages");
    h.wf.stop();
    const report = await running;
    assert.deepEqual(h.out.map((m) => (m as { seq: number }).seq), [1, 2, 3, 4, 5, 6]);
    const node = report.nodes.find((n) => n.id === "ws")!;
    assert.equal(node.restarts, 1);
    const disconnected = h.logged("websocket disconnected");
    assert.equal(disconnected.length, 1);
    assert.match(String(disconnected[0].reason), /closed without a close frame/);
    assert.equal(disconnected[0].messages, 3);
  } finally {
    await peer.close();
  }
});

Deno.test("WebSocketNode backs off while the feed is down, then connects", async (t) => {
  await t.step("exponential: 1 s, 2 s, 4 s, then the feed is up", async () => {
    const port = freePort();
    const h = harness({ url: `ws://127.0.0.1:${port}/feed`, reconnect_delay: 1 });
    const running = h.wf.run();
    const delays: number[] = [];
    for (let i = 0; i < 3; i++) {
      const delay = await nextBackoff(h, i + 1);
      delays.push(delay);
      if (i < 2) await h.clock.advance(delay);
    }
    assert.deepEqual(delays, [1000, 2000, 4000]);
    const peer = await WsPeer.start({
      port,
      onConnection: (c) => c.socket.send(json({ up: true })),
    });
    try {
      await h.clock.advance(4000);
      await until(() => h.out.length === 1, "the first message");
      h.wf.stop();
      const report = await running;
      assert.deepEqual(h.out, [{ up: true }]);
      assert.equal(report.nodes.find((n) => n.id === "ws")!.restarts, 3);
    } finally {
      await peer.close();
    }
  });

  await t.step("without exponential_backoff the delay stays reconnect_delay", async () => {
    const port = freePort();
    const h = harness({
      url: `ws://127.0.0.1:${port}/feed`,
      reconnect_delay: 1,
      exponential_backoff: false,
      max_reconnect_attempts: 3,
    });
    const running = h.wf.run();
    const delays: number[] = [];
    for (let i = 0; i < 3; i++) {
      const delay = await nextBackoff(h, i + 1);
      delays.push(delay);
      await h.clock.advance(delay);
    }
    const report = await running;
    assert.deepEqual(delays, [1000, 1000, 1000]);
    assert.equal(report.status, "failed");
  });
});

Deno.test("WebSocketNode fails naming the URL and the last cause when reconnects run out", async (t) => {
  await t.step("connection refused, max_reconnect_attempts 2", async () => {
    const port = freePort();
    const h = harness({
      url: `ws://127.0.0.1:${port}/feed?token=hidden`,
      reconnect_delay: 1,
      max_reconnect_attempts: 2,
    });
    const running = h.wf.run();
    await h.clock.advance(await nextBackoff(h, 1));
    await h.clock.advance(await nextBackoff(h, 2));
    const report = await running;
    assert.equal(report.status, "failed");
    const message = report.error!.message;
    assert.match(message, new RegExp(`ws://127\\.0\\.0\\.1:${port}/feed: `));
    assert.match(message, /refused/i);
    assert.match(message, /3 times in a row/);
    assert.ok(!message.includes("hidden"), "the query string is not in the error");
  });

  await t.step("handshake rejected (401), auto_reconnect off: fails at once", async () => {
    const peer = await WsPeer.start({ accept: () => false });
    try {
      const h = harness({ url: peer.url(), auto_reconnect: false });
      const report = await h.wf.run();
      assert.equal(report.status, "failed");
      assert.match(report.error!.message, /expected HTTP 101, found 401/);
      assert.match(report.error!.message, new RegExp(peer.url()));
    } finally {
      await peer.close();
    }
  });

  await t.step("a clean close with auto_reconnect off ends the stream", async () => {
    const peer = await WsPeer.start({
      onConnection: (c) => {
        c.socket.send(json({ last: true }));
        c.socket.close(1000, "done");
      },
    });
    try {
      const h = harness({ url: peer.url(), auto_reconnect: false });
      const report = await h.wf.run();
      assert.equal(report.status, "completed");
      assert.deepEqual(h.out, [{ last: true }]);
      assert.equal(await peer.connections[0].closed, 1000);
    } finally {
      await peer.close();
    }
  });
});

Deno.test("WebSocketNode treats a silent feed as dead after message_timeout", async () => {
  const peer = await WsPeer.start({
    onConnection: (c) => c.socket.send(json({ connection: c.index })),
  });
  try {
    const h = harness({ url: peer.url(), message_timeout: 5, reconnect_delay: 1 });
    const running = h.wf.run();
    await until(() => h.out.length === 1, "the first message");
    await h.clock.advance(4999);
    assert.equal(peer.connections.length, 1, "not dead before message_timeout");
    await h.clock.advance(1);
    assert.equal(await nextBackoff(h, 1), 1000);
    await h.clock.advance(1000);
    await until(() => h.out.length === 2, "the second connection's message");
    h.wf.stop();
    await running;
    assert.deepEqual(h.logged("websocket connection is dead").map((l) => l.reason), [
      "no message for 5s",
    ]);
    assert.equal(await peer.connections[0].closed, 1006);
  } finally {
    await peer.close();
  }
});

Deno.test("WebSocketNode pings, and a peer that never answers is dead", async (t) => {
  await t.step("answered pings keep a quiet connection alive", async () => {
    const peer = await WsPeer.start({});
    try {
      const h = harness({ url: peer.url(), heartbeat_interval: 10 });
      const running = h.wf.run();
      await connected(h);
      for (let i = 1; i <= 3; i++) {
        await h.clock.advance(10_000);
        await until(() => h.logged("websocket pong").length === i, `pong ${i}`);
      }
      await h.clock.advance(10_000);
      assert.equal(peer.connections.length, 1);
      assert.equal(h.logged("websocket connection is dead").length, 0);
      h.wf.stop();
      await running;
    } finally {
      await peer.close();
    }
  });

  await t.step("no pong within an interval: dead, reconnected", async () => {
    const peer = await WsPeer.start({ autoPong: false });
    try {
      const pings: number[] = [];
      const h = harness({ url: peer.url(), heartbeat_interval: 10, reconnect_delay: 1 });
      const running = h.wf.run();
      const first = await peer.waitForConnections(1);
      await connected(h);
      first.socket.on("ping", () => pings.push(h.clock.now()));
      await h.clock.advance(10_000);
      await until(() => pings.length === 1, "the first ping");
      await h.clock.advance(10_000);
      assert.equal(await nextBackoff(h, 1), 1000);
      await h.clock.advance(1000);
      await peer.waitForConnections(2);
      h.wf.stop();
      await running;
      assert.deepEqual(pings, [10_000]);
      assert.match(
        String(h.logged("websocket connection is dead")[0].reason),
        /no pong \(nor anything else\) within 10s of a ping/,
      );
    } finally {
      await peer.close();
    }
  });
});

Deno.test("WebSocketNode emits the guide's batches", async () => {
  const peer = await WsPeer.start({
    onConnection: (c) => {
      for (let i = 1; i <= 7; i++) c.socket.send(json({ i }));
    },
  });
  try {
    const h = harness({ url: peer.url(), batch_size: 3, batch_timeout: 1.5 });
    const running = h.wf.run();
    await until(() => h.out.length === 2, "two full batches");
    await h.clock.advance(1499);
    assert.equal(h.out.length, 2, "the partial batch waits for batch_timeout");
    await h.clock.advance(1);
    await until(() => h.out.length === 3, "the partial batch");
    h.wf.stop();
    await running;
    const batches = h.out as {
      messages: unknown[];
      count: number;
      timestamp: number;
      processing_latency: number;
    }[];
    assert.deepEqual(batches.map((b) => b.count), [3, 3, 1]);
    assert.deepEqual(batches[2].messages, [{ i: 7 }]);
    assert.equal(batches[2].timestamp, 1.5);
    assert.equal(batches[2].processing_latency, 1.5);
    assert.equal(batches[0].processing_latency, 0);
  } finally {
    await peer.close();
  }
});

Deno.test("WebSocketNode under block stops reading: the server's bufferedAmount grows, not sluice's queue", async (t) => {
  const FRAME = 16 * 1024;
  const COUNT = 2000; // 32 MiB: more than the loopback socket buffers can absorb
  const payload = "x".repeat(FRAME - 20);
  let server: PeerConnection | undefined;
  const peer = await WsPeer.start({
    onConnection: (c) => {
      server = c;
      for (let i = 0; i < COUNT; i++) c.socket.send(`{"i":${i},"p":"${payload}"}`);
    },
  });
  try {
    await t.step("block", async () => {
      let open!: () => void;
      const gate = new Promise<void>((resolve) => open = resolve);
      const seen: number[] = [];
      const h = harness(
        { url: peer.url(), max_queue_size: 50, backpressure_strategy: "block" },
        {
          collect: async (m) => {
            await gate;
            seen.push((m as { i: number }).i);
          },
          mailbox: { capacity: 10 },
        },
      );
      const running = h.wf.run();
      await until(
        () => server !== undefined && server.socket.bufferedAmount > 16 * 1024 * 1024,
        "the server's send buffer to grow past 16 MiB",
      );
      const emitted = h.wf.snapshot().nodes.find((n) => n.id === "ws")!.messagesOut;
      assert.ok(emitted <= 100, `sluice took only what downstream could hold (${emitted} emitted)`);
      open();
      await until(() => seen.length === COUNT, "every message", 30_000);
      assert.deepEqual(seen, Array.from({ length: COUNT }, (_, i) => i), "in order, none lost");
      assert.equal(server!.socket.bufferedAmount, 0);
      h.wf.stop();
      await running;
      assert.equal(h.logged("websocket queue full: dropping messages").length, 0);
      server = undefined;
    });

    await t.step("drop_newest keeps reading and drops instead", async () => {
      let open!: () => void;
      const gate = new Promise<void>((resolve) => open = resolve);
      const h = harness(
        { url: peer.url(), max_queue_size: 50, backpressure_strategy: "drop_newest" },
        { collect: () => gate, mailbox: { capacity: 10 } },
      );
      const running = h.wf.run();
      await until(() => h.logged("websocket queue full: dropping messages").length > 0, "drops");
      await until(
        () => server !== undefined && server.socket.bufferedAmount === 0,
        "the server's buffer to drain",
        30_000,
      );
      open();
      h.wf.stop();
      await running;
      const closed = h.logged("websocket closed")[0];
      assert.ok((closed.dropped_newest as number) > COUNT / 2, `dropped ${closed.dropped_newest}`);
      assert.ok((closed.queue_high_water as number) <= 50);
    });
  } finally {
    await peer.close();
  }
});

Deno.test("WebSocketNode closes the connection cleanly on stop and refuses protocol violations", async (t) => {
  await t.step("stop sends close 1001", async () => {
    const peer = await WsPeer.start({ onConnection: (c) => c.socket.send(json({ hi: 1 })) });
    try {
      const h = harness({ url: peer.url() });
      const running = h.wf.run();
      await until(() => h.out.length === 1, "a message");
      h.wf.stop();
      const report = await running;
      assert.equal(report.status, "stopped");
      assert.equal(await withTimeout(peer.connections[0].closed, 5000, "close"), 1001);
    } finally {
      await peer.close();
    }
  });

  await t.step("a masked frame from the server fails the connection (1002)", async () => {
    const peer = await WsPeer.start({
      onConnection: (c) => c.socket.send(json({ c: c.index }), { mask: c.index === 0 }),
    });
    try {
      const h = harness({ url: peer.url(), reconnect_delay: 1 });
      const running = h.wf.run();
      assert.equal(await nextBackoff(h, 1), 1000);
      await h.clock.advance(1000);
      await until(() => h.out.length === 1, "the second connection's message");
      h.wf.stop();
      await running;
      assert.deepEqual(h.out, [{ c: 1 }]);
      assert.match(String(h.logged("websocket disconnected")[0].reason), /masked frame/);
      assert.equal(await peer.connections[0].closed, 1002);
    } finally {
      await peer.close();
    }
  });

  await t.step("a message above max_message_size fails the connection (1009)", async () => {
    const peer = await WsPeer.start({
      onConnection: (c) => c.socket.send(json({ p: "x".repeat(c.index === 0 ? 2000 : 10) })),
    });
    try {
      const h = harness({ url: peer.url(), max_message_size: 1000, reconnect_delay: 1 });
      const running = h.wf.run();
      assert.equal(await nextBackoff(h, 1), 1000);
      await h.clock.advance(1000);
      await until(() => h.out.length === 1, "the second connection's message");
      h.wf.stop();
      await running;
      assert.equal(await peer.connections[0].closed, 1009);
    } finally {
      await peer.close();
    }
  });
});
