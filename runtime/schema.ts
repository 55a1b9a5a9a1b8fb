/**
 * Config schemas: one definition per node type drives parsing, validation
 * (every issue with its key path), the `sluice nodes` docs and JSON Schema.
 *
 * @example A node's config schema
 * ```ts
 * import { s } from "./schema.ts";
 * const schema = s.object({
 *   batch_size: s.integer({ min: 1, default: 100, doc: "Messages per batch." }),
 *   topic: s.string({ doc: "Topic to read." }),
 * });
 * const issues: { path: string; message: string }[] = [];
 * const config = schema.parse({ topic: "t" }, "config", issues);
 * console.assert(config.batch_size === 100 && issues.length === 0);
 * ```
 *
 * @module
 */
import type { ConfigIssue } from "./errors.ts";
import { suggest } from "./suggest.ts";

/** A description of a schema for docs and `sluice nodes`. */
export interface SchemaInfo {
  /** A short type name such as `integer >= 1` or `"and" | "or"`. */
  type: string;
  /** The field's documentation. */
  doc?: string;
  /** The default, when the field has one. */
  default?: unknown;
  /** Whether the field may be left out. */
  optional: boolean;
  /** Fields of an object schema. */
  fields?: Record<string, SchemaInfo>;
  /** Item schema of an array. */
  items?: SchemaInfo;
}

/**
 * A parser and validator of one config value.
 *
 * @typeParam T The parsed type.
 */
export interface Schema<T> {
  /** Parses `value`, pushing every problem into `issues` with its path. */
  parse(value: unknown, path: string, issues: ConfigIssue[]): T;
  /** Docs for this value. */
  info(): SchemaInfo;
  /** The JSON Schema of this value. */
  jsonSchema(): Record<string, unknown>;
  /** Whether the value may be absent. */
  readonly optional: boolean;
  /** Whether the value is a secret (never printed). */
  readonly secret?: boolean;
}

/** The parsed type of a schema. */
export type Infer<S> = S extends Schema<infer T> ? T : never;

/** Options common to every field. */
export interface FieldOptions<T> {
  /** Documentation shown by `sluice nodes`. */
  doc?: string;
  /** Value used when the field is absent. */
  default?: T;
  /** Whether the field may be absent (implied by a default). */
  optional?: boolean;
  /** A secret: its value never appears in logs, errors or graphs. */
  secret?: boolean;
}

/**
 * The parsed type of a field of type `T` built with options `O`: a field with
 * a `default` is always present, an `optional` one may be `undefined`.
 *
 * @typeParam T The type of a present value.
 * @typeParam O The field options.
 */
export type FieldOutput<T, O> = O extends { default: unknown } ? T
  : O extends { optional: true } ? T | undefined
  : T;

