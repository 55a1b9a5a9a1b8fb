/**
 * Core benchmark: messages per second through a chain of 5 actors (block
 * mailboxes, capacity 1024), against the same 5 functions as a plain loop, a
 * chain of async generators and a Node object-mode stream chain, in one run.
 */
import { Readable, Transform, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ActorContext } from "../runtime/actor.ts";
import { createLogger } from "../runtime/log.ts";
import { MemoryDeadLetters } from "../runtime/dead_letter.ts";
import { Registry } from "../runtime/registry.ts";
import { s } from "../runtime/schema.ts";
import { Workflow } from "../runtime/workflow.ts";
import { builtins } from "../actors/mod.ts";
import type { BenchResult } from "./result.ts";

interface Msg {
  n: number;
  v: number;
}

// The five stage functions, shared by every contender.
const stages: ((m: Msg) => Msg)[] = [
  (m) => ({ n: m.n, v: m.v + 1 }),
  (m) => ({ n: m.n, v: m.v * 2 }),
  (m) => ({ n: m.n, v: m.v ^ 0x5a5a }),
  (m) => ({ n: m.n, v: m.v % 1_000_003 }),
  (m) => ({ n: m.n, v: m.v + (m.n & 7) }),
];

function makeMsg(n: number): Msg {
  return { n, v: n };
}

function runPlainLoop(count: number): number {
  let sum = 0;
  for (let i = 0; i < count; i++) {
    let m = makeMsg(i);
    for (const f of stages) m = f(m);
    sum = (sum + m.v) % 1e9;
  }
  return sum;
}

async function runAsyncGenerators(count: number): Promise<number> {
  async function* source() {
    for (let i = 0; i < count; i++) yield makeMsg(i);
  }
  async function* stage(input: AsyncIterable<Msg>, f: (m: Msg) => Msg) {
    for await (const m of input) yield f(m);
  }
  let it: AsyncIterable<Msg> = source();
  for (const f of stages) it = stage(it, f);
  let sum = 0;
  for await (const m of it) sum = (sum + m.v) % 1e9;
  return sum;
}

async function runNodeStreams(count: number): Promise<number> {
  let i = 0;
  const source = new Readable({
    objectMode: true,
    highWaterMark: 1024,
    read() {
      while (i < count) {
        if (!this.push(makeMsg(i++))) return;
      }
      this.push(null);
    },
  });
  let sum = 0;
  const transforms = stages.map((f) =>
    new Transform({
      objectMode: true,
      highWaterMark: 1024,
      transform(m: Msg, _enc, cb) {
        cb(null, f(m));
      },
    })
  );
  const sink = new Writable({
    objectMode: true,
    highWaterMark: 1024,
    write(m: Msg, _enc, cb) {
      sum = (sum + m.v) % 1e9;
      cb();
    },
  });
  await pipeline([source, ...transforms, sink]);
  return sum;
}

const CounterSource = {
  type: "BenchCounterSource",
  kind: "source" as const,
  description: "bench source",
  config: s.any<{ count: number }>(),
  create: (config: { count: number }) => ({
    async run(ctx: ActorContext) {
      for (let i = 0; i < config.count;) {
        const end = Math.min(config.count, i + 512);
        for (; i < end; i++) ctx.emit(makeMsg(i));
        const p = ctx.flush();
        if (p) await p;
      }
      return "end" as const;
    },
  }),
};

async function runSluice(count: number): Promise<number> {
  let sum = 0;
  const workflow = new Workflow({
    registry: new Registry([...builtins, CounterSource]),
    logger: createLogger({ level: "silent" }),
    deadLetters: new MemoryDeadLetters(),
    defaultMailbox: { capacity: 1024, overflow: "block" },
  });
  workflow.addNode("BenchCounterSource", "src", { count });
  let previous = "src";
  stages.forEach((f, i) => {
    workflow.addNode("FunctionNode", `f${i}`, { fn: f });
    workflow.addConnection(previous, `f${i}`);
    previous = `f${i}`;
  });
  workflow.addNode("FunctionNode", "sum", {
    batch: (ms: Msg[]) => {
      for (const m of ms) sum = (sum + m.v) % 1e9;
      return [];
    },
  });
  workflow.addConnection(previous, "sum");
  const report = await workflow.run();
  if (report.status !== "completed") throw new Error(`sluice run ${report.status}`);
  return sum;
}

