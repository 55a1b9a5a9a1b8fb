import assert from "node:assert/strict";
import { compilePath, deletePath, getPath, parsePath, setPath } from "../../runtime/path.ts";

const event = {
  a: { b: { c: { d: { e: "deep" } } } },
  data: { value: 42, nothing: null, zero: 0, empty: "" },
  items: [{ id: "first" }, { id: "second" }],
  "key with space": { ok: true },
};

Deno.test("parsePath() splits dot paths and rejects malformed ones", async (t) => {
  await t.step("splits on dots", () => {
    assert.deepEqual(parsePath("a"), ["a"]);
    assert.deepEqual(parsePath("items.0.id"), ["items", "0", "id"]);
    assert.deepEqual(parsePath("key with space.ok"), ["key with space", "ok"]);
  });
  await t.step("empty paths and empty segments are TypeErrors", () => {
    assert.throws(() => parsePath(""), {
      name: "TypeError",
      message: 'expected a dot path such as "data.value", found ""',
    });
    for (const path of ["a..b", ".a", "a.", "."]) {
      assert.throws(() => parsePath(path), {
        name: "TypeError",
        message:
          `invalid path "${path}": expected keys separated by single dots, found an empty key`,
      });
    }
  });
  await t.step("non-strings are TypeErrors", () => {
    assert.throws(() => parsePath(1 as unknown as string), {
      name: "TypeError",
      message: "expected a dot path string, found number",
    });
  });
});

Deno.test("getPath() and compilePath() read nested own fields", async (t) => {
  const paths = [
    ["data", event.data],
    ["data.value", 42],
    ["data.nothing", null],
    ["data.zero", 0],
    ["data.empty", ""],
    ["a.b.c", event.a.b.c],
    ["a.b.c.d.e", "deep"],
    ["items.0.id", "first"],
    ["items.1.id", "second"],
    ["items.2.id", undefined],
    ["items.length", 2],
    ["key with space.ok", true],
    ["missing", undefined],
    ["data.missing", undefined],
    ["a.b.c.d.e.f", undefined],
    ["a.b.c.d.missing.f", undefined],
  ] as const;
  for (const [path, expected] of paths) {
    await t.step(`"${path}"`, () => {
      assert.equal(getPath(event, path), expected);
      assert.equal(compilePath(path)(event), expected);
    });
  }
  await t.step("does not walk into primitives", () => {
    for (const path of ["data.empty.length", "data.value.toFixed"]) {
      assert.equal(getPath(event, path), undefined);
      assert.equal(compilePath(path)(event), undefined);
    }
    assert.equal(getPath({ s: "abc" }, "s.0"), undefined);
  });
  await t.step("non-object roots give undefined", () => {
    for (const root of [null, undefined, 1, "text", true]) {
      assert.equal(getPath(root, "a"), undefined);
      assert.equal(compilePath("a.b")(root), undefined);
    }
  });
  await t.step("a compiled getter is reusable across objects", () => {
    const get = compilePath("x.y");
    assert.equal(get({ x: { y: 1 } }), 1);
    assert.equal(get({ x: { y: 2 } }), 2);
    assert.equal(get({ x: null }), undefined);
  });
  await t.step("malformed paths throw at compile time", () => {
    assert.throws(() => compilePath("a..b"), TypeError);
    assert.throws(() => getPath(event, ""), TypeError);
  });
});

Deno.test("getPath() never resolves through prototypes", async (t) => {
  const inherited = [
    "__proto__",
    "constructor",
    "prototype",
    "toString",
    "hasOwnProperty",
    "__proto__.polluted",
    "constructor.prototype",
    "constructor.name",
    "data.constructor",
    "items.constructor",
    "items.map",
    "items.0.__proto__",
    "a.b.__proto__.constructor",
  ];
  for (const path of inherited) {
    await t.step(`"${path}" is undefined`, () => {
      assert.equal(getPath(event, path), undefined);
      assert.equal(compilePath(path)(event), undefined);
    });
  }
  await t.step("inherited fields of class instances are not read", () => {
    class Event {
      get computed(): number {
        return 1;
      }
    }
    assert.equal(getPath(new Event(), "computed"), undefined);
    assert.equal(compilePath("computed")(new Event()), undefined);
  });
  await t.step("compiled getters ignore keys added to Object.prototype", () => {
    const get = compilePath("polluted");
    const nested = compilePath("data.polluted");
    const plain = { data: {} };
    // Warm the getters up on plain objects first, as events do.
    for (let i = 0; i < 1000; i++) get({ x: i });
    const proto = Object.prototype as Record<string, unknown>;
    proto.polluted = "yes";
    try {
      assert.equal(get({ x: 1 }), undefined);
      assert.equal(nested(plain), undefined);
      assert.equal(get({ polluted: "own" }), "own");
    } finally {
      delete proto.polluted;
    }
  });
  await t.step("own keys with those names are ordinary keys", () => {
    const parsed = JSON.parse(
      '{"__proto__": {"x": 1}, "constructor": "c", "prototype": {"p": 2}}',
    );
    assert.equal(getPath(parsed, "__proto__.x"), 1);
    assert.equal(compilePath("__proto__.x")(parsed), 1);
    assert.equal(getPath(parsed, "constructor"), "c");
    assert.equal(getPath(parsed, "prototype.p"), 2);
    assert.equal(getPath(parsed, "__proto__.constructor"), undefined);
  });
  await t.step("objects without a prototype work", () => {
    const bare = Object.create(null);
    bare.a = { b: 1 };
    assert.equal(getPath(bare, "a.b"), 1);
    assert.equal(getPath(bare, "toString"), undefined);
    assert.equal(compilePath("a.b")(bare), 1);
    assert.equal(compilePath("toString")(bare), undefined);
  });
});