function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") {
    return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + "…" : value)}`;
  }
  if (typeof value === "object") return "an object";
  return `${typeof value} ${String(value)}`;
}

function field<T>(
  type: string,
  options: FieldOptions<T> | undefined,
  check: (value: unknown, path: string, issues: ConfigIssue[]) => T,
  json: Record<string, unknown>,
  extraInfo: Partial<SchemaInfo> = {},
): Schema<T> {
  const optional = options?.optional === true || options?.default !== undefined;
  return {
    optional,
    secret: options?.secret,
    parse(value, path, issues) {
      if (value === undefined) {
        if (options?.default !== undefined) {
          return structuredClone(options.default) as T;
        }
        if (!optional) issues.push({ path, message: `required ${type} is missing` });
        return undefined as T;
      }
      return check(value, path, issues);
    },
    info: () => ({
      type,
      doc: options?.doc,
      default: options?.default,
      optional,
      ...extraInfo,
    }),
    jsonSchema: () => ({
      ...json,
      ...(options?.doc ? { description: options.doc } : {}),
      ...(options?.default !== undefined ? { default: options.default } : {}),
    }),
  };
}

/** Options of a number field. */
export interface NumberOptions extends FieldOptions<number> {
  /** Smallest allowed value (inclusive). */
  min?: number;
  /** Largest allowed value (inclusive). */
  max?: number;
  /** Smallest allowed value (exclusive). */
  greaterThan?: number;
}

function numberField<O extends NumberOptions>(
  integer: boolean,
  options?: O,
): Schema<FieldOutput<number, O>> {
  const bounds = [
    options?.min !== undefined ? `>= ${options.min}` : "",
    options?.greaterThan !== undefined ? `> ${options.greaterThan}` : "",
    options?.max !== undefined ? `<= ${options.max}` : "",
  ].filter(Boolean).join(", ");
  const type = `${integer ? "integer" : "number"}${bounds ? " " + bounds : ""}`;
  return field<number>(type, options, (value, path, issues) => {
    if (
      typeof value !== "number" || !Number.isFinite(value) ||
      (integer && !Number.isInteger(value))
    ) {
      issues.push({ path, message: `expected ${type}, found ${describeValue(value)}` });
      return value as number;
    }
    if (
      (options?.min !== undefined && value < options.min) ||
      (options?.max !== undefined && value > options.max) ||
      (options?.greaterThan !== undefined && value <= options.greaterThan)
    ) {
      issues.push({ path, message: `expected ${type}, found ${value}` });
    }
    return value;
  }, {
    type: integer ? "integer" : "number",
    ...(options?.min !== undefined ? { minimum: options.min } : {}),
    ...(options?.max !== undefined ? { maximum: options.max } : {}),
    ...(options?.greaterThan !== undefined ? { exclusiveMinimum: options.greaterThan } : {}),
  }) as Schema<FieldOutput<number, O>>;
}

/** Options of a string field. */
export interface StringOptions extends FieldOptions<string> {
  /** Whether the empty string is refused. @default {false} */
  nonEmpty?: boolean;
}

/** Options of {@linkcode SchemaBuilders.any}. */
export interface AnyOptions<T> extends FieldOptions<T> {
  /** The type shown in docs. @default {"any"} */
  type?: string;
  /** A custom check; returns the parsed value. */
  check?: (value: unknown, path: string, issues: ConfigIssue[]) => T;
}

/** Options of an object schema. */
export interface ObjectOptions extends FieldOptions<Record<string, unknown>> {
  /** Whether keys that are not declared are accepted. @default {false} */
  allowUnknown?: boolean;
}

/**
 * The parsed type of an object schema with the fields `F`.
 *
 * @typeParam F The field schemas, by key.
 */
export type ObjectOutput<F extends Record<string, Schema<unknown>>> = {
  [K in keyof F]: Infer<F[K]>;
};

/**
 * Builders of config schemas; use the instance {@linkcode s}.
 *
 * @example An enum field with a default
 * ```ts
 * import { s } from "./schema.ts";
 * const mode = s.enum(["json", "text"] as const, { default: "json" });
 * console.assert(mode.parse(undefined, "m", []) === "json");
 * ```
 */
export class SchemaBuilders {
  /**
   * A finite number.
   *
   * @typeParam O The options.
   * @param options Bounds, default, docs.
   * @returns The schema.
   */
  number<O extends NumberOptions>(options?: O): Schema<FieldOutput<number, O>> {
    return numberField(false, options);
  }
  /**
   * An integer.
   *
   * @typeParam O The options.
   * @param options Bounds, default, docs.
   * @returns The schema.
   */
  integer<O extends NumberOptions>(options?: O): Schema<FieldOutput<number, O>> {
    return numberField(true, options);
  }
  /**
   * A string.
   *
   * @typeParam O The options.
   * @param options Default, docs, `nonEmpty`.
   * @returns The schema.
   */
  string<O extends StringOptions>(options?: O): Schema<FieldOutput<string, O>> {
    return field<string>("string", options, (value, path, issues) => {
      if (typeof value !== "string") {
        issues.push({ path, message: `expected a string, found ${describeValue(value)}` });
      } else if (options?.nonEmpty && value.length === 0) {
        issues.push({ path, message: "expected a non-empty string" });
      }
      return value as string;
    }, { type: "string" }) as Schema<FieldOutput<string, O>>;
  }
  /**
   * A boolean.
   *
   * @typeParam O The options.
   * @param options Default, docs.
   * @returns The schema.
   */
  boolean<O extends FieldOptions<boolean>>(options?: O): Schema<FieldOutput<boolean, O>> {
    return field<boolean>("boolean", options, (value, path, issues) => {
      if (typeof value !== "boolean") {
        issues.push({ path, message: `expected true or false, found ${describeValue(value)}` });
      }
      return value as boolean;
    }, { type: "boolean" }) as Schema<FieldOutput<boolean, O>>;
  }
  /**
   * One of a fixed list of strings.
   *
   * @typeParam V The allowed strings.
   * @typeParam O The options.
   * @param values The allowed strings.
   * @param options Default, docs.
   * @returns The schema.
   */
  enum<const V extends string, O extends FieldOptions<V>>(
    values: readonly V[],
    options?: O,
  ): Schema<FieldOutput<V, O>> {
    const type = values.map((v) => JSON.stringify(v)).join(" | ");
    return field<V>(type, options, (value, path, issues) => {
      if (typeof value !== "string" || !values.includes(value as V)) {
        const hint = typeof value === "string" ? suggest(value, values) : undefined;
        issues.push({
          path,
          message: `expected one of ${values.join(", ")}, found ${describeValue(value)}${
            hint ? `; did you mean "${hint}"?` : ""
          }`,
        });
      }
      return value as V;
    }, { enum: [...values] }) as Schema<FieldOutput<V, O>>;
  }
  /**
   * An array of items of one schema.
   *
   * @typeParam T The parsed item type.
   * @typeParam O The options.
   * @param item The schema of every item.
   * @param options Default, docs, `minItems`.
   * @returns The schema.
   */
  array<T, O extends FieldOptions<T[]> & { minItems?: number }>(
    item: Schema<T>,
    options?: O,
  ): Schema<FieldOutput<T[], O>> {
    return field<T[]>(
      `array of ${item.info().type}`,
      options,
      (value, path, issues) => {
        if (!Array.isArray(value)) {
          issues.push({ path, message: `expected an array, found ${describeValue(value)}` });
          return [];
        }
        if (options?.minItems !== undefined && value.length < options.minItems) {
          issues.push({
            path,
            message: `expected at least ${options.minItems} item(s), found ${value.length}`,
          });
        }
        return value.map((v, i) => item.parse(v, `${path}[${i}]`, issues));
      },
      { type: "array", items: item.jsonSchema() },
      { items: item.info() },
    ) as Schema<
      FieldOutput<T[], O>
    >;
  }
  /**
   * An object with declared fields; unknown keys are errors unless
   * `allowUnknown` is set. Fields parsed as `undefined` are left out.
   *
   * @typeParam F The field schemas, by key.
   * @typeParam O The options.
   * @param fields The field schemas, by key.
   * @param options Default, docs, `allowUnknown`.
   * @returns The schema.
   */
  object<F extends Record<string, Schema<unknown>>, O extends ObjectOptions>(
    fields: F,
    options?: O,
  ): Schema<FieldOutput<ObjectOutput<F>, O>> {
    const names = Object.keys(fields);
    const fieldInfo = () => Object.fromEntries(names.map((n) => [n, fields[n].info()]));
    return field<ObjectOutput<F>>(
      "object",
      options as FieldOptions<ObjectOutput<F>>,
      (value, path, issues) => {
        if (value === null || typeof value !== "object" || Array.isArray(value)) {
          issues.push({ path, message: `expected an object, found ${describeValue(value)}` });
          return {} as ObjectOutput<F>;
        }
        const record = value as Record<string, unknown>;
        const out: Record<string, unknown> = {};
        for (const key of Object.keys(record)) {
          if (Object.hasOwn(fields, key)) continue;
          if (options?.allowUnknown) {
            if (key !== "__proto__") out[key] = record[key];
            continue;
          }
          const hint = suggest(key, names);
          issues.push({
            path: join(path, key),
            message: `unknown key "${key}"${hint ? `; did you mean "${hint}"?` : ""}${
              names.length ? ` (known keys: ${names.join(", ")})` : ""
            }`,
          });
        }
        for (const name of names) {
          const v = Object.hasOwn(record, name) ? record[name] : undefined;
          const parsed = fields[name].parse(v, join(path, name), issues);
          if (parsed !== undefined) out[name] = parsed;
        }
        return out as ObjectOutput<F>;
      },
      {
        type: "object",
        properties: Object.fromEntries(names.map((n) => [n, fields[n].jsonSchema()])),
        required: names.filter((n) => !fields[n].optional),
        additionalProperties: options?.allowUnknown === true,
      },
      {
        get fields() {
          return fieldInfo();
        },
      },
    ) as Schema<FieldOutput<ObjectOutput<F>, O>>;
  }
  /**
   * An object with arbitrary keys whose values share one schema.
   *
   * @typeParam T The parsed value type.
   * @typeParam O The options.
   * @param value The schema of every value.
   * @param options Default, docs.
   * @returns The schema.
   */
  record<T, O extends FieldOptions<Record<string, T>>>(
    value: Schema<T>,
    options?: O,
  ): Schema<FieldOutput<Record<string, T>, O>> {
    return field<Record<string, T>>(
      `map of ${value.info().type}`,
      options,
      (v, path, issues) => {
        if (v === null || typeof v !== "object" || Array.isArray(v)) {
          issues.push({ path, message: `expected a map, found ${describeValue(v)}` });
          return {};
        }
        const out: Record<string, T> = {};
        for (const [k, item] of Object.entries(v)) {
          if (k === "__proto__") {
            issues.push({ path: join(path, k), message: `key "__proto__" is not allowed` });
            continue;
          }
          out[k] = value.parse(item, join(path, k), issues);
        }
        return out;
      },
      { type: "object", additionalProperties: value.jsonSchema() },
    ) as Schema<FieldOutput<Record<string, T>, O>>;
  }
  /**
   * Any value, checked by the node itself (pass a custom check to validate).
   *
   * @typeParam T The parsed type.
   * @param options Default, docs, the type shown in docs, a custom check.
   * @returns The schema.
   */
  any<T = unknown>(options?: AnyOptions<T>): Schema<T> {
    return field<T>(
      options?.type ?? "any",
      options,
      (value, path, issues) => options?.check ? options.check(value, path, issues) : value as T,
      {},
    );
  }

  /**
   * A function (TypeScript workflows only; not expressible in YAML).
   *
   * @typeParam F The function type.
   * @typeParam O The options.
   * @param options Default, docs.
   * @returns The schema.
   */
  func<F extends (...args: never[]) => unknown, O extends FieldOptions<F> = FieldOptions<F>>(
    options?: O,
  ): Schema<FieldOutput<F, O>> {
    return field<F>("function (TypeScript only)", options, (value, path, issues) => {
      if (typeof value !== "function") {
        issues.push({
          path,
          message: `expected a function, found ${
            describeValue(value)
          } (this field can only be set from TypeScript)`,
        });
      }
      return value as F;
    }, {}) as Schema<FieldOutput<F, O>>;
  }
  /**
   * A finite number or a string (for example a timestamp in seconds or ISO
   * 8601).
   *
   * @typeParam O The options.
   * @param options Default, docs.
   * @returns The schema.
   */
  numberOrString<O extends FieldOptions<number | string>>(
    options?: O,
  ): Schema<FieldOutput<number | string, O>> {
    return field<number | string>("number | string", options, (value, path, issues) => {
      if (
        !(typeof value === "string" || (typeof value === "number" && Number.isFinite(value)))
      ) {
        issues.push({
          path,
          message: `expected a number or a string, found ${describeValue(value)}`,
        });
      }
      return value as number | string;
    }, { type: ["number", "string"] }) as Schema<FieldOutput<number | string, O>>;
  }
  /**
   * A string or a list of strings.
   *
   * @typeParam O The options.
   * @param options Default, docs.
   * @returns The schema.
   */
  stringOrList<O extends FieldOptions<string | string[]>>(
    options?: O,
  ): Schema<FieldOutput<string | string[], O>> {
    return field<string | string[]>("string | array of string", options, (value, path, issues) => {
      if (typeof value === "string") return value;
      if (Array.isArray(value) && value.every((v) => typeof v === "string")) return value;
      issues.push({
        path,
        message: `expected a string or a list of strings, found ${describeValue(value)}`,
      });
      return value as string;
    }, { anyOf: [{ type: "string" }, { type: "array", items: { type: "string" } }] }) as Schema<
      FieldOutput<string | string[], O>
    >;
  }
}

/** The schema builders (`s.object`, `s.string`, ...). */
export const s: SchemaBuilders = new SchemaBuilders();

/**
 * Joins a key path and a key: `join("config", "a")` is `config.a`.
 *
 * @param path The parent path (may be empty).
 * @param key The key.
 * @returns The joined path.
 * @example Joining key paths
 * ```ts
 * import { join } from "./schema.ts";
 * console.assert(join("nodes[0]", "config") === "nodes[0].config");
 * ```
 */
export function join(path: string, key: string): string {
  const safe = /^[A-Za-z_$][\w$-]*$/.test(key) ? key : JSON.stringify(key);
  return path ? `${path}.${safe}` : safe;
}

/**
 * Describes a value for error messages (`the string "x"`, `an object`).
 *
 * @param value Any value.
 * @returns A short description.
 * @example Describing a value
 * ```ts
 * import { describe } from "./schema.ts";
 * console.assert(describe(null) === "null");
 * ```
 */
export function describe(value: unknown): string {
  return describeValue(value);
}
