/**
 * `deno task bench [name...]`: runs the benchmarks and prints ratios measured
 * against baselines in the same run (the machine is shared and noisy, so
 * absolute figures mean little).
 */
import type { BenchResult } from "./result.ts";

type Bench = () => Promise<BenchResult>;

const benches: Record<string, () => Promise<Bench>> = {
  core: async () => (await import("./core_bench.ts")).benchCore,
  websocket: async () => (await import("./websocket_bench.ts")).benchWebSocket,
  kafka: async () => (await import("./kafka_bench.ts")).benchKafka,
  clickstream: async () => (await import("./clickstream_bench.ts")).benchClickstream,
};

const wanted = Deno.args.length > 0 ? Deno.args : Object.keys(benches);
const results: BenchResult[] = [];
for (const name of wanted) {
  const load = benches[name];
  if (!load) {
    console.error(`unknown benchmark "${name}"; known: ${Object.keys(benches).join(", ")}`);
    Deno.exit(2);
  }
  try {
    results.push(await (await load())());
  } catch (error) {
    console.error(`benchmark ${name} failed: ${(error as Error).message}`);
    results.push({ name, ratio: NaN, pass: false, details: {} });
  }
}
console.log("\nsummary");
for (const r of results) {
  console.log(
    `  ${r.name.padEnd(12)} ratio ${r.ratio.toFixed(2)}  ${r.pass ? "PASS" : "MISS"}  target: ${
      r.target ?? "-"
    }`,
  );
  for (const [k, v] of Object.entries(r.details)) {
    console.log(`      ${k.padEnd(28)} ${Number.isInteger(v) ? v : v.toFixed(3)}`);
  }
}
