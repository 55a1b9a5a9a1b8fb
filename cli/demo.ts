/**
 * `sluice demo`: a live pipeline that needs nothing installed. It starts a
 * local WebSocket feed of generated clickstream events (on 127.0.0.1, a free
 * port) and runs
 *
 * ```text
 * WebSocketNode -> EventFilterNode -> RouterNode -> WindowNode (revenue)    -> ConsoleSinkNode
 *                                               \-> WindowNode (engagement) -/
 * ```
 *
 * with the run's status (the live table on a terminal, a status line every
 * few seconds otherwise). The feed closes after `--duration` seconds, the
 * source ends, the windows flush and the command exits 0.
 *
 * The feed is exported too ({@linkcode startClickstreamFeed}), for the
 * WebSocket examples and tests.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type Clock, RealClock } from "../runtime/clock.ts";
import { buildWorkflow, parseWorkflowText } from "../runtime/config.ts";
import { MemoryDeadLetters } from "../runtime/dead_letter.ts";
import { ConfigError } from "../runtime/errors.ts";
import { createLogger } from "../runtime/log.ts";
import { type NodeSpec, Registry } from "../runtime/registry.ts";
import { builtins } from "../actors/mod.ts";
import { ConsoleSinkNode, messageLine } from "../actors/sinks/console.ts";
import { type CommandIo, EXIT, formatReport, printConfigError, stdio } from "./run.ts";
import { runWorkflowWithStatus } from "./run.ts";
import { LiveStatus } from "./status.ts";

// ---------------------------------------------------------------------------
// The feed
// ---------------------------------------------------------------------------

/** The event types of the clickstream, with their share of the user events. */
const EVENT_MIX = [
  ["page_view", 0.5],
  ["click", 0.3],
  ["add_to_cart", 0.12],
  ["purchase", 0.08],
] as const;

const DEVICES = ["desktop", "mobile", "tablet"] as const;

/** One event of the clickstream feed. */
export interface ClickstreamEvent {
  /** Unique per connection: `evt-<sequence>`. */
  id: string;
  /** When it was sent: clock time, epoch seconds. */
  timestamp: number;
  /** 0, 1, 2, ... per connection. */
  sequence: number;
  /** `page_view`, `click`, `add_to_cart`, `purchase`, or `heartbeat` (no user). */
  event_type: "page_view" | "click" | "add_to_cart" | "purchase" | "heartbeat";
  /** `user_<n>` (40 users) or, for one event in ten, `bot_<n>`; absent on heartbeats. */
  user_id?: string;
  /** `<user_id>-s<n>`; absent on heartbeats. */
  session_id?: string;
  /** Payload: the page, the device and, for carts and purchases, the amount (whole euros). */
  data: { page?: string; device?: string; amount?: number };
}

/**
 * A small seeded random number generator (mulberry32), so that every
 * connection to the feed gets the same sequence of events.
 *
 * @param seed The seed.
 * @returns A function returning numbers in [0, 1).
 * @example Reproducible random numbers
 * ```ts
 * import { seededRandom } from "./demo.ts";
 * const a = seededRandom(7);
 * const b = seededRandom(7);
 * console.assert(a() === b() && a() < 1);
 * ```
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Makes the clickstream event number `sequence`: a heartbeat every 50th
 * event, otherwise a user event drawn from `random`.
 *
 * @param sequence The event's number.
 * @param timestamp Its time, epoch seconds.
 * @param random The connection's random numbers.
 * @returns The event.
 * @example One clickstream event
 * ```ts
 * import { clickstreamEvent, seededRandom } from "./demo.ts";
 * const event = clickstreamEvent(1, 1700000000, seededRandom(1));
 * console.assert(event.id === "evt-1" && event.user_id !== undefined);
 * console.assert(clickstreamEvent(0, 1700000000, seededRandom(1)).event_type === "heartbeat");
 * ```
 */
