/**
 * The condition grammar shared by `EventFilterNode` (`filter_conditions` +
 * `filter_logic`) and `RouterNode` rules.
 *
 * A condition is either a **leaf**
 * `{field, operator, value?, values?, flags?}` or a **group**
 * `{all: [...]}`, `{any: [...]}`, `{not: condition}`, nested to any depth up
 * to {@linkcode MAX_CONDITION_DEPTH}. Conditions are validated and compiled
 * once; every problem becomes a {@linkcode ConfigIssue} (nothing is thrown),
 * and the compiled predicate does no parsing, path splitting or regex
 * compilation per event.
 *
 * Operator semantics (a field is *missing* when its path does not resolve or
 * its value is `undefined`; `null` is a present value):
 *
 * | operator | missing field | meaning |
 * | --- | --- | --- |
 * | `equals` | false | strict `===` for primitives (`"1"` never equals `1`, `NaN` never equals anything); deep equality for arrays and objects (key order ignored); `null` equals only `null` |
 * | `not_equals` | true | the negation of `equals` |
 * | `in` | false | the field `equals` one of `values` (or of `value`, when it is an array) |
 * | `not_in` | true | the negation of `in` |
 * | `contains` | false | string field: `value` is a substring (`value` must be a string); array field: an element `equals` `value`; object field: `value` is one of its own keys; anything else: false |
 * | `exists` | false | the field is present, even when it is `null` |
 * | `not_exists` | true | the field is missing |
 * | `greater_than`, `greater_or_equal`, `less_than`, `less_or_equal` | false | see below |
 * | `matches` | false | the field is a string and the regex `value` (with optional `flags`) finds a match; non-strings (numbers included) never match |
 *
 * Comparisons pick their mode from `value`, once, at compile time:
 * - a **relative time** (`now-1h`, `now`, `now + 5m`): time mode; the bound is
 *   the clock's current time plus the offset, taken at every evaluation;
 * - an **ISO 8601 string** or `Date`: time mode with a fixed bound;
 * - a **number**: a number field compares numerically; an ISO 8601 string or
 *   `Date` field compares as time, reading the number as epoch seconds or
 *   milliseconds (see `EPOCH_SECONDS_LIMIT` in `time.ts`); anything else
 *   (numeric strings included: no coercion) is false;
 * - any **other string**: a string field compares lexicographically by
 *   UTF-16 code units (not locale-aware); anything else is false.
 *
 * In time mode the field is read with `parseTimestampMs` (epoch seconds,
 * epoch milliseconds, decimal strings, ISO 8601, `Date`); a field that is not
 * a timestamp (including an invalid date such as `"2024-13-45"`) is false.
 * `NaN` never compares true.
 *
 * @module
 */

import { RealClock } from "./clock.ts";
import type { ConfigIssue } from "./errors.ts";
import { errorMessage } from "./errors.ts";
import { CodeBuilder } from "./codegen.ts";
import { compilePath, parsePath, type PathGetter, specialize } from "./path.ts";
import { suggest } from "./suggest.ts";
import { parseIsoTimestampMs, parseRelativeOffsetMs, parseTimestampMs } from "./time.ts";

/** Every operator a leaf condition can use, in documentation order. */
export const CONDITION_OPERATORS = [
  "equals",
  "not_equals",
  "in",
  "not_in",
  "contains",
  "exists",
  "not_exists",
  "greater_than",
  "greater_or_equal",
  "less_than",
  "less_or_equal",
  "matches",
] as const;

/** The name of a leaf condition's operator; see the module docs for semantics. */
export type ConditionOperator = typeof CONDITION_OPERATORS[number];

/** Compares one field of an event with a value. */
export interface LeafCondition {
  /** Dot path of the field, such as `data.value` or `items.0.id`. */
  field: string;
  /** How to compare. */
  operator: ConditionOperator;
  /**
   * The operand: required by every operator except `exists`, `not_exists`
   * and `in`/`not_in` given `values`; forbidden for `exists`/`not_exists`.
   */
  value?: unknown;
  /** The candidates for `in` / `not_in` (alternatively an array `value`). */
  values?: readonly unknown[];
  /** Regex flags for `matches`: any of `d`, `i`, `m`, `s`, `u`, `v`. */
  flags?: string;
}

/** True when every nested condition is true (true when empty). */
export interface AllCondition {
  /** The conditions that must all hold. */
  all: readonly Condition[];
}

/** True when at least one nested condition is true (false when empty). */
export interface AnyCondition {
  /** The conditions of which one must hold. */
  any: readonly Condition[];
}

/** True when the nested condition is false. */
export interface NotCondition {
  /** The condition to negate. */
  not: Condition;
}

/** A leaf or a group of conditions. */
export type Condition =
  | LeafCondition
  | AllCondition
  | AnyCondition
  | NotCondition;

/** A compiled condition: a pure predicate over an event. */
export type CompiledCondition = (event: unknown) => boolean;

