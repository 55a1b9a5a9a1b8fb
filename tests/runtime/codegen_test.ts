import assert from "node:assert/strict";
import { CodeBuilder } from "../../runtime/codegen.ts";
import {
  compileCondition,
  compileConditionList,
  type CompiledCondition,
  conditionCode,
} from "../../runtime/conditions.ts";
import type { ConfigIssue } from "../../runtime/errors.ts";
import { compilePath } from "../../runtime/path.ts";

/** Compiles `return function () { return <expression>; }` from a builder. */
function evaluate(code: CodeBuilder, expression: string): unknown {
  const f = code.compile<() => unknown>(`return function () { return ${expression}; };`);
  assert.ok(f, "code generation is available in tests");
  return f();
}

/** A compiled getter for `segments`, through a fresh builder. */
function getterFor(segments: string[]): (o: unknown) => unknown {
  const code = new CodeBuilder();
  const name = code.getter(segments);
  const f = code.compile<(o: unknown) => unknown>(`return function (o) { return ${name}(o); };`);
  assert.ok(f);
  return f;
}

/** The mulberry32 PRNG, so randomized failures reproduce. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("CodeBuilder literal() round-trips every primitive, the same by Object.is", async (t) => {
  const values: unknown[] = [
    "",
    "plain",
    'he said "hi"',
    'back\\slash \\" \\u0041',
    "line\nbreak\r\ttab",
    "\u2028 and \u2029",
    "</script><!--",
    "${not a template}`",
    "café ☕ 😀",
    "\ud800 lone surrogate",
    "\u0000nul",
    0,
    -0,
    1,
    -1.5,
    1e21,
    5e-324,
    Number.MAX_SAFE_INTEGER,
    -Number.MAX_VALUE,
    NaN,
    Infinity,
    -Infinity,
    0n,
    -5n,
    2n ** 70n,
    true,
    false,
    null,
    undefined,
  ];
  await t.step("each value alone", () => {
    for (const value of values) {
      const code = new CodeBuilder();
      const got = evaluate(code, code.literal(value));
      assert.ok(Object.is(got, value), `${String(value)}: got ${String(got)}`);
    }
  });
  await t.step("all values in one function", () => {
    const code = new CodeBuilder();
    const got = evaluate(code, `[${values.map((v) => code.literal(v)).join(", ")}]`) as unknown[];
    assert.equal(got.length, values.length);
    values.forEach((v, i) => assert.ok(Object.is(got[i], v), `index ${i}`));
  });
  await t.step("-0, NaN and the infinities are bound, not written as code", () => {
    for (const value of [-0, NaN, Infinity, -Infinity]) {
      const code = new CodeBuilder();
      const expression = code.literal(value);
      assert.match(expression, /^b\d+$/, `${value} → ${expression}`);
      assert.ok(Object.is(evaluate(code, expression), value));
    }
    const code = new CodeBuilder();
    assert.ok(Object.is(evaluate(code, `-${code.literal(-0)}`), 0), "-0 stays -0 inside code");
    const negativeZero = new CodeBuilder();
    assert.ok(Object.is(evaluate(negativeZero, negativeZero.literal(-0)), -0));
  });
  await t.step("objects and functions are bound by identity", () => {
    const object = { a: 1 };
    const fn = () => 42;
    const code = new CodeBuilder();
    const a = code.literal(object);
    const b = code.literal(fn);
    assert.equal(code.bind(object), a, "binding the same value twice reuses it");
    const got = evaluate(code, `[${a}, ${b}, ${b}()]`) as unknown[];
    assert.equal(got[0], object);
    assert.equal(got[1], fn);
    assert.equal(got[2], 42);
  });
  await t.step("strings that look like code stay strings", () => {
    const code = new CodeBuilder();
    const hostile = ['"; throw new Error("injected"); "', "'); globalThis.x = 1; ('", "\\"];
    const got = evaluate(code, `[${hostile.map((v) => code.literal(v)).join(", ")}]`);
    assert.deepEqual(got, hostile);
  });
});

Deno.test("CodeBuilder getter() reads own properties only", async (t) => {
  await t.step("plain, nested and array paths", () => {
    assert.equal(getterFor(["a"])({ a: 1 }), 1);
    assert.equal(getterFor(["a", "b", "c"])({ a: { b: { c: "deep" } } }), "deep");
    const items = getterFor(["items", "0", "id"]);
    assert.equal(items({ items: [{ id: 7 }, { id: 8 }] }), 7);
    assert.equal(getterFor(["items", "1", "id"])({ items: [{ id: 7 }, { id: 8 }] }), 8);
    assert.equal(items({ items: [] }), undefined);
    assert.equal(getterFor(["items", "length"])({ items: [1, 2, 3] }), 3, "an own property");
    assert.equal(getterFor(["0"])(["x"]), "x");
    assert.equal(getterFor(["a"])({ a: null }), null, "null is a present value");
    assert.equal(getterFor(["a"])({ a: 0 }), 0);
    assert.equal(getterFor(["a"])({ a: false }), false);
    assert.equal(getterFor(["a"])({ a: undefined }), undefined);
    const inner = { b: 1 };
    assert.equal(getterFor(["a"])({ a: inner }), inner, "returns the value itself");
  });
  await t.step("null or a primitive in the middle gives undefined", () => {
    const get = getterFor(["a", "b"]);
    for (const a of [null, undefined, "str", 5, true, 1n, Symbol("s"), () => 1]) {
      assert.equal(get({ a }), undefined, String(typeof a));
    }
    assert.equal(getterFor(["a", "length"])({ a: "str" }), undefined, "no walking into strings");
    assert.equal(getterFor(["a", "toFixed"])({ a: 5 }), undefined);
    for (const root of [null, undefined, "a", 1, true]) {
      assert.equal(getterFor(["a"])(root), undefined, `root ${String(root)}`);
    }
  });
  await t.step("keys of Object.prototype never resolve", () => {
    for (const key of ["toString", "constructor", "__proto__", "hasOwnProperty", "valueOf"]) {
      assert.equal(getterFor([key])({}), undefined, key);
      assert.equal(getterFor(["a", key])({ a: {} }), undefined, `a.${key}`);
      assert.equal(getterFor([key])([]), undefined, `array ${key}`);
    }
    assert.equal(getterFor(["toString"])({ toString: "own" }), "own");
    assert.equal(getterFor(["__proto__"])(JSON.parse('{"__proto__": 5}')), 5);
    assert.equal(getterFor(["constructor"])(JSON.parse('{"constructor": "c"}')), "c");
  });
  await t.step("a polluted Object.prototype key never resolves", () => {
    const proto = Object.prototype as Record<string, unknown>;
    const get = getterFor(["polluted"]);
    const nested = getterFor(["a", "polluted"]);
    assert.equal(get({}), undefined);
    proto.polluted = "evil";
    try {
      assert.equal(get({}), undefined);
      assert.equal(nested({ a: {} }), undefined);
      assert.equal(get([]), undefined);
      assert.equal(getterFor(["polluted"])({}), undefined, "a getter built after the pollution");
      assert.equal(get({ polluted: "own" }), "own");
      assert.equal(get(Object.create(null)), undefined);
    } finally {
      delete proto.polluted;
    }
    assert.equal(get({}), undefined);
  });
  await t.step("inherited properties of other prototypes never resolve", () => {
    class WithGetter {
      own = "mine";
      get derived(): string {
        return "from the prototype";
      }
      method(): number {
        return 1;
      }
    }
    const instance = new WithGetter();
    assert.equal(getterFor(["derived"])(instance), undefined);
    assert.equal(getterFor(["method"])(instance), undefined);
    assert.equal(getterFor(["own"])(instance), "mine");
    const child = Object.create({ inherited: 1 });
    child.mine = 2;
    assert.equal(getterFor(["inherited"])(child), undefined);
    assert.equal(getterFor(["mine"])(child), 2);
    const bare = Object.create(null);
    bare.k = "v";
    assert.equal(getterFor(["k"])(bare), "v");
    assert.equal(getterFor(["toString"])(bare), undefined);
  });
  await t.step("one getter per distinct path", () => {
    const code = new CodeBuilder();
    const a = code.getter(["a", "b"]);
    assert.equal(code.getter(["a", "b"]), a);
    assert.notEqual(code.getter(["a.b"]), a, "a key with a dot is another path");
    assert.notEqual(code.getter(["a"]), a);
  });
  await t.step("agrees with compilePath on many objects and paths", () => {
    const proto = { shared: 1 };
    const objects: unknown[] = [
      {},
      { a: 1, b: { c: [1, { d: 2 }] } },
      { a: { b: null }, items: [{ id: "x" }] },
      Object.assign(Object.create(proto), { a: 3 }),
      [{ a: 1 }, [2]],
      JSON.parse('{"__proto__": {"a": 1}, "constructor": {"name": "n"}}'),
      { a: undefined, b: { c: undefined } },
      null,
      "text",
    ];
    const paths = [
      "a",
      "a.b",
      "b.c.1.d",
      "b.c.0",
      "items.0.id",
      "shared",
      "0.a",
      "1.0",
      "__proto__.a",
      "constructor.name",
      "b.c.length",
    ];
    for (const path of paths) {
      const get = getterFor(path.split("."));
      const reference = compilePath(path);
      for (const object of objects) {
        assert.equal(get(object), reference(object), `${path} of ${JSON.stringify(object)}`);
      }
    }
  });
});

Deno.test("CodeBuilder getter() keys cannot inject code", () => {
  const hostile = [
    '"]; globalThis.__injected = true; //',
    '"]; evil(); //',
    "'); evil(); ('",
    "\\",
    '\\"',
    "\u2028evil()",
    "${evil()}",
    "`); evil(); (`",
    "*/ evil(); /*",
    "\n}; evil(); function f() {",
  ];
  const g = globalThis as Record<string, unknown>;
  let called = 0;
  g.evil = () => called++;
  try {
    for (const key of hostile) {
      const get = getterFor([key]);
      assert.equal(get({ [key]: 42 }), 42, `reads ${JSON.stringify(key)}`);
      assert.equal(get({}), undefined);
      const nested = getterFor(["x", key, "y"]);
      assert.equal(nested({ x: { [key]: { y: "deep" } } }), "deep");
      // As a literal too.
      const code = new CodeBuilder();
      assert.equal(evaluate(code, code.literal(key)), key);
    }
    assert.equal(called, 0, "no key ran as code");
    assert.equal(g.__injected, undefined);
  } finally {
    delete g.evil;
    delete g.__injected;
  }
});

Deno.test("CodeBuilder temp() and declareTemps() declare scratch variables", () => {
  const code = new CodeBuilder();
  assert.equal(code.declareTemps(), "", "nothing to declare yet");
  const a = code.temp();
  const b = code.temp();
  assert.notEqual(a, b);
  const f = code.compile<(x: number) => number>(
    `return function (x) {\n${code.declareTemps()}${a} = x * 2;\n${b} = ${a} + 1;\nreturn ${b};\n};`,
  );
  assert.ok(f);
  assert.equal(f(5), 11);
  // Generated code is strict: an undeclared temp is an error, not a global.
  const strict = new CodeBuilder();
  const t = strict.temp();
  const g = strict.compile<() => number>(`return function () { ${t} = 1; return ${t}; };`);
  assert.ok(g);
  assert.throws(() => g(), ReferenceError);
  assert.equal((globalThis as Record<string, unknown>)[t], undefined);
});

Deno.test("CodeBuilder compile() reports bugs in generated code as SyntaxErrors", () => {
  const code = new CodeBuilder();
  assert.throws(() => code.compile("return function ( {"), SyntaxError);
  // The builder still works afterwards.
  const ok = new CodeBuilder();
  assert.equal(evaluate(ok, ok.literal("fine")), "fine");
});

Deno.test("CodeBuilder compile() reuses sources; each function keeps its own bindings", () => {
  const build = (value: unknown, fn: () => unknown) => {
    const code = new CodeBuilder();
    const get = code.getter(["k"]);
    const body = `return function (o) { return [${get}(o), ${code.bind(value)}, ${
      code.bind(fn)
    }()]; };`;
    return { body, f: code.compile<(o: unknown) => unknown[]>(body)! };
  };
  const one = { id: 1 };
  const two = { id: 2 };
  const first = build(one, () => "first");
  const second = build(two, () => "second");
  assert.equal(first.body, second.body, "the same source text");
  assert.notEqual(first.f, second.f, "distinct functions");
  const [k1, v1, r1] = first.f({ k: "a" });
  const [k2, v2, r2] = second.f({ k: "b" });
  assert.equal(k1, "a");
  assert.equal(k2, "b");
  assert.equal(v1, one);
  assert.equal(v2, two);
  assert.equal(r1, "first");
  assert.equal(r2, "second");
  // Compiling the second did not change the first.
  assert.equal(first.f({})[1], one);
  // Many compilations of one source, each with its own binding.
  const fns = Array.from({ length: 50 }, (_, i) => build(i * 1.5 + 0.25, () => i).f);
  fns.forEach((f, i) => {
    assert.equal(f({})[1], i * 1.5 + 0.25);
    assert.equal(f({})[2], i);
  });
});

// ---- conditions compiled to generated code ---------------------------------

function compile(spec: unknown): CompiledCondition {
  const issues: ConfigIssue[] = [];
  const condition = compileCondition(spec, "c", issues);
  assert.deepEqual(issues, [], show(spec));
  return condition;
}

Deno.test("conditionCode() writes simple conditions inline and calls the rest", async (t) => {
  await t.step("simple leaves and groups inline", () => {
    const condition = compile({
      all: [
        { field: "type", operator: "in", values: ["click", "view"] },
        { not: { field: "user.banned", operator: "exists" } },
        {
          any: [{ field: "n", operator: "equals", value: 1 }, {
            field: "n",
            operator: "not_equals",
            value: null,
          }],
        },
      ],
    });
    const code = new CodeBuilder();
    const expression = conditionCode(condition, code, "ev");
    assert.doesNotMatch(expression, /\bb\d+\(/, `no closure is called: ${expression}`);
    const f = code.compile<(e: unknown) => boolean>(
      `return function (ev) {\n${code.declareTemps()}return ${expression};\n};`,
    );
    assert.ok(f);
    assert.equal(f({ type: "click", n: 1 }), true);
    assert.equal(f({ type: "view", n: 2 }), true);
    assert.equal(f({ type: "view", n: null }), false);
    assert.equal(f({ type: "view" }), true, "missing n is not_equals null");
    assert.equal(f({ type: "click", n: 1, user: { banned: false } }), false);
    assert.equal(f({ type: "buy", n: 1 }), false);
    assert.equal(f(null), false);
  });
  await t.step("other leaves are bound closures called from the code", () => {
    const condition = compile({
      all: [
        { field: "name", operator: "matches", value: "^a", flags: "i" },
        { field: "n", operator: "greater_than", value: 2 },
        { field: "tags", operator: "contains", value: "x" },
        { field: "obj", operator: "equals", value: { k: [1] } },
      ],
    });
    const code = new CodeBuilder();
    const expression = conditionCode(condition, code, "e");
    assert.match(expression, /\bb\d+\(e\)/);
    const f = code.compile<(e: unknown) => boolean>(
      `return function (e) {\n${code.declareTemps()}return ${expression};\n};`,
    );
    assert.ok(f);
    const event = { name: "Ada", n: 3, tags: ["x"], obj: { k: [1] } };
    assert.equal(f(event), true);
    assert.equal(f({ ...event, name: "Bob" }), false);
    assert.equal(f({ ...event, n: 2 }), false);
    assert.equal(f({ ...event, tags: ["y"] }), false);
    assert.equal(f({ ...event, obj: { k: [2] } }), false);
  });
  await t.step("two conditions share one builder and one getter per path", () => {
    const a = compile({ field: "k", operator: "equals", value: "a" });
    const b = compile({ field: "k", operator: "in", values: ["b", "c"] });
    const code = new CodeBuilder();
    const ea = conditionCode(a, code, "e");
    const eb = conditionCode(b, code, "e");
    const f = code.compile<(e: unknown) => number>(
      `return function (e) {\n${code.declareTemps()}return ${ea} ? 1 : ${eb} ? 2 : 0;\n};`,
    );
    assert.ok(f);
    assert.deepEqual(["a", "b", "c", "d"].map((k) => f({ k })), [1, 2, 2, 0]);
    assert.equal(f({}), 0);
  });
  await t.step("-0, NaN, bigint and hostile strings as values", () => {
    const cases: [unknown, unknown, boolean][] = [
      [-0, 0, true],
      [0, -0, true],
      [NaN, NaN, false],
      [10n, 10n, true],
      [10n, 10, false],
      ['"]; evil(); //', '"]; evil(); //', true],
      ["\u2028", "\u2028", true],
    ];
    for (const [value, field, expected] of cases) {
      const condition = compile({ field: "f", operator: "equals", value });
      assert.equal(condition({ f: field }), expected, `${String(value)} vs ${String(field)}`);
      const code = new CodeBuilder();
      const f = code.compile<(e: unknown) => boolean>(
        `return function (e) { return ${conditionCode(condition, code, "e")}; };`,
      );
      assert.equal(f!({ f: field }), expected);
    }
  });
});

Deno.test("compileCondition() flattens simple trees into one generated function", () => {
  const flat = compile({
    any: [
      { field: "a", operator: "exists" },
      {
        all: [{ field: "b.c", operator: "equals", value: "x" }, {
          not: { field: "d", operator: "in", values: [1, 2, 3] },
        }],
      },
    ],
  });
  const source = String(flat);
  assert.match(source, /get\d+\(e\)/, source);
  assert.doesNotMatch(source, /\bb\d+\(/, "no closures called");
  assert.equal(flat({ a: null }), true);
  assert.equal(flat({ b: { c: "x" }, d: 4 }), true);
  assert.equal(flat({ b: { c: "x" }, d: 2 }), false);
  const mixed = compile({
    all: [{ field: "a", operator: "exists" }, { field: "s", operator: "matches", value: "z" }],
  });
  assert.match(String(mixed), /\bb\d+\(e\)/, "the regex leaf is called as a closure");
  assert.equal(mixed({ a: 1, s: "zz" }), true);
  assert.equal(mixed({ a: 1, s: "y" }), false);
  const list = compileConditionList(
    [{ field: "a", operator: "equals", value: 1 }, { field: "b", operator: "not_exists" }],
    "or",
    "filter_conditions",
    [],
  );
  assert.match(String(list), /get\d+\(e\)/);
  assert.deepEqual([{ a: 1, b: 1 }, { a: 2 }, { a: 2, b: 0 }].map(list), [true, true, false]);
});

// ---- randomized equivalence against a reference evaluator ------------------

const MISSING = Symbol("missing");

/** Resolves a dot path through own properties; MISSING when it does not resolve. */
function resolve(event: unknown, field: string): unknown {
  let current = event;
  for (const key of field.split(".")) {
    if (typeof current !== "object" || current === null || !Object.hasOwn(current, key)) {
      return MISSING;
    }
    current = (current as Record<string, unknown>)[key];
  }
  return current === undefined ? MISSING : current;
}

