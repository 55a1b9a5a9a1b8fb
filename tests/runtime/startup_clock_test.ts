/**
 * A virtual clock does not move while a node is still starting (loading a
 * module, connecting): start-up does real I/O that shows no progress until it
 * is done, and time passing meanwhile made results depend on the machine's
 * speed (a health report with nothing processed yet).
 */
import assert from "node:assert/strict";
import type { Actor } from "../../runtime/actor.ts";
import type { NodeSpec } from "../../runtime/registry.ts";
import { s } from "../../runtime/schema.ts";
import { quietWorkflow, testRegistry } from "../helpers.ts";

/** Real time, as a module import or a connection takes it (not on the virtual clock). */
function realDelay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

interface SlowStartConfig {
  startMs: number;
  startedAt: number[];
  seen: { at: number; n: unknown }[];
}

/** A sink whose start takes real time; it records the virtual time of its start and messages. */
const SlowStartSink: NodeSpec<SlowStartConfig> = {
  type: "SlowStartSink",
  kind: "sink",
  description: "test sink with a slow start",
  config: s.any(),
  create: (config, env): Actor => ({
    async start() {
      await realDelay(config.startMs);
      config.startedAt.push(env.clock.now());
    },
    handle(batch) {
      for (const m of batch) config.seen.push({ at: env.clock.now(), n: m });
    },
  }),
};

interface TickConfig {
  count: number;
  everyMs: number;
}

/** A source emitting one number every `everyMs` of the (virtual) clock. */
const TickSource: NodeSpec<TickConfig> = {
  type: "TickSource",
  kind: "source",
  description: "test source paced on the clock",
  config: s.any(),
  create: (config): Actor => ({
    async run(ctx) {
      for (let i = 0; i < config.count; i++) {
        await ctx.clock.sleep(config.everyMs, { signal: ctx.signal });
        ctx.emit(i);
        const pending = ctx.flush();
        if (pending) await pending;
      }
      return "end" as const;
    },
  }),
};

Deno.test("A virtual clock waits for nodes that are still starting", async () => {
  const { workflow, clock } = quietWorkflow({ registry: testRegistry(SlowStartSink, TickSource) });
  const startedAt: number[] = [];
  const seen: { at: number; n: unknown }[] = [];
  workflow
    .addNode("TickSource", "ticks", { count: 5, everyMs: 10 })
    .addNode("SlowStartSink", "sink", { startMs: 150, startedAt, seen })
    .addConnection("ticks", "sink");
  const running = workflow.run();
  await clock.advance(1000);
  const report = await running;
  assert.equal(report.status, "completed");
  assert.deepEqual(startedAt, [0], "no virtual time passed while the sink was starting");
  assert.deepEqual(seen, [10, 20, 30, 40, 50].map((at, n) => ({ at, n })));
});