/** How `filter_conditions` combine: all must hold, or at least one. */
export type FilterLogic = "and" | "or";

/** Options for {@linkcode compileCondition}. */
export interface ConditionOptions {
  /**
   * The current time in epoch milliseconds, read at each evaluation of a
   * relative-time comparison (`now-1h`). Pass `() => clock.now()` of the
   * workflow's `Clock`. @default {the real clock}
   */
  now?: () => number;
}

/** Options for {@linkcode compileConditionList}. */
export interface ConditionListOptions extends ConditionOptions {
  /**
   * The config path reported for an invalid `logic`.
   * @default {`path` with its last key replaced by `filter_logic`, or
   * `path.filter_logic` when `path` ends with an index}
   */
  logicPath?: string;
}

/** How deeply groups may nest before the config is rejected. */
export const MAX_CONDITION_DEPTH = 64;

const OPERATOR_SET: ReadonlySet<string> = new Set(CONDITION_OPERATORS);
const LEAF_KEYS = ["field", "operator", "value", "values", "flags"] as const;
const GROUP_KEYS = ["all", "any", "not"] as const;
const ALL_KEYS: readonly string[] = [...LEAF_KEYS, ...GROUP_KEYS];
const LEAF_KEY_SET: ReadonlySet<string> = new Set(LEAF_KEYS);
const ALLOWED_REGEX_FLAGS = "dimsuv";
// Words that make a string value look like an attempted relative time or
// date, so a typo is reported instead of silently comparing strings.
const LOOKS_RELATIVE = /^\s*now\b/i;
const LOOKS_DATE = /^\d{4}-\d{2}-\d{2}/;

const NEVER: CompiledCondition = () => false;
const ALWAYS: CompiledCondition = () => true;
// (Their shapes are set below, once SHAPES exists.)

/**
 * What a compiled condition computes, for {@linkcode conditionCode}: leaves
 * and groups simple enough to be written inline. Conditions without a shape
 * are called as they are from generated code.
 */
type Shape =
  | { readonly op: "exists" | "not_exists"; readonly path: readonly string[] }
  | { readonly op: "is" | "is_not"; readonly path: readonly string[]; readonly value: unknown }
  | {
    readonly op: "in_list" | "not_in_list";
    readonly path: readonly string[];
    readonly values: readonly unknown[];
  }
  | { readonly op: "and" | "or"; readonly a: CompiledCondition; readonly b: CompiledCondition }
  | { readonly op: "not"; readonly a: CompiledCondition }
  | { readonly op: "always" | "never" };

const SHAPES = new WeakMap<CompiledCondition, Shape>([
  [NEVER, { op: "never" }],
  [ALWAYS, { op: "always" }],
]);

function withShape(condition: CompiledCondition, shape: Shape): CompiledCondition {
  SHAPES.set(condition, shape);
  return condition;
}

/**
 * A JavaScript expression computing `condition` for the event in the
 * variable `event`, for generated code: simple leaves (`exists`,
 * `not_exists`, `equals`/`not_equals` with a primitive, `in`/`not_in` over a
 * few primitives) and the groups around them are written inline; any other
 * condition is called.
 *
 * @param condition A condition from {@linkcode compileCondition} or
 * {@linkcode compileConditionList}.
 * @param code The builder of the generated function.
 * @param event The name of the variable holding the event.
 * @returns The expression (parenthesized).
 * @example Inlining a condition into generated code
 * ```ts
 * import { CodeBuilder } from "./codegen.ts";
 * import { compileCondition, conditionCode } from "./conditions.ts";
 * const isClick = compileCondition({ field: "type", operator: "equals", value: "click" }, "c", []);
 * const code = new CodeBuilder();
 * const f = code.compile<(e: unknown) => boolean>(
 *   `return function (e) { return ${conditionCode(isClick, code, "e")}; };`,
 * );
 * if (f) console.assert(f({ type: "click" }) && !f({ type: "view" }));
 * ```
 */
export function conditionCode(
  condition: CompiledCondition,
  code: CodeBuilder,
  event: string,
): string {
  const shape = SHAPES.get(condition);
  if (shape === undefined) return `${code.bind(condition)}(${event})`;
  switch (shape.op) {
    case "always":
      return "true";
    case "never":
      return "false";
    case "exists":
      return `(${code.getter(shape.path)}(${event}) !== undefined)`;
    case "not_exists":
      return `(${code.getter(shape.path)}(${event}) === undefined)`;
    case "is":
      return `(${code.getter(shape.path)}(${event}) === ${code.literal(shape.value)})`;
    case "is_not":
      return `(${code.getter(shape.path)}(${event}) !== ${code.literal(shape.value)})`;
    case "in_list":
    case "not_in_list": {
      if (shape.values.length === 0) return shape.op === "in_list" ? "false" : "true";
      const found = code.temp();
      const tests = shape.values.map((value, i) =>
        `${i === 0 ? `(${found} = ${code.getter(shape.path)}(${event}))` : found} === ${
          code.literal(value)
        }`
      );
      const any = `(${tests.join(" || ")})`;
      return shape.op === "in_list" ? any : `!${any}`;
    }
    case "and":
      return `(${conditionCode(shape.a, code, event)} && ${conditionCode(shape.b, code, event)})`;
    case "or":
      return `(${conditionCode(shape.a, code, event)} || ${conditionCode(shape.b, code, event)})`;
    case "not":
      return `!${conditionCode(shape.a, code, event)}`;
  }
}

