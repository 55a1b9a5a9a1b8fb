import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  builtins,
  compileTransformations,
  eventTransform,
  fnv1a32,
  TransformError,
} from "../../actors/mod.ts";
import { VirtualClock } from "../../runtime/clock.ts";
import { buildWorkflow, parseWorkflowText } from "../../runtime/config.ts";
import { MemoryDeadLetters } from "../../runtime/dead_letter.ts";
import { ConfigError, type ConfigIssue } from "../../runtime/errors.ts";
import { Flow } from "../../runtime/flow.ts";
import { createLogger } from "../../runtime/log.ts";
import { type NodeSpec, Registry } from "../../runtime/registry.ts";
import { s } from "../../runtime/schema.ts";
import { type RunReport, Workflow } from "../../runtime/workflow.ts";

const ListSource: NodeSpec<{ events: unknown[] }> = {
  type: "ListSource",
  kind: "source",
  description: "Test events.",
  config: s.any<{ events: unknown[] }>(),
  create: (config) => ({
    async run(ctx) {
      for (const event of config.events) ctx.emit(event);
      await ctx.flush();
      return "end";
    },
  }),
};

const NOW_MS = Date.UTC(2024, 0, 1, 12); // 2024-01-01T12:00:00Z
const SHA256_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

type Rec = Record<string, unknown>;

function registry(): Registry {
  return new Registry(builtins).with(ListSource);
}

function newWorkflow(
  deadLetters: MemoryDeadLetters,
  logLines?: string[],
  startMs = NOW_MS,
): Workflow {
  return new Workflow({
    registry: registry(),
    clock: new VirtualClock(startMs),
    deadLetters,
    logger: logLines
      ? createLogger({ level: "debug", write: (line) => void logLines.push(line) })
      : createLogger({ level: "silent" }),
  });
}

function collectInto(workflow: Workflow, id: string, from: string, port = "out"): Rec[] {
  const seen: Rec[] = [];
  workflow.addNode("FunctionNode", id, { fn: (m: Rec) => void seen.push(m) })
    .addConnection(from, id, port);
  return seen;
}

interface Outcome {
  out: Rec[];
  dead: MemoryDeadLetters;
  report: RunReport;
}

/** Runs events through one EventTransformNode. */
async function transform(
  transformations: unknown[],
  events: unknown[],
  options: { startMs?: number; logLines?: string[] } = {},
): Promise<Outcome> {
  const dead = new MemoryDeadLetters();
  const workflow = newWorkflow(dead, options.logLines, options.startMs)
    .addNode("ListSource", "src", { events })
    .addNode("EventTransformNode", "transform", { transformations })
    .addConnection("src", "transform");
  const out = collectInto(workflow, "out", "transform");
  const report = await workflow.run();
  assert.equal(report.status, "completed", report.error?.message);
  return { out, dead, report };
}

/** Runs one event that must come out transformed. */
async function one(transformations: unknown[], event: Rec): Promise<Rec> {
  const { out, dead } = await transform(transformations, [event]);
  assert.deepEqual(dead.letters.map((l) => l.error), []);
  assert.equal(out.length, 1);
  return out[0];
}

/** Runs one event that must be dead-lettered, and returns the reason. */
async function failure(transformations: unknown[], event: unknown): Promise<string> {
  const { out, dead } = await transform(transformations, [event]);
  assert.equal(out.length, 0);
  assert.equal(dead.letters.length, 1);
  assert.equal(dead.letters[0].message, event);
  return dead.letters[0].error;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const key of Object.keys(value)) deepFreeze((value as Rec)[key]);
    Object.freeze(value);
  }
  return value;
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

Deno.test("EventTransformNode parse_iso turns timestamps into epoch seconds, ms or ISO", async (t) => {
  await t.step("ISO string to epoch seconds by default, into output_field", async () => {
    const out = await one(
      [{ field: "timestamp", operation: "parse_iso", output_field: "parsed_timestamp" }],
      { timestamp: "2024-01-01T12:00:30.5Z" },
    );
    assert.deepEqual(out, { timestamp: "2024-01-01T12:00:30.5Z", parsed_timestamp: 1704110430.5 });
  });
  await t.step("unit ms and iso; offsets are normalised to UTC", async () => {
    const out = await one([
      { field: "t", operation: "parse_iso", output_field: "ms", unit: "ms" },
      { field: "t", operation: "parse_iso", unit: "iso" },
    ], { t: "2024-01-01T12:00:00+02:00" });
    assert.deepEqual(out, { t: "2024-01-01T10:00:00.000Z", ms: Date.UTC(2024, 0, 1, 10) });
  });
  await t.step("epoch seconds and milliseconds are accepted", async () => {
    const out = await one([
      { field: "s", operation: "parse_iso", unit: "iso" },
      { field: "ms", operation: "parse_iso" },
    ], { s: 1704110400, ms: 1704110400000 });
    assert.deepEqual(out, { s: "2024-01-01T12:00:00.000Z", ms: 1704110400 });
  });
  await t.step(
    "a missing field is a no-op; null stays null; required makes both errors",
    async () => {
      const spec = { field: "t", operation: "parse_iso", output_field: "p" };
      assert.deepEqual(await one([spec], { a: 1 }), { a: 1 });
      assert.deepEqual(await one([spec], { t: null }), { t: null });
      assert.equal(
        await failure([{ ...spec, required: true }], { a: 1 }),
        'transformations[0] (parse_iso) on field "t": the field is missing',
      );
      assert.equal(
        await failure([{ ...spec, required: true }], { t: null }),
        'transformations[0] (parse_iso) on field "t": the field is null',
      );
    },
  );
  await t.step("an invalid date is dead-lettered with the reason", async () => {
    const reason = await failure([{ field: "t", operation: "parse_iso" }], { t: "2024-13-45" });
    assert.match(
      reason,
      /^transformations\[0\] \(parse_iso\) on field "t": cannot parse a string \("2024-13-45"\) as a timestamp/,
    );
    assert.match(await failure([{ field: "t", operation: "parse_iso" }], { t: true }), /boolean/);
  });
});

