/**
 * EventTransformNode: the reference guide's `transformations` list, applied
 * in order to every event, plus the transform engine the router reuses for
 * its per-`event_type` handlers.
 *
 * Each transformation is `{field, operation, output_field?, ...}`; the result
 * is written to `output_field`, which defaults to `field` (in place).
 *
 * | operation | reads `field` | writes | extra keys |
 * | --- | --- | --- | --- |
 * | `parse_iso` | ISO 8601 string, epoch s/ms number or decimal string, `Date` | the time in `unit` | `unit`: `s` (default: epoch seconds, like the generator's `timestamp`), `ms` or `iso` (UTC, `toISOString`) |
 * | `hash` | string, number, boolean or bigint (as its decimal text) | SHA-256 hex of the UTF-8 text, salted as `sha256(salt + text)` | `salt_env`: environment variable holding the salt, read when the node is created |
 * | `bucket` | string, number, boolean or bigint (as its decimal text) | an integer in `[0, buckets)`: the FNV-1a 32-bit hash of the UTF-8 text modulo `buckets` (see {@linkcode fnv1a32}) | `buckets` (required): how many buckets, an integer from 1 to 2^32 |
 * | `flatten` | a plain object | a new object with dot keys (`{"a.b": 1}`); arrays and empty objects are kept as values | `separator` (default `.`) |
 * | `rename` | anything | moves the value to `output_field` (required) | |
 * | `copy` | anything | copies the value to `output_field` (required) | |
 * | `remove` | anything | deletes `field` (no `output_field`) | |
 * | `set` | nothing | `value` at `field` (no `output_field`) | `value` (required, a template) |
 * | `default` | anything | `value` when `field` is missing or `null`, otherwise the field's own value | `value` (required, a template) |
 * | `lowercase`, `uppercase` | a string (locale-independent Unicode case mapping) | the string | |
 * | `to_number` | a number, or a decimal string (`" 4.5 "`, `"1e3"`; no hex, no `Infinity`) | the number | |
 * | `to_string` | string, number, boolean, bigint; `Date` as ISO 8601; objects and arrays as JSON | the string | |
 *
 * Missing fields and `null`: a missing field (its path does not resolve)
 * makes every operation except `set` and `default` a no-op, and so does
 * `null` for the value operations (`parse_iso`, `hash`, `bucket`, `flatten`,
 * `lowercase`, `uppercase`, `to_number`, `to_string`: the `null` stays and
 * `output_field` is not written). `rename`, `copy` and `remove` treat `null`
 * as a value. With `required: true` a missing (or, for value operations,
 * `null`) field is an error instead.
 *
 * Errors: a value of the wrong type (`lowercase` of a number, `to_number` of
 * `"abc"`, `parse_iso` of `"2024-13-45"`), or a write through a field that is
 * not an object, fails that event only: it goes to the dead letters with the
 * reason (`transformations[1] (to_number) on field "x": cannot convert "abc"
 * to a number`) and the stream goes on.
 *
 * Templates: string `value`s of `set` and `default` may contain `${now}`
 * (clock time in epoch seconds), `${now_ms}`, `${now_iso}` and
 * `${field.path}` (a field of the event as transformed so far). A value that
 * is exactly one placeholder keeps the type of what it refers to (a number
 * for `${now}`, an object for `${data}`), and writes nothing when the field
 * is missing; inside longer text, missing and `null` fields render as the
 * empty string, objects as JSON. `$${` is a literal `${`. **In YAML workflow
 * files write `${ now }` or `${ user_id }` with spaces**: the loader replaces
 * `${NAME}` (no spaces) with environment variables before the node sees it.
 *
 * Events are never mutated (messages are shared on fan-out): the first write
 * makes a shallow copy of the event, and writes into nested objects copy the
 * objects along the path.
 *
 * @module
 */
import type { Actor, ActorContext } from "../../runtime/actor.ts";
import type { Clock } from "../../runtime/clock.ts";
import { CodeBuilder } from "../../runtime/codegen.ts";
import { ConfigError, type ConfigIssue, errorMessage } from "../../runtime/errors.ts";
import type { NodeDef } from "../../runtime/flow.ts";
import { compilePath, type PathGetter } from "../../runtime/path.ts";
import type { NodeSpec } from "../../runtime/registry.ts";
import { join, s, type Schema } from "../../runtime/schema.ts";
import { suggest } from "../../runtime/suggest.ts";
import { fromMs, parseTimestampMs, type TimeUnit } from "../../runtime/time.ts";

/** Every transformation operation, in documentation order. */
export const TRANSFORM_OPERATIONS = [
  "parse_iso",
  "hash",
  "bucket",
  "flatten",
  "rename",
  "copy",
  "remove",
  "set",
  "default",
  "lowercase",
  "uppercase",
  "to_number",
  "to_string",
] as const;

/** The name of a transformation operation; see the module docs. */
export type TransformOperation = typeof TRANSFORM_OPERATIONS[number];

/** One entry of `transformations`, as written in a config. */
export interface Transformation {
  /** Dot path of the field to read (for `set`: to write). */
  field: string;
  /** What to do. */
  operation: TransformOperation;
  /** Where to write the result. Required by `rename` and `copy`; not used by `set` and `remove`. @default {field} */
  output_field?: string;
  /** A missing (or, for value operations, `null`) field is an error instead of a no-op. @default {false} */
  required?: boolean;
  /** `set` and `default`: the value; strings are templates. */
  value?: unknown;
  /** `parse_iso`: the unit of the result. @default {"s"} */
  unit?: TimeUnit;
  /** `hash`: the environment variable holding the salt. */
  salt_env?: string;
  /** `bucket`: how many buckets (an integer from 1 to 2^32). */
  buckets?: number;
  /** `flatten`: what joins nested keys. @default {"."} */
  separator?: string;
}

/** Where a transform engine gets the time and the environment. */
export interface TransformOptions {
  /** The current time in epoch milliseconds (for `${now}`). @default {Date.now} */
  now?: () => number;
  /** Reads environment variables (for `salt_env`). @default {Deno.env.get} */
  env?: (name: string) => string | undefined;
}

/**
 * One transformation failed on one event. The message names the
 * transformation, the operation, the field and what was wrong.
 *
 * @example
 * ```ts
 * import { TransformError } from "./transform.ts";
 * const error = new TransformError("transformations[1]", "to_number", "x", 'cannot convert "abc" to a number');
 * console.assert(error.message === 'transformations[1] (to_number) on field "x": cannot convert "abc" to a number');
 * ```
 */
export class TransformError extends Error {
  /** The transformation's config path, such as `transformations[1]` or `handlers.click[0]`. */
  readonly step: string;
  /** The operation. */
  readonly operation: string;
  /** The field it read or wrote. */
  readonly field: string;
  /**
   * Builds the message `<step> (<operation>) on field "<field>": <detail>`.
   *
   * @param step The transformation's config path.
   * @param operation The operation.
   * @param field The field.
   * @param detail What was wrong.
   * @param options Standard error options (`cause`).
   */
  constructor(
    step: string,
    operation: string,
    field: string,
    detail: string,
    options?: ErrorOptions,
  ) {
    super(`${step} (${operation}) on field ${JSON.stringify(field)}: ${detail}`, options);
    this.name = "TransformError";
    this.step = step;
    this.operation = operation;
    this.field = field;
  }
}

// ---------------------------------------------------------------------------
// Copy-on-write drafts

/** Segments that could reach or replace a prototype when written to. */
const FORBIDDEN_SEGMENTS: ReadonlySet<string> = new Set(["__proto__", "constructor", "prototype"]);

