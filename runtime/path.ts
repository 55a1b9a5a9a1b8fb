/**
 * Dot paths into events (`data.value`, `items.0.id`): reading, writing and
 * deleting nested fields without ever touching prototypes.
 *
 * Rules shared by every function here:
 * - A path is keys joined by `.`; array elements are addressed by their index
 *   (`items.0.id`). Keys that themselves contain a dot cannot be addressed.
 * - Only *own* properties are followed (`Object.hasOwn`), so `constructor`,
 *   `__proto__`, `prototype` or `toString` never resolve through the
 *   prototype chain, nor do keys added to `Object.prototype` (prototype
 *   pollution). An own key of that name (as `JSON.parse` can create)
 *   is an ordinary key. Own properties include an array's `length`, so
 *   `items.length` reads an array's size. (Compiled getters read a key
 *   before they check that it is own: an inherited getter, as class
 *   instances can have, may run, and its result is discarded.)
 * - Paths only walk into objects and arrays; a segment after a string,
 *   number or other primitive resolves to `undefined`.
 * - A value of `undefined` is the same as a missing field (JSON has no
 *   `undefined`).
 *
 * @module
 */

import { CodeBuilder } from "./codegen.ts";

/** Reads the value at a precompiled path; `undefined` when it is missing. */
export type PathGetter = (obj: unknown) => unknown;

/** Segments that could reach or replace a prototype when written to. */
const FORBIDDEN_SEGMENTS: ReadonlySet<string> = new Set([
  "__proto__",
  "constructor",
  "prototype",
]);

/**
 * Splits a dot path into its segments.
 *
 * @param path A dot path such as `data.value` or `items.0.id`.
 * @returns The segments, at least one.
 * @throws {TypeError} When `path` is not a string, is empty or has an empty
 * segment (`a..b`, `.a`, `a.`).
 * @example Splitting a path
 * ```ts
 * import { parsePath } from "./path.ts";
 * console.assert(parsePath("items.0.id").join("|") === "items|0|id");
 * ```
 */
export function parsePath(path: string): string[] {
  if (typeof path !== "string") {
    throw new TypeError(
      `expected a dot path string, found ${typeof path}`,
    );
  }
  if (path === "") {
    throw new TypeError(`expected a dot path such as "data.value", found ""`);
  }
  const segments = path.split(".");
  if (segments.includes("")) {
    throw new TypeError(
      `invalid path "${path}": expected keys separated by single dots, found an empty key`,
    );
  }
  return segments;
}

function child(obj: unknown, key: string): unknown {
  return typeof obj === "object" && obj !== null && Object.hasOwn(obj, key)
    ? (obj as Record<string, unknown>)[key]
    : undefined;
}

/**
 * Compiled getters by path, reused: a node built again from the same config
 * (a restart, a new workflow in the same process) calls the getter it called
 * before, so its call sites keep one target and stay optimized.
 */
const getters = new Map<string, PathGetter>();
const MAX_GETTERS = 10_000;

/**
 * Compiles a dot path once into a getter that is fast to call per event.
 *
 * The getter is generated code with the keys as constants (`o["data"]`), so
 * each path gets its own inline caches: reading the same fields of events of
 * the same shape becomes a few machine loads, where a shared getter with the
 * key in a variable would do a generic (megamorphic) lookup per segment. It
 * is compiled once per path and process, and returned again for the same
 * path. Where code generation is disabled, an equivalent closure is used.
 *
 * @param path A dot path such as `data.value`.
 * @returns A function reading the path from an object, `undefined` when any
 * segment is missing.
 * @throws {TypeError} When the path is malformed (see {@linkcode parsePath}).
 * @example Reading a nested field
 * ```ts
 * import { compilePath } from "./path.ts";
 * const getValue = compilePath("data.value");
 * console.assert(getValue({ data: { value: 42 } }) === 42);
 * console.assert(getValue({ data: "text" }) === undefined);
 * console.assert(compilePath("constructor")({}) === undefined);
 * ```
 */
export function compilePath(path: string): PathGetter {
  let getter = getters.get(path);
  if (getter === undefined) {
    const segments = parsePath(path);
    getter = generatedGetter(segments) ?? closureGetter(segments);
    if (getters.size >= MAX_GETTERS) getters.clear();
    getters.set(path, getter);
  }
  return getter;
}

/** Whether `new Function` works here (it does not under some embedders' policies). */
let codegen = true;

/**
 * Compiles a private copy of a closure factory: the same code, compiled
 * anew. The closures the copy makes get their own inline caches and
 * optimized code, so the calls and property accesses inside them see only
 * what one compiled condition or transformation uses, and inline. Closures
 * made by one shared factory share that feedback with every other use in the
 * process and stay generic (megamorphic).
 *
 * `factory` must use only its parameters and globals: the copy is compiled
 * from its source text, outside its module. Where code generation is
 * disabled (`new Function` throws), `factory` itself is returned, which
 * behaves the same, only slower.
 *
 * @typeParam F The factory's type.
 * @param factory A self-contained function that returns a closure.
 * @returns The private copy (or `factory`).
 * @example One predicate per field, each with its own inline caches
 * ```ts
 * import { compilePath, specialize } from "./path.ts";
 * const exists = (get: (o: unknown) => unknown) => (event: unknown) => get(event) !== undefined;
 * const hasUser = specialize(exists)(compilePath("user.id"));
 * console.assert(hasUser({ user: { id: 1 } }) && !hasUser({}));
 * ```
 */