/**
 * One generated function for a condition with a shape that has groups or
 * leaves in it; the condition itself otherwise (or without code generation).
 */
function flatten(condition: CompiledCondition): CompiledCondition {
  const shape = SHAPES.get(condition);
  if (shape === undefined || shape.op === "always" || shape.op === "never") return condition;
  const code = new CodeBuilder();
  const expression = conditionCode(condition, code, "e");
  const flat = code.compile<CompiledCondition>(
    `return function condition(e) {\n${code.declareTemps()}return ${expression};\n};`,
  );
  return flat === undefined ? condition : withShape(flat, shape);
}

// The factories that `specialize` copies: self-contained on purpose.
const AND = (a: CompiledCondition, b: CompiledCondition): CompiledCondition => (event) =>
  a(event) && b(event);
const OR = (a: CompiledCondition, b: CompiledCondition): CompiledCondition => (event) =>
  a(event) || b(event);
const NOT = (a: CompiledCondition): CompiledCondition => (event) => !a(event);
const EXISTS = (get: PathGetter): CompiledCondition => (event) => get(event) !== undefined;
const NOT_EXISTS = (get: PathGetter): CompiledCondition => (event) => get(event) === undefined;
const IS = (get: PathGetter, value: unknown): CompiledCondition => (event) => get(event) === value;
const IS_NOT = (get: PathGetter, value: unknown): CompiledCondition => (event) =>
  get(event) !== value;
/** `in` over a few primitives: a scan with `===` beats hashing the field's value. */
const IN_LIST = (get: PathGetter, values: readonly unknown[]): CompiledCondition => (event) => {
  const found = get(event);
  for (let i = 0; i < values.length; i++) if (values[i] === found) return true;
  return false;
};
const IN_SET = (get: PathGetter, values: ReadonlySet<unknown>): CompiledCondition => (event) =>
  values.has(get(event));
/** Number comparisons: numbers compare inline, anything else goes to `other`. */
const NUMBER_GT =
  (get: PathGetter, value: number, other: (found: unknown) => boolean) =>
  (event: unknown): boolean => {
    const found = get(event);
    return typeof found === "number" ? found > value : other(found);
  };
const NUMBER_GE =
  (get: PathGetter, value: number, other: (found: unknown) => boolean) =>
  (event: unknown): boolean => {
    const found = get(event);
    return typeof found === "number" ? found >= value : other(found);
  };
const NUMBER_LT =
  (get: PathGetter, value: number, other: (found: unknown) => boolean) =>
  (event: unknown): boolean => {
    const found = get(event);
    return typeof found === "number" ? found < value : other(found);
  };
const NUMBER_LE =
  (get: PathGetter, value: number, other: (found: unknown) => boolean) =>
  (event: unknown): boolean => {
    const found = get(event);
    return typeof found === "number" ? found <= value : other(found);
  };
const NUMBER_COMPARISONS = { gt: NUMBER_GT, ge: NUMBER_GE, lt: NUMBER_LT, le: NUMBER_LE };
/** Up to this many primitives, `in` scans a list instead of hashing into a Set. */
const IN_LIST_MAX = 8;

const realClock = new RealClock();
const realNow = (): number => realClock.now();

interface Context {
  issues: ConfigIssue[];
  now: () => number;
}

type Comparison = "gt" | "ge" | "lt" | "le";
const COMPARISONS: Readonly<Record<string, Comparison>> = {
  greater_than: "gt",
  greater_or_equal: "ge",
  less_than: "lt",
  less_or_equal: "le",
};

