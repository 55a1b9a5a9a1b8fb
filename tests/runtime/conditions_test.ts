import assert from "node:assert/strict";
import {
  compileCondition,
  compileConditionList,
  type CompiledCondition,
  CONDITION_OPERATORS,
  type ConditionOptions,
  MAX_CONDITION_DEPTH,
} from "../../runtime/conditions.ts";
import { RealClock } from "../../runtime/clock.ts";
import type { ConfigIssue } from "../../runtime/errors.ts";
import { levenshtein, suggest } from "../../runtime/suggest.ts";

/** Compiles a condition that must be valid. */
function compile(spec: unknown, options?: ConditionOptions): CompiledCondition {
  const issues: ConfigIssue[] = [];
  const condition = compileCondition(spec, "c", issues, options);
  assert.deepEqual(issues, []);
  return condition;
}

/** Compiles a leaf on field `f`. */
function leaf(
  operator: string,
  value?: unknown,
  options?: ConditionOptions,
): CompiledCondition {
  return compile(
    value === undefined ? { field: "f", operator } : { field: "f", operator, value },
    options,
  );
}

/** The issues of an invalid condition, checking the predicate is inert. */
function issuesOf(spec: unknown, path = "c"): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const condition = compileCondition(spec, path, issues);
  assert.ok(issues.length > 0, "expected config issues");
  for (const event of [{}, { f: 1 }, { f: "x" }, null]) {
    assert.equal(condition(event), false);
  }
  return issues;
}

const MISSING = {};

Deno.test("compileCondition() equals: strict for primitives, deep for objects", async (t) => {
  await t.step("strings, numbers, booleans", () => {
    assert.equal(leaf("equals", "click")({ f: "click" }), true);
    assert.equal(leaf("equals", "click")({ f: "Click" }), false);
    assert.equal(leaf("equals", 42)({ f: 42 }), true);
    assert.equal(leaf("equals", 42)({ f: 42.5 }), false);
    assert.equal(leaf("equals", true)({ f: true }), true);
    assert.equal(leaf("equals", 0)({ f: -0 }), true);
  });
  await t.step("no type coercion", () => {
    assert.equal(leaf("equals", 1)({ f: "1" }), false);
    assert.equal(leaf("equals", "1")({ f: 1 }), false);
    assert.equal(leaf("equals", true)({ f: 1 }), false);
    assert.equal(leaf("equals", 0)({ f: false }), false);
    assert.equal(leaf("equals", "")({ f: null }), false);
    assert.equal(leaf("equals", [1])({ f: 1 }), false);
  });
  await t.step("null equals only null; missing is not null", () => {
    const isNull = leaf("equals", null);
    assert.equal(isNull({ f: null }), true);
    assert.equal(isNull(MISSING), false);
    assert.equal(isNull({ f: 0 }), false);
    assert.equal(isNull({ f: undefined }), false);
  });
  await t.step("missing field and non-object events are false", () => {
    const equals = leaf("equals", "x");
    assert.equal(equals(MISSING), false);
    assert.equal(equals(null), false);
    assert.equal(equals("x"), false);
    assert.equal(equals(undefined), false);
  });
  await t.step("NaN equals nothing", () => {
    assert.equal(leaf("equals", 1)({ f: NaN }), false);
    assert.equal(leaf("equals", [1])({ f: [NaN] }), false);
  });
  await t.step("deep equality of objects and arrays", () => {
    const object = leaf("equals", { a: 1, b: [1, { c: "x" }] });
    assert.equal(object({ f: { b: [1, { c: "x" }], a: 1 } }), true);
    assert.equal(object({ f: { a: 1, b: [1, { c: "y" }] } }), false);
    assert.equal(object({ f: { a: 1, b: [1, { c: "x" }], extra: 0 } }), false);
    assert.equal(object({ f: { a: 1 } }), false);
    assert.equal(object({ f: "a" }), false);
    const array = leaf("equals", [1, 2]);
    assert.equal(array({ f: [1, 2] }), true);
    assert.equal(array({ f: [2, 1] }), false);
    assert.equal(array({ f: [1, 2, 3] }), false);
    assert.equal(array({ f: { 0: 1, 1: 2 } }), false);
    assert.equal(leaf("equals", {})({ f: [] }), false);
    assert.equal(leaf("equals", [])({ f: {} }), false);
    assert.equal(leaf("equals", { a: null })({ f: { a: null } }), true);
    assert.equal(leaf("equals", { a: null })({ f: { b: null } }), false);
  });
  await t.step("Dates compare by time value", () => {
    const date = leaf("equals", new Date(1000));
    assert.equal(date({ f: new Date(1000) }), true);
    assert.equal(date({ f: new Date(2000) }), false);
    assert.equal(date({ f: {} }), false);
  });
  await t.step("unicode strings compare by code units", () => {
    assert.equal(leaf("equals", "café ☕ 😀")({ f: "café ☕ 😀" }), true);
    // Precomposed é (U+00E9) is not e + combining acute (U+0301).
    assert.equal(leaf("equals", "caf\u00e9")({ f: "cafe\u0301" }), false);
  });
  await t.step("cyclic event values do not loop", () => {
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    assert.equal(
      leaf("equals", { a: 1, self: { a: 1 } })({ f: cyclic }),
      false,
    );
  });
});

Deno.test("compileCondition() not_equals negates equals; missing is true", () => {
  const notClick = leaf("not_equals", "click");
  assert.equal(notClick({ f: "click" }), false);
  assert.equal(notClick({ f: "view" }), true);
  assert.equal(notClick({ f: null }), true);
  assert.equal(notClick(MISSING), true);
  assert.equal(leaf("not_equals", 1)({ f: "1" }), true);
  assert.equal(leaf("not_equals", null)({ f: null }), false);
  assert.equal(leaf("not_equals", { a: [1] })({ f: { a: [1] } }), false);
  assert.equal(leaf("not_equals", { a: [1] })({ f: { a: [2] } }), true);
});