function isPrimitive(value: unknown): boolean {
  return value === null || (typeof value !== "object" && typeof value !== "function");
}

function refDeepEqual(a: unknown, b: unknown): boolean {
  if (isPrimitive(a) || isPrimitive(b)) return a === b;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((x, i) => refDeepEqual(x, b[i]));
  }
  if (a instanceof Date || b instanceof Date) {
    return a instanceof Date && b instanceof Date && a.getTime() === b.getTime();
  }
  const ka = Object.keys(a as object);
  const kb = Object.keys(b as object);
  return ka.length === kb.length &&
    kb.every((k) =>
      Object.hasOwn(a as object, k) &&
      refDeepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])
    );
}

function refEquals(found: unknown, value: unknown): boolean {
  if (found === MISSING) return false;
  return refDeepEqual(found, value);
}

type Spec = Record<string, unknown>;

function refEvaluate(spec: Spec, event: unknown): boolean {
  if ("all" in spec) return (spec.all as Spec[]).every((s) => refEvaluate(s, event));
  if ("any" in spec) return (spec.any as Spec[]).some((s) => refEvaluate(s, event));
  if ("not" in spec) return !refEvaluate(spec.not as Spec, event);
  const found = resolve(event, spec.field as string);
  const value = spec.value;
  switch (spec.operator) {
    case "exists":
      return found !== MISSING;
    case "not_exists":
      return found === MISSING;
    case "equals":
      return refEquals(found, value);
    case "not_equals":
      return !refEquals(found, value);
    case "in":
    case "not_in": {
      const values = (spec.values ?? value) as unknown[];
      const member = values.some((v) => refEquals(found, v));
      return spec.operator === "in" ? member : !member;
    }
    case "matches":
      return typeof found === "string" &&
        new RegExp(value as string, (spec.flags as string | undefined) ?? "").test(found);
    case "greater_than":
      if (typeof value === "number") {
        if (typeof found === "number") return found > value;
        if (found instanceof Date) {
          const valueMs = Math.abs(value) < 1e11 ? value * 1000 : value;
          return found.getTime() > valueMs;
        }
        return false; // the pool has no ISO 8601 strings
      }
      return typeof found === "string" && found > (value as string);
    default:
      throw new Error(`the reference does not know ${String(spec.operator)}`);
  }
}

