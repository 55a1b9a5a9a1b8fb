/**
 * RouterNode: the reference guide's custom event processor. Every event is
 *
 * 1. **enriched**: for each of `enrichment_rules`, in order, whose
 *    `condition` matches the event *as received*, the fields of its
 *    `enrichment` map are written (keys are dot paths; string values are
 *    templates: `${now}` is the clock time in epoch seconds, `${now_ms}`,
 *    `${now_iso}`, and `${field.path}` reads the event as enriched so far;
 *    see `transform.ts`). Later rules overwrite earlier ones;
 * 2. **routed**: every rule of `routing_rules` whose `condition` matches the
 *    enriched event sends it to the output port named by its `destination`
 *    (once per destination, even when several rules name it); an event that
 *    matches no rule goes to `unmatched`;
 * 3. **handled**: the transformations of `handlers[<event type>]` (the
 *    `EventTransformNode` operations, the type read from `event_type_field`,
 *    default `event_type`; only string types select a handler) are applied
 *    to the enriched event, and the result is what the destinations receive.
 *
 * A rule without `condition` matches every event. Conditions use the filter
 * grammar (`runtime/conditions.ts`), relative times on the workflow clock.
 *
 * The output ports are the distinct destinations in rule order, then
 * `unmatched`. `unmatched` is reserved; `out` may be used as a destination
 * like any other name. The guide's `routing_stats` (events per destination)
 * are the runtime's per-port counters: `outByPort` in the node's metrics.
 *
 * An event for which a handler transformation or an enrichment write fails
 * goes to the dead letters with the reason
 * (`handlers.click[0] (to_number) on field "amount": …`) and is not routed;
 * the stream goes on. Inputs are never mutated: enrichment and handlers
 * write to a copy, and every destination receives the same copy (messages
 * are immutable downstream).
 *
 * @module
 */
import type { Actor, ActorContext } from "../../runtime/actor.ts";
import type { Clock } from "../../runtime/clock.ts";
import { CodeBuilder } from "../../runtime/codegen.ts";
import {
  compileCondition,
  type CompiledCondition,
  type Condition,
  conditionCode,
} from "../../runtime/conditions.ts";
import { ConfigError, type ConfigIssue, errorMessage } from "../../runtime/errors.ts";
import type { NodeDef } from "../../runtime/flow.ts";
import { compilePath, type PathGetter } from "../../runtime/path.ts";
import type { NodeSpec } from "../../runtime/registry.ts";
import { join, s, type Schema } from "../../runtime/schema.ts";
import {
  compileTemplate,
  compileTransformations,
  compileWritePath,
  deadLetterContext,
  EventDraft,
  type Template,
  topLevelWriter,
  type Transformation,
  TransformError,
  type TransformPipeline,
} from "./transform.ts";

/** The port of events that match no routing rule. */
export const UNMATCHED_PORT = "unmatched";

/** Fields written to events that match `condition`. */
export interface EnrichmentRule {
  /** When to enrich (filter grammar). @default {every event} */
  condition?: Condition;
  /** Field (dot path) → value; string values are templates (`${now}`, `${field.path}`). */
  enrichment: Record<string, unknown>;
}

/** Sends events that match `condition` to the output port `destination`. */
export interface RoutingRule {
  /** When to route (filter grammar). @default {every event} */
  condition?: Condition;
  /** The output port. */
  destination: string;
}

/** Config of RouterNode. */
export interface RouterConfig {
  /** Enrichment rules, applied in order. */
  enrichment_rules: EnrichmentRule[];
  /** Routing rules; every matching rule's destination receives the event. */
  routing_rules: RoutingRule[];
  /** Transformations per event type, applied after enrichment. */
  handlers: Record<string, Transformation[]>;
  /** Where the event type is read. @default {"event_type"} */
  event_type_field: string;
}