/**
 * Splits a dot path that will be written to, refusing segments that could
 * modify a prototype.
 *
 * @param path A dot path such as `meta.source`.
 * @returns The segments.
 * @throws {TypeError} When the path is malformed or has a `__proto__`,
 * `constructor` or `prototype` segment.
 * @example
 * ```ts
 * import { compileWritePath } from "./transform.ts";
 * console.assert(compileWritePath("meta.source").join("|") === "meta|source");
 * ```
 */
export function compileWritePath(path: string): readonly string[] {
  compilePath(path); // Same syntax rules and messages as reads.
  const segments = path.split(".");
  for (const segment of segments) {
    if (FORBIDDEN_SEGMENTS.has(segment)) {
      throw new TypeError(
        `refusing to write path "${path}": segment "${segment}" could modify a prototype`,
      );
    }
  }
  const writer = generate<Writer>(["o", "v"], `o[${JSON.stringify(segments.at(-1))}] = v;`);
  // Hidden from the array's users; EventDraft.set uses it for the last key.
  if (writer) Object.defineProperty(segments, WRITER, { value: writer });
  return segments;
}

type Rec = Record<string, unknown>;
type Writer = (obj: Rec, value: unknown) => void;
type WritePath = readonly string[] & { readonly [WRITER]?: Writer };

/** The compiled store of a write path's last key, when code generation is available. */
const WRITER: unique symbol = Symbol("writer");

/** Whether `new Function` works here (it does not under some embedders' policies). */
let codegen = true;

/**
 * Compiles a small function whose property names are constants in its own
 * code, so it gets inline caches of its own: one shared function storing a
 * key held in a variable would do a generic lookup per event. `undefined`
 * where code generation is disabled; callers then fall back to generic code.
 */
function generate<F>(params: string[], body: string): F | undefined {
  if (!codegen) return undefined;
  try {
    return new Function(...params, `"use strict";\n${body}`) as F;
  } catch {
    codegen = false;
    return undefined;
  }
}

/**
 * A new function making shallow copies (`{ ...obj }`), with inline caches of
 * its own: a node that copies events of one shape keeps the copy a fast,
 * monomorphic clone, however many other shapes other nodes copy.
 *
 * @returns The copy function.
 * @example
 * ```ts
 * import { shallowCopier } from "./transform.ts";
 * const copy = shallowCopier();
 * const event = { a: 1 };
 * console.assert(copy(event) !== event && copy(event).a === 1);
 * ```
 */
export function shallowCopier(): (obj: Record<string, unknown>) => Record<string, unknown> {
  return generate<(obj: Rec) => Rec>(["o"], "return { ...o };") ?? ((obj) => ({ ...obj }));
}

/**
 * The compiled store of a one-key path from {@linkcode compileWritePath}:
 * `(obj, value) => { obj[key] = value }` with the key a constant in its own
 * code (one inline cache per path).
 *
 * @param segments A path from {@linkcode compileWritePath}.
 * @returns The store, or `undefined` for nested paths and where code
 * generation is disabled.
 * @example
 * ```ts
 * import { compileWritePath, topLevelWriter } from "./transform.ts";
 * const write = topLevelWriter(compileWritePath("user_type"))!;
 * const event: Record<string, unknown> = {};
 * write(event, "registered");
 * console.assert(event.user_type === "registered");
 * console.assert(topLevelWriter(compileWritePath("a.b")) === undefined);
 * ```
 */
export function topLevelWriter(
  segments: readonly string[],
): ((obj: Record<string, unknown>, value: unknown) => void) | undefined {
  return segments.length === 1 ? (segments as WritePath)[WRITER] : undefined;
}
const EMPTY: Rec = Object.freeze({}) as Rec;

