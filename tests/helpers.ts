/** Shared test fixtures: in-memory sources and sinks, a quiet workflow factory. */
import type { Actor, ActorContext } from "../runtime/actor.ts";
import { VirtualClock } from "../runtime/clock.ts";
import { MemoryDeadLetters } from "../runtime/dead_letter.ts";
import { createLogger } from "../runtime/log.ts";
import { type NodeSpec, Registry } from "../runtime/registry.ts";
import { s } from "../runtime/schema.ts";
import { Workflow, type WorkflowOptions } from "../runtime/workflow.ts";
import { builtins } from "../actors/mod.ts";

/** A source emitting `config.events`, then `"end"`; checkpoints after each chunk when asked. */
export const ListSource: NodeSpec<
  {
    events: unknown[];
    chunk?: number;
    onCheckpoint?: (upTo: number) => void;
    waitFor?: () => Promise<void>;
  }
> = {
  type: "ListSource",
  kind: "source",
  description: "test source",
  config: s.any(),
  create: (config, env) => ({
    async run(ctx: ActorContext) {
      const chunk = config.chunk ?? 100;
      // The position survives restarts, so a restarted source does not repeat itself.
      const start = (env.persistent.get("next") as number | undefined) ?? 0;
      for (let i = start; i < config.events.length; i += chunk) {
        const end = Math.min(i + chunk, config.events.length);
        for (let j = i; j < end; j++) ctx.emit(config.events[j]);
        env.persistent.set("next", end);
        if (config.onCheckpoint) ctx.checkpoint(() => config.onCheckpoint!(end));
        const p = ctx.flush();
        if (p) await p;
        if (ctx.signal.aborted) break;
      }
      // Restarts (one_for_all) abort the wait; a restarted source must not emit again.
      if (config.waitFor) await config.waitFor().catch(() => {});
      return "end" as const;
    },
  }),
};

/** Config of {@linkcode PhasedSource}. */
export interface PhasedSourceConfig {
  phases: unknown[][];
  gate?: (phase: number) => Promise<void>;
}

/** Emits `phases[0]`, then waits for `gate(1)` before `phases[1]`, and so on. */
export const PhasedSource: NodeSpec<PhasedSourceConfig> = {
  type: "PhasedSource",
  kind: "source",
  description: "Test events.",
  config: s.any<PhasedSourceConfig>(),
  create: (config) => ({
    async run(ctx) {
      for (let p = 0; p < config.phases.length; p++) {
        if (p > 0) await config.gate!(p);
        for (const event of config.phases[p]) ctx.emit(event);
        await ctx.flush();
      }
      return "end";
    },
  }),
};

/** A test script run by {@linkcode ScriptSource}. */
export type Script = (ctx: ActorContext) => Promise<void>;

/** A source running a test script, then ending. */
export const ScriptSource: NodeSpec<{ script: Script }> = {
  type: "ScriptSource",
  kind: "source",
  description: "test source",
  config: s.any(),
  create: (config) => ({
    async run(ctx) {
      await config.script(ctx);
      await ctx.flush();
      return "end";
    },
  }),
};

/** A sink collecting into `config.into`. */
export const CollectSink: NodeSpec<{ into: unknown[]; delay?: () => Promise<void> }> = {
  type: "CollectSink",
  kind: "sink",
  description: "test sink",
  config: s.any(),
  create: (config): Actor => ({
    async handle(batch: unknown[]) {
      if (config.delay) await config.delay();
      config.into.push(...batch);
    },
  }),
};

/** The built-ins plus the test fixtures. */
export function testRegistry(...more: NodeSpec[]): Registry {
  return new Registry([...builtins, ListSource, CollectSink, ...more]);
}

/** A workflow on a virtual clock with in-memory dead letters and no log output. */
export function quietWorkflow(
  options: Partial<WorkflowOptions> = {},
): { workflow: Workflow; clock: VirtualClock; deadLetters: MemoryDeadLetters } {
  const clock = (options.clock as VirtualClock | undefined) ?? new VirtualClock(0);
  const deadLetters = (options.deadLetters as MemoryDeadLetters | undefined) ??
    new MemoryDeadLetters();
  const workflow = new Workflow({
    registry: testRegistry(),
    logger: createLogger({ level: "silent" }),
    random: () => 0,
    ...options,
    clock,
    deadLetters,
  });
  return { workflow, clock, deadLetters };
}

/** Events 0..n-1 as `{n}`. */
export function numbered(count: number): { n: number }[] {
  return Array.from({ length: count }, (_, n) => ({ n }));
}