Deno.test("compileCondition() in / not_in test membership", async (t) => {
  await t.step("values spelling", () => {
    const isIn = compile({
      field: "f",
      operator: "in",
      values: ["click", "view", 3],
    });
    assert.equal(isIn({ f: "click" }), true);
    assert.equal(isIn({ f: 3 }), true);
    assert.equal(isIn({ f: "3" }), false);
    assert.equal(isIn({ f: "purchase" }), false);
    assert.equal(isIn(MISSING), false);
    assert.equal(isIn({ f: null }), false);
    assert.equal(isIn({ f: ["click"] }), false);
  });
  await t.step("array value spelling", () => {
    const isIn = compile({ field: "f", operator: "in", value: ["a", "b"] });
    assert.equal(isIn({ f: "b" }), true);
    assert.equal(isIn({ f: "c" }), false);
  });
  await t.step("null and composite candidates", () => {
    const isIn = compile({
      field: "f",
      operator: "in",
      values: [null, { id: 1 }, [1, 2]],
    });
    assert.equal(isIn({ f: null }), true);
    assert.equal(isIn({ f: { id: 1 } }), true);
    assert.equal(isIn({ f: [1, 2] }), true);
    assert.equal(isIn({ f: { id: 2 } }), false);
    assert.equal(isIn({ f: 1 }), false);
    assert.equal(isIn(MISSING), false);
  });
  await t.step("NaN is never a member", () => {
    const isIn = compile({ field: "f", operator: "in", values: [NaN, 1] });
    assert.equal(isIn({ f: NaN }), false);
    assert.equal(isIn({ f: 1 }), true);
  });
  await t.step("empty candidates", () => {
    assert.equal(
      compile({ field: "f", operator: "in", values: [] })({ f: 1 }),
      false,
    );
    assert.equal(
      compile({ field: "f", operator: "not_in", values: [] })({ f: 1 }),
      true,
    );
  });
  await t.step("not_in is the negation; missing is true", () => {
    const notIn = compile({
      field: "f",
      operator: "not_in",
      values: ["a", { x: 1 }],
    });
    assert.equal(notIn({ f: "a" }), false);
    assert.equal(notIn({ f: { x: 1 } }), false);
    assert.equal(notIn({ f: "b" }), true);
    assert.equal(notIn({ f: null }), true);
    assert.equal(notIn(MISSING), true);
  });
});

Deno.test("compileCondition() contains: substring, element or key", async (t) => {
  await t.step("substring of a string field", () => {
    const hasError = leaf("contains", "error");
    assert.equal(hasError({ f: "an error occurred" }), true);
    assert.equal(hasError({ f: "an Error occurred" }), false);
    assert.equal(leaf("contains", "")({ f: "" }), true);
    assert.equal(leaf("contains", "☕")({ f: "café ☕ time" }), true);
    assert.equal(leaf("contains", "😀")({ f: "smile 😀!" }), true);
    assert.equal(leaf("contains", "\u0301")({ f: "caf\u00e9" }), false);
  });
  await t.step("a non-string value never matches a string field", () => {
    assert.equal(leaf("contains", 5)({ f: "abc5" }), false);
    assert.equal(leaf("contains", null)({ f: "null" }), false);
  });
  await t.step("element of an array field, deep for objects", () => {
    assert.equal(leaf("contains", "vip")({ f: ["new", "vip"] }), true);
    assert.equal(leaf("contains", "vi")({ f: ["new", "vip"] }), false);
    assert.equal(leaf("contains", 2)({ f: [1, 2, 3] }), true);
    assert.equal(leaf("contains", 2)({ f: ["2"] }), false);
    assert.equal(leaf("contains", null)({ f: [null] }), true);
    assert.equal(
      leaf("contains", { id: 1 })({ f: [{ id: 2 }, { id: 1 }] }),
      true,
    );
    assert.equal(leaf("contains", { id: 1 })({ f: [{ id: 1, x: 0 }] }), false);
    assert.equal(leaf("contains", [1])({ f: [[1], [2]] }), true);
    assert.equal(leaf("contains", 1)({ f: [] }), false);
  });
  await t.step("own key of an object field", () => {
    assert.equal(leaf("contains", "id")({ f: { id: 0 } }), true);
    assert.equal(leaf("contains", "id")({ f: { ID: 0 } }), false);
    assert.equal(leaf("contains", "toString")({ f: {} }), false);
    assert.equal(leaf("contains", "constructor")({ f: {} }), false);
    assert.equal(leaf("contains", 1)({ f: { 1: "x" } }), false);
  });
  await t.step("missing, null and other types are false", () => {
    const contains = leaf("contains", "1");
    assert.equal(contains(MISSING), false);
    assert.equal(contains({ f: null }), false);
    assert.equal(contains({ f: 1 }), false);
    assert.equal(contains({ f: 123 }), false);
    assert.equal(contains({ f: true }), false);
  });
});

Deno.test("compileCondition() exists / not_exists: null exists, missing does not", () => {
  const exists = leaf("exists");
  const notExists = leaf("not_exists");
  for (const value of [null, 0, "", false, [], {}, NaN]) {
    assert.equal(exists({ f: value }), true, String(value));
    assert.equal(notExists({ f: value }), false, String(value));
  }
  for (const event of [MISSING, { f: undefined }, { g: 1 }, null, 5, "f"]) {
    assert.equal(exists(event), false);
    assert.equal(notExists(event), true);
  }
  const nested = compile({ field: "a.b.c", operator: "exists" });
  assert.equal(nested({ a: { b: { c: null } } }), true);
  assert.equal(nested({ a: { b: 1 } }), false);
  assert.equal(nested({ a: null }), false);
});