Deno.test("EventTransformNode bucket writes FNV-1a 32-bit of the text modulo buckets", async (t) => {
  await t.step("fnv1a32 matches the published FNV-1a vectors", () => {
    assert.equal(fnv1a32(""), 0x811c9dc5);
    assert.equal(fnv1a32("a"), 0xe40c292c);
    assert.equal(fnv1a32("foobar"), 0xbf9cf968);
    assert.equal(fnv1a32("user_42"), 0x3d028cf1);
  });
  await t.step("non-ASCII text hashes its UTF-8 bytes, lone surrogates as U+FFFD", () => {
    const utf8 = (text: string) => {
      let h = 0x811c9dc5;
      for (const byte of new TextEncoder().encode(text)) h = Math.imul(h ^ byte, 0x01000193);
      return h >>> 0;
    };
    for (const text of ["héllo", "€uro", "𝄞 clef", "x\ud800y", "\udc00", "end\ud83d"]) {
      assert.equal(fnv1a32(text), utf8(text), JSON.stringify(text));
    }
    assert.equal(fnv1a32("héllo €𝄞"), 0x9c45dc35);
  });
  await t.step("known vector: user_42 into 16 and 1000 buckets, into output_field", async () => {
    const out = await one([
      { field: "user_id", operation: "bucket", buckets: 16, output_field: "b16" },
      { field: "user_id", operation: "bucket", buckets: 1000, output_field: "b1000" },
      { field: "user_id", operation: "bucket", buckets: 1, output_field: "b1" },
    ], { user_id: "user_42" });
    assert.deepEqual(out, { user_id: "user_42", b16: 1, b1000: 329, b1: 0 });
  });
  await t.step("numbers, booleans and bigints hash as their decimal text; in place", async () => {
    const out = await one([
      { field: "n", operation: "bucket", buckets: 16 },
      { field: "s", operation: "bucket", buckets: 16 },
      { field: "big", operation: "bucket", buckets: 16 },
      { field: "yes", operation: "bucket", buckets: 2 ** 32 },
    ], { n: 42, s: "42", big: 42n, yes: true });
    assert.deepEqual(out, { n: 3, s: 3, big: 3, yes: fnv1a32("true") });
  });
  await t.step("a missing field is a no-op; null stays; required makes both errors", async () => {
    const spec = { field: "u", operation: "bucket", buckets: 8, output_field: "b" };
    assert.deepEqual(await one([spec], { a: 1 }), { a: 1 });
    assert.deepEqual(await one([spec], { u: null }), { u: null });
    assert.equal(
      await failure([{ ...spec, required: true }], { a: 1 }),
      'transformations[0] (bucket) on field "u": the field is missing',
    );
    assert.equal(
      await failure([{ ...spec, required: true }], { u: null }),
      'transformations[0] (bucket) on field "u": the field is null',
    );
  });
  await t.step("objects and arrays are dead-lettered with the reason", async () => {
    const spec = { field: "u", operation: "bucket", buckets: 8 };
    assert.equal(
      await failure([spec], { u: { id: 1 } }),
      'transformations[0] (bucket) on field "u": cannot bucket an object; bucket a string or number field (or flatten first)',
    );
    assert.match(await failure([spec], { u: [1] }), /cannot bucket an array/);
  });
  await t.step("buckets must be an integer from 1 to 2^32", () => {
    const at = "transformations[0].buckets";
    const cases: [unknown, string][] = [
      [
        undefined,
        'missing "buckets" for operation "bucket": expected how many buckets, such as 16',
      ],
      [0, "expected an integer from 1 to 4294967296, found a number (0)"],
      [1.5, "expected an integer from 1 to 4294967296, found a number (1.5)"],
      [2 ** 32 + 1, "expected an integer from 1 to 4294967296, found a number (4294967297)"],
      ["16", 'expected an integer from 1 to 4294967296, found a string ("16")'],
    ];
    for (const [buckets, message] of cases) {
      assert.deepEqual(
        transformIssues([{ field: "u", operation: "bucket", buckets }]),
        [{ path: `nodes[1].config.${at}`, message: PREFIX + message }],
      );
    }
    assert.deepEqual(transformIssues([{ field: "u", operation: "hash", buckets: 4 }]), [{
      path: "nodes[1].config.transformations[0].buckets",
      message: PREFIX + '"buckets" is not used by operation "hash"',
    }]);
  });
});

