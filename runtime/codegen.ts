/**
 * Generated code for per-event hot paths. A node whose config is known at
 * start (filter conditions, router rules) can be compiled into one function
 * of straight-line JavaScript, as fast as the same logic written by hand:
 * no chain of closures whose calls the engine may or may not inline.
 *
 * Config values never become code: strings are embedded as JSON literals
 * (which cannot break out of the literal), other values are passed in as
 * bindings, and field paths become getter functions with the keys as
 * literals, reading own properties only (see `path.ts`).
 *
 * Where code generation is unavailable (`new Function` throws under some
 * embedders' policies), {@linkcode CodeBuilder.compile} returns `undefined`
 * and callers keep their closure-based path.
 *
 * @module
 */

let available = true;

type Factory = (
  bindings: readonly unknown[],
  objectPrototype: object,
  getPrototypeOf: (o: unknown) => unknown,
  hasOwn: (key: PropertyKey) => boolean,
) => unknown;

/**
 * Compiled sources, reused: nodes built again from the same config (every
 * restart, every new workflow in the process) run code the engine has
 * already optimized, and their call sites keep one target.
 */
const factories = new Map<string, Factory>();
const MAX_FACTORIES = 1000;

/**
 * The source of a getter function named `name` for `segments`: the same
 * semantics as `compilePath` (own properties only, `undefined` when missing).
 */
function getterSource(name: string, segments: readonly string[]): string {
  // Each segment loads first and proves ownership after: on a plain object
  // (prototype Object.prototype) that lacks the key on its prototype too, the
  // load can only have found an own property; anything else asks hasOwn.
  let body = "";
  for (const segment of segments) {
    const key = JSON.stringify(segment);
    body += `if (typeof o !== "object" || o === null) return undefined;\n` +
      `v = o[${key}];\n` +
      `if (v === undefined || ((getPrototypeOf(o) !== OP || OP[${key}] !== undefined) && ` +
      `!hasOwn.call(o, ${key}))) return undefined;\n` +
      `o = v;\n`;
  }
  return `function ${name}(o) {\nlet v;\n${body}return o;\n}\n`;
}

/**
 * Collects the pieces of one generated function: getters for field paths,
 * bindings for values that must not become code, and scratch variables.
 *
 * @example A predicate compiled from parts
 * ```ts
 * import { CodeBuilder } from "./codegen.ts";
 * const code = new CodeBuilder();
 * const get = code.getter(["user", "id"]);
 * const body = `return function (e) { return ${get}(e) === ${code.literal("u1")}; };`;
 * const isU1 = code.compile<(e: unknown) => boolean>(body);
 * if (isU1) console.assert(isU1({ user: { id: "u1" } }) && !isU1({}));
 * ```
 */
export class CodeBuilder {
  #getters = new Map<string, string>();
  #getterSource = "";
  #bindings: unknown[] = [];
  #temps = 0;

  /**
   * The name of a getter function for a field path (one per distinct path).
   *
   * @param segments The path's keys, as `parsePath` returns them.
   * @returns A function name to call with the object.
   */
  getter(segments: readonly string[]): string {
    const key = JSON.stringify(segments);
    let name = this.#getters.get(key);
    if (name === undefined) {
      name = `get${this.#getters.size}`;
      this.#getters.set(key, name);
      this.#getterSource += getterSource(name, segments);
    }
    return name;
  }

  /**
   * An expression for `value`: a literal for strings, booleans, `null`,
   * finite numbers and bigints, else a binding.
   *
   * @param value Any value.
   * @returns A JavaScript expression evaluating to `value` (the same value, by `===`).
   */
  literal(value: unknown): string {
    switch (typeof value) {
      case "string":
        return JSON.stringify(value);
      case "boolean":
        return String(value);
      case "number":
        return Number.isFinite(value) && !Object.is(value, -0) ? String(value) : this.bind(value);
      case "bigint":
        return `${value}n`;
      default:
        return value === null ? "null" : this.bind(value);
    }
  }

  /**
   * An expression for a value passed into the generated code as it is
   * (functions, objects, anything that is not a simple literal).
   *
   * @param value The value.
   * @returns A JavaScript expression evaluating to `value`.
   */
  bind(value: unknown): string {
    let index = this.#bindings.indexOf(value);
    if (index < 0) index = this.#bindings.push(value) - 1;
    return `b${index}`;
  }

  /**
   * A fresh scratch variable; the generated function must declare it with
   * {@linkcode CodeBuilder.declareTemps}.
   *
   * @returns The variable's name.
   */
  temp(): string {
    return `t${this.#temps++}`;
  }

  /**
   * The declaration of every scratch variable handed out so far, to put at
   * the start of the generated function's body.
   *
   * @returns A `let` statement, or an empty string.
   */
  declareTemps(): string {
    if (this.#temps === 0) return "";
    return `let ${Array.from({ length: this.#temps }, (_, i) => `t${i}`).join(", ")};\n`;
  }

  /**
   * Compiles `body`, which must `return` the generated function, with the
   * getters and bindings in its scope.
   *
   * @typeParam F The generated function's type.
   * @param body Statements ending in `return function …`.
   * @returns The function, or `undefined` where code generation is unavailable.
   */
  compile<F>(body: string): F | undefined {
    if (!available) return undefined;
    // Each binding a constant of its own: calls through it have one target.
    const constants = this.#bindings.map((_, i) => `const b${i} = bindings[${i}];\n`).join("");
    const source = `"use strict";\n${constants}${this.#getterSource}${body}`;
    let factory = factories.get(source);
    if (factory === undefined) {
      try {
        factory = new Function("bindings", "OP", "getPrototypeOf", "hasOwn", source) as Factory;
      } catch (error) {
        if (error instanceof SyntaxError) throw error; // a bug in the generator
        available = false;
        return undefined;
      }
      if (factories.size >= MAX_FACTORIES) factories.clear();
      factories.set(source, factory);
    }
    return factory(
      this.#bindings,
      Object.prototype,
      Object.getPrototypeOf,
      Object.prototype.hasOwnProperty,
    ) as F;
  }
}