function isRecord(value: unknown): value is Rec {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * A copy-on-write view of one event: the input is never modified; the first
 * write copies the event shallowly, and writes into nested objects copy the
 * objects along the path once per event. One draft is reused for every event
 * (call {@linkcode EventDraft.reset}), so the hot path allocates only the
 * copies it needs.
 *
 * @example
 * ```ts
 * import { compileWritePath, EventDraft } from "./transform.ts";
 * const input = { user: { name: "ada" }, n: 1 };
 * const draft = new EventDraft();
 * draft.reset(input);
 * draft.set(compileWritePath("user.role"), "admin");
 * console.assert(JSON.stringify(input) === '{"user":{"name":"ada"},"n":1}');
 * console.assert(JSON.stringify(draft.root) === '{"user":{"name":"ada","role":"admin"},"n":1}');
 * ```
 */
export class EventDraft {
  #original: Rec = EMPTY;
  #root: Rec = EMPTY;
  // Nested containers copied for the current event, safe to write in place.
  #owned = new Set<object>();
  // Each draft copies the events of one node, usually all of one shape: its
  // own copy function keeps that copy a fast, monomorphic clone.
  readonly #clone = shallowCopier();

  /**
   * Starts a new event.
   *
   * @param event The event to transform.
   * @param original The event as received, when `event` is already a private
   * copy of it that may be written in place. @default {event}
   */
  reset(event: Record<string, unknown>, original: Record<string, unknown> = event): void {
    this.#original = original;
    this.#root = event;
    if (this.#owned.size > 0) this.#owned.clear();
  }

  /** The event with every write so far (the input itself until the first write). */
  get root(): Record<string, unknown> {
    return this.#root;
  }

  /** Whether anything was written since {@linkcode EventDraft.reset}. */
  get changed(): boolean {
    return this.#root !== this.#original;
  }

  #ownRoot(): Rec {
    if (this.#root === this.#original) this.#root = this.#clone(this.#original);
    return this.#root;
  }

  /**
   * Writes `value` at a path, creating plain objects for missing
   * intermediate keys.
   *
   * @param segments A path from {@linkcode compileWritePath}.
   * @param value The value.
   * @throws {TypeError} When an intermediate value is not an object.
   */
  set(segments: readonly string[], value: unknown): void {
    let node = this.#ownRoot();
    const last = segments.length - 1;
    if (last === 0) {
      // Top-level fields, the common case: no path to copy.
      if (typeof value === "object" && value !== null && this.#owned.size > 0) this.#owned.clear();
      const write = (segments as WritePath)[WRITER];
      if (write !== undefined) write(node, value);
      else node[segments[0]] = value;
      return;
    }
    for (let i = 0; i < last; i++) {
      const key = segments[i];
      const next = Object.hasOwn(node, key) ? node[key] : undefined;
      if (next === undefined) {
        const created: Rec = {};
        node[key] = created;
        this.#owned.add(created);
        node = created;
      } else if (typeof next !== "object" || next === null) {
        throw new TypeError(
          `cannot write "${segments.join(".")}": "${segments.slice(0, i + 1).join(".")}" holds ${
            describeValue(next)
          }, expected an object`,
        );
      } else if (this.#owned.has(next)) {
        node = next as Rec;
      } else {
        const copy = (Array.isArray(next) ? next.slice() : { ...next }) as Rec;
        node[key] = copy;
        this.#owned.add(copy);
        node = copy;
      }
    }
    // An object written here may also be reachable elsewhere in the event
    // (copy, `${field}`), so nothing copied so far may be written in place
    // any more: later writes copy again, which is always safe.
    if (typeof value === "object" && value !== null && this.#owned.size > 0) {
      this.#owned.clear();
    }
    const write = (segments as WritePath)[WRITER];
    if (write !== undefined) write(node, value);
    else node[segments[last]] = value;
  }

  /**
   * Deletes the own property at a path, copying along the path first.
   *
   * @param segments A path from {@linkcode compileWritePath}.
   * @returns Whether a property was deleted.
   */
  delete(segments: readonly string[]): boolean {
    // Look first, so that deleting a missing field copies nothing.
    let probe: unknown = this.#root;
    for (const key of segments) {
      if (typeof probe !== "object" || probe === null || !Object.hasOwn(probe, key)) return false;
      probe = (probe as Rec)[key];
    }
    const last = segments.length - 1;
    let node = this.#ownRoot();
    for (let i = 0; i < last; i++) {
      const next = node[segments[i]] as Rec;
      if (this.#owned.has(next)) {
        node = next;
      } else {
        const copy = (Array.isArray(next) ? next.slice() : { ...next }) as Rec;
        node[segments[i]] = copy;
        this.#owned.add(copy);
        node = copy;
      }
    }
    return Reflect.deleteProperty(node, segments[last]);
  }
}

// ---------------------------------------------------------------------------
// Templates

const T_CONSTANT = 0;
const T_NOW_S = 1;
const T_NOW_MS = 2;
const T_NOW_ISO = 3;
const T_FIELD = 4;
const T_MIXED = 5;

const NOW_PLACEHOLDERS: Readonly<Record<string, number>> = {
  now: T_NOW_S,
  now_ms: T_NOW_MS,
  now_iso: T_NOW_ISO,
};

/**
 * A compiled config value that may refer to the clock and to the event:
 * `${now}`, `${now_ms}`, `${now_iso}` and `${field.path}` (see the module
 * docs). Build one with {@linkcode compileTemplate}.
 */
export interface Template {
  /** Whether the value is the same for every event (no placeholders). */
  readonly constant: boolean;
  /**
   * Whether {@linkcode Template.render} can throw: only text that mixes
   * placeholders with literals can, when a field's JSON fails (a bigint, a
   * cycle).
   */
  readonly canFail: boolean;
  /**
   * The value for one event.
   *
   * @param event The event that `${field}` placeholders read.
   * @param nowMs The clock's time in epoch milliseconds.
   * @returns The value; `undefined` when the whole value is one
   * `${field}` placeholder and the field is missing.
   */
  render(event: unknown, nowMs: number): unknown;
}

class CompiledTemplate implements Template {
  readonly #kind: number;
  readonly #constant: unknown;
  readonly #get: PathGetter | undefined;
  readonly #literals: readonly string[];
  readonly #slots: readonly (PathGetter | number)[];

  constructor(
    kind: number,
    constant: unknown,
    get: PathGetter | undefined,
    literals: readonly string[],
    slots: readonly (PathGetter | number)[],
  ) {
    this.#kind = kind;
    this.#constant = constant;
    this.#get = get;
    this.#literals = literals;
    this.#slots = slots;
  }

  get constant(): boolean {
    return this.#kind === T_CONSTANT;
  }

  get canFail(): boolean {
    return this.#kind === T_MIXED;
  }

  render(event: unknown, nowMs: number): unknown {
    switch (this.#kind) {
      case T_CONSTANT:
        return this.#constant;
      case T_NOW_S:
        return nowMs / 1000;
      case T_NOW_MS:
        return nowMs;
      case T_NOW_ISO:
        return new Date(nowMs).toISOString();
      case T_FIELD:
        return this.#get!(event);
      default: {
        const literals = this.#literals;
        const slots = this.#slots;
        let text = literals[0];
        for (let i = 0; i < slots.length; i++) {
          const slot = slots[i];
          text += typeof slot === "number"
            ? templateText(
              slot === T_NOW_S
                ? nowMs / 1000
                : slot === T_NOW_MS
                ? nowMs
                : new Date(nowMs).toISOString(),
            )
            : templateText(slot(event));
          text += literals[i + 1];
        }
        return text;
      }
    }
  }
}

function templateText(value: unknown): string {
  if (typeof value === "string") return value;
  if (value === undefined || value === null) return "";
  if (value instanceof Date) return value.toISOString();
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

/**
 * Compiles a config value into a {@linkcode Template}. Non-string values and
 * strings without `${` are constants (deep-frozen copies, so no event can
 * change them).
 *
 * @param value The value as written in the config.
 * @param path Its config path, for issues.
 * @param issues Receives malformed placeholders (`${}`, `${a..b}`, an unclosed `${`).
 * @returns The template (a constant `undefined` when issues were added).
 * @example
 * ```ts
 * import { compileTemplate } from "./transform.ts";
 * const issues: { path: string; message: string }[] = [];
 * const t = compileTemplate("${user.id}@${ now }", "value", issues);
 * console.assert(issues.length === 0);
 * console.assert(t.render({ user: { id: 7 } }, 1500) === "7@1.5");
 * console.assert(compileTemplate("${now}", "v", issues).render({}, 2000) === 2);
 * ```
 */
export function compileTemplate(value: unknown, path: string, issues: ConfigIssue[]): Template {
  if (typeof value !== "string" || !value.includes("${")) {
    let constant: unknown;
    try {
      constant = deepFreeze(structuredCloneSafe(value));
    } catch (error) {
      issues.push({
        path,
        message: `expected a JSON-like value, found ${describeValue(value)}: ${
          errorMessage(error)
        }`,
      });
    }
    return new CompiledTemplate(T_CONSTANT, constant, undefined, [], []);
  }
  const before = issues.length;
  const literals: string[] = [];
  const slots: (PathGetter | number)[] = [];
  let literal = "";
  let i = 0;
  while (i < value.length) {
    if (value.startsWith("$${", i)) {
      literal += "${";
      i += 3;
      continue;
    }
    if (!value.startsWith("${", i)) {
      literal += value[i++];
      continue;
    }
    const end = value.indexOf("}", i + 2);
    if (end < 0) {
      issues.push({
        path,
        message: `unclosed "\${" in template ${
          JSON.stringify(value)
        }; write "$\${" for a literal "\${"`,
      });
      break;
    }
    const name = value.slice(i + 2, end).trim();
    i = end + 1;
    if (name === "") {
      issues.push({
        path,
        message: `empty placeholder "\${}" in template ${
          JSON.stringify(value)
        }; expected \${now} or \${field.path}`,
      });
      continue;
    }
    const now = NOW_PLACEHOLDERS[name];
    if (now !== undefined) {
      slots.push(now);
    } else {
      try {
        slots.push(compilePath(name));
      } catch (error) {
        issues.push({ path, message: `placeholder "\${${name}}": ${errorMessage(error)}` });
        continue;
      }
    }
    literals.push(literal);
    literal = "";
  }
  literals.push(literal);
  if (issues.length > before) return new CompiledTemplate(T_CONSTANT, undefined, undefined, [], []);
  if (slots.length === 0) return new CompiledTemplate(T_CONSTANT, literals[0], undefined, [], []);
  if (slots.length === 1 && literals[0] === "" && literals[1] === "") {
    const slot = slots[0];
    return typeof slot === "number"
      ? new CompiledTemplate(slot, undefined, undefined, [], [])
      : new CompiledTemplate(T_FIELD, undefined, slot, [], []);
  }
  return new CompiledTemplate(T_MIXED, undefined, undefined, literals, slots);
}

function structuredCloneSafe(value: unknown): unknown {
  if (typeof value !== "object" || value === null) return value;
  return structuredClone(value);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Rec)[key]);
  }
  return value;
}

// ---------------------------------------------------------------------------
// Steps

const OP_PARSE_ISO = 0;
const OP_HASH = 1;
const OP_FLATTEN = 2;
const OP_RENAME = 3;
const OP_COPY = 4;
const OP_REMOVE = 5;
const OP_SET = 6;
const OP_DEFAULT = 7;
const OP_LOWERCASE = 8;
const OP_UPPERCASE = 9;
const OP_TO_NUMBER = 10;
const OP_TO_STRING = 11;
const OP_BUCKET = 12;

const OP_CODES: Readonly<Record<TransformOperation, number>> = {
  parse_iso: OP_PARSE_ISO,
  hash: OP_HASH,
  bucket: OP_BUCKET,
  flatten: OP_FLATTEN,
  rename: OP_RENAME,
  copy: OP_COPY,
  remove: OP_REMOVE,
  set: OP_SET,
  default: OP_DEFAULT,
  lowercase: OP_LOWERCASE,
  uppercase: OP_UPPERCASE,
  to_number: OP_TO_NUMBER,
  to_string: OP_TO_STRING,
};

const OPERATION_SET: ReadonlySet<string> = new Set(TRANSFORM_OPERATIONS);
const COMMON_KEYS = ["field", "operation", "output_field", "required"] as const;
const EXTRA_KEYS: Readonly<Record<TransformOperation, readonly string[]>> = {
  parse_iso: ["unit"],
  hash: ["salt_env"],
  bucket: ["buckets"],
  flatten: ["separator"],
  rename: [],
  copy: [],
  remove: [],
  set: ["value"],
  default: ["value"],
  lowercase: [],
  uppercase: [],
  to_number: [],
  to_string: [],
};
const ALL_KEYS: readonly string[] = [
  ...COMMON_KEYS,
  ...new Set(Object.values(EXTRA_KEYS).flat()),
];
const TIME_UNITS: readonly TimeUnit[] = ["s", "ms", "iso"];
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const MAX_FLATTEN_DEPTH = 64;
/** FNV-1a hashes are 32-bit: more buckets than 2^32 would leave some empty. */
const MAX_BUCKETS = 2 ** 32;

/** One compiled transformation. Every instance has the same shape, so the hot loop stays monomorphic. */
class Step {
  constructor(
    readonly code: number,
    readonly step: string,
    readonly operation: string,
    readonly field: string,
    readonly get: PathGetter,
    readonly source: readonly string[],
    readonly target: readonly string[],
    readonly inPlace: boolean,
    readonly required: boolean,
    readonly template: Template | undefined,
    readonly unit: TimeUnit,
    readonly separator: string,
    readonly salt: string,
    readonly buckets: number,
  ) {}

  fail(detail: string, cause?: unknown): TransformError {
    return new TransformError(
      this.step,
      this.operation,
      this.field,
      detail,
      cause === undefined ? undefined : { cause },
    );
  }
}

const encoder = new TextEncoder();
const HEX: readonly string[] = Array.from(
  { length: 256 },
  (_, i) => i.toString(16).padStart(2, "0"),
);

function toHex(buffer: ArrayBuffer): string {
  const bytes = new Uint8Array(buffer);
  let text = "";
  for (let i = 0; i < bytes.length; i++) text += HEX[bytes[i]];
  return text;
}

// As an int32 (`| 0` where it is used): the hash lives in a 32-bit register
// instead of a double, and `>>> 0` makes the result unsigned again.
const FNV_OFFSET_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/**
 * The 32-bit FNV-1a hash of a string's UTF-8 bytes (lone surrogates count as
 * U+FFFD, as `TextEncoder` writes them). It is the `bucket` operation's hash:
 * a cheap, well-spread partitioning hash whose value is the same in every run,
 * process and language that implements FNV-1a over UTF-8. It is **not** a
 * cryptographic hash: anyone can craft inputs that collide, so never use it
 * for security (use the `hash` operation, SHA-256, for pseudonymization).
 *
 * @param text The text to hash.
 * @returns The hash, an unsigned 32-bit integer.
 * @example Published FNV-1a test vectors
 * ```ts
 * import { fnv1a32 } from "./transform.ts";
 * console.assert(fnv1a32("") === 0x811c9dc5);
 * console.assert(fnv1a32("a") === 0xe40c292c);
 * console.assert(fnv1a32("foobar") === 0xbf9cf968);
 * ```
 */
export function fnv1a32(text: string): number {
  let hash = FNV_OFFSET_BASIS | 0;
  const n = text.length;
  let i = 0;
  // ASCII is one byte per character; kept small so that it inlines.
  for (; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80) return fnv1a32Utf8(text, i, hash);
    hash = Math.imul(hash ^ c, FNV_PRIME);
  }
  return hash >>> 0;
}

