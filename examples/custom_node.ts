/**
 * A custom node type, written the way the built-in ones are: a self-contained
 * `NodeSpec` with its config schema, ports and a batch handler that builds
 * its output arrays and hands them over whole with `ctx.emitMany` (one call
 * per batch and port, not one `ctx.emit` per message).
 *
 * ```text
 * events (GeneratorNode) -> dedup (DedupNode) -> unique (FunctionNode)
 *                           dedup.duplicates  -> repeats (FunctionNode)
 * ```
 *
 * DedupNode passes the first event of each `key_field` value on `out` and
 * every later one on `duplicates`, remembering the last `capacity` keys.
 *
 * Run it with
 *
 * ```sh
 * deno run --allow-read --allow-env examples/custom_node.ts
 * ```
 *
 * Expect: `unique 100, duplicates 900` (1000 generated events over 100 user
 * ids) and the run report on stderr.
 *
 * @module
 */
import {
  type Actor,
  type ActorContext,
  builtins,
  type NodeSpec,
  Registry,
  type RunReport,
  s,
  type Schema,
  Workflow,
} from "../mod.ts";
import type { Clock, DeadLetterSink, Logger } from "../mod.ts";

/** Config of DedupNode. */
export interface DedupConfig {
  /** The field whose value identifies an event (a top-level key). */
  key_field: string;
  /** How many recent keys are remembered. */
  capacity: number;
}

const dedupConfig: Schema<DedupConfig> = s.object({
  key_field: s.string({ doc: "The field whose value identifies an event." }),
  capacity: s.integer({ min: 1, default: 10_000, doc: "How many recent keys are remembered." }),
}) as Schema<DedupConfig>;

class DedupActor implements Actor<Record<string, unknown>, Record<string, unknown>> {
  readonly #config: DedupConfig;
  /** Keys in insertion order: the oldest is forgotten first. */
  readonly #seen = new Set<unknown>();

  constructor(config: DedupConfig) {
    this.#config = config;
  }

  handle(batch: Record<string, unknown>[], ctx: ActorContext<Record<string, unknown>>): void {
    // Arrays sized for the batch and handed over whole: the runtime passes
    // them on as the next node's batch without copying.
    const unique: Record<string, unknown>[] = new Array(batch.length);
    const repeats: Record<string, unknown>[] = new Array(batch.length);
    let u = 0;
    let r = 0;
    for (const event of batch) {
      const key = event[this.#config.key_field];
      if (this.#seen.has(key)) {
        repeats[r++] = event;
        continue;
      }
      this.#seen.add(key);
      if (this.#seen.size > this.#config.capacity) {
        this.#seen.delete(this.#seen.values().next().value);
      }
      unique[u++] = event;
    }
    unique.length = u;
    repeats.length = r;
    if (u > 0) ctx.emitMany(unique);
    if (r > 0) ctx.emitMany(repeats, "duplicates");
  }
}

/** The DedupNode type: register it next to the built-ins. */
export const DedupNode: NodeSpec<DedupConfig> = {
  type: "DedupNode",
  kind: "processor",
  description:
    "Passes the first event of each key_field value on out and later ones on duplicates.",
  config: dedupConfig,
  outputs: ["out", "duplicates"],
  create: (config) => new DedupActor(config),
};

/** Options of {@linkcode buildDedupWorkflow}. */
export interface DedupExampleOptions {
  /** Receives every unique event. */
  unique: (event: Record<string, unknown>) => void;
  /** Receives every duplicate. */
  duplicates: (event: Record<string, unknown>) => void;
  /** The workflow clock. @default {a real clock} */
  clock?: Clock;
  /** Where failed messages go. */
  deadLetters?: DeadLetterSink;
  /** The workflow's logger. */
  logger?: Logger;
}

/**
 * Builds the example workflow.
 *
 * @param options Where unique events and duplicates go; clock and logging.
 * @returns The workflow, ready to run.
 * @example
 * ```ts ignore
 * import { buildDedupWorkflow } from "./custom_node.ts";
 * let unique = 0;
 * await buildDedupWorkflow({ unique: () => unique++, duplicates: () => {} }).run();
 * ```
 */
export function buildDedupWorkflow(options: DedupExampleOptions): Workflow {
  return new Workflow({
    name: "custom_node",
    registry: new Registry([...builtins, DedupNode]),
    clock: options.clock,
    deadLetters: options.deadLetters,
    logger: options.logger,
  })
    .addNode("GeneratorNode", "events", { message_count: 1000, start_time: 1700000000 })
    .addNode("DedupNode", "dedup", { key_field: "user_id", capacity: 1000 })
    .addNode("FunctionNode", "unique", { fn: options.unique })
    .addNode("FunctionNode", "repeats", { fn: options.duplicates })
    .addConnection("events", "dedup")
    .addConnection("dedup", "unique")
    .addConnection("dedup", "repeats", "duplicates");
}

if (import.meta.main) {
  let unique = 0;
  let duplicates = 0;
  const report: RunReport = await buildDedupWorkflow({
    unique: () => void unique++,
    duplicates: () => void duplicates++,
  }).run();
  console.log(`unique ${unique}, duplicates ${duplicates}`);
  console.error(JSON.stringify(report.nodes.map((n) => [n.id, n.messagesIn, n.messagesOut])));
}