const routerConfig: Schema<RouterConfig> = s.object({
  enrichment_rules: s.array(
    s.object({
      condition: s.any<Condition>({
        optional: true,
        type: "condition",
        doc: "Filter-grammar condition on the event as received; absent: every event.",
      }),
      enrichment: s.record(s.any(), {
        doc: "Field (dot path) -> value; strings may use ${now} and ${field.path}.",
      }),
    }),
    { default: [], doc: "Fields to add to matching events, applied in order." },
  ),
  routing_rules: s.array(
    s.object({
      condition: s.any<Condition>({
        optional: true,
        type: "condition",
        doc: "Filter-grammar condition on the enriched event; absent: every event.",
      }),
      destination: s.string({ doc: "The output port that receives matching events." }),
    }),
    { default: [], doc: "Every matching rule's destination receives the event." },
  ),
  handlers: s.record(s.array(s.any<Transformation>({ type: "transformation" })), {
    default: {},
    doc: "Per event type, EventTransformNode transformations applied after enrichment.",
  }),
  event_type_field: s.string({
    default: "event_type",
    doc: "Dot path of the event type that selects a handler.",
  }),
}) as Schema<RouterConfig>;

const PORT_NAME = /^[A-Za-z0-9_.-]+$/;

/**
 * The output ports of a router config: the distinct destinations in rule
 * order, then `unmatched`.
 *
 * @param config The router config.
 * @returns The port names.
 * @example
 * ```ts
 * import { routerPorts } from "./router.ts";
 * const ports = routerPorts({
 *   routing_rules: [{ destination: "revenue" }, { destination: "engagement" }, { destination: "revenue" }],
 * });
 * console.assert(ports.join() === "revenue,engagement,unmatched");
 * ```
 */
export function routerPorts(config: Pick<RouterConfig, "routing_rules">): string[] {
  const ports: string[] = [];
  for (const rule of config.routing_rules ?? []) {
    const destination = rule?.destination;
    if (
      typeof destination === "string" && destination !== UNMATCHED_PORT &&
      !ports.includes(destination)
    ) {
      ports.push(destination);
    }
  }
  ports.push(UNMATCHED_PORT);
  return ports;
}

interface Enrichment {
  step: string;
  condition: CompiledCondition | undefined;
  keys: readonly string[];
  paths: (readonly string[])[];
  values: Template[];
}

interface Route {
  condition: CompiledCondition | undefined;
  port: number;
}

interface CompiledRouter {
  enrichments: Enrichment[];
  routes: Route[];
  ports: string[];
  handlers: Map<string, TransformPipeline>;
  anyAsync: boolean;
  eventType: PathGetter;
}

function compileRouter(
  config: RouterConfig,
  prefix: string,
  issues: ConfigIssue[],
  now?: () => number,
): CompiledRouter {
  const options = { now };
  const at = (key: string) => prefix === "" ? key : `${prefix}.${key}`;

  const enrichments: Enrichment[] = config.enrichment_rules.map((rule, i) => {
    const path = at(`enrichment_rules[${i}]`);
    const condition = rule.condition === undefined
      ? undefined
      : compileCondition(rule.condition, `${path}.condition`, issues, options);
    const keys: string[] = [];
    const paths: (readonly string[])[] = [];
    const values: Template[] = [];
    for (const [key, value] of Object.entries(rule.enrichment)) {
      const keyPath = join(`${path}.enrichment`, key);
      try {
        paths.push(compileWritePath(key));
      } catch (error) {
        issues.push({ path: keyPath, message: errorMessage(error) });
        continue;
      }
      keys.push(key);
      values.push(compileTemplate(value, keyPath, issues));
    }
    return { step: `${path}.enrichment`, condition, keys, paths, values };
  });

  const ports = routerPorts(config);
  const routes: Route[] = config.routing_rules.map((rule, i) => {
    const path = at(`routing_rules[${i}]`);
    const destination = rule.destination;
    if (destination === UNMATCHED_PORT) {
      issues.push({
        path: `${path}.destination`,
        message:
          `destination "${UNMATCHED_PORT}" is reserved for events that match no rule; connect from_port "${UNMATCHED_PORT}" instead`,
      });
    } else if (!PORT_NAME.test(destination)) {
      issues.push({
        path: `${path}.destination`,
        message: `destination ${
          JSON.stringify(destination)
        } is not a valid port name: use letters, digits, "_", "-" and "."`,
      });
    }
    return {
      condition: rule.condition === undefined
        ? undefined
        : compileCondition(rule.condition, `${path}.condition`, issues, options),
      port: ports.indexOf(destination),
    };
  });

  const handlers = new Map<string, TransformPipeline>();
  let anyAsync = false;
  for (const [type, list] of Object.entries(config.handlers)) {
    const pipeline = compileTransformations(list, join(at("handlers"), type), issues, options);
    handlers.set(type, pipeline);
    anyAsync ||= pipeline.async;
  }

  let eventType: PathGetter = () => undefined;
  try {
    eventType = compilePath(config.event_type_field);
  } catch (error) {
    issues.push({ path: at("event_type_field"), message: errorMessage(error) });
  }
  return { enrichments, routes, ports, handlers, anyAsync, eventType };
}