Deno.test("compileCondition() compares numbers with numbers", async (t) => {
  const cases = [
    ["greater_than", [false, false, true]],
    ["greater_or_equal", [false, true, true]],
    ["less_than", [true, false, false]],
    ["less_or_equal", [true, true, false]],
  ] as const;
  for (const [operator, [below, equal, above]] of cases) {
    await t.step(operator, () => {
      const test = leaf(operator, 10);
      assert.equal(test({ f: 9.5 }), below);
      assert.equal(test({ f: 10 }), equal);
      assert.equal(test({ f: 10.5 }), above);
      assert.equal(test({ f: -Infinity }), below);
      assert.equal(test({ f: Infinity }), above);
    });
  }
  await t.step("NaN, missing, null and other types never compare", () => {
    for (const operator of Object.keys(Object.fromEntries(cases))) {
      const test = leaf(operator, 10);
      for (
        const event of [
          { f: NaN },
          MISSING,
          { f: null },
          { f: "11" },
          { f: "9" },
          { f: true },
          { f: [11] },
          { f: { v: 11 } },
        ]
      ) {
        assert.equal(
          test(event),
          false,
          `${operator} ${JSON.stringify(event)}`,
        );
      }
    }
  });
  await t.step("negative and fractional values", () => {
    assert.equal(leaf("greater_than", -1.5)({ f: -1 }), true);
    assert.equal(leaf("less_than", -1.5)({ f: -2 }), true);
  });
  await t.step("an infinite value compares with finite numbers", () => {
    assert.equal(leaf("less_than", Infinity)({ f: 1e308 }), true);
    assert.equal(leaf("less_than", Infinity)({ f: "2024-01-01" }), false);
  });
});

Deno.test("compileCondition() compares strings lexicographically", async (t) => {
  await t.step("code-unit order, case sensitive", () => {
    assert.equal(leaf("greater_than", "b")({ f: "c" }), true);
    assert.equal(leaf("greater_than", "b")({ f: "ba" }), true);
    assert.equal(leaf("greater_than", "b")({ f: "b" }), false);
    assert.equal(leaf("greater_or_equal", "b")({ f: "b" }), true);
    assert.equal(leaf("less_than", "b")({ f: "B" }), true);
    assert.equal(leaf("less_than", "b")({ f: "" }), true);
    // Numeric strings are strings: "10" sorts before "9".
    assert.equal(leaf("less_than", "9")({ f: "10" }), true);
  });
  await t.step("unicode by UTF-16 code units, not locale", () => {
    assert.equal(leaf("greater_than", "z")({ f: "é" }), true);
    assert.equal(leaf("less_than", "\uffff")({ f: "😀" }), true);
    assert.equal(leaf("less_or_equal", "naïve")({ f: "naïve" }), true);
  });
  await t.step("non-string fields never compare with a string value", () => {
    const test = leaf("less_than", "z");
    for (
      const event of [MISSING, { f: 1 }, { f: null }, { f: ["a"] }, { f: true }]
    ) {
      assert.equal(test(event), false, JSON.stringify(event));
    }
  });
});

Deno.test("compileCondition() compares times", async (t) => {
  const noon = Date.UTC(2024, 0, 10, 12);
  let clock = noon;
  const options = { now: () => clock };
  const recent = leaf("greater_than", "now-1h", options);
  const atLeastHourOld = leaf("less_or_equal", "now - 1h", options);

  await t.step("relative time against ISO, seconds, ms and Date fields", () => {
    clock = noon;
    const inside = noon - 30 * 60_000;
    const outside = noon - 90 * 60_000;
    for (
      const [value, expected] of [
        [new Date(inside).toISOString(), true],
        [new Date(outside).toISOString(), false],
        ["2024-01-10T11:30:00+00:00", true],
        ["2024-01-10T12:30:00+01:00", true],
        ["2024-01-10T10:30:00-01:00", true],
        [inside / 1000, true],
        [outside / 1000, false],
        [inside, true],
        [outside, false],
        [String(inside / 1000), true],
        [new Date(inside), true],
        [new Date(outside), false],
      ] as const
    ) {
      assert.equal(recent({ f: value }), expected, String(value));
    }
  });
  await t.step("the bound is inclusive or not as the operator says", () => {
    clock = noon;
    const exactlyHourAgo = new Date(noon - 3_600_000).toISOString();
    assert.equal(recent({ f: exactlyHourAgo }), false);
    assert.equal(atLeastHourOld({ f: exactlyHourAgo }), true);
    assert.equal(
      leaf("greater_or_equal", "now-1h", options)({ f: exactlyHourAgo }),
      true,
    );
  });
  await t.step("the clock is read at every evaluation", () => {
    const event = { f: "2024-01-10T11:30:00Z" };
    clock = noon;
    assert.equal(recent(event), true);
    clock = noon + 60 * 60_000;
    assert.equal(recent(event), false);
    clock = noon;
    assert.equal(recent(event), true);
  });
  await t.step("every relative unit", () => {
    clock = noon;
    const cases = [
      ["now-500ms", noon - 400],
      ["now-30s", noon - 20_000],
      ["now-5m", noon - 4 * 60_000],
      ["now-2d", noon - 86_400_000],
      ["now-1w", noon - 6 * 86_400_000],
      ["now", noon + 1],
      ["now+5m", noon + 6 * 60_000],
    ] as const;
    for (const [value, justAfter] of cases) {
      const after = leaf("greater_than", value, options);
      assert.equal(after({ f: justAfter }), true, value);
      assert.equal(after({ f: justAfter - 200_000_000 }), false, value);
    }
  });
  await t.step("fields that are not timestamps are false", () => {
    clock = noon;
    for (
      const value of [
        "2024-13-45",
        "2024-02-30T10:00:00Z",
        "March 7",
        "recently",
        "",
        null,
        true,
        NaN,
        { t: noon },
        [noon],
      ]
    ) {
      assert.equal(recent({ f: value }), false, String(value));
      assert.equal(atLeastHourOld({ f: value }), false, String(value));
    }
    assert.equal(recent(MISSING), false);
    assert.equal(atLeastHourOld(MISSING), false);
  });
  await t.step(
    "the clock is not read for fields that are not timestamps",
    () => {
      let reads = 0;
      const counted = leaf("greater_than", "now-1h", {
        now: () => (reads++, noon),
      });
      counted(MISSING);
      counted({ f: "nope" });
      assert.equal(reads, 0);
      counted({ f: noon });
      assert.equal(reads, 1);
    },
  );
  await t.step("a fixed ISO value compares any timestamp field as time", () => {
    const after = leaf("greater_or_equal", "2024-01-10T12:00:00Z");
    assert.equal(after({ f: "2024-01-10T12:00:00Z" }), true);
    assert.equal(after({ f: "2024-01-10T13:00:00+01:00" }), true);
    assert.equal(after({ f: "2024-01-10T11:59:59.999Z" }), false);
    assert.equal(after({ f: noon / 1000 }), true);
    assert.equal(after({ f: noon - 1 }), false);
    assert.equal(after({ f: "2024-01-11" }), true);
    assert.equal(after({ f: "2024-99-99" }), false);
    const beforeDay = leaf("less_than", "2024-01-10");
    assert.equal(beforeDay({ f: "2024-01-09T23:59:59Z" }), true);
    assert.equal(beforeDay({ f: "2024-01-10T00:00:00Z" }), false);
  });
  await t.step("a Date value is a fixed time", () => {
    const after = leaf("greater_than", new Date(noon));
    assert.equal(after({ f: "2024-01-10T12:00:01Z" }), true);
    assert.equal(after({ f: noon }), false);
  });
  await t.step("a number value compares date-like fields as time", () => {
    const afterSeconds = leaf("greater_than", noon / 1000);
    assert.equal(afterSeconds({ f: "2024-01-10T12:00:01Z" }), true);
    assert.equal(afterSeconds({ f: "2024-01-10T11:59:59Z" }), false);
    assert.equal(afterSeconds({ f: new Date(noon + 1000) }), true);
    const afterMs = leaf("greater_than", noon);
    assert.equal(afterMs({ f: "2024-01-10T12:00:01Z" }), true);
    // Numbers against numbers stay numeric, whatever their magnitude.
    assert.equal(afterSeconds({ f: noon / 1000 + 1 }), true);
    assert.equal(afterMs({ f: noon / 1000 + 1 }), false);
    // Numeric strings are not coerced, and bad dates are false.
    assert.equal(afterSeconds({ f: String(noon / 1000 + 1) }), false);
    assert.equal(afterSeconds({ f: "2024-13-45T00:00:00Z" }), false);
  });
  await t.step("without options the real clock is used", () => {
    const realNow = new RealClock().now();
    const fresh = leaf("greater_than", "now-1h");
    assert.equal(fresh({ f: realNow }), true);
    assert.equal(fresh({ f: realNow - 2 * 3_600_000 }), false);
  });
});