Deno.test("EventTransformNode hash writes SHA-256 hex, batched, optionally salted from the environment", async (t) => {
  await t.step("known vector: sha256(abc)", async () => {
    const out = await one([{ field: "user_id", operation: "hash", output_field: "user_hash" }], {
      user_id: "abc",
    });
    assert.equal(out.user_hash, SHA256_ABC);
    assert.equal(out.user_id, "abc");
  });
  await t.step("numbers hash as their decimal text; unicode as UTF-8", async () => {
    const out = await one([
      { field: "n", operation: "hash" },
      { field: "u", operation: "hash" },
    ], { n: 123, u: "héllo ✓" });
    assert.equal(out.n, sha256("123"));
    assert.equal(out.u, sha256("héllo ✓"));
  });
  await t.step("a whole batch keeps each event's own digest and the input order", async () => {
    const events = Array.from({ length: 600 }, (_, i) => ({ i, id: `user_${i}` }));
    const { out, dead } = await transform([{ field: "id", operation: "hash" }], events);
    assert.equal(dead.letters.length, 0);
    assert.deepEqual(out.map((e) => e.i), events.map((e) => e.i));
    for (const e of out) assert.equal(e.id, sha256(`user_${e.i}`));
  });
  await t.step("steps after a hash see its output", async () => {
    const out = await one([
      { field: "name", operation: "lowercase" },
      { field: "name", operation: "hash", output_field: "h" },
      { field: "h", operation: "uppercase" },
      { field: "name", operation: "remove" },
    ], { name: "ABC" });
    assert.deepEqual(out, { h: SHA256_ABC.toUpperCase() });
  });
  await t.step("missing and null are skipped; objects are dead-lettered", async () => {
    assert.deepEqual(await one([{ field: "id", operation: "hash" }], { id: null }), { id: null });
    assert.deepEqual(await one([{ field: "id", operation: "hash" }], {}), {});
    const reason = await failure([{ field: "id", operation: "hash" }], { id: { a: 1 } });
    assert.match(reason, /^transformations\[0\] \(hash\) on field "id": cannot hash an object/);
  });
  await t.step("salt_env: sha256(salt + value), and the salt is never logged", async () => {
    const name = "SLUICE_TEST_HASH_SALT";
    const salt = "s3cret-pepper";
    Deno.env.set(name, salt);
    try {
      const logLines: string[] = [];
      const { out, dead, report } = await transform(
        [{ field: "id", operation: "hash", salt_env: name }],
        [{ id: "abc" }, { id: { nested: true } }],
        { logLines },
      );
      assert.equal(out[0].id, sha256(salt + "abc"));
      assert.notEqual(out[0].id, SHA256_ABC);
      assert.equal(dead.letters.length, 1);
      assert.match(dead.letters[0].error, /^transformations\[0\] \(hash\) on field "id"/);
      const everything = JSON.stringify({ logLines, letters: dead.letters, report });
      assert.ok(
        !everything.includes(salt),
        "the salt leaked into logs, dead letters or the report",
      );
    } finally {
      Deno.env.delete(name);
    }
  });
  await t.step("a salt_env variable that is not set is a config error naming it", () => {
    const issues = transformIssues([{
      field: "id",
      operation: "hash",
      salt_env: "SLUICE_TEST_UNSET_SALT",
    }]);
    assert.deepEqual(issues, [{
      path: "nodes[1].config.transformations[0].salt_env",
      message:
        'node "transform" (EventTransformNode): environment variable SLUICE_TEST_UNSET_SALT is not set (it holds the salt of the hash)',
    }]);
    Deno.env.set("SLUICE_TEST_EMPTY_SALT", "");
    try {
      const empty = transformIssues([
        { field: "id", operation: "hash", salt_env: "SLUICE_TEST_EMPTY_SALT" },
      ]);
      assert.equal(empty.length, 1);
      assert.match(empty[0].message, /environment variable SLUICE_TEST_EMPTY_SALT is empty/);
    } finally {
      Deno.env.delete("SLUICE_TEST_EMPTY_SALT");
    }
  });
});

Deno.test("EventTransformNode flatten turns nested objects into dot keys", async (t) => {
  await t.step("the guide's event_data into flat_data", async () => {
    const event = {
      event_data: {
        page: { url: "/a", title: "A" },
        tags: ["x", "y"],
        empty: {},
        n: null,
        ok: true,
      },
    };
    const out = await one(
      [{ field: "event_data", operation: "flatten", output_field: "flat_data" }],
      event,
    );
    assert.deepEqual(out.flat_data, {
      "page.url": "/a",
      "page.title": "A",
      tags: ["x", "y"],
      empty: {},
      n: null,
      ok: true,
    });
    assert.equal(out.event_data, event.event_data);
  });
  await t.step("in place, with a separator", async () => {
    const out = await one([{ field: "d", operation: "flatten", separator: "_" }], {
      d: { a: { b: { c: 1 } } },
    });
    assert.deepEqual(out, { d: { a_b_c: 1 } });
  });
  await t.step("a __proto__ key from JSON stays a data key", async () => {
    const event = JSON.parse('{"d":{"__proto__":{"polluted":1},"x":{"__proto__":2}}}');
    const out = await one([{ field: "d", operation: "flatten" }], event);
    const flat = out.d as Rec;
    assert.deepEqual(Object.keys(flat), ["__proto__.polluted", "x.__proto__"]);
    assert.equal(({} as Rec).polluted, undefined);
    assert.equal(Object.getPrototypeOf(flat), Object.prototype);
  });
  await t.step("a non-object is dead-lettered; a missing field is a no-op", async () => {
    assert.equal(
      await failure([{ field: "d", operation: "flatten" }], { d: [1, 2] }),
      'transformations[0] (flatten) on field "d": expected an object to flatten, found an array',
    );
    assert.deepEqual(await one([{ field: "d", operation: "flatten" }], { a: 1 }), { a: 1 });
  });
});