/** FNV-1a from index `i` on, UTF-8 encoding inline so that no buffer is needed. */
function fnv1a32Utf8(text: string, i: number, hash: number): number {
  const n = text.length;
  for (; i < n; i++) {
    let c = text.charCodeAt(i);
    if (c < 0x80) {
      hash = Math.imul(hash ^ c, FNV_PRIME);
      continue;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const next = i + 1 < n ? text.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
        i++;
      } else {
        c = 0xfffd;
      }
    }
    if (c < 0x800) {
      hash = Math.imul(hash ^ (0xc0 | (c >> 6)), FNV_PRIME);
    } else {
      if (c < 0x10000) {
        hash = Math.imul(hash ^ (0xe0 | (c >> 12)), FNV_PRIME);
      } else {
        hash = Math.imul(hash ^ (0xf0 | (c >> 18)), FNV_PRIME);
        hash = Math.imul(hash ^ (0x80 | ((c >> 12) & 0x3f)), FNV_PRIME);
      }
      hash = Math.imul(hash ^ (0x80 | ((c >> 6) & 0x3f)), FNV_PRIME);
    }
    hash = Math.imul(hash ^ (0x80 | (c & 0x3f)), FNV_PRIME);
  }
  return hash >>> 0;
}

/** The text a `hash` or `bucket` step reads: strings as they are, numbers and the like as decimal text. */
function hashText(step: Step, value: unknown): string {
  switch (typeof value) {
    case "string":
      return value;
    case "number":
    case "boolean":
    case "bigint":
      return String(value);
    default:
      throw step.fail(
        `cannot ${step.operation} ${
          describeValue(value)
        }; ${step.operation} a string or number field (or flatten first)`,
      );
  }
}

/** Applies one synchronous step; throws TransformError (or TypeError from a write). */
function applyStep(step: Step, draft: EventDraft, nowMs: number): void {
  const code = step.code;
  if (code === OP_SET) {
    const value = step.template!.render(draft.root, nowMs);
    if (value !== undefined) draft.set(step.target, value);
    return;
  }
  const value = step.get(draft.root);
  if (code === OP_DEFAULT) {
    if (value === undefined || value === null) {
      const fallback = step.template!.render(draft.root, nowMs);
      if (fallback !== undefined) draft.set(step.target, fallback);
    } else if (!step.inPlace) {
      draft.set(step.target, value);
    }
    return;
  }
  if (value === undefined) {
    if (step.required) throw step.fail("the field is missing");
    return;
  }
  switch (code) {
    case OP_RENAME:
      draft.delete(step.source);
      draft.set(step.target, value);
      return;
    case OP_COPY:
      draft.set(step.target, value);
      return;
    case OP_REMOVE:
      draft.delete(step.source);
      return;
  }
  if (value === null) {
    if (step.required) throw step.fail("the field is null");
    return;
  }
  const compute = VALUE_OPS[code];
  if (compute !== undefined) {
    draft.set(step.target, compute(step, value));
    return;
  }
  switch (code) {
    case OP_FLATTEN: {
      if (!isRecord(value) || value instanceof Date) {
        throw step.fail(`expected an object to flatten, found ${describeValue(value)}`);
      }
      const flat: Rec = {};
      flattenInto(step, flat, value, "", 1);
      draft.set(step.target, flat);
      return;
    }
  }
  throw step.fail("internal error: unknown step");
}

/** What a value operation writes, from the field's value (neither `undefined` nor `null`). */
type ValueOp = (step: Step, value: unknown) => unknown;

function toLowerCase(step: Step, value: unknown): string {
  if (typeof value !== "string") {
    throw step.fail(`expected a string, found ${describeValue(value)}`);
  }
  return value.toLowerCase();
}

