/**
 * Clickstream benchmark: 1M generated events through filter -> transform ->
 * router -> one tumbling 1-second event-time window per route, in sluice
 * (built-in nodes, all from config, block mailboxes) and, with hand-written
 * equivalents of the same stages, in a plain loop, an RxJS pipeline and a
 * Node object-mode stream graph. One run, best of 3 interleaved rounds, and
 * every contender must produce the same window records (checksum).
 *
 * `deno run -A bench/clickstream_bench.ts --profile [contender] [count]` runs
 * one contender only (default sluice), for `--cpu-prof`.
 */
import { Readable, Transform, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { filter, groupBy, map, mergeMap, Observable, type OperatorFunction, range } from "rxjs";
import { builtins } from "../actors/mod.ts";
import { type GeneratedEvent, generateEvent } from "../actors/sources/generator.ts";
import { MemoryDeadLetters } from "../runtime/dead_letter.ts";
import { createLogger } from "../runtime/log.ts";
import { Registry } from "../runtime/registry.ts";
import { Workflow } from "../runtime/workflow.ts";
import type { BenchResult } from "./result.ts";

/** Epoch seconds of event 0. */
const START = 1_700_000_000;
/** Events per second of event time: 1M events make 1,000 windows per route. */
const RATE = 1000;
const BUCKETS = 16;
const PORTS = ["purchases", "clicks"] as const;

// ---------------------------------------------------------------------------
// The hand-written stages, shared by the loop, RxJS and Node streams.

interface Clean extends GeneratedEvent {
  value: number;
  bucket: number;
}

interface Enriched extends Clean {
  user_type?: string;
}

/** FNV-1a over the UTF-8 bytes; user ids are ASCII, so one byte per char. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** filter: event_type in [click, purchase] and user_id exists. */
function keep(e: GeneratedEvent): boolean {
  return (e.event_type === "click" || e.event_type === "purchase") && e.user_id !== undefined;
}

/** transform: flat value from data.value, bucket from user_id (copy, never mutate). */
function transform(e: GeneratedEvent): Clean {
  const out = { ...e } as Clean;
  const v = e.data?.value;
  if (v !== undefined) out.value = v;
  if (e.user_id !== undefined && e.user_id !== null) {
    out.bucket = fnv1a(String(e.user_id)) % BUCKETS;
  }
  return out;
}

/** router, enrichment: user_type when user_id exists (copy, never mutate). */
function enrich(e: Clean): Enriched {
  return e.user_id !== undefined ? { ...e, user_type: "registered" } : e;
}

/** router, routing: the index in PORTS, or -1 (unmatched). */
function portOf(e: Enriched): number {
  return e.event_type === "purchase" ? 0 : e.event_type === "click" ? 1 : -1;
}

/** One window record, as the checksum sees it. */
interface WindowLine {
  window_start: number;
  window_end: number;
  count: number;
  sum: number;
  min: number | null;
  max: number | null;
  avg: number | null;
}

interface OpenWindow {
  start: number;
  count: number;
  sum: number;
  numeric: number;
  min: number;
  max: number;
}

/**
 * A tumbling event-time window with a watermark (grace 0): an event whose
 * window is already closed is dropped as late; windows close when the
 * watermark passes their end.
 */
class HandWindow {
  #open = new Map<number, OpenWindow>();
  #current: OpenWindow | undefined;
  #watermark = -Infinity;
  readonly #sizeMs: number;
  constructor(sizeMs: number) {
    this.#sizeMs = sizeMs;
  }

  /** Adds an event; returns the windows it closed (usually none). */
  add(e: Enriched, out: WindowLine[]): void {
    const ms = e.timestamp * 1000;
    const size = this.#sizeMs;
    const start = Math.floor(ms / size) * size;
    if (start + size <= this.#watermark) return;
    let w = this.#current;
    if (w === undefined || w.start !== start) {
      w = this.#open.get(start);
      if (w === undefined) {
        w = { start, count: 0, sum: 0, numeric: 0, min: Infinity, max: -Infinity };
        this.#open.set(start, w);
      }
      this.#current = w;
    }
    w.count++;
    const v = e.value;
    if (typeof v === "number" && Number.isFinite(v)) {
      w.numeric++;
      w.sum += v;
      if (v < w.min) w.min = v;
      if (v > w.max) w.max = v;
    }
    if (ms > this.#watermark) {
      this.#watermark = ms;
      if (this.#open.size > 1 || start + size <= ms) this.#close(out, false);
    }
  }

  /** Emits every window whose end the watermark passed (all of them at the end). */
  #close(out: WindowLine[], all: boolean): void {
    const closing = [...this.#open.values()]
      .filter((w) => all || w.start + this.#sizeMs <= this.#watermark)
      .sort((a, b) => a.start - b.start);
    for (const w of closing) {
      this.#open.delete(w.start);
      if (this.#current === w) this.#current = undefined;
      const some = w.numeric > 0;
      out.push({
        window_start: w.start / 1000,
        window_end: (w.start + this.#sizeMs) / 1000,
        count: w.count,
        sum: w.sum,
        min: some ? w.min : null,
        max: some ? w.max : null,
        avg: some ? w.sum / w.numeric : null,
      });
    }
  }

  flush(out: WindowLine[]): void {
    this.#close(out, true);
  }
}

// ---------------------------------------------------------------------------
// Checksums

class Records {
  readonly lines: string[] = [];
  add(port: string, r: WindowLine): void {
    this.lines.push(
      `${port}|${r.window_start}|${r.window_end}|${r.count}|${r.sum}|${r.min}|${r.max}|${r.avg}`,
    );
  }
  /** FNV-1a of the sorted lines, and how many there are. */
  checksum(): string {
    return `${this.lines.length}:${fnv1a(this.lines.sort().join("\n")).toString(16)}`;
  }
}

// ---------------------------------------------------------------------------
// Contenders

function runLoop(count: number): string {
  const records = new Records();
  const windows = PORTS.map(() => new HandWindow(1000));
  const out: WindowLine[] = [];
  for (let i = 0; i < count; i++) {
    const e = generateEvent(i, START, RATE);
    if (!keep(e)) continue;
    const r = enrich(transform(e));
    const port = portOf(r);
    if (port < 0) continue;
    windows[port].add(r, out);
    if (out.length > 0) {
      for (const line of out) records.add(PORTS[port], line);
      out.length = 0;
    }
  }
  windows.forEach((w, port) => {
    w.flush(out);
    for (const line of out) records.add(PORTS[port], line);
    out.length = 0;
  });
  return records.checksum();
}

/** A custom RxJS operator: the hand-written window over one route. */
function tumbling(): OperatorFunction<Enriched, WindowLine> {
  return (source) =>
    new Observable<WindowLine>((subscriber) => {
      const window = new HandWindow(1000);
      const out: WindowLine[] = [];
      const emit = () => {
        for (const line of out) subscriber.next(line);
        out.length = 0;
      };
      return source.subscribe({
        next(e) {
          window.add(e, out);
          if (out.length > 0) emit();
        },
        error(error) {
          subscriber.error(error);
        },
        complete() {
          window.flush(out);
          emit();
          subscriber.complete();
        },
      });
    });
}

function runRxjs(count: number): Promise<string> {
  const records = new Records();
  return new Promise((resolve, reject) => {
    range(0, count).pipe(
      map((i) => generateEvent(i, START, RATE)),
      filter(keep),
      map(transform),
      map(enrich),
      groupBy(portOf),
      mergeMap((group) =>
        group.key < 0 ? [] : group.pipe(
          tumbling(),
          map((line) => ({ port: PORTS[group.key], line })),
        )
      ),
    ).subscribe({
      next: ({ port, line }) => records.add(port, line),
      error: reject,
      complete: () => resolve(records.checksum()),
    });
  });
}

async function runNodeStreams(count: number): Promise<string> {
  const records = new Records();
  const hwm = 1024;
  let i = 0;
  const source = new Readable({
    objectMode: true,
    highWaterMark: hwm,
    read() {
      while (i < count) {
        if (!this.push(generateEvent(i++, START, RATE))) return;
      }
      this.push(null);
    },
  });
  const filterStage = new Transform({
    objectMode: true,
    highWaterMark: hwm,
    transform(e: GeneratedEvent, _enc, cb) {
      if (keep(e)) cb(null, e);
      else cb();
    },
  });
  const transformStage = new Transform({
    objectMode: true,
    highWaterMark: hwm,
    transform(e: GeneratedEvent, _enc, cb) {
      cb(null, transform(e));
    },
  });
  const windowStages = PORTS.map(() => {
    const window = new HandWindow(1000);
    const out: WindowLine[] = [];
    return new Transform({
      objectMode: true,
      highWaterMark: hwm,
      transform(e: Enriched, _enc, cb) {
        window.add(e, out);
        for (const line of out) this.push(line);
        out.length = 0;
        cb();
      },
      flush(cb) {
        window.flush(out);
        for (const line of out) this.push(line);
        out.length = 0;
        cb();
      },
    });
  });
  const router = new Writable({
    objectMode: true,
    highWaterMark: hwm,
    write(e: Clean, _enc, cb) {
      const r = enrich(e);
      const port = portOf(r);
      if (port < 0) return cb();
      if (windowStages[port].write(r)) cb();
      else windowStages[port].once("drain", () => cb());
    },
    final(cb) {
      for (const w of windowStages) w.end();
      cb();
    },
  });
  const sinks = PORTS.map((port) =>
    new Writable({
      objectMode: true,
      highWaterMark: hwm,
      write(line: WindowLine, _enc, cb) {
        records.add(port, line);
        cb();
      },
    })
  );
  await Promise.all([
    pipeline(source, filterStage, transformStage, router),
    ...windowStages.map((w, k) => pipeline(w, sinks[k])),
  ]);
  return records.checksum();
}

/** The sluice workflow, every stage a built-in node configured as in a YAML file. */
async function runSluice(count: number): Promise<string> {
  const records = new Records();
  const workflow = new Workflow({
    registry: new Registry(builtins),
    logger: createLogger({ level: "silent" }),
    deadLetters: new MemoryDeadLetters(),
    defaultMailbox: { capacity: 1024, overflow: "block" },
  });
  workflow
    .addNode("GeneratorNode", "events", {
      message_count: count,
      rate_per_second: RATE,
      start_time: START,
    })
    .addNode("EventFilterNode", "filter", {
      filter_conditions: [
        { field: "event_type", operator: "in", values: ["click", "purchase"] },
        { field: "user_id", operator: "exists" },
      ],
      filter_logic: "and",
    })
    .addNode("EventTransformNode", "transform", {
      transformations: [
        { field: "data.value", operation: "copy", output_field: "value" },
        { field: "user_id", operation: "bucket", buckets: BUCKETS, output_field: "bucket" },
      ],
    })
    .addNode("RouterNode", "router", {
      enrichment_rules: [{
        condition: { field: "user_id", operator: "exists" },
        enrichment: { user_type: "registered" },
      }],
      routing_rules: [
        {
          condition: { field: "event_type", operator: "equals", value: "purchase" },
          destination: "purchases",
        },
        {
          condition: { field: "event_type", operator: "equals", value: "click" },
          destination: "clicks",
        },
      ],
    })
    .addConnection("events", "filter")
    .addConnection("filter", "transform")
    .addConnection("transform", "router");
  for (const port of PORTS) {
    workflow
      .addNode("WindowNode", `${port}_window`, {
        window_type: "tumbling",
        window_size_seconds: 1,
        time_field: "timestamp",
        value_field: "value",
        aggregations: ["count", "sum", "min", "max", "avg"],
      })
      .addNode("FunctionNode", `${port}_sink`, {
        fn: (r: WindowLine) => void records.add(port, r),
      })
      .addConnection("router", `${port}_window`, port)
      .addConnection(`${port}_window`, `${port}_sink`);
  }
  const report = await workflow.run();
  if (report.status !== "completed") throw new Error(`sluice run ${report.status}`);
  if (report.deadLetters > 0) throw new Error(`sluice dead-lettered ${report.deadLetters} events`);
  return records.checksum();
}

const CONTENDERS: Record<string, (count: number) => string | Promise<string>> = {
  "plain loop": runLoop,
  "rxjs": runRxjs,
  "node streams": runNodeStreams,
  "sluice": runSluice,
};

/**
 * Runs the clickstream benchmark: a warm-up, then three interleaved rounds;
 * the best rate of each contender counts (the machine is shared; the best
 * round is the least disturbed).
 *
 * @param count Events per contender and round.
 * @returns The ratio sluice / plain loop, and every figure.
 */
export async function benchClickstream(count = 1_000_000): Promise<BenchResult> {
  console.log(
    `clickstream: ${count.toLocaleString("en-US")} events, filter -> transform -> router -> ` +
      `2 tumbling windows, best of 3 rounds`,
  );
  const entries = Object.entries(CONTENDERS);
  let checksum: string | undefined;
  const check = (label: string, sum: string) => {
    checksum ??= sum;
    if (sum !== checksum) {
      throw new Error(`${label}: checksum ${sum} differs from ${checksum}`);
    }
  };
  for (const [label, fn] of entries) check(label, await fn(count)); // warm-up
  const best = new Map<string, number>();
  for (let round = 0; round < 3; round++) {
    for (const [label, fn] of entries) {
      const started = performance.now();
      const sum = await fn(count);
      const perSecond = count / ((performance.now() - started) / 1000);
      check(label, sum);
      best.set(label, Math.max(best.get(label) ?? 0, perSecond));
    }
  }
  for (const [label, perSecond] of best) {
    console.log(
      `  ${label.padEnd(14)} ${
        Math.round(perSecond).toLocaleString("en-US").padStart(12)
      } events/s`,
    );
  }
  const loop = best.get("plain loop")!;
  const sluice = best.get("sluice")!;
  const details = {
    sluice_per_s: Math.round(sluice),
    plain_loop_per_s: Math.round(loop),
    rxjs_per_s: Math.round(best.get("rxjs")!),
    node_streams_per_s: Math.round(best.get("node streams")!),
    sluice_vs_loop: sluice / loop,
    rxjs_vs_loop: best.get("rxjs")! / loop,
    node_streams_vs_loop: best.get("node streams")! / loop,
    window_records: Number(checksum!.split(":")[0]),
  };
  return {
    name: "clickstream",
    ratio: details.sluice_vs_loop,
    target: ">= 0.75 of the plain loop",
    pass: details.sluice_vs_loop >= 0.75,
    details,
  };
}

if (import.meta.main && Deno.args[0] === "--profile") {
  const label = Deno.args[1] ?? "sluice";
  const count = Number(Deno.args[2] ?? 1_000_000);
  const fn = CONTENDERS[label];
  if (!fn) throw new TypeError(`unknown contender "${label}"`);
  for (let k = 0; k < 4; k++) {
    const started = performance.now();
    const sum = await fn(count);
    console.log(
      `${label}: ${Math.round(count / ((performance.now() - started) / 1000))} events/s (${sum})`,
    );
  }
}