/**
 * Validates and compiles one condition (leaf or group).
 *
 * Every problem is appended to `issues` with a path under `path` (for example
 * `filter_conditions[2].operator` or `rules[0].when.any[1].value`): unknown
 * operators and keys (with a "did you mean" suggestion), missing or
 * malformed `field`, missing `value`, `values` that is not an array, values of
 * the wrong type, regexes or flags that do not compile, relative times and
 * dates that do not parse, and nesting deeper than
 * {@linkcode MAX_CONDITION_DEPTH}. Nothing is thrown for config problems.
 *
 * @param spec The condition as written in the config.
 * @param path The config path of `spec`, used as the prefix of issue paths.
 * @param issues Receives every problem found.
 * @param options The clock for relative times.
 * @returns The predicate. When this call added issues it returns a predicate
 * that is always false; it is not meant to be used.
 * @throws {TypeError} When `options.now` is given but is not a function (a
 * programming error, not a config problem).
 * @example A filter on type and recency with a fixed clock
 * ```ts
 * import { compileCondition } from "./conditions.ts";
 * import type { ConfigIssue } from "./errors.ts";
 * const issues: ConfigIssue[] = [];
 * const now = Date.UTC(2024, 0, 1, 12);
 * const recentClick = compileCondition(
 *   {
 *     all: [
 *       { field: "type", operator: "in", values: ["click", "view"] },
 *       { field: "ts", operator: "greater_than", value: "now-1h" },
 *     ],
 *   },
 *   "condition",
 *   issues,
 *   { now: () => now },
 * );
 * console.assert(issues.length === 0);
 * console.assert(recentClick({ type: "click", ts: "2024-01-01T11:30:00Z" }));
 * console.assert(!recentClick({ type: "click", ts: "2024-01-01T10:30:00Z" }));
 * ```
 * @example Reporting a typo
 * ```ts
 * import { compileCondition } from "./conditions.ts";
 * import type { ConfigIssue } from "./errors.ts";
 * const issues: ConfigIssue[] = [];
 * compileCondition({ field: "type", operator: "inn", values: [] }, "c", issues);
 * console.assert(issues[0].path === "c.operator");
 * console.assert(issues[0].message === 'unknown operator "inn"; did you mean "in"?');
 * ```
 */
export function compileCondition(
  spec: unknown,
  path: string,
  issues: ConfigIssue[],
  options: ConditionOptions = {},
): CompiledCondition {
  const context = makeContext(issues, options);
  const before = issues.length;
  const compiled = compileAny(spec, path, context, 1);
  return issues.length > before ? NEVER : flatten(compiled);
}

/**
 * Validates and compiles a list of conditions combined with `"and"` (all must
 * hold; an empty list passes everything) or `"or"` (at least one must hold;
 * an empty list passes nothing), as in `filter_conditions` + `filter_logic`.
 *
 * @param list The conditions; each element is reported at `path[i]`.
 * @param logic A {@linkcode FilterLogic}: `"and"` or `"or"` (lower case);
 * `undefined` means `"and"`. Anything else, as read from a config, is
 * reported at `options.logicPath`.
 * @param path The config path of the list, such as
 * `nodes[1].config.filter_conditions`.
 * @param issues Receives every problem found.
 * @param options The clock for relative times and the path of `logic`.
 * @returns The combined predicate, or an always-false predicate (not meant to
 * be used) when this call added issues.
 * @throws {TypeError} When `options.now` is given but is not a function.
 * @example filter_conditions with "or"
 * ```ts
 * import { compileConditionList } from "./conditions.ts";
 * import type { ConfigIssue } from "./errors.ts";
 * const issues: ConfigIssue[] = [];
 * const keep = compileConditionList(
 *   [
 *     { field: "level", operator: "equals", value: "error" },
 *     { field: "data.value", operator: "greater_than", value: 100 },
 *   ],
 *   "or",
 *   "filter_conditions",
 *   issues,
 * );
 * console.assert(issues.length === 0);
 * console.assert(keep({ level: "info", data: { value: 150 } }));
 * console.assert(!keep({ level: "info", data: { value: 50 } }));
 * ```
 */
export function compileConditionList(
  list: unknown,
  logic: unknown,
  path: string,
  issues: ConfigIssue[],
  options: ConditionListOptions = {},
): CompiledCondition {
  const context = makeContext(issues, options);
  const before = issues.length;
  let mode = logic ?? "and";
  if (mode !== "and" && mode !== "or") {
    const logicPath = options.logicPath ?? siblingPath(path, "filter_logic");
    const hint = typeof mode === "string" ? didYouMean(mode, ["and", "or"]) : "";
    issues.push({
      path: logicPath,
      message: `expected "and" or "or", found ${describe(mode)}${hint}`,
    });
    mode = "and";
  }
  if (!Array.isArray(list)) {
    issues.push({
      path,
      message: `expected an array of conditions, found ${describe(list)}`,
    });
    return NEVER;
  }
  const compiled = list.map((item, i) => compileAny(item, `${path}[${i}]`, context, 1));
  if (issues.length > before) return NEVER;
  return flatten(mode === "and" ? allOf(compiled) : anyOf(compiled));
}

function makeContext(
  issues: ConfigIssue[],
  options: ConditionOptions,
): Context {
  if (options.now !== undefined && typeof options.now !== "function") {
    throw new TypeError(
      `options.now must be a function returning epoch milliseconds, found ${typeof options
        .now}`,
    );
  }
  return { issues, now: options.now ?? realNow };
}