Deno.test("compileCondition() matches strings against a precompiled regex", async (t) => {
  await t.step("patterns and flags", () => {
    const email = leaf("matches", "^[^@\\s]+@example\\.com$");
    assert.equal(email({ f: "ada@example.com" }), true);
    assert.equal(email({ f: "ada@example.org" }), false);
    const insensitive = compile({
      field: "f",
      operator: "matches",
      value: "^error",
      flags: "i",
    });
    assert.equal(insensitive({ f: "ERROR: disk" }), true);
    assert.equal(insensitive({ f: "warn" }), false);
  });
  await t.step("unicode", () => {
    assert.equal(
      compile({ field: "f", operator: "matches", value: "^.$", flags: "u" })({
        f: "😀",
      }),
      true,
    );
    assert.equal(leaf("matches", "^.$")({ f: "😀" }), false);
    assert.equal(
      compile({
        field: "f",
        operator: "matches",
        value: "\\p{L}+",
        flags: "u",
      })({
        f: "ñandú",
      }),
      true,
    );
  });
  await t.step("only strings match: numbers, null, missing are false", () => {
    const digits = leaf("matches", "^\\d+$");
    assert.equal(digits({ f: "123" }), true);
    assert.equal(digits({ f: 123 }), false);
    assert.equal(digits({ f: null }), false);
    assert.equal(digits({ f: ["123"] }), false);
    assert.equal(digits(MISSING), false);
  });
  await t.step("matching has no state between events", () => {
    const abc = leaf("matches", "abc");
    for (let i = 0; i < 3; i++) assert.equal(abc({ f: "abc abc" }), true);
  });
});

Deno.test("compileCondition() groups nest all / any / not", async (t) => {
  const yes = { field: "ok", operator: "equals", value: true };
  const no = { field: "ok", operator: "equals", value: false };
  const event = { ok: true };
  await t.step("all", () => {
    assert.equal(compile({ all: [yes] })(event), true);
    assert.equal(compile({ all: [yes, yes] })(event), true);
    assert.equal(compile({ all: [yes, no] })(event), false);
    assert.equal(compile({ all: [yes, yes, yes, no] })(event), false);
    assert.equal(compile({ all: [yes, yes, yes, yes] })(event), true);
    assert.equal(compile({ all: [] })(event), true);
  });
  await t.step("any", () => {
    assert.equal(compile({ any: [no] })(event), false);
    assert.equal(compile({ any: [no, yes] })(event), true);
    assert.equal(compile({ any: [no, no, no, yes] })(event), true);
    assert.equal(compile({ any: [no, no, no] })(event), false);
    assert.equal(compile({ any: [] })(event), false);
  });
  await t.step("not", () => {
    assert.equal(compile({ not: yes })(event), false);
    assert.equal(compile({ not: no })(event), true);
    assert.equal(compile({ not: { not: yes } })(event), true);
    assert.equal(
      compile({ not: { field: "x", operator: "equals", value: 1 } })(MISSING),
      true,
    );
  });
  await t.step("mixed nesting", () => {
    const rule = compile({
      any: [
        { field: "level", operator: "equals", value: "error" },
        {
          all: [
            { field: "type", operator: "in", values: ["click", "view"] },
            { not: { field: "user.bot", operator: "equals", value: true } },
            {
              any: [{
                field: "items.0.price",
                operator: "greater_than",
                value: 100,
              }],
            },
          ],
        },
      ],
    });
    assert.equal(rule({ level: "error" }), true);
    assert.equal(rule({ type: "click", items: [{ price: 150 }] }), true);
    assert.equal(
      rule({ type: "click", user: { bot: true }, items: [{ price: 150 }] }),
      false,
    );
    assert.equal(rule({ type: "click", items: [{ price: 50 }] }), false);
    assert.equal(rule({ type: "purchase", items: [{ price: 150 }] }), false);
  });
  await t.step(`${MAX_CONDITION_DEPTH} levels are allowed`, () => {
    let spec: unknown = yes;
    for (let depth = 1; depth < MAX_CONDITION_DEPTH; depth++) {
      spec = { all: [spec] };
    }
    assert.equal(compile(spec)(event), true);
  });
});