async function rate(fn: () => number | Promise<number>, count: number) {
  const started = performance.now();
  const checksum = await fn();
  return { perSecond: count / ((performance.now() - started) / 1000), checksum };
}

/**
 * Peak RSS of a fresh process running 10M messages through sluice (no other
 * contender's heap), with the given V8 flags (the young generation's size is
 * most of the difference).
 */
async function peakRssMb(
  rssCount: number,
  v8Flags: string[],
): Promise<{ peakMb: number; perSecond: number }> {
  const flags = v8Flags.length ? [`--v8-flags=${v8Flags.join(",")}`] : [];
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...flags, new URL(import.meta.url).pathname, "--rss", String(rssCount)],
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error("the RSS child process failed");
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/**
 * Runs the core benchmark: three interleaved rounds, the best rate of each
 * contender (the machine is shared; the best round is the least disturbed).
 *
 * @param count Messages per contender and round.
 * @param rssCount Messages for the peak-RSS run.
 * @returns Ratios and figures.
 */
export async function benchCore(count = 1_000_000, rssCount = 10_000_000): Promise<BenchResult> {
  console.log(`core: 5 stages, ${count.toLocaleString("en-US")} messages, best of 3 rounds`);
  const contenders: [string, () => number | Promise<number>][] = [
    ["plain loop", () => runPlainLoop(count)],
    ["async generators", () => runAsyncGenerators(count)],
    ["node streams", () => runNodeStreams(count)],
    ["sluice actors", () => runSluice(count)],
  ];
  for (const [, fn] of contenders) await fn(); // warm-up
  const best = new Map<string, number>();
  let checksum: number | undefined;
  for (let round = 0; round < 3; round++) {
    for (const [label, fn] of contenders) {
      const r = await rate(fn, count);
      checksum ??= r.checksum;
      if (r.checksum !== checksum) throw new Error(`${label}: checksum differs`);
      best.set(label, Math.max(best.get(label) ?? 0, r.perSecond));
    }
  }
  for (const [label, perSecond] of best) {
    console.log(
      `  ${label.padEnd(18)} ${Math.round(perSecond).toLocaleString("en-US").padStart(12)} msg/s`,
    );
  }
  const rss = await peakRssMb(rssCount, ["--max-semi-space-size=8"]);
  const rssDefault = await peakRssMb(rssCount, []);
  console.log(
    `  sluice ${rssCount / 1e6}M: peak RSS ${rss.peakMb.toFixed(1)} MB with the tasks' V8 flags, ${
      rssDefault.peakMb.toFixed(1)
    } MB with V8 defaults`,
  );
  const sluice = best.get("sluice actors")!;
  const details = {
    sluice_per_s: Math.round(sluice),
    async_generators_per_s: Math.round(best.get("async generators")!),
    node_streams_per_s: Math.round(best.get("node streams")!),
    plain_loop_per_s: Math.round(best.get("plain loop")!),
    vs_async_generators: sluice / best.get("async generators")!,
    vs_node_streams: sluice / best.get("node streams")!,
    share_of_plain_loop: sluice / best.get("plain loop")!,
    peak_rss_mb_10m: rss.peakMb,
    peak_rss_mb_10m_v8_defaults: rssDefault.peakMb,
    rate_10m_per_s: Math.round(rss.perSecond),
  };
  return {
    name: "core",
    ratio: details.vs_async_generators,
    target: ">= 3x async generators, >= 2x Node streams, peak RSS <= 100 MB over 10M",
    pass: details.vs_async_generators >= 3 && details.vs_node_streams >= 2 &&
      details.peak_rss_mb_10m <= 100,
    details,
  };
}

if (import.meta.main && Deno.args[0] === "--rss") {
  const count = Number(Deno.args[1]);
  let peak = Deno.memoryUsage().rss;
  const sampler = setInterval(() => peak = Math.max(peak, Deno.memoryUsage().rss), 20);
  const r = await rate(() => runSluice(count), count);
  clearInterval(sampler);
  peak = Math.max(peak, Deno.memoryUsage().rss);
  console.log(JSON.stringify({ peakMb: peak / 1024 / 1024, perSecond: r.perSecond }));
}