function compileAny(
  spec: unknown,
  path: string,
  context: Context,
  depth: number,
): CompiledCondition {
  if (depth > MAX_CONDITION_DEPTH) {
    context.issues.push({
      path,
      message: `conditions are nested more than ${MAX_CONDITION_DEPTH} levels deep`,
    });
    return NEVER;
  }
  if (typeof spec !== "object" || spec === null || Array.isArray(spec)) {
    context.issues.push({
      path,
      message:
        `expected a condition object with "field" and "operator" (or a group with "all", "any" or "not"), found ${
          describe(spec)
        }`,
    });
    return NEVER;
  }
  const record = spec as Record<string, unknown>;
  const keys = Object.keys(record);
  const groupKeys = keys.filter((key) => (GROUP_KEYS as readonly string[]).includes(key));
  if (groupKeys.length === 0) return compileLeaf(record, keys, path, context);
  if (groupKeys.length > 1) {
    context.issues.push({
      path,
      message: `a group has exactly one of "all", "any" or "not", found ${
        groupKeys.map((key) => `"${key}"`).join(" and ")
      }; nest one group inside the other`,
    });
    return NEVER;
  }
  const groupKey = groupKeys[0];
  const leafKeys = keys.filter((key) => LEAF_KEY_SET.has(key));
  if (leafKeys.length > 0) {
    context.issues.push({
      path,
      message:
        `a condition is either a group ("${groupKey}") or a leaf ("field", "operator", …), found both "${groupKey}" and "${
          leafKeys[0]
        }"; move the leaf into the group`,
    });
  }
  for (const key of keys) {
    if (key !== groupKey && !LEAF_KEY_SET.has(key)) {
      reportUnknownKey(key, path, `expected only "${groupKey}"`, context);
    }
  }
  const inner = record[groupKey];
  const innerPath = joinPath(path, groupKey);
  if (groupKey === "not") {
    const negated = compileAny(inner, innerPath, context, depth + 1);
    return withShape(specialize(NOT)(negated), { op: "not", a: negated });
  }
  if (!Array.isArray(inner)) {
    context.issues.push({
      path: innerPath,
      message: `expected an array of conditions, found ${describe(inner)}`,
    });
    return NEVER;
  }
  const compiled = inner.map((item, i) =>
    compileAny(item, `${innerPath}[${i}]`, context, depth + 1)
  );
  return groupKey === "all" ? allOf(compiled) : anyOf(compiled);
}

function allOf(conditions: CompiledCondition[]): CompiledCondition {
  return combine(conditions, AND, ALWAYS, "and");
}

function anyOf(conditions: CompiledCondition[]): CompiledCondition {
  return combine(conditions, OR, NEVER, "or");
}

/**
 * Chains conditions pairwise, right to left (`a && (b && c)`), each pair a
 * private copy of `pair`, so every call in the chain has one target and
 * inlines; evaluation order and short-circuiting are those of a loop.
 */
function combine(
  conditions: CompiledCondition[],
  pair: (a: CompiledCondition, b: CompiledCondition) => CompiledCondition,
  empty: CompiledCondition,
  op: "and" | "or",
): CompiledCondition {
  if (conditions.length === 0) return empty;
  let combined = conditions[conditions.length - 1];
  for (let i = conditions.length - 2; i >= 0; i--) {
    combined = withShape(specialize(pair)(conditions[i], combined), {
      op,
      a: conditions[i],
      b: combined,
    });
  }
  return combined;
}

/** Builds the predicate once the field getter is known. */
type Builder = (get: PathGetter) => CompiledCondition;

function compileLeaf(
  spec: Record<string, unknown>,
  keys: string[],
  path: string,
  context: Context,
): CompiledCondition {
  const { issues } = context;
  for (const key of keys) {
    if (!LEAF_KEY_SET.has(key)) {
      reportUnknownKey(
        key,
        path,
        "expected field, operator, value, values or flags",
        context,
      );
    }
  }

  let get: PathGetter | undefined;
  const field = spec.field;
  const fieldPath = joinPath(path, "field");
  if (field === undefined) {
    issues.push({
      path: fieldPath,
      message: `missing "field": expected a dot path such as "data.value"`,
    });
  } else if (typeof field !== "string") {
    issues.push({
      path: fieldPath,
      message: `expected a dot path such as "data.value", found ${describe(field)}`,
    });
  } else {
    try {
      get = compilePath(field);
    } catch (error) {
      issues.push({ path: fieldPath, message: errorMessage(error) });
    }
  }

  const operator = spec.operator;
  const operatorPath = joinPath(path, "operator");
  let build: Builder | undefined;
  if (operator === undefined) {
    issues.push({
      path: operatorPath,
      message: `missing "operator": expected one of ${CONDITION_OPERATORS.join(", ")}`,
    });
  } else if (typeof operator !== "string") {
    issues.push({
      path: operatorPath,
      message: `expected an operator name, found ${describe(operator)}`,
    });
  } else if (!OPERATOR_SET.has(operator)) {
    const suggestion = suggest(operator, CONDITION_OPERATORS);
    issues.push({
      path: operatorPath,
      message: suggestion === undefined
        ? `unknown operator "${operator}"; expected one of ${CONDITION_OPERATORS.join(", ")}`
        : `unknown operator "${operator}"; did you mean "${suggestion}"?`,
    });
  } else {
    build = prepareOperator(
      operator as ConditionOperator,
      spec,
      path,
      context,
    );
  }
  if (get === undefined || build === undefined) return NEVER;
  const compiled = build(get);
  const shape = leafShape(operator as ConditionOperator, spec, parsePath(field as string));
  return shape === undefined ? compiled : withShape(compiled, shape);
}