Deno.test("compileCondition() paths never reach prototypes", () => {
  const plain = { name: "x", list: [1] };
  assert.equal(
    compile({ field: "constructor", operator: "exists" })(plain),
    false,
  );
  assert.equal(
    compile({ field: "__proto__", operator: "exists" })(plain),
    false,
  );
  assert.equal(
    compile({ field: "toString", operator: "not_exists" })(plain),
    true,
  );
  assert.equal(
    compile({ field: "constructor.name", operator: "equals", value: "Object" })(
      plain,
    ),
    false,
  );
  assert.equal(
    compile({
      field: "list.constructor.name",
      operator: "equals",
      value: "Array",
    })(plain),
    false,
  );
  assert.equal(
    compile({ field: "__proto__.polluted", operator: "not_exists" })(plain),
    true,
  );
  const parsed = JSON.parse('{"__proto__": {"admin": true}}');
  assert.equal(
    compile({ field: "__proto__.admin", operator: "equals", value: true })(
      parsed,
    ),
    true,
  );
  assert.equal(compile({ field: "admin", operator: "exists" })(parsed), false);
});

Deno.test("compileConditionList() combines filter_conditions with filter_logic", async (t) => {
  const conditions = [
    {
      field: "event_type",
      operator: "in",
      values: ["click", "purchase", "view"],
    },
    { field: "user_id", operator: "exists" },
  ];
  const list = (logic: unknown, items: unknown = conditions) => {
    const issues: ConfigIssue[] = [];
    const condition = compileConditionList(
      items,
      logic,
      "filter_conditions",
      issues,
    );
    assert.deepEqual(issues, []);
    return condition;
  };
  await t.step("and", () => {
    const and = list("and");
    assert.equal(and({ event_type: "click", user_id: 1 }), true);
    assert.equal(and({ event_type: "click" }), false);
    assert.equal(and({ user_id: 1 }), false);
  });
  await t.step("or", () => {
    const or = list("or");
    assert.equal(or({ event_type: "click" }), true);
    assert.equal(or({ user_id: 1 }), true);
    assert.equal(or({ other: 1 }), false);
  });
  await t.step("logic defaults to and", () => {
    assert.equal(list(undefined)({ event_type: "click" }), false);
    assert.equal(list(undefined)({ event_type: "click", user_id: 1 }), true);
  });
  await t.step("empty lists: and passes everything, or nothing", () => {
    assert.equal(list("and", [])({}), true);
    assert.equal(list("or", [])({}), false);
  });
  await t.step("the guide's example with a relative time", () => {
    const now = Date.UTC(2024, 0, 1, 12);
    const issues: ConfigIssue[] = [];
    const filter = compileConditionList(
      [
        ...conditions,
        { field: "timestamp", operator: "greater_than", value: "now-1h" },
      ],
      "and",
      "filter_conditions",
      issues,
      { now: () => now },
    );
    assert.deepEqual(issues, []);
    assert.equal(
      filter({
        event_type: "view",
        user_id: "u1",
        timestamp: "2024-01-01T11:59:00Z",
      }),
      true,
    );
    assert.equal(
      filter({
        event_type: "view",
        user_id: "u1",
        timestamp: "2024-01-01T10:59:00Z",
      }),
      false,
    );
  });
});

