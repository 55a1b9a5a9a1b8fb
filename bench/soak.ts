/**
 * `deno task soak [minutes] [rate]`: runs a generator through a full pipeline
 * (filter, transform, router, windows, batches) for a long time in real time
 * and reports RSS over time, throughput and p99 latency, so leaks and drift
 * show up. Defaults: 30 minutes at 5,000 events per second.
 */
import { builtins } from "../actors/mod.ts";
import { MemoryDeadLetters } from "../runtime/dead_letter.ts";
import { createLogger } from "../runtime/log.ts";
import { Registry } from "../runtime/registry.ts";
import { Workflow } from "../runtime/workflow.ts";

const minutes = Number(Deno.args[0] ?? 30);
const rate = Number(Deno.args[1] ?? 5000);
if (!(minutes > 0) || !(rate > 0)) {
  console.error("usage: deno task soak [minutes > 0] [events per second > 0]");
  Deno.exit(2);
}

let windows = 0;
let batches = 0;
const deadLetters = new MemoryDeadLetters();
const workflow = new Workflow({
  registry: new Registry(builtins),
  name: "soak",
  logger: createLogger({ level: "warn" }),
  deadLetters,
  defaultMailbox: { capacity: 1000, overflow: "block" },
})
  .addNode("GeneratorNode", "events", { rate_per_second: rate, realtime: true })
  .addNode("EventFilterNode", "filter", {
    filter_conditions: [
      { field: "event_type", operator: "in", values: ["click", "purchase"] },
      { field: "user_id", operator: "exists" },
    ],
  })
  .addNode("EventTransformNode", "transform", {
    transformations: [
      { field: "data.value", operation: "copy", output_field: "value" },
      { field: "user_id", operation: "bucket", buckets: 16, output_field: "bucket" },
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
  .addNode("WindowNode", "per_second", {
    window_size_seconds: 1,
    time_field: "timestamp",
    group_by: ["bucket"],
    value_field: "value",
    aggregations: ["count", "sum", "min", "max", "avg", "p99"],
  })
  .addNode("BatchNode", "batches", { batch_size: 500, batch_timeout: 1 })
  .addNode("FunctionNode", "window_sink", { batch: (rs: unknown[]) => void (windows += rs.length) })
  .addNode("FunctionNode", "batch_sink", { batch: (bs: unknown[]) => void (batches += bs.length) })
  .addConnection("events", "filter")
  .addConnection("filter", "transform")
  .addConnection("transform", "router")
  .addConnection("router", "per_second", "purchases")
  .addConnection("router", "batches", "clicks")
  .addConnection("per_second", "window_sink")
  .addConnection("batches", "batch_sink");

const started = performance.now();
const running = workflow.run({ handleSignals: true });
const samples: { minute: number; rssMb: number; perSecond: number; p99Ms: number }[] = [];
let lastOut = 0;
let lastAt = started;
const interval = Math.min(30_000, minutes * 60_000 / 4);
const timer = setInterval(() => {
  const snap = workflow.snapshot();
  const source = snap.nodes.find((n) => n.id === "events")!;
  const now = performance.now();
  const perSecond = (source.messagesOut - lastOut) * 1000 / (now - lastAt);
  lastOut = source.messagesOut;
  lastAt = now;
  const p99Ms = Math.max(...snap.nodes.map((n) => n.latencyMs.p99));
  const sample = {
    minute: (now - started) / 60_000,
    rssMb: Deno.memoryUsage().rss / 1048576,
    perSecond,
    p99Ms,
  };
  samples.push(sample);
  console.log(
    `${sample.minute.toFixed(1).padStart(5)} min  rss ${sample.rssMb.toFixed(1)} MB  ${
      Math.round(perSecond)
    } ev/s  p99 ${
      p99Ms.toFixed(3)
    } ms/msg  windows ${windows}  batches ${batches}  dead ${deadLetters.letters.length}`,
  );
  if (now - started >= minutes * 60_000) workflow.stop();
}, interval);
const report = await running;
clearInterval(timer);
const rss = samples.map((s) => s.rssMb);
const firstHalf = rss.slice(0, Math.ceil(rss.length / 2));
const secondHalf = rss.slice(Math.ceil(rss.length / 2));
const max = (xs: number[]) => xs.length ? Math.max(...xs) : NaN;
console.log(
  `\nsoak ${report.status} after ${((performance.now() - started) / 60_000).toFixed(1)} min`,
);
console.log(`  events generated   ${report.nodes.find((n) => n.id === "events")!.messagesOut}`);
console.log(`  windows, batches   ${windows}, ${batches}`);
console.log(
  `  dead letters       ${report.deadLetters}; dropped ${
    report.nodes.reduce((a, n) => a + n.dropped, 0)
  }`,
);
console.log(
  `  peak RSS           first half ${max(firstHalf).toFixed(1)} MB, second half ${
    max(secondHalf).toFixed(1)
  } MB`,
);
console.log(
  `  throughput         ${
    Math.round(samples.reduce((a, s) => a + s.perSecond, 0) / Math.max(1, samples.length))
  } ev/s mean`,
);
console.log(
  `  p99 latency        ${max(samples.map((s) => s.p99Ms)).toFixed(3)} ms per message, worst node`,
);