/** The shape of a leaf that generated code can compute inline, if it is one. */
function leafShape(
  operator: ConditionOperator,
  spec: Record<string, unknown>,
  path: readonly string[],
): Shape | undefined {
  switch (operator) {
    case "exists":
    case "not_exists":
      return { op: operator, path };
    case "equals":
    case "not_equals":
      // `===` with a primitive, as the compiled leaf (NaN equals nothing either way).
      return isPrimitive(spec.value)
        ? { op: operator === "equals" ? "is" : "is_not", path, value: spec.value }
        : undefined;
    case "in":
    case "not_in": {
      const values = spec.values ?? spec.value;
      if (!Array.isArray(values) || !values.every(isPrimitive)) return undefined;
      // As inBuilder: undefined and NaN match nothing.
      const list = [...new Set(values)].filter((v) => v !== undefined && !Number.isNaN(v));
      if (list.length > IN_LIST_MAX) return undefined;
      return { op: operator === "in" ? "in_list" : "not_in_list", path, values: list };
    }
    default:
      return undefined;
  }
}

function prepareOperator(
  operator: ConditionOperator,
  spec: Record<string, unknown>,
  path: string,
  context: Context,
): Builder | undefined {
  const { issues } = context;
  const hasValue = spec.value !== undefined;
  const hasValues = spec.values !== undefined;
  const valuePath = joinPath(path, "value");
  const valuesPath = joinPath(path, "values");
  const takesValues = operator === "in" || operator === "not_in";
  const takesNothing = operator === "exists" || operator === "not_exists";

  if (takesNothing) {
    if (hasValue) {
      issues.push({
        path: valuePath,
        message: `operator "${operator}" takes no "value"`,
      });
    }
    if (hasValues) {
      issues.push({
        path: valuesPath,
        message: `operator "${operator}" takes no "values"`,
      });
    }
  } else if (hasValues && !takesValues) {
    issues.push({
      path: valuesPath,
      message: `"values" is only used by "in" and "not_in"; operator "${operator}" takes "value"`,
    });
  }
  if (spec.flags !== undefined && operator !== "matches") {
    issues.push({
      path: joinPath(path, "flags"),
      message: `"flags" is only used by "matches"`,
    });
  }
  if (!takesNothing && !takesValues && !hasValue) {
    issues.push({
      path: valuePath,
      message: `missing "value" for operator "${operator}"`,
    });
    return undefined;
  }

  switch (operator) {
    case "exists":
      return (get) => specialize(EXISTS)(get);
    case "not_exists":
      return (get) => specialize(NOT_EXISTS)(get);
    case "equals":
    case "not_equals": {
      const value = spec.value;
      if (isPrimitive(value)) {
        return operator === "equals"
          ? (get) => specialize(IS)(get, value)
          : (get) => specialize(IS_NOT)(get, value);
      }
      const equal = equalsBuilder(value);
      return operator === "equals" ? equal : negate(equal);
    }
    case "in":
    case "not_in": {
      const values = readValues(operator, spec, path, context);
      if (values === undefined) return undefined;
      const member = inBuilder(values);
      return operator === "in" ? member : negate(member);
    }
    case "contains":
      return containsBuilder(spec.value);
    case "matches":
      return matchesBuilder(spec, path, context);
    default:
      return comparisonBuilder(
        operator,
        COMPARISONS[operator],
        spec.value,
        valuePath,
        context,
      );
  }
}

function negate(build: Builder): Builder {
  return (get) => specialize(NOT)(build(get));
}

function isPrimitive(value: unknown): boolean {
  return value === null ||
    (typeof value !== "object" && typeof value !== "function");
}

function equalsBuilder(value: unknown): Builder {
  if (isPrimitive(value)) return (get) => (event) => get(event) === value;
  return (get) => (event) => deepEqual(get(event), value);
}

function readValues(
  operator: ConditionOperator,
  spec: Record<string, unknown>,
  path: string,
  context: Context,
): readonly unknown[] | undefined {
  const { issues } = context;
  const valuePath = joinPath(path, "value");
  const valuesPath = joinPath(path, "values");
  if (spec.values !== undefined && spec.value !== undefined) {
    issues.push({
      path: valuesPath,
      message: `give either "value" or "values" for operator "${operator}", not both`,
    });
    return undefined;
  }
  if (spec.values !== undefined) {
    if (Array.isArray(spec.values)) return spec.values;
    issues.push({
      path: valuesPath,
      message: `expected an array of values for operator "${operator}", found ${
        describe(spec.values)
      }`,
    });
    return undefined;
  }
  if (spec.value !== undefined) {
    if (Array.isArray(spec.value)) return spec.value;
    issues.push({
      path: valuePath,
      message: `expected an array of values for operator "${operator}", found ${
        describe(spec.value)
      }; use "equals" to compare with a single value`,
    });
    return undefined;
  }
  issues.push({
    path: valuesPath,
    message: `missing "values" (an array) for operator "${operator}"`,
  });
  return undefined;
}