Deno.test("EventTransformNode rename, copy, remove and set move values without touching the input", async (t) => {
  await t.step("rename moves a value, nested paths included", async () => {
    const out = await one([
      { field: "user.id", operation: "rename", output_field: "uid" },
      { field: "old", operation: "rename", output_field: "meta.new" },
    ], { user: { id: 7, name: "ada" }, old: null });
    assert.deepEqual(out, { user: { name: "ada" }, uid: 7, meta: { new: null } });
  });
  await t.step("rename and copy of a missing field are no-ops (errors with required)", async () => {
    assert.deepEqual(
      await one([{ field: "a", operation: "rename", output_field: "b" }], { c: 1 }),
      {
        c: 1,
      },
    );
    assert.deepEqual(await one([{ field: "a", operation: "copy", output_field: "b" }], { c: 1 }), {
      c: 1,
    });
    assert.equal(
      await failure(
        [{ field: "a", operation: "rename", output_field: "b", required: true }],
        { c: 1 },
      ),
      'transformations[0] (rename) on field "a": the field is missing',
    );
  });
  await t.step("writes into a copy never reach the copied object", async () => {
    const input = deepFreeze({ data: { value: 1, deep: { x: 1 } } });
    const out = await one([
      { field: "data.extra", operation: "set", value: 1 },
      { field: "data", operation: "copy", output_field: "backup" },
      { field: "backup.value", operation: "set", value: 99 },
      { field: "data.deep.x", operation: "set", value: 2 },
    ], input);
    assert.deepEqual(out, {
      data: { value: 1, deep: { x: 2 }, extra: 1 },
      backup: { value: 99, deep: { x: 1 }, extra: 1 },
    });
    assert.deepEqual(input, { data: { value: 1, deep: { x: 1 } } });
    const nested = await one([
      { field: "data.extra", operation: "set", value: 1 },
      { field: "data", operation: "copy", output_field: "meta.backup" },
      { field: "meta.backup.value", operation: "set", value: 99 },
    ], input);
    assert.deepEqual(nested, {
      data: { value: 1, deep: { x: 1 }, extra: 1 },
      meta: { backup: { value: 99, deep: { x: 1 }, extra: 1 } },
    });
  });
  await t.step("remove deletes top-level and nested fields; missing is a no-op", async () => {
    const out = await one([
      { field: "password", operation: "remove" },
      { field: "user.token", operation: "remove" },
      { field: "nope.nothing", operation: "remove" },
    ], { password: "x", user: { token: "t", name: "ada" }, keep: 1 });
    assert.deepEqual(out, { user: { name: "ada" }, keep: 1 });
  });
  await t.step("set writes constants and creates intermediate objects", async () => {
    const out = await one([
      { field: "meta.source", operation: "set", value: "kafka" },
      { field: "flags", operation: "set", value: { a: [1] } },
      { field: "nothing", operation: "set", value: null },
    ], { id: 1 });
    assert.deepEqual(out, { id: 1, meta: { source: "kafka" }, flags: { a: [1] }, nothing: null });
    assert.ok(Object.isFrozen(out.flags), "constant objects are shared, so they are frozen");
  });
  await t.step(
    "set templates: ${now} on the virtual clock, ${field.path} whole or in text",
    async () => {
      const out = await one([
        { field: "at", operation: "set", value: "${now}" },
        { field: "at_ms", operation: "set", value: "${ now_ms }" },
        { field: "at_iso", operation: "set", value: "${now_iso}" },
        { field: "user_copy", operation: "set", value: "${user}" },
        { field: "label", operation: "set", value: "user ${user.id} (${user.name}) at ${now}" },
        { field: "missing", operation: "set", value: "${nope}" },
        { field: "literal", operation: "set", value: "$${now} costs $5" },
      ], { user: { id: 7, name: null } });
      assert.equal(out.at, NOW_MS / 1000);
      assert.equal(out.at_ms, NOW_MS);
      assert.equal(out.at_iso, "2024-01-01T12:00:00.000Z");
      assert.deepEqual(out.user_copy, { id: 7, name: null });
      assert.equal(out.label, `user 7 () at ${NOW_MS / 1000}`);
      assert.equal("missing" in out, false);
      assert.equal(out.literal, "${now} costs $5");
    },
  );
  await t.step("writing through a non-object is dead-lettered", async () => {
    assert.equal(
      await failure([{ field: "a.b", operation: "set", value: 1 }], { a: "text" }),
      'transformations[0] (set) on field "a.b": cannot write "a.b": "a" holds a string ("text"), expected an object',
    );
  });
});