const FIELDS = [
  "a",
  "b",
  "c.d",
  "c.d.e",
  "items.0",
  "items.1.id",
  "missing",
  "toString",
  "__proto__",
  "inherited",
];

const PRIMITIVES: unknown[] = [
  null,
  0,
  -0,
  1,
  2.5,
  -3,
  NaN,
  Infinity,
  1n,
  "",
  "a",
  "b",
  "1",
  "m",
  'x"y\\z',
  "\u2028",
  "é",
  true,
  false,
];

function generator(seed: number) {
  const random = prng(seed);
  const int = (n: number) => Math.floor(random() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)];

  const composite = (depth: number): unknown => {
    const r = random();
    if (depth > 1 || r < 0.4) return pick(PRIMITIVES);
    if (r < 0.6) return Array.from({ length: int(3) }, () => composite(depth + 1));
    if (r < 0.7) return new Date(pick([0, 1000, 5000]));
    const object: Record<string, unknown> = {};
    for (const key of ["k", "id"]) if (random() < 0.6) object[key] = composite(depth + 1);
    return object;
  };
  const fieldValue = (depth: number): unknown => {
    const r = random();
    if (r < 0.65) return pick(PRIMITIVES);
    if (r < 0.7) return undefined;
    return composite(depth);
  };

  const event = (): unknown => {
    const r = random();
    if (r < 0.04) return pick([null, undefined, 5, "a", [1, 2]]);
    const base = r < 0.12
      ? Object.create({ a: "a", inherited: 1, c: { d: 1 } })
      : r < 0.16
      ? Object.create(null)
      : {};
    if (random() < 0.7) base.a = fieldValue(0);
    if (random() < 0.6) base.b = fieldValue(0);
    if (random() < 0.6) {
      const c = random() < 0.8 ? {} as Record<string, unknown> : pick(PRIMITIVES);
      if (typeof c === "object" && c !== null && random() < 0.8) {
        (c as Record<string, unknown>).d = random() < 0.3 ? { e: fieldValue(1) } : fieldValue(1);
      }
      base.c = c;
    }
    if (random() < 0.5) {
      base.items = Array.from(
        { length: int(3) },
        () => random() < 0.5 ? { id: fieldValue(1) } : fieldValue(1),
      );
    }
    if (random() < 0.1) base.toString = fieldValue(0);
    if (random() < 0.1) {
      Object.defineProperty(base, "__proto__", {
        value: fieldValue(0),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return base;
  };

  const listValues = (): unknown[] => {
    const length = random() < 0.2 ? 9 + int(4) : int(6);
    const values: unknown[] = [];
    for (let i = 0; i < length; i++) {
      const r = random();
      if (r < 0.1 && values.length > 0) values.push(pick(values)); // a duplicate
      else if (r < 0.15) values.push(undefined);
      else if (r < 0.2) values.push(NaN);
      else if (r < 0.27) values.push(composite(1));
      else values.push(pick(PRIMITIVES));
    }
    return values;
  };

  const leaf = (): Spec => {
    const field = pick(FIELDS);
    const r = random();
    if (r < 0.12) return { field, operator: pick(["exists", "not_exists"]) };
    if (r < 0.45) {
      const value = random() < 0.9 ? pick(PRIMITIVES) : composite(0);
      return { field, operator: pick(["equals", "not_equals"]), value };
    }
    if (r < 0.8) {
      const operator = pick(["in", "not_in"]);
      return random() < 0.5
        ? { field, operator, values: listValues() }
        : { field, operator, value: listValues() };
    }
    if (r < 0.9) {
      return random() < 0.5
        ? { field, operator: "matches", value: pick(["^a", "b", "^$", "é", "\\d"]) }
        : { field, operator: "matches", value: pick(["^A", "X"]), flags: "i" };
    }
    return {
      field,
      operator: "greater_than",
      value: pick([0, 1, 2, -5, 0.5, "a", "m", ""]),
    };
  };

  const condition = (depth: number): Spec => {
    if (depth >= 4 || random() < 0.35) return leaf();
    const r = random();
    if (r < 0.2) return { not: condition(depth + 1) };
    const children = Array.from({ length: int(5) }, () => condition(depth + 1));
    return r < 0.6 ? { all: children } : { any: children };
  };

  return { condition, event, random, int };
}

function show(value: unknown): string {
  return Deno.inspect(value, { depth: 10, compact: true, breakLength: Infinity });
}

Deno.test("compileCondition() agrees with a reference evaluator on random trees and events", () => {
  const gen = generator(20240601);
  const events = Array.from({ length: 60 }, gen.event);
  let trueCount = 0;
  let total = 0;
  for (let i = 0; i < 3000; i++) {
    const spec = gen.condition(0);
    const compiled = compile(spec);
    for (let j = 0; j < 8; j++) {
      const event = events[gen.int(events.length)];
      const want = refEvaluate(spec, event);
      const got = compiled(event);
      assert.equal(typeof got, "boolean", `case ${i}: a boolean result`);
      assert.equal(
        got,
        want,
        `case ${i}.${j}: condition ${show(spec)}\nevent ${show(event)}`,
      );
      total++;
      if (want) trueCount++;
    }
  }
  // The generator is not degenerate: both outcomes are common.
  assert.ok(trueCount > total * 0.2 && trueCount < total * 0.8, `${trueCount} of ${total}`);
});

Deno.test("compileConditionList() agrees with the reference for and / or lists", () => {
  const gen = generator(77);
  const events = Array.from({ length: 40 }, gen.event);
  for (let i = 0; i < 1500; i++) {
    const list = Array.from({ length: gen.int(4) }, () => gen.condition(1));
    const logic = gen.random() < 0.5 ? "and" : "or";
    const issues: ConfigIssue[] = [];
    const compiled = compileConditionList(list, logic, "filter_conditions", issues);
    assert.deepEqual(issues, []);
    const spec = logic === "and" ? { all: list } : { any: list };
    for (let j = 0; j < 5; j++) {
      const event = events[gen.int(events.length)];
      assert.equal(
        compiled(event),
        refEvaluate(spec, event),
        `case ${i}.${j}: ${logic} ${show(list)}\nevent ${show(event)}`,
      );
    }
  }
});