function toUpperCase(step: Step, value: unknown): string {
  if (typeof value !== "string") {
    throw step.fail(`expected a string, found ${describeValue(value)}`);
  }
  return value.toUpperCase();
}

function parseIso(step: Step, value: unknown): number | string {
  const ms = parseTimestampMs(value);
  if (ms === undefined) {
    throw step.fail(
      `cannot parse ${
        describeValue(value)
      } as a timestamp (expected ISO 8601 such as "2024-01-01T12:00:00Z", or epoch seconds or milliseconds)`,
    );
  }
  return step.unit === "s" ? ms / 1000 : fromMs(ms, step.unit);
}

function bucket(step: Step, value: unknown): number {
  const text = typeof value === "string" ? value : hashText(step, value);
  let hash = FNV_OFFSET_BASIS | 0;
  let i = 0;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80) break;
    hash = Math.imul(hash ^ c, FNV_PRIME);
  }
  if (i < text.length) hash = fnv1a32Utf8(text, i, hash);
  return (hash >>> 0) % step.buckets;
}

/** The value operations by code (the others are handled by applyStep itself). */
const VALUE_OPS: readonly (ValueOp | undefined)[] = (() => {
  const ops: (ValueOp | undefined)[] = [];
  ops[OP_LOWERCASE] = toLowerCase;
  ops[OP_UPPERCASE] = toUpperCase;
  ops[OP_TO_NUMBER] = toNumber;
  ops[OP_TO_STRING] = toText;
  ops[OP_PARSE_ISO] = parseIso;
  ops[OP_BUCKET] = bucket;
  return ops;
})();

function toNumber(step: Step, value: unknown): number {
  if (typeof value === "number") {
    if (Number.isFinite(value)) return value;
    throw step.fail(`cannot convert ${describeValue(value)} to a number`);
  }
  if (typeof value === "string") {
    const text = value.trim();
    if (DECIMAL.test(text)) {
      const n = Number(text);
      if (Number.isFinite(n)) return n;
    }
    throw step.fail(`cannot convert ${JSON.stringify(clip(value))} to a number`);
  }
  if (typeof value === "bigint") {
    const n = Number(value);
    if (Number.isSafeInteger(n)) return n;
    throw step.fail(`cannot convert the bigint ${value} to a number without losing precision`);
  }
  throw step.fail(`cannot convert ${describeValue(value)} to a number`);
}

function toText(step: Step, value: unknown): string {
  switch (typeof value) {
    case "string":
      return value;
    case "number":
    case "boolean":
    case "bigint":
      return String(value);
  }
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) {
      throw step.fail("cannot convert an invalid Date to a string");
    }
    return value.toISOString();
  }
  try {
    const json = JSON.stringify(value);
    if (json !== undefined) return json;
  } catch (error) {
    throw step.fail(
      `cannot convert ${describeValue(value)} to JSON: ${errorMessage(error)}`,
      error,
    );
  }
  throw step.fail(`cannot convert ${describeValue(value)} to a string`);
}

function flattenInto(step: Step, out: Rec, value: Rec, prefix: string, depth: number): void {
  if (depth > MAX_FLATTEN_DEPTH) {
    throw step.fail(`the object is nested more than ${MAX_FLATTEN_DEPTH} levels deep (a cycle?)`);
  }
  const keys = Object.keys(value);
  if (keys.length === 0 && prefix !== "") {
    // An empty nested object is kept as a value, so that it does not vanish.
    putKey(out, prefix, value);
    return;
  }
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    const item = value[key];
    const name = prefix === "" ? key : prefix + step.separator + key;
    if (
      typeof item === "object" && item !== null && !Array.isArray(item) && !(item instanceof Date)
    ) {
      flattenInto(step, out, item as Rec, name, depth + 1);
    } else {
      putKey(out, name, item);
    }
  }
}