Deno.test("setPath() writes nested fields, creating objects", async (t) => {
  await t.step("creates intermediate plain objects", () => {
    const target: Record<string, unknown> = {};
    setPath(target, "a.b.c", 1);
    assert.deepEqual(target, { a: { b: { c: 1 } } });
  });
  await t.step("keeps siblings and overwrites the leaf", () => {
    const target: Record<string, unknown> = { a: { keep: true, b: 1 } };
    setPath(target, "a.b", 2);
    assert.deepEqual(target, { a: { keep: true, b: 2 } });
  });
  await t.step("writes into existing arrays by index", () => {
    const target = { items: [{ id: 1 }] };
    setPath(target, "items.0.id", 9);
    setPath(target, "items.0.tag", "x");
    assert.deepEqual(target, { items: [{ id: 9, tag: "x" }] });
  });
  await t.step("numeric segments create objects, not arrays", () => {
    const target: Record<string, unknown> = {};
    setPath(target, "list.0", "x");
    assert.deepEqual(target, { list: { "0": "x" } });
  });
  await t.step("replaces an own undefined intermediate", () => {
    const target: Record<string, unknown> = { a: undefined };
    setPath(target, "a.b", 1);
    assert.deepEqual(target, { a: { b: 1 } });
  });
  await t.step("creates own keys that shadow inherited names", () => {
    const target: Record<string, unknown> = {};
    setPath(target, "toString.x", 1);
    assert.deepEqual(Object.keys(target), ["toString"]);
    assert.equal(getPath(target, "toString.x"), 1);
    assert.equal(({} as Record<string, unknown>).x, undefined);
  });
  await t.step("refuses to replace a primitive intermediate", () => {
    const target = { a: { b: 5 } };
    assert.throws(() => setPath(target, "a.b.c", 1), {
      name: "TypeError",
      message: 'cannot write path "a.b.c": "a.b" holds a number, expected an object',
    });
    assert.throws(() => setPath({ a: null }, "a.b", 1), {
      name: "TypeError",
      message: 'cannot write path "a.b": "a" holds null, expected an object',
    });
    assert.deepEqual(target, { a: { b: 5 } });
  });
  await t.step("rejects non-object targets and malformed paths", () => {
    assert.throws(() => setPath(null as unknown as object, "a", 1), {
      name: "TypeError",
      message: "setPath expects an object, found null",
    });
    assert.throws(() => setPath("s" as unknown as object, "a", 1), {
      name: "TypeError",
      message: "setPath expects an object, found string",
    });
    assert.throws(() => setPath({}, "a..b", 1), TypeError);
  });
});

Deno.test("setPath() refuses prototype-polluting segments", async (t) => {
  for (const segment of ["__proto__", "constructor", "prototype"]) {
    for (
      const path of [
        segment,
        `${segment}.polluted`,
        `a.${segment}.polluted`,
        `a.b.${segment}`,
      ]
    ) {
      await t.step(`"${path}"`, () => {
        const target: Record<string, unknown> = {};
        assert.throws(() => setPath(target, path, "yes"), {
          name: "TypeError",
          message:
            `refusing to write path "${path}": segment "${segment}" could modify a prototype`,
        });
        // Nothing is written, not even the intermediate objects.
        assert.deepEqual(target, {});
        assert.equal(({} as Record<string, unknown>).polluted, undefined);
        assert.equal(Object.getPrototypeOf(target), Object.prototype);
      });
    }
  }
  await t.step("even when the object has an own key of that name", () => {
    const parsed = JSON.parse('{"__proto__": {}}');
    assert.throws(() => setPath(parsed, "__proto__.polluted", 1), TypeError);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
});

Deno.test("deletePath() removes own fields only", async (t) => {
  await t.step("deletes a nested field and reports it", () => {
    const target = { a: { b: 1, c: 2 } };
    assert.equal(deletePath(target, "a.b"), true);
    assert.deepEqual(target, { a: { c: 2 } });
  });
  await t.step("missing paths report false and change nothing", () => {
    const target = { a: { b: 1 } };
    assert.equal(deletePath(target, "a.x"), false);
    assert.equal(deletePath(target, "x.y.z"), false);
    assert.equal(deletePath(target, "a.b.c"), false);
    assert.deepEqual(target, { a: { b: 1 } });
  });
  await t.step("inherited properties are not touched", () => {
    const target = {};
    assert.equal(deletePath(target, "toString"), false);
    assert.equal(deletePath(target, "constructor.prototype.toString"), false);
    assert.equal(typeof Object.prototype.toString, "function");
    assert.equal(deletePath(target, "__proto__"), false);
    assert.equal(Object.getPrototypeOf(target), Object.prototype);
  });
  await t.step("an own __proto__ key from JSON can be removed", () => {
    const parsed = JSON.parse('{"__proto__": {"x": 1}, "keep": 1}');
    assert.equal(deletePath(parsed, "__proto__"), true);
    assert.deepEqual(Object.keys(parsed), ["keep"]);
    assert.equal(Object.getPrototypeOf(parsed), Object.prototype);
  });
  await t.step("array elements leave a hole; length cannot be deleted", () => {
    const target = { items: [1, 2, 3] };
    assert.equal(deletePath(target, "items.1"), true);
    assert.equal(1 in target.items, false);
    assert.equal(target.items.length, 3);
    assert.equal(deletePath(target, "items.length"), false);
  });
  await t.step("frozen objects report false", () => {
    const target = Object.freeze({ a: 1 });
    assert.equal(deletePath(target, "a"), false);
  });
  await t.step("rejects non-object targets", () => {
    assert.throws(() => deletePath(undefined as unknown as object, "a"), {
      name: "TypeError",
      message: "deletePath expects an object, found undefined",
    });
  });
});
