/**
 * GeneratorNode: the reference guide's test-stream generator.
 *
 * @module
 */
import type { Actor, ActorContext } from "../../runtime/actor.ts";
import type { NodeSpec } from "../../runtime/registry.ts";
import { s, type Schema } from "../../runtime/schema.ts";
import type { NodeDef } from "../../runtime/flow.ts";

/** One generated event, shaped as in the reference guide. */
export interface GeneratedEvent {
  /** A random UUID. */
  id: string;
  /** `start_time + sequence / rate_per_second`, epoch seconds. */
  timestamp: number;
  /** 0, 1, 2, ... */
  sequence: number;
  /** Cycles through click, view, purchase. */
  event_type: "click" | "view" | "purchase";
  /** `user_${sequence % 100}`. */
  user_id: string;
  /** Payload. */
  data: { value: number; metadata: { test: boolean } };
}

const EVENT_TYPES = ["click", "view", "purchase"] as const;

/** Config of GeneratorNode. */
export interface GeneratorConfig {
  /** Events to generate; absent means unbounded. */
  message_count?: number;
  /** Events per second of event time. @default {100} */
  rate_per_second: number;
  /** Timestamp of the first event, epoch seconds. @default {now} */
  start_time?: number;
  /** Pace emission in real time. @default {false} */
  realtime: boolean;
}

/** Config schema of GeneratorNode. */
export const generatorConfig: Schema<GeneratorConfig> = s.object({
  message_count: s.integer({
    min: 0,
    optional: true,
    doc: "Events to generate; absent means unbounded.",
  }),
  rate_per_second: s.number({
    greaterThan: 0,
    default: 100,
    doc: "Events per second of event time (and of wall time with realtime).",
  }),
  start_time: s.number({
    optional: true,
    doc: "Timestamp of the first event, epoch seconds. Default: now.",
  }),
  realtime: s.boolean({
    default: false,
    doc: "Pace emission at rate_per_second on the clock instead of as fast as downstream accepts.",
  }),
});

/**
 * Builds the event number `sequence`.
 *
 * @param sequence The index.
 * @param startTimeSeconds Timestamp of event 0, epoch seconds.
 * @param ratePerSecond Events per second.
 * @returns The event.
 * @example One generated event
 * ```ts
 * import { generateEvent } from "./generator.ts";
 * const e = generateEvent(4, 1700000000, 2);
 * console.assert(e.timestamp === 1700000002 && e.event_type === "view" && e.user_id === "user_4");
 * ```
 */
export function generateEvent(
  sequence: number,
  startTimeSeconds: number,
  ratePerSecond: number,
): GeneratedEvent {
  return {
    id: crypto.randomUUID(),
    timestamp: startTimeSeconds + sequence / ratePerSecond,
    sequence,
    event_type: EVENT_TYPES[sequence % 3],
    user_id: `user_${sequence % 100}`,
    data: { value: sequence * 10, metadata: { test: true } },
  };
}

const CHUNK = 1024;

class GeneratorActor implements Actor<never, GeneratedEvent> {
  #config: GeneratorConfig;
  #state: Map<string, unknown>;
  constructor(config: GeneratorConfig, state: Map<string, unknown>) {
    this.#config = config;
    this.#state = state;
  }
  async run(ctx: ActorContext<GeneratedEvent>): Promise<"end"> {
    const { message_count: count, rate_per_second: rate, realtime } = this.#config;
    // Position and start survive restarts, so a restarted generator does not repeat itself.
    const start = (this.#state.get("start") as number | undefined) ??
      this.#config.start_time ?? ctx.clock.now() / 1000;
    this.#state.set("start", start);
    let next = (this.#state.get("next") as number | undefined) ?? 0;
    const paceFrom = ctx.clock.monotonic() - (next / rate) * 1000;
    const limit = count ?? Infinity;
    while (next < limit && !ctx.signal.aborted) {
      const end = Math.min(limit, next + (realtime ? Math.max(1, Math.ceil(rate / 100)) : CHUNK));
      const chunk: GeneratedEvent[] = new Array(end - next);
      for (let k = 0; next < end; next++) chunk[k++] = generateEvent(next, start, rate);
      ctx.emitMany(chunk);
      this.#state.set("next", next);
      const pending = ctx.flush();
      if (pending) await pending;
      if (realtime && next < limit) {
        const due = paceFrom + (next / rate) * 1000 - ctx.clock.monotonic();
        if (due > 0) {
          try {
            await ctx.clock.sleep(due, { signal: ctx.signal });
          } catch {
            break;
          }
        }
      }
    }
    return "end";
  }
}

/** The GeneratorNode type. */
export const GeneratorNode: NodeSpec<GeneratorConfig> = {
  type: "GeneratorNode",
  kind: "source",
  description:
    "Generates the reference guide's test events (id, timestamp, sequence, event_type, user_id, data) at a given rate of event time, optionally paced in real time.",
  config: generatorConfig,
  create: (config, env) => new GeneratorActor(config, env.persistent),
};

/**
 * A typed GeneratorNode for the fluent builder.
 *
 * @param config The node's config.
 * @returns A node definition emitting {@linkcode GeneratedEvent}s.
 * @example A generator for the fluent builder
 * ```ts
 * import { generator } from "./generator.ts";
 * const def = generator({ message_count: 10 });
 * console.assert(def.type === "GeneratorNode");
 * ```
 */
export function generator(
  config: Partial<GeneratorConfig> = {},
): NodeDef<never, GeneratedEvent> {
  return { type: "GeneratorNode", config };
}
