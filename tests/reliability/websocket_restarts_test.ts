/**
 * A WebSocket feed killed and restarted ten times in one run.
 *
 * The feed (an npm `ws` server on 127.0.0.1) streams numbered JSON messages.
 * Ten times during the run it is killed mid-stream (a burst of messages is
 * handed to the sockets, then every socket is terminated and the server
 * closed), stays down for one to three reconnect attempts, and comes back on
 * the same port. The feed's protocol is at-least-once: a message counts as
 * sent once `ws` confirmed writing it to the socket; on every new connection
 * the feed resends everything after the last confirmed message, so a message
 * caught in flight by a kill may arrive twice (counted), never zero times.
 *
 * The workflow runs on a virtual clock with a seeded jitter source, so the
 * reconnect delays are checked against the backoff schedule exactly, with no
 * dependence on real time; the only real waits are bounded polls for I/O.
 */
import assert from "node:assert/strict";
import { WebSocket, WebSocketServer } from "ws";
import { builtins } from "../../actors/mod.ts";
import type { Logger } from "../../runtime/actor.ts";
import { backoffDelay } from "../../runtime/backoff.ts";
import { RealClock, VirtualClock } from "../../runtime/clock.ts";
import { MemoryDeadLetters } from "../../runtime/dead_letter.ts";
import { Registry } from "../../runtime/registry.ts";
import { Workflow } from "../../runtime/workflow.ts";
import { prng } from "../fuzz/fuzz_helpers.ts";
import { until } from "../peers/ws_peers.ts";

/** Messages in the whole stream. */
const TOTAL = 3000;
/** Feed restarts in one run. */
const RESTARTS = 10;
/** Distinct messages the sink must have before kill number `g` (0-based). */
const killAt = (g: number) => (g + 1) * 250;
/** Messages handed to the sockets right before each kill, so some are in flight. */
const BURST = 40;
/** The node's reconnect_delay, seconds. */
const RECONNECT_DELAY = 0.5;
/** The supervisor's jitter fraction (the default). */
const JITTER = 0.2;

const realClock = new RealClock();

/**
 * The numbered feed. `sent[i]` counts how often message `i` was handed to a
 * socket; `confirmed` is the length of the prefix `ws` confirmed as written.
 */
class NumberedFeed {
  /** Times (on the workflow's clock) at which connections were accepted. */
  readonly connectedAt: number[] = [];
  readonly sent = new Uint16Array(TOTAL);
  /** Messages resent because they were not confirmed before a kill. */
  replayed = 0;
  confirmed = 0;
  #server: WebSocketServer | undefined;
  #next = 0;
  #generation = 0;
  readonly #clock: VirtualClock;
  #port = 0;

  constructor(clock: VirtualClock) {
    this.#clock = clock;
  }

  /** Messages handed to sockets so far (the stream position). */
  get handedOut(): number {
    return this.#next;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.#port}/feed`;
  }

  /** Starts listening: on a free port the first time, then on the same port again. */
  async start(): Promise<void> {
    this.#port = await this.#listen(this.#port);
  }

  async #listen(port: number): Promise<number> {
    const server = new WebSocketServer({ host: "127.0.0.1", port });
    await new Promise<void>((resolve, reject) => {
      server.once("listening", () => resolve());
      server.once("error", reject);
    });
    this.#server = server;
    server.on("connection", (socket: WebSocket) => this.#serve(socket));
    const address = server.address();
    return typeof address === "object" && address ? address.port : 0;
  }