Deno.test("compileCondition() reports leaf config issues with exact paths", async (t) => {
  const cases: [string, unknown, ConfigIssue[]][] = [
    [
      "unknown operator with a suggestion",
      { field: "f", operator: "inn", values: [1] },
      [{
        path: "c.operator",
        message: 'unknown operator "inn"; did you mean "in"?',
      }],
    ],
    [
      "misspelled long operator",
      { field: "f", operator: "greater_then", value: 1 },
      [{
        path: "c.operator",
        message: 'unknown operator "greater_then"; did you mean "greater_than"?',
      }],
    ],
    [
      "unknown operator without a suggestion",
      { field: "f", operator: "between", value: 1 },
      [{
        path: "c.operator",
        message: `unknown operator "between"; expected one of ${CONDITION_OPERATORS.join(", ")}`,
      }],
    ],
    [
      "operator that is not a string",
      { field: "f", operator: 3, value: 1 },
      [{
        path: "c.operator",
        message: "expected an operator name, found a number (3)",
      }],
    ],
    [
      "missing operator",
      { field: "f", value: 1 },
      [{
        path: "c.operator",
        message: `missing "operator": expected one of ${CONDITION_OPERATORS.join(", ")}`,
      }],
    ],
    [
      "missing field",
      { operator: "exists" },
      [{
        path: "c.field",
        message: 'missing "field": expected a dot path such as "data.value"',
      }],
    ],
    [
      "field that is not a string",
      { field: ["a"], operator: "exists" },
      [{
        path: "c.field",
        message: 'expected a dot path such as "data.value", found an array',
      }],
    ],
    [
      "empty field",
      { field: "", operator: "exists" },
      [{
        path: "c.field",
        message: 'expected a dot path such as "data.value", found ""',
      }],
    ],
    [
      "field with an empty segment",
      { field: "data..value", operator: "exists" },
      [{
        path: "c.field",
        message:
          'invalid path "data..value": expected keys separated by single dots, found an empty key',
      }],
    ],
    [
      "misspelled key",
      { feild: "f", operator: "exists" },
      [
        {
          path: "c.feild",
          message: 'unknown key "feild"; did you mean "field"?',
        },
        {
          path: "c.field",
          message: 'missing "field": expected a dot path such as "data.value"',
        },
      ],
    ],
    [
      "misspelled value key",
      { field: "f", operator: "equals", vaule: 1 },
      [
        {
          path: "c.vaule",
          message: 'unknown key "vaule"; did you mean "value"?',
        },
        { path: "c.value", message: 'missing "value" for operator "equals"' },
      ],
    ],
    [
      "unrelated unknown key",
      { field: "f", operator: "exists", description: "x" },
      [{
        path: "c.description",
        message: 'unknown key "description"; expected field, operator, value, values or flags',
      }],
    ],
    [
      "missing value for equals",
      { field: "f", operator: "equals" },
      [{ path: "c.value", message: 'missing "value" for operator "equals"' }],
    ],
    [
      "missing value for contains",
      { field: "f", operator: "contains" },
      [{ path: "c.value", message: 'missing "value" for operator "contains"' }],
    ],
    [
      "missing value for a comparison",
      { field: "f", operator: "less_than" },
      [{
        path: "c.value",
        message: 'missing "value" for operator "less_than"',
      }],
    ],
    [
      "missing value for matches",
      { field: "f", operator: "matches" },
      [{ path: "c.value", message: 'missing "value" for operator "matches"' }],
    ],
    [
      "missing values for in",
      { field: "f", operator: "in" },
      [{
        path: "c.values",
        message: 'missing "values" (an array) for operator "in"',
      }],
    ],
    [
      "values that is not an array",
      { field: "f", operator: "in", values: "click" },
      [{
        path: "c.values",
        message: 'expected an array of values for operator "in", found a string ("click")',
      }],
    ],
    [
      "value that is not an array for not_in",
      { field: "f", operator: "not_in", value: "click" },
      [{
        path: "c.value",
        message:
          'expected an array of values for operator "not_in", found a string ("click"); use "equals" to compare with a single value',
      }],
    ],
    [
      "both value and values",
      { field: "f", operator: "in", value: [1], values: [2] },
      [{
        path: "c.values",
        message: 'give either "value" or "values" for operator "in", not both',
      }],
    ],
    [
      "values for equals",
      { field: "f", operator: "equals", values: [1] },
      [
        {
          path: "c.values",
          message: '"values" is only used by "in" and "not_in"; operator "equals" takes "value"',
        },
        { path: "c.value", message: 'missing "value" for operator "equals"' },
      ],
    ],
    [
      "value for exists",
      { field: "f", operator: "exists", value: false },
      [{ path: "c.value", message: 'operator "exists" takes no "value"' }],
    ],
    [
      "values for not_exists",
      { field: "f", operator: "not_exists", values: [] },
      [{
        path: "c.values",
        message: 'operator "not_exists" takes no "values"',
      }],
    ],
    [
      "flags for equals",
      { field: "f", operator: "equals", value: "x", flags: "i" },
      [{ path: "c.flags", message: '"flags" is only used by "matches"' }],
    ],
    [
      "regex that does not compile",
      { field: "f", operator: "matches", value: "(unclosed" },
      [{
        path: "c.value",
        message:
          "regex does not compile: Invalid regular expression: /(unclosed/: Unterminated group",
      }],
    ],
    [
      "regex invalid only in unicode mode",
      { field: "f", operator: "matches", value: "\\p{Lx}", flags: "u" },
      [{
        path: "c.value",
        message:
          "regex does not compile: Invalid regular expression: /\\p{Lx}/u: Invalid property name",
      }],
    ],
    [
      "regex pattern that is not a string",
      { field: "f", operator: "matches", value: 5 },
      [{
        path: "c.value",
        message: 'expected a regular expression string for "matches", found a number (5)',
      }],
    ],
    [
      "stateful regex flags",
      { field: "f", operator: "matches", value: "a", flags: "gy" },
      [
        {
          path: "c.flags",
          message:
            'regex flag "g" is not allowed: it makes a regex remember where its last match ended, across events; allowed flags are d, i, m, s, u, v',
        },
        {
          path: "c.flags",
          message:
            'regex flag "y" is not allowed: it makes a regex remember where its last match ended, across events; allowed flags are d, i, m, s, u, v',
        },
      ],
    ],
    [
      "unknown regex flag",
      { field: "f", operator: "matches", value: "a", flags: "x" },
      [{
        path: "c.flags",
        message: 'unknown regex flag "x"; allowed flags are d, i, m, s, u, v',
      }],
    ],
    [
      "repeated regex flag",
      { field: "f", operator: "matches", value: "a", flags: "ii" },
      [{
        path: "c.flags",
        message: "invalid regex flags \"ii\": Invalid flags supplied to RegExp constructor 'ii'",
      }],
    ],
    [
      "flags that are not a string",
      { field: "f", operator: "matches", value: "a", flags: ["i"] },
      [{
        path: "c.flags",
        message: 'expected regex flags as a string such as "i", found an array',
      }],
    ],
    [
      "relative time that does not parse",
      { field: "ts", operator: "greater_than", value: "now-1x" },
      [{
        path: "c.value",
        message:
          'invalid relative time "now-1x": expected "now", optionally followed by + or -, an amount and a unit (ms, s, m, h, d, w), such as "now-1h"',
      }],
    ],
    [
      "upper-case relative time",
      { field: "ts", operator: "less_than", value: "NOW-1h" },
      [{
        path: "c.value",
        message:
          'invalid relative time "NOW-1h": expected "now", optionally followed by + or -, an amount and a unit (ms, s, m, h, d, w), such as "now-1h"',
      }],
    ],
    [
      "date that is not valid ISO 8601",
      { field: "ts", operator: "greater_than", value: "2024-13-45" },
      [{
        path: "c.value",
        message:
          'invalid ISO 8601 date "2024-13-45": expected YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss[.fff]][Z|±hh:mm] with valid ranges',
      }],
    ],
    [
      "object value for a comparison",
      { field: "f", operator: "greater_than", value: { n: 1 } },
      [{
        path: "c.value",
        message:
          'expected a number, a string, an ISO 8601 date or a relative time such as "now-1h" for operator "greater_than", found an object',
      }],
    ],
    [
      "boolean value for a comparison",
      { field: "f", operator: "less_or_equal", value: true },
      [{
        path: "c.value",
        message:
          'expected a number, a string, an ISO 8601 date or a relative time such as "now-1h" for operator "less_or_equal", found a boolean (true)',
      }],
    ],
    [
      "null value for a comparison",
      { field: "f", operator: "greater_or_equal", value: null },
      [{
        path: "c.value",
        message:
          'expected a number, a string, an ISO 8601 date or a relative time such as "now-1h" for operator "greater_or_equal", found null',
      }],
    ],
    [
      "NaN value for a comparison",
      { field: "f", operator: "less_than", value: NaN },
      [{
        path: "c.value",
        message: 'expected a number for operator "less_than", found NaN',
      }],
    ],
    [
      "invalid Date value for a comparison",
      { field: "f", operator: "less_than", value: new Date("nope") },
      [{
        path: "c.value",
        message: 'expected a valid date for operator "less_than", found an invalid Date',
      }],
    ],
    [
      "several problems at once",
      { feild: "f", operator: "inn", value: 1 },
      [
        {
          path: "c.feild",
          message: 'unknown key "feild"; did you mean "field"?',
        },
        {
          path: "c.field",
          message: 'missing "field": expected a dot path such as "data.value"',
        },
        {
          path: "c.operator",
          message: 'unknown operator "inn"; did you mean "in"?',
        },
      ],
    ],
  ];
  for (const [name, spec, expected] of cases) {
    await t.step(name, () => {
      assert.deepEqual(issuesOf(spec), expected);
    });
  }
});