function inBuilder(values: readonly unknown[]): Builder {
  // Primitives go into a Set for O(1) lookups; objects and arrays need deep
  // equality. NaN is left out: it equals nothing, but a Set would match it.
  const primitives = new Set<unknown>();
  const composites: unknown[] = [];
  for (const value of values) {
    if (isPrimitive(value)) {
      if (value !== undefined && !Number.isNaN(value)) primitives.add(value);
    } else {
      composites.push(value);
    }
  }
  if (composites.length === 0) {
    if (primitives.size <= IN_LIST_MAX) {
      // `===` agrees with the Set's SameValueZero here: NaN was left out.
      const list = [...primitives];
      return (get) => specialize(IN_LIST)(get, list);
    }
    return (get) => specialize(IN_SET)(get, primitives);
  }
  return (get) => (event) => {
    const found = get(event);
    if (isPrimitive(found)) return primitives.has(found);
    for (let i = 0; i < composites.length; i++) {
      if (deepEqual(found, composites[i])) return true;
    }
    return false;
  };
}

function containsBuilder(value: unknown): Builder {
  const isString = typeof value === "string";
  const primitive = isPrimitive(value);
  return (get) => (event) => {
    const found = get(event);
    if (typeof found === "string") {
      return isString && found.includes(value as string);
    }
    if (Array.isArray(found)) {
      // indexOf compares with ===, as equals does for primitives.
      if (primitive) return found.indexOf(value) !== -1;
      for (let i = 0; i < found.length; i++) {
        if (deepEqual(found[i], value)) return true;
      }
      return false;
    }
    if (typeof found === "object" && found !== null) {
      return isString && Object.hasOwn(found, value as string);
    }
    return false;
  };
}

function matchesBuilder(
  spec: Record<string, unknown>,
  path: string,
  context: Context,
): Builder | undefined {
  const { issues } = context;
  const before = issues.length;
  const flagsPath = joinPath(path, "flags");
  let flags = "";
  if (spec.flags !== undefined) {
    if (typeof spec.flags !== "string") {
      issues.push({
        path: flagsPath,
        message: `expected regex flags as a string such as "i", found ${describe(spec.flags)}`,
      });
    } else {
      flags = spec.flags;
      for (const flag of flags) {
        if (flag === "g" || flag === "y") {
          issues.push({
            path: flagsPath,
            message:
              `regex flag "${flag}" is not allowed: it makes a regex remember where its last match ended, across events; allowed flags are d, i, m, s, u, v`,
          });
        } else if (!ALLOWED_REGEX_FLAGS.includes(flag)) {
          issues.push({
            path: flagsPath,
            message: `unknown regex flag "${flag}"; allowed flags are d, i, m, s, u, v`,
          });
        }
      }
      if (issues.length === before) {
        try {
          new RegExp("", flags);
        } catch (error) {
          issues.push({
            path: flagsPath,
            message: `invalid regex flags "${flags}": ${errorMessage(error)}`,
          });
        }
      }
    }
  }
  const pattern = spec.value;
  if (typeof pattern !== "string") {
    issues.push({
      path: joinPath(path, "value"),
      message: `expected a regular expression string for "matches", found ${describe(pattern)}`,
    });
    return undefined;
  }
  if (issues.length > before) return undefined;
  let regex: RegExp;
  try {
    regex = new RegExp(pattern, flags);
  } catch (error) {
    issues.push({
      path: joinPath(path, "value"),
      message: `regex does not compile: ${errorMessage(error)}`,
    });
    return undefined;
  }
  return (get) => (event) => {
    const found = get(event);
    return typeof found === "string" && regex.test(found);
  };
}

function compare(a: number, b: number, how: Comparison): boolean;
function compare(a: string, b: string, how: Comparison): boolean;
function compare(
  a: number | string,
  b: number | string,
  how: Comparison,
): boolean {
  switch (how) {
    case "gt":
      return a > b;
    case "ge":
      return a >= b;
    case "lt":
      return a < b;
    case "le":
      return a <= b;
  }
}