export function clickstreamEvent(
  sequence: number,
  timestamp: number,
  random: () => number,
): ClickstreamEvent {
  const id = `evt-${sequence}`;
  if (sequence % 50 === 0) return { id, timestamp, sequence, event_type: "heartbeat", data: {} };
  let pick = random();
  let type: ClickstreamEvent["event_type"] = "page_view";
  for (const [name, share] of EVENT_MIX) {
    type = name;
    if ((pick -= share) < 0) break;
  }
  const bot = random() < 0.1;
  const user = bot ? `bot_${Math.floor(random() * 5)}` : `user_${Math.floor(random() * 40)}`;
  const data: ClickstreamEvent["data"] = {
    page: `/products/${1 + Math.floor(random() * 25)}`,
    device: DEVICES[Math.floor(random() * DEVICES.length)],
  };
  if (type === "add_to_cart" || type === "purchase") data.amount = 5 + Math.floor(random() * 196);
  return {
    id,
    timestamp,
    sequence,
    event_type: type,
    user_id: user,
    session_id: `${user}-s${1 + Math.floor(sequence / 200)}`,
    data,
  };
}

/** Options of {@linkcode startClickstreamFeed}. */
export interface ClickstreamFeedOptions {
  /** Seconds each connection is fed before the feed closes it (code 1000). @default {15} */
  durationSeconds?: number;
  /** Events per second per connection. @default {50} */
  ratePerSecond?: number;
  /** Interface to listen on. @default {"127.0.0.1"} */
  hostname?: string;
  /** Port; 0 picks a free one. @default {0} */
  port?: number;
  /** Path of the WebSocket endpoint; other paths answer 404. @default {"/feed"} */
  path?: string;
  /** Seed of the events' random choices. @default {1} */
  seed?: number;
  /** Paces the events and stamps their time. @default {new RealClock()} */
  clock?: Clock;
  /** Called when a connection's stream ends, with how many events it was sent. */
  onStreamEnd?: (sent: number) => void;
}

/** A running clickstream feed. */
export interface ClickstreamFeed {
  /** The feed's `ws://` URL. */
  readonly url: string;
  /** The port it listens on. */
  readonly port: number;
  /** Closes every open connection and stops listening. */
  close(): Promise<void>;
}

/**
 * Starts a WebSocket feed of generated clickstream events: every connection
 * gets `ratePerSecond` JSON events per second (the same seeded sequence,
 * stamped with the clock's time) for `durationSeconds`, then a close frame
 * with code 1000.
 *
 * @param options Where to listen, how fast and how long.
 * @returns The running feed.
 * @throws {RangeError} When the duration or the rate is not a positive number.
 * @example A short-lived feed
 * ```ts
 * import { startClickstreamFeed } from "./demo.ts";
 * const feed = startClickstreamFeed({ durationSeconds: 0.1 });
 * console.assert(feed.url.startsWith("ws://127.0.0.1:"));
 * await feed.close();
 * ```
 */
export function startClickstreamFeed(options: ClickstreamFeedOptions = {}): ClickstreamFeed {
  const durationMs = (options.durationSeconds ?? 15) * 1000;
  const rate = options.ratePerSecond ?? 50;
  if (!(durationMs > 0)) {
    throw new RangeError(`durationSeconds must be > 0, got ${options.durationSeconds}`);
  }
  if (!(rate > 0)) throw new RangeError(`ratePerSecond must be > 0, got ${rate}`);
  const clock = options.clock ?? new RealClock();
  const path = options.path ?? "/feed";
  const hostname = options.hostname ?? "127.0.0.1";
  const sockets = new Set<WebSocket>();
  // Send in small steps so the stream is steady, not bursty.
  const stepMs = Math.max(10, Math.min(100, 1000 / rate));

  const stream = (socket: WebSocket) => {
    const random = seededRandom(options.seed ?? 1);
    const started = clock.monotonic();
    let sent = 0;
    let timer: number | undefined;
    const finish = () => {
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
      options.onStreamEnd?.(sent);
    };
    const step = () => {
      timer = undefined;
      if (socket.readyState !== WebSocket.OPEN) return;
      const elapsed = clock.monotonic() - started;
      const due = Math.floor(Math.min(elapsed, durationMs) * rate / 1000);
      const now = clock.now() / 1000;
      for (; sent < due; sent++) {
        socket.send(JSON.stringify(clickstreamEvent(sent, now, random)));
      }
      if (elapsed >= durationMs) {
        socket.close(1000, "feed finished");
        return;
      }
      timer = clock.setTimeout(step, stepMs);
    };
    socket.onopen = () => step();
    socket.onclose = () => {
      sockets.delete(socket);
      finish();
    };
    socket.onerror = () => {};
  };

  const server = Deno.serve({ hostname, port: options.port ?? 0, onListen: () => {} }, (req) => {
    if (new URL(req.url).pathname !== path) return new Response("not found", { status: 404 });
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("this is a WebSocket feed", { status: 426 });
    }
    const { socket, response } = Deno.upgradeWebSocket(req);
    sockets.add(socket);
    stream(socket);
    return response;
  });
  const port = server.addr.port;
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  return {
    url: `ws://${host}:${port}${path}`,
    port,
    async close() {
      for (const socket of sockets) {
        try {
          socket.close(1001, "feed shutting down");
        } catch {
          // Already closing.
        }
      }
      await server.shutdown();
    },
  };
}