Deno.test("compileCondition() reports group and shape issues with exact paths", async (t) => {
  const ok = { field: "f", operator: "exists" };
  const shape =
    'expected a condition object with "field" and "operator" (or a group with "all", "any" or "not"), found';
  const cases: [string, unknown, ConfigIssue[]][] = [
    ["a string", "f == 1", [{
      path: "c",
      message: `${shape} a string ("f == 1")`,
    }]],
    ["null", null, [{ path: "c", message: `${shape} null` }]],
    ["an array", [ok], [{ path: "c", message: `${shape} an array` }]],
    [
      "all that is not an array",
      { all: ok },
      [{
        path: "c.all",
        message: "expected an array of conditions, found an object",
      }],
    ],
    [
      "two group keys",
      { all: [ok], any: [ok] },
      [{
        path: "c",
        message:
          'a group has exactly one of "all", "any" or "not", found "all" and "any"; nest one group inside the other',
      }],
    ],
    [
      "group mixed with a leaf",
      { any: [ok], field: "f", operator: "exists" },
      [{
        path: "c",
        message:
          'a condition is either a group ("any") or a leaf ("field", "operator", …), found both "any" and "field"; move the leaf into the group',
      }],
    ],
    [
      "unknown key in a group",
      { all: [ok], comment: "x" },
      [{
        path: "c.comment",
        message: 'unknown key "comment"; expected only "all"',
      }],
    ],
    [
      "misspelled group key",
      { alll: [ok] },
      [
        { path: "c.alll", message: 'unknown key "alll"; did you mean "all"?' },
        {
          path: "c.field",
          message: 'missing "field": expected a dot path such as "data.value"',
        },
        {
          path: "c.operator",
          message: `missing "operator": expected one of ${CONDITION_OPERATORS.join(", ")}`,
        },
      ],
    ],
    [
      "not with an array",
      { not: [ok] },
      [{ path: "c.not", message: `${shape} an array` }],
    ],
    [
      "issues deep inside groups",
      {
        all: [
          ok,
          {
            any: [
              { field: "f", operator: "inn", values: [] },
              { not: { field: "f", operator: "equals" } },
            ],
          },
          7,
        ],
      },
      [
        {
          path: "c.all[1].any[0].operator",
          message: 'unknown operator "inn"; did you mean "in"?',
        },
        {
          path: "c.all[1].any[1].not.value",
          message: 'missing "value" for operator "equals"',
        },
        { path: "c.all[2]", message: `${shape} a number (7)` },
      ],
    ],
  ];
  for (const [name, spec, expected] of cases) {
    await t.step(name, () => {
      assert.deepEqual(issuesOf(spec), expected);
    });
  }
  await t.step("nesting deeper than the limit", () => {
    let spec: unknown = ok;
    for (let depth = 1; depth <= MAX_CONDITION_DEPTH; depth++) {
      spec = { not: spec };
    }
    assert.deepEqual(issuesOf(spec), [{
      path: "c" + ".not".repeat(MAX_CONDITION_DEPTH),
      message: `conditions are nested more than ${MAX_CONDITION_DEPTH} levels deep`,
    }]);
  });
  await t.step("cyclic specs stop at the depth limit", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.all = [cyclic];
    const issues = issuesOf(cyclic);
    assert.equal(issues.length, 1);
    assert.equal(
      issues[0].message,
      `conditions are nested more than ${MAX_CONDITION_DEPTH} levels deep`,
    );
    assert.equal(issues[0].path, "c" + ".all[0]".repeat(MAX_CONDITION_DEPTH));
  });
  await t.step("an empty path names keys without a leading dot", () => {
    assert.deepEqual(issuesOf({ field: "f" }, ""), [{
      path: "operator",
      message: `missing "operator": expected one of ${CONDITION_OPERATORS.join(", ")}`,
    }]);
  });
});

