import assert from "node:assert/strict";
import { builtins } from "../../actors/mod.ts";
import { VirtualClock } from "../../runtime/clock.ts";
import { buildWorkflow, parseWorkflowText } from "../../runtime/config.ts";
import { MemoryDeadLetters } from "../../runtime/dead_letter.ts";
import { createLogger } from "../../runtime/log.ts";
import { Registry } from "../../runtime/registry.ts";
import { connectClient, freePort, until, withTimeout, WsPeer } from "../peers/ws_peers.ts";

const WORKFLOW = `
name: live-prices
nodes:
  - id: feed
    type: WebSocketNode
    config:
      url: \${FEED_URL}
      connection_timeout: 30.0
      message_timeout: 60.0
      auth_headers:
        Authorization: "Bearer \${FEED_TOKEN}"
        X-Client-ID: production-client
      message_format: json
      auto_reconnect: true
      max_reconnect_attempts: 5
      reconnect_delay: 2.0
      exponential_backoff: true
      max_queue_size: 10000
      backpressure_strategy: block
      enable_metrics: true
      heartbeat_interval: 30.0
      subscribe: {op: subscribe, channel: prices}
  - id: live
    type: WebSocketServerSinkNode
    config:
      port: \${LIVE_PORT}
      path: /prices
      token: \${LIVE_TOKEN}
connections:
  - {from: feed, to: live}
`;

Deno.test("A YAML workflow relays an authenticated feed to authenticated WebSocket clients", async () => {
  const feed = await WsPeer.start({
    accept: (request) => request.headers.authorization === "Bearer feed-s3cr3t",
  });
  const env: Record<string, string> = {
    FEED_URL: feed.url("/v1/stream"),
    FEED_TOKEN: "feed-s3cr3t",
    LIVE_PORT: String(freePort()),
    LIVE_TOKEN: "live-s3cr3t",
  };
  const lines: string[] = [];
  const parsed = parseWorkflowText(WORKFLOW, { env: (name) => env[name] });
  const wf = buildWorkflow(parsed, {
    registry: new Registry(builtins),
    clock: new VirtualClock(0),
    deadLetters: new MemoryDeadLetters(),
    logger: createLogger({ level: "debug", write: (line) => lines.push(line) }),
  });
  const running = wf.run();
  let client: Awaited<ReturnType<typeof connectClient>> | undefined;
  try {
    const upstream = await feed.waitForConnections(1);
    await until(() => upstream.received.length === 1, "the subscription");
    assert.deepEqual(JSON.parse(String(upstream.received[0])), {
      op: "subscribe",
      channel: "prices",
    });
    assert.equal(upstream.headers["x-client-id"], "production-client");
    await until(() => lines.some((l) => l.includes("websocket server listening")), "the server");
    client = await connectClient(`ws://127.0.0.1:${env.LIVE_PORT}/prices?token=live-s3cr3t`);
    await until(() => lines.some((l) => l.includes("websocket client connected")), "the client");
    for (let i = 0; i < 50; i++) {
      upstream.socket.send(JSON.stringify({ sym: "ABC", price: 100 + i }));
    }
    await until(() => client!.received.length === 50, "50 prices");
    assert.deepEqual(JSON.parse(String(client.received[49])), { sym: "ABC", price: 149 });
    wf.stop();
    const report = await running;
    assert.equal(report.status, "stopped");
    assert.equal(await withTimeout(client.closed, 5000, "the client's close"), 1001);
    assert.equal(await withTimeout(upstream.closed, 5000, "the feed's close"), 1001);
    const all = lines.join("\n");
    assert.ok(!all.includes("feed-s3cr3t") && !all.includes("live-s3cr3t"), "no secret in logs");
  } finally {
    wf.stop();
    await running.catch(() => {});
    await client?.close();
    await feed.close();
  }
});
