/**
 * EventFilterNode: the reference guide's `filter_conditions` +
 * `filter_logic`. Events that pass go to `out`, the others to `rejected`.
 *
 * Conditions use the grammar of `runtime/conditions.ts`: leaves
 * `{field, operator, value | values}` and groups `{all: [...]}`,
 * `{any: [...]}`, `{not: ...}`, nested to any depth. They are compiled once,
 * when the workflow is validated (a bad regex or an unknown operator is a
 * config error at load time, with its path, such as
 * `nodes[1].config.filter_conditions[2].operator`) and again when the node
 * starts. Relative times (`now-1h`) are measured on the workflow's clock, so
 * a `VirtualClock` drives them in tests; the clock is read once per batch
 * (a batch is handled in one go), not once per event.
 *
 * The `rejected` port: every event that fails the conditions is emitted
 * there. When nothing is connected to it, the events are delivered nowhere,
 * but the runtime still counts them, so `outByPort.rejected` in the node's
 * metrics is always the number of events filtered out (and `outByPort.out`
 * the number that passed).
 *
 * @module
 */
import type { Actor, ActorContext } from "../../runtime/actor.ts";
import type { Clock } from "../../runtime/clock.ts";
import {
  compileConditionList,
  type CompiledCondition,
  type Condition,
  type FilterLogic,
} from "../../runtime/conditions.ts";
import { ConfigError, type ConfigIssue } from "../../runtime/errors.ts";
import type { NodeDef } from "../../runtime/flow.ts";
import type { NodeSpec } from "../../runtime/registry.ts";
import { s, type Schema } from "../../runtime/schema.ts";

/** Config of EventFilterNode. */
export interface EventFilterConfig {
  /** The conditions: leaves and nested `all`/`any`/`not` groups. */
  filter_conditions: Condition[];
  /** `and`: every condition must hold (an empty list passes everything); `or`: at least one (an empty list passes nothing). */
  filter_logic: FilterLogic;
}

const eventFilterConfig: Schema<EventFilterConfig> = s.object({
  filter_conditions: s.array(s.any<Condition>({ type: "condition" }), {
    doc:
      "Conditions {field, operator, value | values} or groups {all: [...]}, {any: [...]}, {not: ...}. Operators: equals, not_equals, in, not_in, contains, exists, not_exists, greater_than, greater_or_equal, less_than, less_or_equal, matches. Comparison values may be relative times such as now-1h.",
  }),
  filter_logic: s.enum(["and", "or"] as const, {
    default: "and",
    doc: "and: every condition must hold; or: at least one.",
  }),
}) as Schema<EventFilterConfig>;

/** The clock reading shared by a node's compiled conditions, taken once per batch. */
interface BatchTime {
  ms: number;
}

class EventFilterActor implements Actor {
  readonly #keep: CompiledCondition;
  readonly #time: BatchTime;
  readonly #clock: Clock;

  constructor(keep: CompiledCondition, time: BatchTime, clock: Clock) {
    this.#keep = keep;
    this.#time = time;
    this.#clock = clock;
  }

  handle(batch: unknown[], ctx: ActorContext): void {
    // One clock reading per batch: a batch is handled in one go, and reading
    // the clock per event would cost more than the conditions themselves.
    this.#time.ms = this.#clock.now();
    const keep = this.#keep;
    // Unconnected, `rejected` delivers nowhere: the events are only counted,
    // here, which spares the runtime queueing each one for nothing.
    const toRejected = ctx.connectedPorts.has("rejected");
    const n = batch.length;
    // Preallocated outputs, handed over whole (see ActorContext.emitMany).
    const passed: unknown[] = new Array(n);
    const failed: unknown[] = toRejected ? new Array(n) : [];
    let kept = 0;
    let rejected = 0;
    let i = 0;
    // One `try` around the loop, re-entered after a failure: the loop body
    // itself stays free of exception handling.
    while (i < n) {
      try {
        for (; i < n; i++) {
          const event = batch[i];
          if (keep(event)) passed[kept++] = event;
          else if (toRejected) failed[rejected++] = event;
          else rejected++;
        }
      } catch (error) {
        // Compiled conditions do not throw on JSON-like events; an exotic
        // value (a throwing getter, a proxy) must not take the batch down.
        ctx.deadLetter(batch[i++], error);
      }
    }
    if (kept > 0) {
      passed.length = kept;
      ctx.emitMany(passed);
    }
    if (toRejected) {
      if (rejected > 0) {
        failed.length = rejected;
        ctx.emitMany(failed, "rejected");
      }
      return;
    }
    if (rejected > 0) {
      // The counters the runtime keeps for emitted messages (see the module docs).
      const metrics = ctx.metrics;
      metrics.messagesOut += rejected;
      metrics.outByPort.set("rejected", (metrics.outByPort.get("rejected") ?? 0) + rejected);
    }
  }
}

function compile(
  config: EventFilterConfig,
  path: string,
  issues: ConfigIssue[],
  now?: () => number,
): CompiledCondition {
  return compileConditionList(
    config.filter_conditions,
    config.filter_logic,
    `${path}filter_conditions`,
    issues,
    { now, logicPath: `${path}filter_logic` },
  );
}

/** The EventFilterNode type. */
export const EventFilterNode: NodeSpec<EventFilterConfig> = {
  type: "EventFilterNode",
  kind: "processor",
  description:
    "Keeps the events that match filter_conditions (combined with filter_logic: and | or; nested all/any/not groups; relative times such as now-1h on the workflow clock) on out; the others go to rejected (counted in outByPort.rejected even when unconnected).",
  config: eventFilterConfig,
  outputs: ["out", "rejected"],
  validate(config, path, issues) {
    compile(config, `${path}.`, issues);
  },
  create(config, env) {
    const issues: ConfigIssue[] = [];
    const time: BatchTime = { ms: env.clock.now() };
    const keep = compile(config, "", issues, () => time.ms);
    // Validation already reported these; only a config that skipped it gets here.
    if (issues.length > 0) throw new ConfigError(issues);
    return new EventFilterActor(keep, time, env.clock);
  },
};

/**
 * A typed EventFilterNode for the fluent builder: it passes events through
 * unchanged, so its input and output types are the same. Connect
 * `ref.output("rejected")` for the events that fail.
 *
 * @typeParam T The event type.
 * @param filterConditions The conditions.
 * @param filterLogic How they combine. @default {"and"}
 * @returns A node definition.
 * @example
 * ```ts
 * import { eventFilter } from "./filter.ts";
 * const def = eventFilter<{ event_type: string }>([
 *   { field: "event_type", operator: "in", values: ["click", "purchase"] },
 * ]);
 * console.assert(def.type === "EventFilterNode");
 * ```
 */
export function eventFilter<T = Record<string, unknown>>(
  filterConditions: Condition[],
  filterLogic: FilterLogic = "and",
): NodeDef<T, T> {
  return {
    type: "EventFilterNode",
    config: { filter_conditions: filterConditions, filter_logic: filterLogic },
  };
}