// ---------------------------------------------------------------------------
// The demo
// ---------------------------------------------------------------------------

/**
 * The demo workflow, reading the feed at `url`: bots and heartbeats are
 * filtered out, carts and purchases go to `revenue`, page views and clicks
 * to `engagement`, each aggregated per event type over 5-second windows of
 * event time.
 *
 * @param url The feed's `ws://` URL.
 * @returns The workflow YAML.
 * @example The demo workflow for a feed URL
 * ```ts
 * import { demoWorkflow } from "./demo.ts";
 * console.assert(demoWorkflow("ws://127.0.0.1:1/feed").includes('url: "ws://127.0.0.1:1/feed"'));
 * ```
 */
export function demoWorkflow(url: string): string {
  return `name: demo
nodes:
  - id: feed
    type: WebSocketNode
    config:
      url: ${JSON.stringify(url)}
      auto_reconnect: false # the feed's close is the end of the demo
      message_format: json
  - id: humans
    type: EventFilterNode
    config:
      filter_conditions:
        - {field: user_id, operator: exists}
        - not: {field: user_id, operator: matches, value: "^bot_"}
        - {field: event_type, operator: in, values: [page_view, click, add_to_cart, purchase]}
  - id: router
    type: RouterNode
    config:
      enrichment_rules:
        - enrichment: {received_at: "\${now}"}
        - condition: {field: data.device, operator: equals, value: mobile}
          enrichment: {channel: app}
      routing_rules:
        - condition: {field: event_type, operator: in, values: [add_to_cart, purchase]}
          destination: revenue
        - condition: {field: event_type, operator: in, values: [page_view, click]}
          destination: engagement
      handlers:
        purchase: [{field: data.amount, operation: copy, output_field: revenue}]
  - id: revenue_5s
    type: WindowNode
    config:
      window_size_seconds: 5
      time_field: timestamp
      late_arrival_grace_period: 1
      idle_timeout_seconds: 2
      group_by: [event_type]
      value_field: data.amount
      aggregations: [count, sum, avg, max]
  - id: engagement_5s
    type: WindowNode
    config:
      window_size_seconds: 5
      time_field: timestamp
      late_arrival_grace_period: 1
      idle_timeout_seconds: 2
      group_by: [event_type]
      distinct_field: user_id
      aggregations: [count, distinct_count, rate_per_second]
  - id: results
    type: ConsoleSinkNode
connections:
  - {from: feed, to: humans}
  - {from: humans, to: router}
  - {from: router, from_port: revenue, to: revenue_5s}
  - {from: router, from_port: engagement, to: engagement_5s}
  - {from: revenue_5s, to: results}
  - {from: engagement_5s, to: results}
`;
}

/** Help text of `sluice demo`. */
export const DEMO_HELP = `Usage: sluice demo [--duration <s>] [--rate <n>]

Runs a live pipeline that needs nothing installed. It starts a local
WebSocket feed of clickstream events (127.0.0.1, a free port) and runs

  WebSocketNode -> EventFilterNode (no bots, no heartbeats) -> RouterNode
    -> WindowNode revenue_5s (carts, purchases)  -> ConsoleSinkNode
    -> WindowNode engagement_5s (views, clicks)  -/

printing a result per event type every 5 seconds on stdout, with the
status of every node on stderr (a live table on a terminal). The feed closes
after --duration seconds; the windows flush and the demo exits 0. Ctrl-C
stops it early, gracefully.

Options:
  --duration <s>   Seconds the feed sends events (default 15).
  --rate <n>       Events per second (default 50).
  -h, --help       This help.`;