function comparisonBuilder(
  operator: ConditionOperator,
  how: Comparison,
  value: unknown,
  valuePath: string,
  context: Context,
): Builder | undefined {
  const { issues } = context;
  if (typeof value === "number") {
    if (Number.isNaN(value)) {
      issues.push({
        path: valuePath,
        message: `expected a number for operator "${operator}", found NaN`,
      });
      return undefined;
    }
    const valueMs = parseTimestampMs(value);
    // A number value against a date-like field: compare as times.
    const other = (found: unknown): boolean => {
      if (valueMs === undefined) return false;
      const foundMs = typeof found === "string"
        ? parseIsoTimestampMs(found)
        : found instanceof Date
        ? parseTimestampMs(found)
        : undefined;
      return foundMs !== undefined && compare(foundMs, valueMs, how);
    };
    return (get) => specialize(NUMBER_COMPARISONS[how])(get, value, other);
  }
  if (value instanceof Date) {
    const valueMs = parseTimestampMs(value);
    if (valueMs === undefined) {
      issues.push({
        path: valuePath,
        message: `expected a valid date for operator "${operator}", found an invalid Date`,
      });
      return undefined;
    }
    return fixedTimeBuilder(valueMs, how);
  }
  if (typeof value === "string") {
    const offset = parseRelativeOffsetMs(value);
    if (offset !== undefined) {
      const now = context.now;
      return (get) => (event) => {
        const foundMs = parseTimestampMs(get(event));
        return foundMs !== undefined && compare(foundMs, now() + offset, how);
      };
    }
    if (LOOKS_RELATIVE.test(value)) {
      issues.push({
        path: valuePath,
        message:
          `invalid relative time "${value}": expected "now", optionally followed by + or -, an amount and a unit (ms, s, m, h, d, w), such as "now-1h"`,
      });
      return undefined;
    }
    const valueMs = parseIsoTimestampMs(value);
    if (valueMs !== undefined) return fixedTimeBuilder(valueMs, how);
    if (LOOKS_DATE.test(value)) {
      issues.push({
        path: valuePath,
        message:
          `invalid ISO 8601 date "${value}": expected YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss[.fff]][Z|±hh:mm] with valid ranges`,
      });
      return undefined;
    }
    return (get) => (event) => {
      const found = get(event);
      return typeof found === "string" && compare(found, value, how);
    };
  }
  issues.push({
    path: valuePath,
    message:
      `expected a number, a string, an ISO 8601 date or a relative time such as "now-1h" for operator "${operator}", found ${
        describe(value)
      }`,
  });
  return undefined;
}

function fixedTimeBuilder(valueMs: number, how: Comparison): Builder {
  return (get) => (event) => {
    const foundMs = parseTimestampMs(get(event));
    return foundMs !== undefined && compare(foundMs, valueMs, how);
  };
}

/**
 * Deep equality for JSON-like values: `===` for primitives, element-wise for
 * arrays, own enumerable keys (order ignored) for objects, time value for
 * `Date`s. Recursion follows `b` (the config value), which is finite, so
 * cyclic events cannot loop forever.
 */
function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (
    typeof a !== "object" || typeof b !== "object" || a === null || b === null
  ) {
    return false;
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) {
      return false;
    }
    for (let i = 0; i < a.length; i++) {
      if (!deepEqual(a[i], b[i])) return false;
    }
    return true;
  }
  if (a instanceof Date || b instanceof Date) {
    return a instanceof Date && b instanceof Date &&
      a.getTime() === b.getTime();
  }
  const keysB = Object.keys(b);
  if (Object.keys(a).length !== keysB.length) return false;
  for (const key of keysB) {
    if (
      !Object.hasOwn(a, key) ||
      !deepEqual(
        (a as Record<string, unknown>)[key],
        (b as Record<string, unknown>)[key],
      )
    ) {
      return false;
    }
  }
  return true;
}

function reportUnknownKey(
  key: string,
  path: string,
  expected: string,
  context: Context,
): void {
  context.issues.push({
    path: joinPath(path, key),
    message: `unknown key "${key}"${didYouMean(key, ALL_KEYS) || `; ${expected}`}`,
  });
}

function didYouMean(name: string, candidates: readonly string[]): string {
  const suggestion = suggest(name, candidates);
  return suggestion === undefined ? "" : `; did you mean "${suggestion}"?`;
}

/** `a.b.filter_conditions` -> `a.b.filter_logic`; `rules[0]` -> `rules[0].filter_logic`. */
function siblingPath(path: string, key: string): string {
  if (path === "" || path.endsWith("]")) return joinPath(path, key);
  return path.slice(0, path.lastIndexOf(".") + 1) + key;
}

function joinPath(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (value === undefined) return "nothing";
  if (Array.isArray(value)) return "an array";
  if (value instanceof Date) return "a Date";
  switch (typeof value) {
    case "string": {
      const shown = value.length > 40 ? `${value.slice(0, 40)}…` : value;
      return `a string (${JSON.stringify(shown)})`;
    }
    case "number":
      return Number.isNaN(value) ? "NaN" : `a number (${value})`;
    case "boolean":
      return `a boolean (${value})`;
    case "object":
      return "an object";
    default:
      return `a ${typeof value}`;
  }
}