export function specialize<F extends (...args: never[]) => unknown>(factory: F): F {
  if (!codegen) return factory;
  try {
    return new Function(`"use strict";\nreturn (${String(factory)});`)() as F;
  } catch {
    codegen = false;
    return factory;
  }
}

function generatedGetter(segments: readonly string[]): PathGetter | undefined {
  // Keys are embedded as JSON string literals, so no key can inject code.
  const code = new CodeBuilder();
  return code.compile<PathGetter>(`return ${code.getter(segments)};`);
}

function closureGetter(segments: readonly string[]): PathGetter {
  switch (segments.length) {
    case 1: {
      const [a] = segments;
      return (obj) => child(obj, a);
    }
    case 2: {
      const [a, b] = segments;
      return (obj) => child(child(obj, a), b);
    }
    default:
      return (obj) => {
        let current = obj;
        for (let i = 0; i < segments.length; i++) {
          current = child(current, segments[i]);
          if (current === undefined) return undefined;
        }
        return current;
      };
  }
}

/**
 * Reads the value at a dot path. For repeated reads of the same path use
 * {@linkcode compilePath}.
 *
 * @param obj The object to read from; anything else yields `undefined`.
 * @param path A dot path such as `a.b.c` or `items.0.id`.
 * @returns The value, or `undefined` when any segment is missing.
 * @throws {TypeError} When the path is malformed (see {@linkcode parsePath}).
 * @example Reading array elements and refusing prototypes
 * ```ts
 * import { getPath } from "./path.ts";
 * console.assert(getPath({ items: [{ id: "x" }] }, "items.0.id") === "x");
 * console.assert(getPath({}, "__proto__") === undefined);
 * ```
 */
export function getPath(obj: unknown, path: string): unknown {
  let current = obj;
  for (const segment of parsePath(path)) {
    current = child(current, segment);
    if (current === undefined) return undefined;
  }
  return current;
}

function assertObject(obj: unknown, what: string): asserts obj is object {
  if (typeof obj !== "object" || obj === null) {
    throw new TypeError(
      `${what} expects an object, found ${obj === null ? "null" : typeof obj}`,
    );
  }
}

/**
 * Writes `value` at a dot path, creating plain intermediate objects where keys
 * are missing (never arrays, even for numeric keys).
 *
 * @param obj The object to write into.
 * @param path A dot path such as `a.b.c`.
 * @param value The value to store.
 * @throws {TypeError} When `obj` is not an object, the path is malformed, a
 * segment is `__proto__`, `constructor` or `prototype` (writing through them
 * could pollute prototypes), or an existing intermediate value is not an
 * object (it is not silently replaced).
 * @example Creating intermediate objects
 * ```ts
 * import { setPath } from "./path.ts";
 * const event: Record<string, unknown> = {};
 * setPath(event, "meta.source.name", "kafka");
 * console.assert(JSON.stringify(event) === '{"meta":{"source":{"name":"kafka"}}}');
 * ```
 */
export function setPath(obj: object, path: string, value: unknown): void {
  assertObject(obj, "setPath");
  const segments = parsePath(path);
  for (const segment of segments) {
    if (FORBIDDEN_SEGMENTS.has(segment)) {
      throw new TypeError(
        `refusing to write path "${path}": segment "${segment}" could modify a prototype`,
      );
    }
  }
  let current = obj as Record<string, unknown>;
  for (let i = 0; i < segments.length - 1; i++) {
    const segment = segments[i];
    if (!Object.hasOwn(current, segment) || current[segment] === undefined) {
      const created: Record<string, unknown> = {};
      current[segment] = created;
      current = created;
      continue;
    }
    const next = current[segment];
    if (typeof next !== "object" || next === null) {
      throw new TypeError(
        `cannot write path "${path}": "${segments.slice(0, i + 1).join(".")}" holds ${
          next === null ? "null" : `a ${typeof next}`
        }, expected an object`,
      );
    }
    current = next as Record<string, unknown>;
  }
  current[segments[segments.length - 1]] = value;
}

/**
 * Deletes the own property at a dot path. Only own properties are followed,
 * so this can safely remove an own `__proto__` key that `JSON.parse` created.
 * Deleting an array element leaves a hole (the array is not shifted).
 *
 * @param obj The object to delete from.
 * @param path A dot path such as `a.b.c`.
 * @returns `true` when a property was deleted, `false` when the path did not
 * exist or the property cannot be deleted (an array's `length`, a frozen
 * object).
 * @throws {TypeError} When `obj` is not an object or the path is malformed.
 * @example Deleting a nested field
 * ```ts
 * import { deletePath } from "./path.ts";
 * const event = { user: { name: "ada", password: "secret" } };
 * console.assert(deletePath(event, "user.password") === true);
 * console.assert(deletePath(event, "user.password") === false);
 * console.assert(JSON.stringify(event) === '{"user":{"name":"ada"}}');
 * ```
 */
export function deletePath(obj: object, path: string): boolean {
  assertObject(obj, "deletePath");
  const segments = parsePath(path);
  let current: unknown = obj;
  for (let i = 0; i < segments.length - 1; i++) {
    current = child(current, segments[i]);
  }
  const last = segments[segments.length - 1];
  if (
    typeof current !== "object" || current === null ||
    !Object.hasOwn(current, last)
  ) {
    return false;
  }
  // Reflect reports non-configurable properties (an array's `length`, frozen
  // objects) as `false` instead of throwing.
  return Reflect.deleteProperty(current, last);
}