/** Options of {@linkcode demoCommand} (tests). */
export interface DemoOptions {
  /** Whether stderr is a terminal (live status). @default {Deno.stderr.isTerminal()} */
  isTerminal?: boolean;
  /** Seconds between status lines when not on a terminal. @default {5} */
  statusIntervalSeconds?: number;
  /** Stop on SIGINT/SIGTERM. @default {true} */
  handleSignals?: boolean;
}

/**
 * A ConsoleSinkNode that writes through `write` (one call per line), so the
 * demo's results go through the command's output and above the live table.
 */
function lineSink(write: (line: string) => void): NodeSpec {
  return {
    ...(ConsoleSinkNode as NodeSpec),
    create: (config) => ({
      handle(batch: unknown[]): void {
        const indent = (config as { format?: string }).format === "pretty" ? 2 : undefined;
        for (const message of batch) write(messageLine(message, indent));
      },
    }),
  };
}

/**
 * Runs `sluice demo`.
 *
 * @param args Arguments after `demo`.
 * @param io Output streams: window results on `out`, status and logs on `err`.
 * @param options Terminal detection and status interval, for tests.
 * @returns The exit code: 0 when the run completed, 1 when it failed, 2 for bad arguments.
 * @example Running the demo for five seconds
 * ```ts ignore
 * import { demoCommand } from "./demo.ts";
 * Deno.exit(await demoCommand(["--duration", "5"]));
 * ```
 */
export async function demoCommand(
  args: string[],
  io: CommandIo = stdio,
  options: DemoOptions = {},
): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      allowPositionals: false,
      options: {
        duration: { type: "string", default: "15" },
        rate: { type: "string", default: "50" },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (error) {
    io.err(`error: ${(error as Error).message}\n\n${DEMO_HELP}\n`);
    return EXIT.usage;
  }
  if (values.help) {
    io.out(DEMO_HELP + "\n");
    return EXIT.ok;
  }
  const duration = Number(values.duration);
  if (!(duration > 0) || !Number.isFinite(duration)) {
    io.err(`error: --duration must be a positive number of seconds, got "${values.duration}"\n`);
    return EXIT.usage;
  }
  const rate = Number(values.rate);
  if (!(rate > 0) || !Number.isFinite(rate)) {
    io.err(`error: --rate must be a positive number of events per second, got "${values.rate}"\n`);
    return EXIT.usage;
  }

  const terminal = options.isTerminal ?? Deno.stderr.isTerminal();
  const live = terminal ? new LiveStatus(io.err) : undefined;
  // Results share the terminal with the live table only when stdout is that terminal.
  const sameTerminal = live !== undefined && Deno.stdout.isTerminal();
  const note = (line: string) => live ? live.log(line) : io.err(line + "\n");
  const result = (line: string) => sameTerminal ? live!.log(line) : io.out(line + "\n");

  const feed = startClickstreamFeed({ durationSeconds: duration, ratePerSecond: rate });
  try {
    note(`demo: clickstream feed at ${feed.url}, ${rate} events/s for ${duration}s`);
    note("demo: window results (5 s, per event type) print as each window closes");
    let workflow;
    try {
      workflow = buildWorkflow(parseWorkflowText(demoWorkflow(feed.url), { file: "<demo>" }), {
        registry: new Registry([
          ...builtins.filter((spec) => spec.type !== ConsoleSinkNode.type),
          lineSink(result),
        ]),
        deadLetters: new MemoryDeadLetters(),
        logger: createLogger({ write: note }),
      });
    } catch (error) {
      // The embedded workflow is valid; this guards against a node type changing under it.
      if (error instanceof ConfigError) {
        printConfigError(error, io);
        return EXIT.runtime;
      }
      throw error;
    }
    const report = await runWorkflowWithStatus(workflow, io, {
      live,
      statusIntervalMs: (options.statusIntervalSeconds ?? 5) * 1000,
      handleSignals: options.handleSignals ?? true,
      log: note,
    });
    if (!report) return EXIT.runtime;
    io.err(formatReport(report));
    return report.status === "failed" ? EXIT.runtime : EXIT.ok;
  } finally {
    await feed.close();
  }
}