Deno.test("EventTransformNode case and type conversions", async (t) => {
  await t.step("lowercase and uppercase are Unicode-aware and locale-independent", async () => {
    const out = await one([
      { field: "a", operation: "lowercase" },
      { field: "b", operation: "uppercase" },
      { field: "c", operation: "lowercase", output_field: "c_low" },
    ], { a: "ÄÖÜ ÉCOLE ΣΑΣ", b: "straße", c: "İstanbul" });
    assert.deepEqual(out, {
      a: "äöü école σας",
      b: "STRASSE",
      c: "İstanbul",
      c_low: "i̇stanbul",
    });
  });
  await t.step("lowercase of a non-string is an error; null is skipped", async () => {
    assert.equal(
      await failure([{ field: "a", operation: "lowercase" }], { a: 5 }),
      'transformations[0] (lowercase) on field "a": expected a string, found a number (5)',
    );
    assert.deepEqual(await one([{ field: "a", operation: "uppercase" }], { a: null }), { a: null });
  });
  await t.step("to_number parses decimal strings and keeps numbers", async () => {
    const out = await one([
      { field: "a", operation: "to_number" },
      { field: "b", operation: "to_number" },
      { field: "c", operation: "to_number" },
      { field: "d", operation: "to_number" },
      { field: "e", operation: "to_number" },
    ], { a: "42", b: " -4.5 ", c: "1e3", d: 7, e: ".5" });
    assert.deepEqual(out, { a: 42, b: -4.5, c: 1000, d: 7, e: 0.5 });
  });
  await t.step("to_number refuses what is not a decimal number", async () => {
    for (const bad of ["abc", "", "0x10", "Infinity", "1,5", "12abc"]) {
      assert.equal(
        await failure([{ field: "x", operation: "to_number" }], { x: bad }),
        `transformations[0] (to_number) on field "x": cannot convert ${
          JSON.stringify(bad)
        } to a number`,
      );
    }
    assert.match(await failure([{ field: "x", operation: "to_number" }], { x: true }), /boolean/);
    assert.match(await failure([{ field: "x", operation: "to_number" }], { x: [1] }), /array/);
  });
  await t.step("to_string formats scalars and JSON-encodes objects", async () => {
    const out = await one([
      { field: "a", operation: "to_string" },
      { field: "b", operation: "to_string" },
      { field: "c", operation: "to_string" },
      { field: "d", operation: "to_string" },
      { field: "e", operation: "to_string" },
      { field: "f", operation: "to_string" },
    ], { a: 42, b: true, c: { x: [1, "y"] }, d: [1, 2], e: "same", f: null });
    assert.deepEqual(out, {
      a: "42",
      b: "true",
      c: '{"x":[1,"y"]}',
      d: "[1,2]",
      e: "same",
      f: null,
    });
  });
  await t.step("default fills missing and null fields only", async () => {
    const spec = [
      { field: "a", operation: "default", value: "none" },
      { field: "b", operation: "default", value: 0 },
      { field: "c", operation: "default", value: "${now}" },
      { field: "d", operation: "default", value: "x", output_field: "d2" },
      { field: "e", operation: "default", value: "x", output_field: "e2" },
    ];
    const out = await one(spec, { b: null, c: "kept", d: "own" });
    assert.deepEqual(out, { a: "none", b: 0, c: "kept", d: "own", d2: "own", e2: "x" });
  });
});

Deno.test("EventTransformNode dead-letters an event a transformation fails on and goes on", async (t) => {
  const transformations = [
    { field: "name", operation: "uppercase" },
    { field: "x", operation: "to_number" },
    { field: "done", operation: "set", value: true },
  ];
  const events = [
    { id: 1, name: "a", x: "1" },
    { id: 2, name: "b", x: "abc" },
    { id: 3, name: 3, x: "3" },
    "not an object",
    { id: 5, name: "e", x: "5" },
  ];
  await t.step("synchronous pipeline", async () => {
    const { out, dead, report } = await transform(transformations, events);
    assert.deepEqual(out, [
      { id: 1, name: "A", x: 1, done: true },
      { id: 5, name: "E", x: 5, done: true },
    ]);
    assert.deepEqual(dead.letters.map((l) => l.error), [
      'transformations[1] (to_number) on field "x": cannot convert "abc" to a number',
      'transformations[0] (uppercase) on field "name": expected a string, found a number (3)',
      'expected an event object, found a string ("not an object")',
    ]);
    assert.deepEqual(dead.letters.map((l) => l.message), [events[1], events[2], events[3]]);
    assert.equal(dead.letters[0].errorName, "TransformError");
    assert.deepEqual(dead.letters[0].context, {
      step: "transformations[1]",
      operation: "to_number",
      field: "x",
    });
    const node = report.nodes.find((n) => n.id === "transform")!;
    assert.equal(node.deadLettered, 3);
    assert.equal(node.restarts, 0);
    assert.deepEqual(node.outByPort, { out: 2 });
  });
  await t.step("asynchronous pipeline (with a hash)", async () => {
    const { out, dead } = await transform(
      [...transformations, { field: "id", operation: "hash" }],
      events,
    );
    assert.deepEqual(out.map((e) => e.name), ["A", "E"]);
    assert.equal(out[0].id, sha256("1"));
    assert.deepEqual(dead.letters.map((l) => l.message), [events[1], events[2], events[3]]);
    assert.equal(
      dead.letters[0].error,
      'transformations[1] (to_number) on field "x": cannot convert "abc" to a number',
    );
  });
});

