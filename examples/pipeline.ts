/**
 * A workflow as a TypeScript script, with the typed `Flow` builder: each
 * node's input and output types are checked when you connect them, so a
 * wrong connection is a compile error instead of a runtime surprise.
 *
 * ```text
 * events (GeneratorNode) -> purchases (EventFilterNode) -> sales (FunctionNode)
 *   sales -> per_minute (WindowNode, 60 s tumbling) -> windows (FileSinkNode)
 *   sales -> batches (BatchNode, 250) -> totals (FunctionNode) -> batch_totals (FileSinkNode)
 * ```
 *
 * Run it with
 *
 * ```sh
 * deno run -A examples/pipeline.ts [out-dir]
 * ```
 *
 * (`--allow-read --allow-write --allow-env` is enough: importing sluice's
 * `mod.ts` loads the Kafka client, which reads `NODE_ENV`.)
 *
 * Expect: out-dir (default examples/out) gets `pipeline_windows.ndjson`, one
 * line per minute of event time: {window_start, window_end, key: {}, count:
 * 1000, sum, max} for [1699999980, 1700000040) and [1700000040, 1700000100);
 * and `pipeline_batches.ndjson`, 8 lines {batch_id, count: 250, total}; the
 * report goes to stderr.
 *
 * @module
 */
import {
  type Batch,
  batch,
  builtins,
  eventFilter,
  fileSink,
  generator,
  map,
  window,
} from "../mod.ts";
import type { GeneratedEvent } from "../mod.ts";
import { Flow, Registry } from "../mod.ts";
import type { Clock, DeadLetterSink, Logger } from "../mod.ts";

/** A purchase, as the pipeline sees it. */
export interface Sale {
  /** Who bought. */
  user: string;
  /** How much, in euros. */
  amount: number;
  /** When, epoch seconds. */
  at: number;
}

/** The total of one batch of sales. */
export interface BatchTotal {
  /** 1, 2, ... */
  batch_id: number;
  /** Sales in the batch. */
  count: number;
  /** Their amount. */
  total: number;
}

/** Options of {@linkcode buildPipeline}. */
export interface PipelineOptions {
  /** Directory of the two output files. */
  outDir: string;
  /** The workflow clock. @default {a real clock} */
  clock?: Clock;
  /** Where failed messages go. @default {sluice-dead-letters.ndjson in the current directory} */
  deadLetters?: DeadLetterSink;
  /** The workflow's logger. */
  logger?: Logger;
}

/**
 * Builds the pipeline.
 *
 * @param options Output directory, clock, dead letters.
 * @returns The flow, ready to run.
 * @example
 * ```ts ignore
 * import { buildPipeline } from "./pipeline.ts";
 * const report = await buildPipeline({ outDir: "/tmp" }).run();
 * console.log(report.status);
 * ```
 */
export function buildPipeline(options: PipelineOptions): Flow {
  const flow = new Flow({
    name: "pipeline",
    registry: new Registry(builtins),
    clock: options.clock,
    deadLetters: options.deadLetters,
    logger: options.logger,
  });
  // 6000 events, 50 per second of event time: two minutes, aligned on a minute.
  const events = flow.add(
    "events",
    generator({ message_count: 6000, rate_per_second: 50, start_time: 1699999980 }),
  );
  const purchases = flow.add(
    "purchases",
    eventFilter<GeneratedEvent>([{ field: "event_type", operator: "equals", value: "purchase" }]),
  );
  const sales = flow.add(
    "sales",
    map((e: GeneratedEvent): Sale => ({
      user: e.user_id,
      amount: e.data.value / 100,
      at: e.timestamp,
    })),
  );
  const perMinute = flow.add(
    "per_minute",
    window<Sale>({
      window_size_seconds: 60,
      time_field: "at",
      value_field: "amount",
      aggregations: ["count", "sum", "max"],
    }),
  );
  const batches = flow.add("batches", batch<Sale>({ batch_size: 250, time_field: "at" }));
  const totals = flow.add(
    "totals",
    map((b: Batch<Sale>): BatchTotal => ({
      batch_id: b.batch_id,
      count: b.count,
      total: b.messages.reduce((sum, s) => sum + s.amount, 0),
    })),
  );
  const windows = flow.add(
    "windows",
    fileSink({ path: `${options.outDir}/pipeline_windows.ndjson` }),
  );
  const batchTotals = flow.add(
    "batch_totals",
    fileSink({ path: `${options.outDir}/pipeline_batches.ndjson` }),
  );
  flow
    .connect(events, purchases)
    .connect(purchases, sales)
    .connect(sales, perMinute)
    .connect(perMinute, windows)
    .connect(sales, batches)
    .connect(batches, totals)
    .connect(totals, batchTotals);
  return flow;
}

/** Connections the type checker refuses (never called: `deno check` proves they are errors). */
function _wouldNotCompile(flow: Flow): void {
  const events = flow.add("e", generator({ message_count: 1 }));
  const sales = flow.add("s", map((s: Sale) => s.amount));
  // @ts-expect-error A GeneratedEvent is not a Sale.
  flow.connect(events, sales);
  // @ts-expect-error A source takes no input.
  flow.connect(sales, events);
}

if (import.meta.main) {
  const outDir = Deno.args[0] ?? new URL("./out", import.meta.url).pathname;
  await Deno.mkdir(outDir, { recursive: true });
  const report = await buildPipeline({ outDir }).run({ handleSignals: true });
  console.error(`pipeline ${report.status} in ${report.durationMs.toFixed(0)} ms`);
  for (const n of report.nodes) {
    console.error(`  ${n.id.padEnd(13)} in ${n.messagesIn}  out ${n.messagesOut}`);
  }
  console.error(`output in ${outDir}/pipeline_windows.ndjson and pipeline_batches.ndjson`);
  if (report.status === "failed") Deno.exit(1);
}