type Rec = Record<string, unknown>;

function isRecord(value: unknown): value is Rec {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The clock reading shared by the compiled conditions, taken once per batch. */
interface BatchTime {
  ms: number;
}

/** Enrichment without a draft: the input, written to a copy made at the first write. */
type FastEnrich = (root: Rec, input: Rec, nowMs: number) => Rec;
/** Routing: adds the ports of matching rules to `matched[count…]`, returns the new count. */
type FastRoute = (event: Rec, seq: number, count: number) => number;

/**
 * Routing without generated code (code generation disabled, or more than 30
 * ports named by several rules): the rules in order, each port once per
 * event by a stamp of the event's sequence number.
 */
function routeLoop(
  routes: readonly Route[],
  stamps: Float64Array,
  matched: Int32Array,
): FastRoute {
  return (event, seq, count) => {
    for (const r of routes) {
      if (r.condition !== undefined && !r.condition(event)) continue;
      if (stamps[r.port] !== seq) {
        stamps[r.port] = seq;
        matched[count++] = r.port;
      }
    }
    return count;
  };
}

/**
 * The enrichment rules as one generated function (see `runtime/codegen.ts`),
 * when every key is a top-level field and no template can fail (a top-level
 * write to the event's own copy cannot fail either): the common case, which
 * then needs no draft. Conditions inline, constants as literals, the copy
 * made at the first write. `undefined` otherwise, or without code generation
 * (the draft path then gives the same results).
 */
function generateEnrich(enrichments: readonly Enrichment[]): FastEnrich | undefined {
  const code = new CodeBuilder();
  let body = "";
  for (const rule of enrichments) {
    let writes = "";
    for (let k = 0; k < rule.paths.length; k++) {
      const template = rule.values[k];
      if (topLevelWriter(rule.paths[k]) === undefined || template.canFail) return undefined;
      const key = rule.paths[k][0];
      // Write paths never name __proto__ (compileWritePath); in a literal it would set the prototype.
      if (key === "__proto__") return undefined;
      const constant = template.constant ? template.render(undefined, 0) : undefined;
      const value = constant !== undefined
        ? code.literal(constant)
        : `${code.bind(template)}.render(root, nowMs)`;
      // The copy is made with the new key in its literal, so the engine
      // allocates room for it at once (a copy and a later store would grow
      // the object's property storage).
      const write = `if (root === input) root = { ...input, ${JSON.stringify(key)}: v };\n` +
        `else root[${JSON.stringify(key)}] = v;\n`;
      writes += constant !== undefined
        ? `v = ${value};\n${write}`
        : `v = ${value};\nif (v !== undefined) {\n${write}}\n`;
    }
    if (writes === "") continue;
    body += rule.condition === undefined
      ? writes
      : `if (${conditionCode(rule.condition, code, "input")}) {\n${writes}}\n`;
  }
  return code.compile<FastEnrich>(
    `return function enrich(root, input, nowMs) {\n${code.declareTemps()}let v;\n${body}return root;\n};`,
  );
}

/**
 * The routing rules as one generated function writing the matched ports to
 * `matched` (each port once, in rule order), or `undefined` without code
 * generation or with too many ports for the bit set.
 */
function generateRoute(routes: readonly Route[], matched: Int32Array): FastRoute | undefined {
  const perPort = new Map<number, number>();
  for (const r of routes) perPort.set(r.port, (perPort.get(r.port) ?? 0) + 1);
  const code = new CodeBuilder();
  const out = code.bind(matched);
  let body = "";
  for (const r of routes) {
    const test = r.condition === undefined ? "true" : conditionCode(r.condition, code, "event");
    if (perPort.get(r.port) === 1) {
      body += `if (${test}) ${out}[count++] = ${r.port};\n`;
    } else {
      // A port named by several rules: the first match only (a bit per port).
      if (r.port > 30) return undefined;
      const bit = 1 << r.port;
      body +=
        `if ((seen & ${bit}) === 0 && ${test}) { seen |= ${bit}; ${out}[count++] = ${r.port}; }\n`;
    }
  }
  return code.compile<FastRoute>(
    `return function route(event, _seq, count) {\n${code.declareTemps()}let seen = 0;\n${body}return count;\n};`,
  );
}

/** One event between routing and emission, when some handler is asynchronous. */
interface Pending {
  input: unknown;
  event: Rec | undefined;
  ports: number[];
  error: unknown;
}

class RouterActor implements Actor<unknown, Rec> {
  readonly #router: CompiledRouter;
  readonly #clock: Clock;
  readonly #draft = new EventDraft();
  readonly #time: BatchTime;
  // Destinations of the current event (the first #matchedCount entries),
  // deduplicated with a per-event stamp.
  readonly #matched: Int32Array;
  #matchedCount = 0;
  readonly #stamps: Float64Array;
  #seq = 0;
  readonly #fastEnrich: FastEnrich | undefined;
  readonly #fastRoute: FastRoute;

  constructor(router: CompiledRouter, time: BatchTime, clock: Clock) {
    this.#router = router;
    this.#time = time;
    this.#clock = clock;
    this.#matched = new Int32Array(router.ports.length);
    this.#stamps = new Float64Array(router.ports.length);
    this.#fastEnrich = generateEnrich(router.enrichments);
    this.#fastRoute = generateRoute(router.routes, this.#matched) ??
      routeLoop(router.routes, this.#stamps, this.#matched);
  }

  handle(batch: unknown[], ctx: ActorContext<Rec>): void | Promise<void> {
    // One clock reading per batch, for conditions and templates alike.
    const nowMs = this.#clock.now();
    this.#time.ms = nowMs;
    if (this.#router.anyAsync) return this.#handleAsync(batch, ctx, nowMs);
    const enrich = this.#fastEnrich;
    if (enrich === undefined) return this.#handleWithDraft(batch, ctx, nowMs);
    if (this.#router.handlers.size === 0) return this.#handleFast(batch, ctx, enrich, nowMs);
    const draft = this.#draft;
    const ports = this.#router.ports;
    const matched = this.#matched;
    const route = this.#fastRoute;
    for (let i = 0; i < batch.length; i++) {
      const input = batch[i];
      if (!isRecord(input)) {
        ctx.deadLetter(input, new TypeError(`expected an event object, found ${typeof input}`));
        continue;
      }
      // The input itself until an enrichment writes: then a copy, and
      // nothing is copied for events that no rule enriches.
      let event = input;
      let count: number;
      try {
        event = enrich(input, input, nowMs);
        count = route(event, ++this.#seq, 0);
        const pipeline = this.#handler(event);
        if (pipeline !== undefined) {
          // `event` is already a private copy when enrichment wrote.
          draft.reset(event, input);
          try {
            pipeline.applyTo(draft, nowMs);
          } finally {
            event = draft.root;
          }
        }
      } catch (error) {
        ctx.deadLetter(input, error, this.#context(event, error));
        continue;
      }
      if (count === 1) ctx.emit(event, ports[matched[0]]);
      else if (count === 0) ctx.emit(event, UNMATCHED_PORT);
      else for (let k = 0; k < count; k++) ctx.emit(event, ports[matched[k]]);
    }
  }

  /**
   * The common case, kept lean because it runs per event: compiled
   * enrichment and routing, no handlers.
   */
  #handleFast(
    batch: unknown[],
    ctx: ActorContext<Rec>,
    enrich: FastEnrich,
    nowMs: number,
  ): void {
    const ports = this.#router.ports;
    const matched = this.#matched;
    const route = this.#fastRoute;
    const n = batch.length;
    // One output array per port (the last index: unmatched), preallocated
    // on first use and handed over whole (see ActorContext.emitMany).
    const outs: (Rec[] | undefined)[] = new Array(ports.length + 1);
    const counts = new Int32Array(ports.length + 1);
    const unmatched = ports.length;
    let seq = this.#seq;
    let i = 0;
    // One `try` around the loop, re-entered after a failure: the loop body
    // itself stays free of exception handling.
    while (i < n) {
      try {
        for (; i < n; i++) {
          const input = batch[i];
          if (typeof input !== "object" || input === null || Array.isArray(input)) {
            ctx.deadLetter(
              input,
              new TypeError(`expected an event object, found ${typeof input}`),
            );
            continue;
          }
          const event = enrich(input as Rec, input as Rec, nowMs);
          const count = route(event, ++seq, 0);
          if (count === 0) {
            (outs[unmatched] ??= new Array(n))[counts[unmatched]++] = event;
          } else {
            for (let k = 0; k < count; k++) {
              const port = matched[k];
              (outs[port] ??= new Array(n))[counts[port]++] = event;
            }
          }
        }
      } catch (error) {
        // Enrichment and routing come before the event is stored: it emitted nothing.
        const input = batch[i++];
        ctx.deadLetter(input, error, this.#context(input as Rec, error));
      }
    }
    this.#seq = seq;
    for (let port = 0; port <= unmatched; port++) {
      const out = outs[port];
      if (out === undefined) continue;
      out.length = counts[port];
      ctx.emitMany(out, port === unmatched ? UNMATCHED_PORT : ports[port]);
    }
  }

  /** The general path: enrichment writes nested fields or uses templates that can fail. */
  #handleWithDraft(batch: unknown[], ctx: ActorContext<Rec>, nowMs: number): void {
    const draft = this.#draft;
    const ports = this.#router.ports;
    const matched = this.#matched;
    for (let i = 0; i < batch.length; i++) {
      const input = batch[i];
      if (!isRecord(input)) {
        ctx.deadLetter(input, new TypeError(`expected an event object, found ${typeof input}`));
        continue;
      }
      try {
        this.#enrich(draft, input, nowMs);
        this.#route(draft.root);
        const pipeline = this.#handler(draft.root);
        if (pipeline !== undefined) pipeline.applyTo(draft, nowMs);
      } catch (error) {
        ctx.deadLetter(input, error, this.#context(draft.root, error));
        continue;
      }
      const event = draft.root;
      const count = this.#matchedCount;
      if (count === 0) ctx.emit(event, UNMATCHED_PORT);
      else for (let k = 0; k < count; k++) ctx.emit(event, ports[matched[k]]);
    }
  }

  async #handleAsync(batch: unknown[], ctx: ActorContext<Rec>, nowMs: number): Promise<void> {
    const draft = this.#draft;
    const pending: Pending[] = new Array(batch.length);
    const groups = new Map<TransformPipeline, number[]>();
    for (let i = 0; i < batch.length; i++) {
      const input = batch[i];
      const item: Pending = { input, event: undefined, ports: [], error: undefined };
      pending[i] = item;
      if (!isRecord(input)) {
        item.error = new TypeError(`expected an event object, found ${typeof input}`);
        continue;
      }
      try {
        this.#enrich(draft, input, nowMs);
        this.#route(draft.root);
        item.ports = Array.from(this.#matched.subarray(0, this.#matchedCount));
        const pipeline = this.#handler(draft.root);
        if (pipeline !== undefined && !pipeline.async) pipeline.applyTo(draft, nowMs);
        item.event = draft.root;
        if (pipeline?.async) {
          const group = groups.get(pipeline);
          if (group) group.push(i);
          else groups.set(pipeline, [i]);
        }
      } catch (error) {
        item.error = error;
        item.event = draft.root;
      }
    }
    // Hash digests are batched per handler; emission below keeps input order.
    await Promise.all([...groups].map(async ([pipeline, indexes]) => {
      const result = await pipeline.transformBatch(
        indexes.map((i) => pending[i].event),
        indexes.map((i) => pending[i].input),
      );
      indexes.forEach((i, k) => {
        const error = result.errors[k];
        if (error === undefined) pending[i].event = result.events[k];
        else pending[i].error = error;
      });
    }));
    const ports = this.#router.ports;
    for (const item of pending) {
      if (item.error !== undefined) {
        ctx.deadLetter(item.input, item.error, this.#context(item.event, item.error));
      } else if (item.ports.length === 0) {
        ctx.emit(item.event!, UNMATCHED_PORT);
      } else {
        for (const port of item.ports) ctx.emit(item.event!, ports[port]);
      }
    }
  }

  #enrich(draft: EventDraft, input: Rec, nowMs: number): void {
    draft.reset(input);
    const enrichments = this.#router.enrichments;
    for (let r = 0; r < enrichments.length; r++) {
      const rule = enrichments[r];
      if (rule.condition !== undefined && !rule.condition(input)) continue;
      const paths = rule.paths;
      const values = rule.values;
      for (let k = 0; k < paths.length; k++) {
        const value = values[k].render(draft.root, nowMs);
        if (value === undefined) continue;
        try {
          draft.set(paths[k], value);
        } catch (error) {
          throw new TransformError(rule.step, "enrichment", rule.keys[k], errorMessage(error), {
            cause: error,
          });
        }
      }
    }
  }

  /** Fills #matched with the distinct ports of the rules that match. */
  #route(event: Rec): void {
    this.#matchedCount = this.#fastRoute(event, ++this.#seq, 0);
  }

  #handler(event: Rec): TransformPipeline | undefined {
    const handlers = this.#router.handlers;
    if (handlers.size === 0) return undefined;
    const type = this.#router.eventType(event);
    return typeof type === "string" ? handlers.get(type) : undefined;
  }

  #context(event: Rec | undefined, error: unknown): Record<string, unknown> | undefined {
    const context = deadLetterContext(error);
    if (context === undefined || event === undefined) return context;
    const type = this.#router.eventType(event);
    return typeof type === "string" ? { ...context, event_type: type } : context;
  }
}

/** The RouterNode type. */
export const RouterNode: NodeSpec<RouterConfig> = {
  type: "RouterNode",
  kind: "processor",
  description:
    "The guide's custom event processor: enriches events (enrichment_rules: condition + field map with ${now} and ${field.path} templates), applies per-event_type handler transformations, and sends each event to the destination port of every matching routing rule, or to unmatched. Per-destination counts are outByPort.",
  config: routerConfig,
  outputs: (config) => routerPorts(config),
  validate(config, path, issues) {
    compileRouter(config, path, issues);
  },
  create(config, env) {
    const issues: ConfigIssue[] = [];
    const time: BatchTime = { ms: env.clock.now() };
    const router = compileRouter(config, "", issues, () => time.ms);
    // Only reachable when the environment changed since validation (a handler's salt_env).
    if (issues.length > 0) throw new ConfigError(issues);
    return new RouterActor(router, time, env.clock);
  },
};

/**
 * A typed RouterNode for the fluent builder. Connect destinations with
 * `ref.output("revenue_analytics")` and `ref.output("unmatched")`.
 *
 * @param config The router config; every list is optional.
 * @returns A node definition.
 * @example
 * ```ts
 * import { eventRouter } from "./router.ts";
 * const def = eventRouter({
 *   routing_rules: [
 *     { condition: { field: "event_type", operator: "equals", value: "purchase" }, destination: "revenue" },
 *   ],
 * });
 * console.assert(def.type === "RouterNode");
 * ```
 */
export function eventRouter(
  config: Partial<RouterConfig>,
): NodeDef<Record<string, unknown>, Record<string, unknown>> {
  return { type: "RouterNode", config };
}