Deno.test("EventTransformNode gives the same results on its compiled and general paths", async () => {
  // Top-level writes only: the compiled path. A trailing remove of a nested
  // field that is never there changes nothing but takes the general path.
  const topLevel = [
    { field: "data.value", operation: "copy", output_field: "value" },
    { field: "user", operation: "bucket", buckets: 7, output_field: "bucket" },
    { field: "name", operation: "uppercase" },
    { field: "n", operation: "to_number", output_field: "number" },
    { field: "ts", operation: "parse_iso", unit: "ms", output_field: "ms" },
    { field: "level", operation: "default", value: "info" },
    { field: "copy_of_level", operation: "default", value: "${level}" },
    { field: "stamp", operation: "set", value: "${now}" },
    { field: "label", operation: "set", value: "${name}/${bucket}" },
    { field: "x", operation: "to_string", required: true },
  ];
  const general = [...topLevel, { field: "never.there", operation: "remove" }];
  const events = [
    { data: { value: 5 }, user: "u1", name: "ada", n: "4.5", ts: "2024-01-01", x: 1 },
    { user: 7, name: "bob", level: "warn", x: true },
    { data: { value: null }, name: "cy", n: "abc", x: 2 },
    { name: 3, x: 3 },
    { name: "di", ts: "2024-13-45", x: 4 },
    { name: "ed" },
    { user: { nested: 1 }, x: 5 },
    deepFreeze({ data: { value: [1] }, name: "fay", x: { a: 1 } }),
    "not an object",
  ];
  const fast = await transform(topLevel, events);
  const slow = await transform(general, events);
  assert.equal(fast.out.length, 3);
  assert.deepEqual(fast.out, slow.out);
  assert.deepEqual(fast.dead.letters.map((l) => [l.error, l.context]), [
    ['transformations[3] (to_number) on field "n": cannot convert "abc" to a number', {
      step: "transformations[3]",
      operation: "to_number",
      field: "n",
    }],
    [
      'transformations[2] (uppercase) on field "name": expected a string, found a number (3)',
      { step: "transformations[2]", operation: "uppercase", field: "name" },
    ],
    [
      'transformations[4] (parse_iso) on field "ts": cannot parse a string ("2024-13-45") as a timestamp (expected ISO 8601 such as "2024-01-01T12:00:00Z", or epoch seconds or milliseconds)',
      { step: "transformations[4]", operation: "parse_iso", field: "ts" },
    ],
    [
      'transformations[9] (to_string) on field "x": the field is missing',
      { step: "transformations[9]", operation: "to_string", field: "x" },
    ],
    [
      'transformations[1] (bucket) on field "user": cannot bucket an object; bucket a string or number field (or flatten first)',
      { step: "transformations[1]", operation: "bucket", field: "user" },
    ],
    ['expected an event object, found a string ("not an object")', undefined],
  ]);
  assert.deepEqual(
    fast.dead.letters.map((l) => [l.error, l.context]),
    slow.dead.letters.map((l) => [l.error, l.context]),
  );
  assert.deepEqual(fast.out[0], {
    data: { value: 5 },
    user: "u1",
    name: "ADA",
    n: "4.5",
    ts: "2024-01-01",
    x: "1",
    value: 5,
    bucket: fnv1a32("u1") % 7,
    number: 4.5,
    ms: Date.UTC(2024, 0, 1),
    level: "info",
    copy_of_level: "info",
    stamp: NOW_MS / 1000,
    label: `ADA/${fnv1a32("u1") % 7}`,
  });
  // A frozen input is copied, never written; copy shares the value.
  assert.equal(fast.out[2].name, "FAY");
  assert.equal(fast.out[2].x, '{"a":1}');
  assert.equal(fast.out[2].value, (events[7] as { data: { value: unknown } }).data.value);
});

Deno.test("Compiled getters, conditions and transformations work where code generation is disabled", async () => {
  // Some embedders forbid new Function: everything must fall back to closures.
  const script = `
    import { compilePath } from "./runtime/path.ts";
    import { compileCondition } from "./runtime/conditions.ts";
    import { compileTransformations } from "./actors/processors/transform.ts";
    let disabled = false;
    try { new Function("return 1"); } catch { disabled = true; }
    const keep = compileCondition({ all: [
      { field: "user.id", operator: "exists" },
      { field: "type", operator: "in", values: ["click", "view"] },
      { not: { field: "n", operator: "greater_than", value: 3 } },
    ] }, "c", []);
    const pipeline = compileTransformations([
      { field: "user.id", operation: "bucket", buckets: 16, output_field: "b" },
      { field: "type", operation: "uppercase" },
    ], "t", []);
    const event = { user: { id: "user_42" }, type: "click", n: 1 };
    console.log(JSON.stringify({
      disabled,
      get: compilePath("user.id")(event),
      own: compilePath("constructor")({}),
      kept: keep(event),
      dropped: keep({ ...event, n: 4 }),
      out: pipeline.transformSync(event, 0),
    }));
  `;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--v8-flags=--disallow-code-generation-from-strings", script],
    cwd: new URL("../..", import.meta.url).pathname,
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.ok(output.success, stderr);
  assert.deepEqual(JSON.parse(new TextDecoder().decode(output.stdout)), {
    disabled: true,
    get: "user_42",
    kept: true,
    dropped: false,
    out: { user: { id: "user_42" }, type: "CLICK", n: 1, b: 1 },
  });
});