/** Stores a key taken from event data: `__proto__` becomes a data key, never the prototype. */
function putKey(out: Rec, name: string, value: unknown): void {
  if (name === "__proto__") {
    Object.defineProperty(out, name, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  } else {
    out[name] = value;
  }
}

/** Reads the input of a hash step: the bytes to digest, or `undefined` to skip. */
function hashInput(step: Step, draft: EventDraft): Uint8Array<ArrayBuffer> | undefined {
  const value = step.get(draft.root);
  if (value === undefined || value === null) {
    if (step.required) {
      throw step.fail(value === undefined ? "the field is missing" : "the field is null");
    }
    return undefined;
  }
  const text = hashText(step, value);
  return encoder.encode(step.salt === "" ? text : step.salt + text);
}

function asTransformError(step: Step, error: unknown): TransformError {
  return error instanceof TransformError ? error : step.fail(errorMessage(error), error);
}

// ---------------------------------------------------------------------------
// Pipelines

/** The result of {@linkcode TransformPipeline.transformBatch}. */
export interface TransformBatchResult {
  /** The transformed events, in order; `undefined` where an event failed. */
  events: (Record<string, unknown> | undefined)[];
  /** Why an event failed, at its index; empty when none failed. */
  errors: (Error | undefined)[];
  /** How many events failed. */
  failed: number;
}

interface Stage {
  sync: readonly Step[];
  hash: Step | undefined;
}

/**
 * A compiled list of transformations. Build one with
 * {@linkcode compileTransformations}.
 */
export interface TransformPipeline {
  /** How many transformations it applies. */
  readonly size: number;
  /** Whether it contains a `hash` (Web Crypto is asynchronous). */
  readonly async: boolean;
  /**
   * Applies every transformation to the event in `draft` (synchronous
   * pipelines only: see {@linkcode TransformPipeline.async}).
   *
   * @param draft The event, already {@linkcode EventDraft.reset reset}.
   * @param nowMs The clock's time for `${now}`.
   * @throws {TransformError} When a transformation fails on this event.
   * @throws {TypeError} When the pipeline contains a `hash`.
   */
  applyTo(draft: EventDraft, nowMs: number): void;
  /**
   * Transforms a batch. Digests of a `hash` step are computed for the whole
   * batch at once. The inputs are never modified.
   *
   * @param events The events (objects; anything else fails with a `TypeError`).
   * @param originals The events as received, when some `events[i]` are
   * already private copies of `originals[i]` that may be written in place.
   * @returns The results, synchronously when {@linkcode TransformPipeline.async} is false.
   */
  transformBatch(
    events: readonly unknown[],
    originals?: readonly unknown[],
  ): TransformBatchResult | Promise<TransformBatchResult>;
  /**
   * Transforms one event.
   *
   * @param event The event.
   * @returns The transformed event (a copy, or the event itself when nothing was written).
   * @throws {TransformError} When a transformation fails.
   * @throws {TypeError} When the event is not an object.
   */
  transform(event: unknown): Promise<Record<string, unknown>>;
  /**
   * Transforms one event synchronously (synchronous pipelines only). The
   * event is never modified.
   *
   * @param event The event.
   * @param nowMs The clock's time for `${now}`.
   * @returns The event itself when nothing was written, else a copy.
   * @throws {TransformError} When a transformation fails on this event.
   * @throws {TypeError} When the pipeline contains a `hash`.
   */
  transformSync(event: Record<string, unknown>, nowMs: number): Record<string, unknown>;
}

/** A compiled pipeline of top-level writes: the input, written to a copy made at the first write. */
type FastPipeline = (root: Rec, input: Rec, nowMs: number) => Rec;
/**
 * A synchronous pipeline whose steps all write one top-level field (copy,
 * set, default and the value operations) as one generated function (see
 * `runtime/codegen.ts`): getters, the copy made at the first write and the
 * writes inline, every failure turned into the failing step's
 * TransformError. Such a pipeline never copies nested objects, so it needs no
 * draft. `undefined` when a step does something else (rename, remove,
 * flatten, nested targets) or code generation is disabled; the draft path
 * then gives the same results.
 */
function generateFast(steps: readonly Step[]): FastPipeline | undefined {
  const code = new CodeBuilder();
  const wrap = code.bind(asTransformError);
  let body = "";
  for (const step of steps) {
    if ((step.target as WritePath)[WRITER] === undefined || step.target.length !== 1) {
      return undefined;
    }
    const self = code.bind(step);
    const write = `if (root === input) root = { ...input };\nroot[${
      JSON.stringify(step.target[0])
    }] = v;\n`;
    const compute = VALUE_OPS[step.code];
    let statements: string;
    if (compute !== undefined) {
      const missing = step.required
        ? `throw ${self}.fail(v === undefined ? "the field is missing" : "the field is null");\n`
        : "";
      statements = `v = ${code.getter(step.source)}(root);\n` +
        `if (v === undefined || v === null) {\n${missing}} else {\n` +
        `v = ${code.bind(compute)}(${self}, v);\n${write}}\n`;
    } else if (step.code === OP_COPY) {
      const missing = step.required ? `throw ${self}.fail("the field is missing");\n` : "";
      statements = `v = ${code.getter(step.source)}(root);\n` +
        `if (v === undefined) {\n${missing}} else {\n${write}}\n`;
    } else if (step.code === OP_SET) {
      const template = step.template!;
      const value = template.constant
        ? code.literal(template.render(undefined, 0))
        : `${code.bind(template)}.render(root, nowMs)`;
      statements = `v = ${value};\nif (v !== undefined) {\n${write}}\n`;
    } else if (step.code === OP_DEFAULT) {
      statements = `v = ${code.getter(step.source)}(root);\n` +
        `if (v === undefined || v === null) {\n` +
        `v = ${code.bind(step.template!)}.render(root, nowMs);\n` +
        `if (v !== undefined) {\n${write}}\n` +
        `} else ${step.inPlace ? "{}" : `{\n${write}}`}\n`;
    } else {
      return undefined;
    }
    body += `step = ${self};\n${statements}`;
  }
  // One `try` for every step; `step` names the one that failed.
  return code.compile<FastPipeline>(
    `return function transform(root, input, nowMs) {\nlet v, step;\ntry {\n${body}} catch (error) {\n` +
      `throw ${wrap}(step, error);\n}\nreturn root;\n};`,
  );
}

class Pipeline implements TransformPipeline {
  readonly size: number;
  readonly async: boolean;
  readonly #stages: readonly Stage[];
  readonly #steps: readonly Step[];
  readonly #now: () => number;
  readonly #draft = new EventDraft();
  readonly #fast: FastPipeline | undefined;

  constructor(steps: readonly Step[], now: () => number) {
    this.#steps = steps;
    this.#now = now;
    this.size = steps.length;
    const stages: Stage[] = [];
    let sync: Step[] = [];
    for (const step of steps) {
      if (step.code === OP_HASH) {
        stages.push({ sync, hash: step });
        sync = [];
      } else {
        sync.push(step);
      }
    }
    stages.push({ sync, hash: undefined });
    this.#stages = stages;
    this.async = stages.length > 1;
    this.#fast = this.async ? undefined : generateFast(steps);
  }

  transformSync(event: Record<string, unknown>, nowMs: number): Record<string, unknown> {
    if (this.#fast !== undefined) return this.#fast(event, event, nowMs);
    const draft = this.#draft;
    draft.reset(event);
    this.applyTo(draft, nowMs);
    return draft.root;
  }

  applyTo(draft: EventDraft, nowMs: number): void {
    if (this.async) {
      throw new TypeError("this pipeline hashes (asynchronously); use transformBatch()");
    }
    const steps = this.#steps;
    let i = 0;
    try {
      for (; i < steps.length; i++) applyStep(steps[i], draft, nowMs);
    } catch (error) {
      throw asTransformError(steps[i], error);
    }
  }

  transformBatch(
    events: readonly unknown[],
    originals?: readonly unknown[],
  ): TransformBatchResult | Promise<TransformBatchResult> {
    const result: TransformBatchResult = {
      events: new Array(events.length),
      errors: [],
      failed: 0,
    };
    const nowMs = this.#now();
    const current = result.events;
    for (let i = 0; i < events.length; i++) {
      const event = events[i];
      if (isRecord(event)) current[i] = event;
      else {fail(
          result,
          i,
          new TypeError(`expected an event object, found ${describeValue(event)}`),
        );}
    }
    if (!this.async) {
      this.#runSync(this.#stages[0].sync, result, originals, nowMs);
      return result;
    }
    return this.#runStages(result, originals, nowMs);
  }

  async transform(event: unknown): Promise<Record<string, unknown>> {
    const result = await this.transformBatch([event]);
    if (result.failed > 0) throw result.errors[0];
    return result.events[0]!;
  }

  #runSync(
    steps: readonly Step[],
    result: TransformBatchResult,
    originals: readonly unknown[] | undefined,
    nowMs: number,
  ): void {
    const current = result.events;
    const draft = this.#draft;
    for (let i = 0; i < current.length; i++) {
      const event = current[i];
      if (event === undefined) continue;
      draft.reset(event, (originals?.[i] as Rec | undefined) ?? event);
      let s = 0;
      try {
        for (; s < steps.length; s++) applyStep(steps[s], draft, nowMs);
        current[i] = draft.root;
      } catch (error) {
        fail(result, i, asTransformError(steps[s], error));
      }
    }
  }

  async #runStages(
    result: TransformBatchResult,
    originals: readonly unknown[] | undefined,
    nowMs: number,
  ): Promise<TransformBatchResult> {
    const current = result.events;
    const draft = this.#draft;
    // The events as received, so that later stages know which roots are private copies.
    const inputs = originals ?? current.slice();
    for (const stage of this.#stages) {
      this.#runSync(stage.sync, result, inputs, nowMs);
      const hash = stage.hash;
      if (hash === undefined) continue;
      const indexes: number[] = [];
      const digests: Promise<ArrayBuffer>[] = [];
      for (let i = 0; i < current.length; i++) {
        const event = current[i];
        if (event === undefined) continue;
        draft.reset(event, inputs[i] as Rec);
        try {
          const bytes = hashInput(hash, draft);
          if (bytes === undefined) continue;
          indexes.push(i);
          digests.push(crypto.subtle.digest("SHA-256", bytes));
        } catch (error) {
          fail(result, i, asTransformError(hash, error));
        }
      }
      const hexes = await Promise.all(digests);
      for (let k = 0; k < indexes.length; k++) {
        const i = indexes[k];
        draft.reset(current[i]!, inputs[i] as Rec);
        try {
          draft.set(hash.target, toHex(hexes[k]));
          current[i] = draft.root;
        } catch (error) {
          fail(result, i, asTransformError(hash, error));
        }
      }
    }
    return result;
  }
}

function fail(result: TransformBatchResult, index: number, error: Error): void {
  result.events[index] = undefined;
  result.errors[index] = error;
  result.failed++;
}

const realNow = (): number => Date.now();
const realEnv = (name: string): string | undefined => Deno.env.get(name);