  /** Streams from the first unconfirmed message, paced so that kills land mid-stream. */
  async #serve(socket: WebSocket): Promise<void> {
    this.connectedAt.push(this.#clock.now());
    socket.on("error", () => {});
    const generation = ++this.#generation;
    this.replayed += this.#next - this.confirmed;
    this.#next = this.confirmed;
    while (generation === this.#generation && socket.readyState === WebSocket.OPEN) {
      if (this.#next >= TOTAL) return;
      this.#sendChunk(socket, 20);
      await realClock.sleep(1);
    }
  }

  #sendChunk(socket: WebSocket, count: number): void {
    const end = Math.min(TOTAL, this.#next + count);
    for (; this.#next < end; this.#next++) {
      const seq = this.#next;
      this.sent[seq]++;
      socket.send(JSON.stringify({ seq, pad: "x".repeat(seq % 64) }), (error?: Error) => {
        // Callbacks fire in order; a failed write is resent on the next connection.
        if (!error && seq === this.confirmed) this.confirmed = seq + 1;
      });
    }
  }

  /** Hands a burst to every socket, then terminates them all and stops listening. */
  async kill(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    this.#generation++;
    for (const socket of server.clients) {
      if (socket.readyState === WebSocket.OPEN) this.#sendChunk(socket, BURST);
    }
    const closed = [...server.clients].map((socket) =>
      new Promise<void>((resolve) => {
        if (socket.readyState === WebSocket.CLOSED) resolve();
        else socket.once("close", () => resolve());
      })
    );
    for (const socket of server.clients) socket.terminate();
    await Promise.all(closed);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

interface LogEntry {
  message: string;
  at: number;
  fields: Record<string, unknown>;
}

/** A logger that keeps every entry with the workflow clock's time. */
function recordingLogger(clock: VirtualClock, into: LogEntry[]): Logger {
  const log = (message: string, fields?: Record<string, unknown>) =>
    void into.push({ message, at: clock.now(), fields: fields ?? {} });
  return { debug: log, info: log, warn: log, error: log };
}

Deno.test({
  name:
    "WebSocketNode rides out ten feed restarts: backoff schedule kept, every message at least once",
  async fn() {
    const clock = new VirtualClock(0);
    const seeded = prng(20260410);
    const draws: number[] = [];
    const random = () => {
      const r = seeded();
      draws.push(r);
      return r;
    };
    const logs: LogEntry[] = [];
    const logged = (message: string) => logs.filter((l) => l.message === message);
    const deadLetters = new MemoryDeadLetters();
    const feed = new NumberedFeed(clock);
    await feed.start();
    const seen = new Uint16Array(TOTAL);
    let processed = 0;
    let distinct = 0;
    const wf = new Workflow({
      registry: new Registry(builtins),
      clock,
      deadLetters,
      logger: recordingLogger(clock, logs),
      random,
    })
      .addNode("WebSocketNode", "feed", {
        url: feed.url,
        auto_reconnect: true,
        reconnect_delay: RECONNECT_DELAY,
        exponential_backoff: true,
        max_reconnect_attempts: 100,
      })
      .addNode("FunctionNode", "sink", {
        fn: (m: { seq: number }) => {
          processed++;
          if (seen[m.seq]++ === 0) distinct++;
        },
      })
      .addConnection("feed", "sink");

    /** Waits for failure number `failures` and returns its backoff delay (virtual ms). */
    const nextBackoff = async (failures: number): Promise<number> => {
      await until(
        () => logged("actor failed").length === failures && clock.pendingTimers === 1,
        `failure ${failures} and its backoff timer`,
      );
      return clock.nextTimerAt()! - clock.now();
    };

    interface Cycle {
      killedAt: number;
      delays: number[];
      expected: number[];
      reconnectedAt: number;
    }
    const cycles: Cycle[] = [];
    let inFlightAtKills = 0;
    const started = realClock.monotonic();
    const running = wf.run();
    let report;
    try {
      let failures = 0;
      for (let g = 0; g < RESTARTS; g++) {
        await until(() => distinct >= killAt(g), `${killAt(g)} distinct messages`, 10_000);
        // The burst goes out synchronously at the start of kill(): in flight when it lands.
        const killing = feed.kill();
        inFlightAtKills += feed.handedOut - distinct;
        await killing;
        const killedAt = clock.now();
        const downAttempts = 1 + (g % 3);
        const delays: number[] = [];
        const expected: number[] = [];
        for (let attempt = 1; attempt <= downAttempts + 1; attempt++) {
          const delay = await nextBackoff(++failures);
          delays.push(delay);
          expected.push(
            backoffDelay(attempt, {
              initialDelayMs: RECONNECT_DELAY * 1000,
              factor: 2,
              maxDelayMs: 30_000,
              jitter: JITTER,
            }, draws[failures - 1]),
          );
          // Down for `downAttempts` refused connections, then up for the next one.
          if (attempt === downAttempts + 1) await feed.start();
          await clock.advance(delay);
        }
        await until(() => feed.connectedAt.length === g + 2, `reconnect ${g + 1}`);
        cycles.push({ killedAt, delays, expected, reconnectedAt: feed.connectedAt[g + 1] });
      }
      await until(() => distinct === TOTAL, `all ${TOTAL} messages`, 10_000);
    } finally {
      wf.stop();
      report = await running;
      await feed.kill();
    }
    const elapsed = realClock.monotonic() - started;
    const node = report.nodes.find((n) => n.id === "feed")!;
    const sink = report.nodes.find((n) => n.id === "sink")!;
    const duplicates = processed - distinct;
    const attempts = cycles.reduce((n, c) => n + c.delays.length, 0);
    console.log(
      `  figures: in ${TOTAL} (sent ${
        feed.sent.reduce((a, b) => a + b, 0)
      } incl. ${feed.replayed} replayed), ` +
        `out ${processed}, dropped ${sink.dropped}, dead-lettered ${deadLetters.letters.length}, ` +
        `duplicated ${duplicates}, lost ${
          TOTAL - distinct
        }, in flight at kills ${inFlightAtKills}; restarts: feed ${RESTARTS}, ` +
        `node ${node.restarts} (${attempts} reconnect attempts); ${Math.round(elapsed)} ms`,
    );

    assert.equal(report.status, "stopped", report.error?.message);
    assert.equal(feed.connectedAt.length, RESTARTS + 1, "one connection per feed incarnation");

    // Backoff: after each kill the delays follow reconnect_delay x 2^(n-1) with
    // the seeded jitter, grow with every refused attempt, and start over after a
    // successful connect.
    for (const [g, c] of cycles.entries()) {
      assert.deepEqual(c.delays, c.expected, `cycle ${g}: delays follow the backoff schedule`);
      for (let i = 1; i < c.delays.length; i++) {
        assert.ok(c.delays[i] > c.delays[i - 1], `cycle ${g}: delays grow ${c.delays}`);
      }
      const first = RECONNECT_DELAY * 1000;
      assert.ok(c.delays[0] <= first && c.delays[0] >= first * (1 - JITTER), `cycle ${g}`);
      assert.equal(
        c.reconnectedAt - c.killedAt,
        c.delays.reduce((a, b) => a + b, 0),
        `cycle ${g}: reconnected exactly when the last backoff ended`,
      );
    }
    assert.equal(node.restarts, attempts, "one supervisor restart per reconnect attempt");
    assert.equal(logged("websocket connected").length, RESTARTS + 1);

    // Delivery: nothing lost, nothing dropped or dead-lettered, and only
    // messages the feed really resent can be duplicates.
    assert.equal(distinct, TOTAL, "every message processed at least once");
    assert.equal(sink.dropped, 0);
    assert.equal(deadLetters.letters.length, 0);
    let unexpected = 0;
    for (let i = 0; i < TOTAL; i++) if (seen[i] > feed.sent[i]) unexpected++;
    assert.equal(unexpected, 0, "no message processed more often than the feed sent it");
    assert.ok(duplicates <= feed.replayed, `${duplicates} duplicates <= ${feed.replayed} replayed`);
    assert.ok(inFlightAtKills >= RESTARTS * BURST, "every kill caught messages in flight");
    assert.ok(elapsed < 30_000, `bounded: ${elapsed} ms`);
  },
});