Deno.test("EventTransformNode never mutates its input, which other branches share", async () => {
  const events = [
    deepFreeze({ id: 1, user: { id: "abc", name: "Ada" }, data: { a: { b: 1 } }, t: "2024-01-01" }),
    deepFreeze({ id: 2, user: { id: "def", name: "Bob" }, data: { a: { b: 2 } }, t: "2024-01-02" }),
  ];
  const snapshot = structuredClone(events);
  const dead = new MemoryDeadLetters();
  const workflow = newWorkflow(dead)
    .addNode("ListSource", "src", { events })
    .addNode("EventTransformNode", "sync", {
      transformations: [
        { field: "user.name", operation: "lowercase" },
        { field: "data", operation: "flatten" },
        { field: "t", operation: "parse_iso" },
        { field: "user.id", operation: "rename", output_field: "uid" },
        { field: "id", operation: "remove" },
      ],
    })
    .addNode("EventTransformNode", "async", {
      transformations: [
        { field: "user.id", operation: "hash" },
        { field: "user.name", operation: "uppercase" },
      ],
    })
    .addConnection("src", "sync")
    .addConnection("src", "async");
  const raw = collectInto(workflow, "raw", "src");
  const sync = collectInto(workflow, "sync_out", "sync");
  const async = collectInto(workflow, "async_out", "async");
  const report = await workflow.run();
  assert.equal(report.status, "completed");
  assert.equal(dead.letters.length, 0, dead.letters[0]?.error);
  assert.deepEqual(raw, snapshot);
  assert.equal(raw[0], events[0]);
  assert.deepEqual(sync[0], {
    user: { name: "ada" },
    data: { "a.b": 1 },
    t: 1704067200,
    uid: "abc",
  });
  assert.deepEqual(async[1], {
    id: 2,
    user: { id: sha256("def"), name: "BOB" },
    data: { a: { b: 2 } },
    t: "2024-01-02",
  });
  // Untouched branches are shared, not copied.
  assert.equal(async[1].data, events[1].data);
});

/** Validation issues of a workflow with one transform node (index 1). */
function transformIssues(transformations: unknown): ConfigIssue[] {
  const workflow = newWorkflow(new MemoryDeadLetters())
    .addNode("ListSource", "src", { events: [] })
    .addNode("EventTransformNode", "transform", { transformations })
    .addConnection("src", "transform");
  return workflow.validate();
}

const PREFIX = 'node "transform" (EventTransformNode): ';

Deno.test("EventTransformNode validates every transformation at load time", async (t) => {
  const cases: [string, unknown[], { path: string; message: string }[]][] = [
    ["unknown operation with did-you-mean", [{ field: "a", operation: "to_numbr" }], [{
      path: "transformations[0].operation",
      message: 'unknown operation "to_numbr"; did you mean "to_number"?',
    }]],
    ["unknown operation without a close match", [{ field: "a", operation: "explode" }], [{
      path: "transformations[0].operation",
      message:
        'unknown operation "explode"; expected one of parse_iso, hash, bucket, flatten, rename, copy, remove, set, default, lowercase, uppercase, to_number, to_string',
    }]],
    ["missing value for set", [{ field: "a", operation: "set" }], [{
      path: "transformations[0].value",
      message: 'missing "value" for operation "set"',
    }]],
    ["missing output_field for rename", [{ field: "a", operation: "rename" }], [{
      path: "transformations[0].output_field",
      message: 'missing "output_field": operation "rename" needs the destination field',
    }]],
    ["a key the operation does not use", [{ field: "a", operation: "lowercase", value: 1 }], [{
      path: "transformations[0].value",
      message: '"value" is not used by operation "lowercase"',
    }]],
    ["a misspelled key", [{ field: "a", operation: "copy", outptu_field: "b" }], [
      {
        path: "transformations[0].outptu_field",
        message: 'unknown key "outptu_field"; did you mean "output_field"?',
      },
      {
        path: "transformations[0].output_field",
        message: 'missing "output_field": operation "copy" needs the destination field',
      },
    ]],
    ["a bad unit", [{ field: "t", operation: "parse_iso", unit: "sec" }], [{
      path: "transformations[0].unit",
      message: 'expected one of s, ms, iso, found a string ("sec")',
    }]],
    ["output_field on remove", [{ field: "a", operation: "remove", output_field: "b" }], [{
      path: "transformations[0].output_field",
      message: 'operation "remove" takes no "output_field"; it deletes "field"',
    }]],
    ["missing field and operation", [{}], [
      {
        path: "transformations[0].operation",
        message:
          'missing "operation": expected one of parse_iso, hash, bucket, flatten, rename, copy, remove, set, default, lowercase, uppercase, to_number, to_string',
      },
      {
        path: "transformations[0].field",
        message: 'missing "field": expected a dot path such as "data.value"',
      },
    ]],
    ["a malformed template", [{ field: "a", operation: "set", value: "${a..b}" }], [{
      path: "transformations[0].value",
      message:
        'placeholder "${a..b}": invalid path "a..b": expected keys separated by single dots, found an empty key',
    }]],
    ["an unclosed template", [{ field: "a", operation: "set", value: "x ${now" }], [{
      path: "transformations[0].value",
      message: 'unclosed "${" in template "x ${now"; write "$${" for a literal "${"',
    }]],
    ["a write through __proto__", [{ field: "__proto__.x", operation: "set", value: 1 }], [{
      path: "transformations[0].field",
      message: 'refusing to write path "__proto__.x": segment "__proto__" could modify a prototype',
    }]],
    ["not an object", ["lowercase"], [{
      path: "transformations[0]",
      message:
        'expected a transformation such as {field: "name", operation: "lowercase"}, found a string ("lowercase")',
    }]],
  ];
  for (const [name, transformations, expected] of cases) {
    await t.step(name, () => {
      assert.deepEqual(
        transformIssues(transformations),
        expected.map((issue) => ({
          path: `nodes[1].config.${issue.path}`,
          message: PREFIX + issue.message,
        })),
      );
    });
  }
  await t.step("issues of several transformations are all reported", () => {
    const issues = transformIssues([
      { field: "a", operation: "lowercase" },
      { field: "b", operation: "sett", value: 1 },
      { field: "c", operation: "to_string", required: "yes" },
    ]);
    assert.deepEqual(issues.map((i) => i.path), [
      "nodes[1].config.transformations[1].operation",
      "nodes[1].config.transformations[2].required",
    ]);
  });
  await t.step("an empty list is refused", () => {
    const issues = transformIssues([]);
    assert.equal(issues[0].path, "nodes[1].config.transformations");
    assert.match(issues[0].message, /at least 1/);
  });
});