/**
 * Validates and compiles a list of transformations. Every problem becomes a
 * {@linkcode ConfigIssue} under `path` (`transformations[2].operation`):
 * unknown operations and keys (with "did you mean"), missing `field`,
 * `value` or `output_field`, malformed paths and templates, keys that the
 * operation does not use, an unknown `unit`, and a `salt_env` variable that
 * is not set. Nothing is thrown for config problems.
 *
 * @param list The transformations as written in the config.
 * @param path The config path of the list; it also prefixes run-time error
 * messages (`transformations[1] (to_number) on field "x": …`).
 * @param issues Receives every problem found.
 * @param options The clock for `${now}` and the environment for `salt_env`.
 * @returns The pipeline (empty when this call added issues; not meant to be used).
 * @example Parse, hash, flatten
 * ```ts
 * import { compileTransformations } from "./transform.ts";
 * const issues: { path: string; message: string }[] = [];
 * const pipeline = compileTransformations(
 *   [
 *     { field: "timestamp", operation: "parse_iso", output_field: "parsed_timestamp" },
 *     { field: "user_id", operation: "hash", output_field: "user_hash" },
 *     { field: "event_data", operation: "flatten", output_field: "flat_data" },
 *   ],
 *   "transformations",
 *   issues,
 * );
 * console.assert(issues.length === 0 && pipeline.async);
 * const out = await pipeline.transform({
 *   timestamp: "2024-01-01T00:00:00Z",
 *   user_id: "abc",
 *   event_data: { page: { url: "/" } },
 * });
 * console.assert(out.parsed_timestamp === 1704067200);
 * console.assert(String(out.user_hash).startsWith("ba7816bf"));
 * console.assert(JSON.stringify(out.flat_data) === '{"page.url":"/"}');
 * ```
 * @example A typo in an operation
 * ```ts
 * import { compileTransformations } from "./transform.ts";
 * const issues: { path: string; message: string }[] = [];
 * compileTransformations([{ field: "a", operation: "lowercas" }], "t", issues);
 * console.assert(issues[0].path === "t[0].operation");
 * console.assert(issues[0].message === 'unknown operation "lowercas"; did you mean "lowercase"?');
 * ```
 */
export function compileTransformations(
  list: unknown,
  path: string,
  issues: ConfigIssue[],
  options: TransformOptions = {},
): TransformPipeline {
  const now = options.now ?? realNow;
  const env = options.env ?? realEnv;
  if (!Array.isArray(list)) {
    issues.push({
      path,
      message: `expected an array of transformations, found ${describeValue(list)}`,
    });
    return new Pipeline([], now);
  }
  const before = issues.length;
  const steps: Step[] = [];
  list.forEach((spec, i) => {
    const step = compileStep(spec, `${path}[${i}]`, issues, env);
    if (step) steps.push(step);
  });
  return new Pipeline(issues.length > before ? [] : steps, now);
}

function compileStep(
  spec: unknown,
  path: string,
  issues: ConfigIssue[],
  env: (name: string) => string | undefined,
): Step | undefined {
  if (!isRecord(spec)) {
    issues.push({
      path,
      message: `expected a transformation such as {field: "name", operation: "lowercase"}, found ${
        describeValue(spec)
      }`,
    });
    return undefined;
  }
  const before = issues.length;
  const operation = spec.operation;
  let op: TransformOperation | undefined;
  if (operation === undefined) {
    issues.push({
      path: `${path}.operation`,
      message: `missing "operation": expected one of ${TRANSFORM_OPERATIONS.join(", ")}`,
    });
  } else if (typeof operation !== "string") {
    issues.push({
      path: `${path}.operation`,
      message: `expected an operation name, found ${describeValue(operation)}`,
    });
  } else if (!OPERATION_SET.has(operation)) {
    const hint = suggest(operation, TRANSFORM_OPERATIONS);
    issues.push({
      path: `${path}.operation`,
      message: hint === undefined
        ? `unknown operation "${operation}"; expected one of ${TRANSFORM_OPERATIONS.join(", ")}`
        : `unknown operation "${operation}"; did you mean "${hint}"?`,
    });
  } else {
    op = operation as TransformOperation;
  }

  // Keys: unknown anywhere, or not used by this operation.
  for (const key of Object.keys(spec)) {
    if ((COMMON_KEYS as readonly string[]).includes(key)) continue;
    if (!ALL_KEYS.includes(key)) {
      const hint = suggest(key, op ? [...COMMON_KEYS, ...EXTRA_KEYS[op]] : ALL_KEYS);
      issues.push({
        path: join(path, key),
        message: `unknown key "${key}"${hint ? `; did you mean "${hint}"?` : ""}`,
      });
    } else if (op && !EXTRA_KEYS[op].includes(key)) {
      issues.push({
        path: join(path, key),
        message: `"${key}" is not used by operation "${op}"`,
      });
    }
  }

  const field = spec.field;
  let get: PathGetter | undefined;
  let source: readonly string[] | undefined;
  const writesField = op === "set" || op === "remove" || op === "rename";
  if (field === undefined) {
    issues.push({
      path: `${path}.field`,
      message: `missing "field": expected a dot path such as "data.value"`,
    });
  } else if (typeof field !== "string") {
    issues.push({
      path: `${path}.field`,
      message: `expected a dot path such as "data.value", found ${describeValue(field)}`,
    });
  } else {
    try {
      get = compilePath(field);
      source = writesField ? compileWritePath(field) : field.split(".");
    } catch (error) {
      issues.push({ path: `${path}.field`, message: errorMessage(error) });
    }
  }

  const output = spec.output_field;
  let target: readonly string[] | undefined = source;
  if (output !== undefined) {
    if (op === "set" || op === "remove") {
      issues.push({
        path: `${path}.output_field`,
        message: `operation "${op}" takes no "output_field"; ${
          op === "set" ? "it writes" : "it deletes"
        } "field"`,
      });
    } else if (typeof output !== "string") {
      issues.push({
        path: `${path}.output_field`,
        message: `expected a dot path such as "data.value", found ${describeValue(output)}`,
      });
    } else {
      try {
        target = compileWritePath(output);
      } catch (error) {
        issues.push({ path: `${path}.output_field`, message: errorMessage(error) });
      }
      if (op === "rename" && output === field) {
        issues.push({
          path: `${path}.output_field`,
          message: `"output_field" of "rename" must differ from "field" (both are "${output}")`,
        });
      }
    }
  } else if (op === "rename" || op === "copy") {
    issues.push({
      path: `${path}.output_field`,
      message: `missing "output_field": operation "${op}" needs the destination field`,
    });
  } else if (source !== undefined && op !== undefined && !writesField) {
    // In place: the field is also the write target.
    try {
      target = compileWritePath(field as string);
    } catch (error) {
      issues.push({ path: `${path}.field`, message: errorMessage(error) });
    }
  }

  const required = spec.required;
  if (required !== undefined) {
    if (typeof required !== "boolean") {
      issues.push({
        path: `${path}.required`,
        message: `expected true or false, found ${describeValue(required)}`,
      });
    } else if (op === "set" || op === "default") {
      issues.push({
        path: `${path}.required`,
        message: `"required" is not used by operation "${op}"${
          op === "default" ? ", which exists for missing fields" : ""
        }`,
      });
    }
  }

  let template: Template | undefined;
  if (op === "set" || op === "default") {
    if (spec.value === undefined) {
      issues.push({ path: `${path}.value`, message: `missing "value" for operation "${op}"` });
    } else {
      template = compileTemplate(spec.value, `${path}.value`, issues);
    }
  }

  let unit: TimeUnit = "s";
  if (op === "parse_iso" && spec.unit !== undefined) {
    if (typeof spec.unit === "string" && (TIME_UNITS as readonly string[]).includes(spec.unit)) {
      unit = spec.unit as TimeUnit;
    } else {
      const hint = typeof spec.unit === "string" ? suggest(spec.unit, TIME_UNITS) : undefined;
      issues.push({
        path: `${path}.unit`,
        message: `expected one of s, ms, iso, found ${describeValue(spec.unit)}${
          hint ? `; did you mean "${hint}"?` : ""
        }`,
      });
    }
  }

  let separator = ".";
  if (op === "flatten" && spec.separator !== undefined) {
    if (typeof spec.separator === "string" && spec.separator !== "") separator = spec.separator;
    else {
      issues.push({
        path: `${path}.separator`,
        message: `expected a non-empty string, found ${describeValue(spec.separator)}`,
      });
    }
  }

  let salt = "";
  if (op === "hash" && spec.salt_env !== undefined) {
    const name = spec.salt_env;
    if (typeof name !== "string" || !ENV_NAME.test(name)) {
      issues.push({
        path: `${path}.salt_env`,
        message: `expected an environment variable name such as "USER_HASH_SALT", found ${
          describeValue(name)
        }`,
      });
    } else {
      // The salt is a secret: it is only ever kept in the compiled step.
      let value: string | undefined;
      let readable = true;
      try {
        value = env(name);
      } catch (error) {
        readable = false;
        issues.push({
          path: `${path}.salt_env`,
          message: `cannot read environment variable ${name} (run with --allow-env): ${
            errorMessage(error)
          }`,
        });
      }
      if (readable && (value === undefined || value === "")) {
        issues.push({
          path: `${path}.salt_env`,
          message: `environment variable ${name} is ${
            value === undefined ? "not set" : "empty"
          } (it holds the salt of the hash)`,
        });
      } else if (value !== undefined) {
        salt = value;
      }
    }
  }

  let buckets = 0;
  if (op === "bucket") {
    const n = spec.buckets;
    if (n === undefined) {
      issues.push({
        path: `${path}.buckets`,
        message: `missing "buckets" for operation "bucket": expected how many buckets, such as 16`,
      });
    } else if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > MAX_BUCKETS) {
      issues.push({
        path: `${path}.buckets`,
        message: `expected an integer from 1 to ${MAX_BUCKETS}, found ${describeValue(n)}`,
      });
    } else {
      buckets = n;
    }
  }

  if (
    issues.length > before || op === undefined || get === undefined || source === undefined ||
    target === undefined
  ) {
    return undefined;
  }
  return new Step(
    OP_CODES[op],
    path,
    op,
    field as string,
    get,
    source,
    target,
    output === undefined,
    required === true,
    template,
    unit,
    separator,
    salt,
    buckets,
  );
}