Deno.test("compileCondition() collects issues instead of throwing and returns an inert predicate", async (t) => {
  await t.step("a group with one bad branch is never true", () => {
    const issues: ConfigIssue[] = [];
    const condition = compileCondition(
      {
        any: [{ field: "f", operator: "exists" }, {
          field: "f",
          operator: "bogus",
        }],
      },
      "c",
      issues,
    );
    assert.equal(issues.length, 1);
    assert.equal(condition({ f: 1 }), false);
  });
  await t.step(
    "issues from earlier calls do not disable a valid condition",
    () => {
      const issues: ConfigIssue[] = [{ path: "earlier", message: "x" }];
      const condition = compileCondition(
        { field: "f", operator: "exists" },
        "c",
        issues,
      );
      assert.equal(issues.length, 1);
      assert.equal(condition({ f: 1 }), true);
    },
  );
  await t.step("a non-function clock is a programming error", () => {
    assert.throws(
      () =>
        compileCondition({ field: "f", operator: "exists" }, "c", [], {
          now: 5 as unknown as () => number,
        }),
      {
        name: "TypeError",
        message: "options.now must be a function returning epoch milliseconds, found number",
      },
    );
  });
});

Deno.test("compileConditionList() reports list issues with exact paths", async (t) => {
  const ok = { field: "f", operator: "exists" };
  const run = (
    list: unknown,
    logic: unknown,
    path = "filter_conditions",
    logicPath?: string,
  ) => {
    const issues: ConfigIssue[] = [];
    const condition = compileConditionList(list, logic, path, issues, {
      logicPath,
    });
    assert.equal(condition({ f: 1 }), false);
    return issues;
  };
  await t.step("every bad element, at its index", () => {
    assert.deepEqual(
      run([ok, ok, { field: "f", operator: "inn", values: [] }, {
        feild: "f",
        operator: "exists",
      }], "and"),
      [
        {
          path: "filter_conditions[2].operator",
          message: 'unknown operator "inn"; did you mean "in"?',
        },
        {
          path: "filter_conditions[3].feild",
          message: 'unknown key "feild"; did you mean "field"?',
        },
        {
          path: "filter_conditions[3].field",
          message: 'missing "field": expected a dot path such as "data.value"',
        },
      ],
    );
  });
  await t.step("a list that is not an array", () => {
    assert.deepEqual(run(ok, "and"), [{
      path: "filter_conditions",
      message: "expected an array of conditions, found an object",
    }]);
  });
  await t.step("unknown logic, at the sibling filter_logic path", () => {
    assert.deepEqual(run([ok], "xor", "nodes[1].config.filter_conditions"), [{
      path: "nodes[1].config.filter_logic",
      message: 'expected "and" or "or", found a string ("xor"); did you mean "or"?',
    }]);
    assert.deepEqual(run([ok], "AND"), [{
      path: "filter_logic",
      message: 'expected "and" or "or", found a string ("AND"); did you mean "and"?',
    }]);
    assert.deepEqual(run([ok], true, "rules[0]"), [{
      path: "rules[0].filter_logic",
      message: 'expected "and" or "or", found a boolean (true)',
    }]);
  });
  await t.step("an explicit logicPath", () => {
    assert.deepEqual(run([ok], "nor", "routes[0].when", "routes[0].logic"), [{
      path: "routes[0].logic",
      message: 'expected "and" or "or", found a string ("nor"); did you mean "or"?',
    }]);
  });
  await t.step("bad logic and bad elements are all reported", () => {
    assert.deepEqual(run([{ field: "f" }], "both"), [
      {
        path: "filter_logic",
        message: 'expected "and" or "or", found a string ("both")',
      },
      {
        path: "filter_conditions[0].operator",
        message: `missing "operator": expected one of ${CONDITION_OPERATORS.join(", ")}`,
      },
    ]);
  });
});

Deno.test("levenshtein() and suggest() find the intended name", async (t) => {
  await t.step("edit distances", () => {
    assert.equal(levenshtein("", ""), 0);
    assert.equal(levenshtein("in", "in"), 0);
    assert.equal(levenshtein("", "abc"), 3);
    assert.equal(levenshtein("abc", ""), 3);
    assert.equal(levenshtein("inn", "in"), 1);
    assert.equal(levenshtein("feild", "field"), 2);
    assert.equal(levenshtein("kitten", "sitting"), 3);
    assert.equal(levenshtein("😀a", "😀b"), 1);
  });
  await t.step("suggestions within distance 2, case-insensitive", () => {
    assert.equal(suggest("inn", CONDITION_OPERATORS), "in");
    assert.equal(suggest("EQUALS", CONDITION_OPERATORS), "equals");
    assert.equal(suggest("not_equal", CONDITION_OPERATORS), "not_equals");
    assert.equal(suggest("macthes", CONDITION_OPERATORS), "matches");
    assert.equal(suggest("between", CONDITION_OPERATORS), undefined);
    assert.equal(suggest("x", []), undefined);
  });
  await t.step("no suggestion that replaces the whole candidate", () => {
    assert.equal(suggest("gt", CONDITION_OPERATORS), undefined);
    assert.equal(suggest("ab", ["in"]), undefined);
  });
  await t.step("the closest candidate wins, then the earliest", () => {
    assert.equal(suggest("abcd", ["abxx", "abcx"]), "abcx");
    assert.equal(suggest("abcd", ["abcx", "abcy"]), "abcx");
    assert.equal(suggest("abcd", ["abxy"], 1), undefined);
  });
});