Deno.test("EventTransformNode loads from YAML: errors carry line and column, ${ now } survives", async (t) => {
  const load = (transformations: string[]) => {
    const yaml = [
      "nodes:",
      "  - id: gen",
      "    type: GeneratorNode",
      "    config: {message_count: 2, start_time: 1704067200}",
      "  - id: transform",
      "    type: EventTransformNode",
      "    config:",
      "      transformations:",
      ...transformations,
      "connections:",
      "  - {from: gen, to: transform}",
      "",
    ].join("\n");
    return buildWorkflow(parseWorkflowText(yaml, { file: "t.yaml", env: () => undefined }), {
      registry: registry(),
      clock: new VirtualClock(NOW_MS),
      deadLetters: new MemoryDeadLetters(),
      logger: createLogger({ level: "silent" }),
    });
  };
  await t.step("an unknown operation", () => {
    let error: unknown;
    try {
      load([
        "        - {field: timestamp, operation: parse_iso, output_field: parsed}",
        "        - field: user_id",
        "          operation: hashh",
      ]);
    } catch (e) {
      error = e;
    }
    assert.ok(error instanceof ConfigError);
    assert.equal(error.issues.length, 1);
    assert.equal(error.issues[0].path, "nodes[1].config.transformations[1].operation");
    assert.deepEqual(error.issues[0].position, { file: "t.yaml", line: 11, column: 11 });
    assert.match(error.issues[0].message, /unknown operation "hashh"; did you mean "hash"\?/);
  });
  await t.step("templates written with spaces reach the node", async () => {
    const workflow = load([
      "        - {field: processed_at, operation: set, value: '${ now }'}",
      "        - {field: who, operation: set, value: 'user ${ user_id }'}",
    ]);
    const out = collectInto(workflow, "out", "transform");
    const report = await workflow.run();
    assert.equal(report.status, "completed");
    assert.deepEqual(out.map((e) => [e.processed_at, e.who]), [
      [NOW_MS / 1000, "user user_0"],
      [NOW_MS / 1000, "user user_1"],
    ]);
  });
});

Deno.test("compileTransformations and eventTransform work outside the YAML loader", async (t) => {
  await t.step("transform() of one event; a failure throws TransformError", async () => {
    const issues: ConfigIssue[] = [];
    const pipeline = compileTransformations(
      [{ field: "n", operation: "to_number" }, { field: "at", operation: "set", value: "${now}" }],
      "steps",
      issues,
      { now: () => 5000 },
    );
    assert.deepEqual(issues, []);
    assert.equal(pipeline.async, false);
    assert.equal(pipeline.size, 2);
    assert.deepEqual(await pipeline.transform({ n: "3" }), { n: 3, at: 5 });
    await assert.rejects(() => pipeline.transform({ n: "x" }), (error: unknown) => {
      assert.ok(error instanceof TransformError);
      assert.equal(
        error.message,
        'steps[0] (to_number) on field "n": cannot convert "x" to a number',
      );
      assert.equal(error.step, "steps[0]");
      return true;
    });
  });
  await t.step("a typed Flow", async () => {
    const flow = new Flow({
      registry: registry(),
      clock: new VirtualClock(0),
      deadLetters: new MemoryDeadLetters(),
      logger: createLogger({ level: "silent" }),
    });
    const seen: Rec[] = [];
    const src = flow.add<never, Rec>("src", {
      type: "ListSource",
      config: { events: [{ a: "X" }] },
    });
    const lower = flow.add("lower", eventTransform([{ field: "a", operation: "lowercase" }]));
    const sink = flow.add<Rec, never>("sink", {
      type: "FunctionNode",
      config: { fn: (m: Rec) => void seen.push(m) },
    });
    flow.connect(src, lower).connect(lower, sink);
    assert.equal((await flow.run()).status, "completed");
    assert.deepEqual(seen, [{ a: "x" }]);
  });
});