function clip(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (value === undefined) return "nothing";
  if (Array.isArray(value)) return "an array";
  if (value instanceof Date) return "a Date";
  switch (typeof value) {
    case "string":
      return `a string (${JSON.stringify(clip(value))})`;
    case "number":
      return `a number (${value})`;
    case "boolean":
      return `a boolean (${value})`;
    case "bigint":
      return `a bigint (${value})`;
    case "object":
      return "an object";
    default:
      return `a ${typeof value}`;
  }
}

// ---------------------------------------------------------------------------
// The node

/** Config of EventTransformNode. */
export interface EventTransformConfig {
  /** The transformations, applied in order. */
  transformations: Transformation[];
}

const eventTransformConfig: Schema<EventTransformConfig> = s.object({
  transformations: s.array(s.any<Transformation>({ type: "transformation" }), {
    minItems: 1,
    doc: "Transformations applied in order: {field, operation, output_field?, ...}; operations: " +
      TRANSFORM_OPERATIONS.join(", ") + ".",
  }),
}) as Schema<EventTransformConfig>;

class EventTransformActor implements Actor<unknown, Record<string, unknown>> {
  readonly #pipeline: TransformPipeline;
  readonly #clock: Clock;

  constructor(pipeline: TransformPipeline, clock: Clock) {
    this.#pipeline = pipeline;
    this.#clock = clock;
  }

  handle(batch: unknown[], ctx: ActorContext<Record<string, unknown>>): void | Promise<void> {
    const pipeline = this.#pipeline;
    if (pipeline.async) return this.#handleAsync(batch, ctx);
    // One clock reading per batch, for `${now}`.
    const nowMs = this.#clock.now();
    const n = batch.length;
    // Preallocated output, handed over whole (see ActorContext.emitMany).
    const out: Record<string, unknown>[] = new Array(n);
    let count = 0;
    let i = 0;
    // One `try` around the loop, re-entered after a failure: the loop body
    // itself stays free of exception handling.
    while (i < n) {
      try {
        for (; i < n; i++) {
          const event = batch[i];
          if (typeof event !== "object" || event === null || Array.isArray(event)) {
            ctx.deadLetter(
              event,
              new TypeError(`expected an event object, found ${describeValue(event)}`),
            );
            continue;
          }
          // (Not `out[count++] = …`: the index would be taken before a throw.)
          const result = pipeline.transformSync(event as Record<string, unknown>, nowMs);
          out[count++] = result;
        }
      } catch (error) {
        // The pipeline fails before the event is stored: it emitted nothing.
        ctx.deadLetter(batch[i++], error, deadLetterContext(error));
      }
    }
    if (count > 0) {
      out.length = count;
      ctx.emitMany(out);
    }
  }

  async #handleAsync(batch: unknown[], ctx: ActorContext<Record<string, unknown>>): Promise<void> {
    const result = await this.#pipeline.transformBatch(batch);
    const events = result.events;
    for (let i = 0; i < batch.length; i++) {
      const event = events[i];
      if (event === undefined) {
        ctx.deadLetter(batch[i], result.errors[i], deadLetterContext(result.errors[i]));
      } else ctx.emit(event);
    }
  }
}

/**
 * Dead-letter context of a transformation failure: which step, operation and field.
 *
 * @param error What a pipeline threw or reported.
 * @returns The context, or `undefined` for other errors.
 * @example
 * ```ts
 * import { deadLetterContext, TransformError } from "./transform.ts";
 * const context = deadLetterContext(new TransformError("transformations[0]", "hash", "id", "x"));
 * console.assert(context?.step === "transformations[0]");
 * ```
 */
export function deadLetterContext(error: unknown): Record<string, unknown> | undefined {
  return error instanceof TransformError
    ? { step: error.step, operation: error.operation, field: error.field }
    : undefined;
}

/** The EventTransformNode type. */
export const EventTransformNode: NodeSpec<EventTransformConfig> = {
  type: "EventTransformNode",
  kind: "processor",
  description:
    "Applies transformations in order to every event: parse_iso, hash (SHA-256, optional salt_env), bucket (FNV-1a mod buckets, a cheap partitioning hash), flatten, rename, copy, remove, set, default, lowercase, uppercase, to_number, to_string. An event a transformation fails on goes to the dead letters with the reason; inputs are never mutated. salt_env needs --allow-env.",
  config: eventTransformConfig,
  validate(config, path, issues) {
    compileTransformations(config.transformations, `${path}.transformations`, issues);
  },
  create(config, env) {
    const issues: ConfigIssue[] = [];
    const pipeline = compileTransformations(config.transformations, "transformations", issues, {
      now: () => env.clock.now(),
    });
    // Only reachable when the environment changed since validation (a restart after unsetting salt_env).
    if (issues.length > 0) throw new ConfigError(issues);
    return new EventTransformActor(pipeline, env.clock);
  },
};

/**
 * A typed EventTransformNode for the fluent builder.
 *
 * @param transformations The transformations, applied in order.
 * @returns A node definition.
 * @example
 * ```ts
 * import { eventTransform } from "./transform.ts";
 * const def = eventTransform([{ field: "user_id", operation: "hash", output_field: "user_hash" }]);
 * console.assert(def.type === "EventTransformNode");
 * ```
 */
export function eventTransform(
  transformations: Transformation[],
): NodeDef<Record<string, unknown>, Record<string, unknown>> {
  return { type: "EventTransformNode", config: { transformations } };
}
