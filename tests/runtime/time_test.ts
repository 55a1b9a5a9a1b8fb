import assert from "node:assert/strict";
import {
  detectTimeUnit,
  EPOCH_SECONDS_LIMIT,
  fromMs,
  parseIsoTimestampMs,
  parseRelativeOffsetMs,
  parseRelativeTime,
  parseTimestampMs,
} from "../../runtime/time.ts";

const T = 1_700_000_000_000; // 2023-11-14T22:13:20.000Z

Deno.test("parseTimestampMs() reads epoch seconds and milliseconds by magnitude", async (t) => {
  await t.step("integer seconds", () => {
    assert.equal(parseTimestampMs(1_700_000_000), T);
  });
  await t.step("fractional seconds keep milliseconds exactly", () => {
    assert.equal(parseTimestampMs(1_700_000_000.123), T + 123);
    assert.equal(parseTimestampMs(1.1), 1100);
    assert.equal(parseTimestampMs(0.5), 500);
  });
  await t.step("milliseconds pass through", () => {
    assert.equal(parseTimestampMs(T), T);
    assert.equal(parseTimestampMs(T + 0.5), T + 0.5);
  });
  await t.step("the threshold is 1e11: below is seconds, from it ms", () => {
    assert.equal(EPOCH_SECONDS_LIMIT, 1e11);
    assert.equal(parseTimestampMs(99_999_999_999), 99_999_999_999_000);
    assert.equal(parseTimestampMs(1e11), 1e11);
  });
  await t.step("zero and negative (pre-1970) numbers", () => {
    assert.equal(parseTimestampMs(0), 0);
    assert.equal(parseTimestampMs(-86_400), -86_400_000);
    assert.equal(parseTimestampMs(-2e11), -2e11);
  });
  await t.step("non-finite and out-of-range numbers are rejected", () => {
    assert.equal(parseTimestampMs(NaN), undefined);
    assert.equal(parseTimestampMs(Infinity), undefined);
    assert.equal(parseTimestampMs(-Infinity), undefined);
    assert.equal(parseTimestampMs(8.64e15 + 1), undefined);
    assert.equal(parseTimestampMs(8.64e15), 8.64e15);
  });
});

Deno.test("parseTimestampMs() reads decimal strings like numbers", async (t) => {
  await t.step("seconds, milliseconds, fractions, signs", () => {
    assert.equal(parseTimestampMs("1700000000"), T);
    assert.equal(parseTimestampMs("1700000000000"), T);
    assert.equal(parseTimestampMs("1700000000.5"), T + 500);
    assert.equal(parseTimestampMs("-1"), -1000);
    assert.equal(parseTimestampMs("+1"), 1000);
    assert.equal(parseTimestampMs(".5"), 500);
  });
  await t.step("padded, exponent, hex and empty strings are rejected", () => {
    for (const text of [" 1700000000", "1700000000 ", "1.7e9", "0x10", ""]) {
      assert.equal(parseTimestampMs(text), undefined, text);
    }
  });
});

Deno.test("parseTimestampMs() reads strict ISO 8601", async (t) => {
  await t.step("UTC with Z, fractions of any length", () => {
    assert.equal(parseTimestampMs("2023-11-14T22:13:20Z"), T);
    assert.equal(parseTimestampMs("2023-11-14T22:13:20.123Z"), T + 123);
    assert.equal(parseTimestampMs("2023-11-14T22:13:20.1Z"), T + 100);
    assert.equal(parseTimestampMs("2023-11-14T22:13:20.123456Z"), T + 123.456);
    assert.equal(parseTimestampMs("2023-11-14T22:13:20,5Z"), T + 500);
    assert.equal(parseTimestampMs("2023-11-14t22:13:20z"), T);
  });
  await t.step("offsets in every spelling", () => {
    assert.equal(parseTimestampMs("2023-11-15T00:13:20+02:00"), T);
    assert.equal(parseTimestampMs("2023-11-15T00:13:20+0200"), T);
    assert.equal(parseTimestampMs("2023-11-15T00:13:20+02"), T);
    assert.equal(parseTimestampMs("2023-11-14T17:13:20-05:00"), T);
    assert.equal(parseTimestampMs("2023-11-15T03:43:20+05:30"), T);
  });
  await t.step("minutes without seconds, space separator", () => {
    assert.equal(parseTimestampMs("2023-11-14T22:13Z"), T - 20_000);
    assert.equal(parseTimestampMs("2023-11-14 22:13:20Z"), T);
  });
  await t.step("date-only and offset-less date-times are UTC", () => {
    assert.equal(parseTimestampMs("2024-01-01"), Date.UTC(2024, 0, 1));
    assert.equal(
      parseTimestampMs("2024-01-01T10:00:00"),
      Date.UTC(2024, 0, 1, 10),
    );
  });
  await t.step("leap days and early years", () => {
    assert.equal(parseTimestampMs("2024-02-29"), Date.UTC(2024, 1, 29));
    assert.equal(parseTimestampMs("2000-02-29"), Date.UTC(2000, 1, 29));
    assert.equal(
      parseTimestampMs("0050-06-01T00:00:00Z"),
      new Date("0050-06-01T00:00:00Z").getTime(),
    );
    assert.equal(
      parseTimestampMs("0000-01-01"),
      new Date("0000-01-01T00:00:00Z").getTime(),
    );
  });
  await t.step("out-of-range fields are rejected", () => {
    for (
      const text of [
        "2024-13-45",
        "2024-00-10",
        "2024-01-00",
        "2024-02-30",
        "2023-02-29",
        "1900-02-29",
        "2024-04-31",
        "2024-01-01T24:00:00Z",
        "2024-01-01T23:60:00Z",
        "2024-01-01T23:59:60Z",
        "2024-01-01T10:00:00+24:00",
        "2024-01-01T10:00:00+01:60",
      ]
    ) {
      assert.equal(parseTimestampMs(text), undefined, text);
    }
  });
  await t.step("loose formats Date.parse accepts are rejected", () => {
    assert.ok(!Number.isNaN(Date.parse("March 7")));
    for (
      const text of [
        "March 7",
        "2024/01/02",
        "Tue, 02 Jan 2024 00:00:00 GMT",
        "2024-1-2",
        "2024-01-02T10",
        "2024-01-02T10:00:00 Z",
        "2024-01-02Z",
        "+002024-01-02",
        " 2024-01-02",
        "2024-01-02\n",
        "now",
      ]
    ) {
      assert.equal(parseTimestampMs(text), undefined, text);
    }
  });
  await t.step("parseIsoTimestampMs() does not read epoch strings", () => {
    assert.equal(parseIsoTimestampMs("1700000000"), undefined);
    assert.equal(parseIsoTimestampMs("2023-11-14T22:13:20Z"), T);
  });
});

Deno.test("parseTimestampMs() reads Dates and rejects everything else", async (t) => {
  await t.step("valid and invalid Date objects", () => {
    assert.equal(parseTimestampMs(new Date(T)), T);
    assert.equal(parseTimestampMs(new Date("nope")), undefined);
  });
  await t.step("other types", () => {
    for (
      const value of [null, undefined, true, false, {}, [], [T], { ms: T }, 1n]
    ) {
      assert.equal(parseTimestampMs(value), undefined, String(value));
    }
  });
});

Deno.test("detectTimeUnit() names the unit a timestamp was written in", () => {
  assert.equal(detectTimeUnit(1_700_000_000), "s");
  assert.equal(detectTimeUnit(1_700_000_000.5), "s");
  assert.equal(detectTimeUnit(T), "ms");
  assert.equal(detectTimeUnit("1700000000"), "s");
  assert.equal(detectTimeUnit("1700000000000"), "ms");
  assert.equal(detectTimeUnit("2023-11-14T22:13:20Z"), "iso");
  assert.equal(detectTimeUnit("2023-11-14"), "iso");
  assert.equal(detectTimeUnit(new Date(T)), "iso");
  assert.equal(detectTimeUnit("2024-13-45"), undefined);
  assert.equal(detectTimeUnit(NaN), undefined);
  assert.equal(detectTimeUnit(null), undefined);
  assert.equal(detectTimeUnit(new Date("nope")), undefined);
});

Deno.test("fromMs() converts epoch milliseconds back to a unit", async (t) => {
  await t.step("seconds, milliseconds and ISO", () => {
    assert.equal(fromMs(T, "s"), 1_700_000_000);
    assert.equal(fromMs(T + 500, "s"), 1_700_000_000.5);
    assert.equal(fromMs(T, "ms"), T);
    assert.equal(fromMs(T + 123, "iso"), "2023-11-14T22:13:20.123Z");
  });
  await t.step(
    "round-trips through detectTimeUnit and parseTimestampMs",
    () => {
      for (const value of [1_700_000_000, T, "2023-11-14T22:13:20.000Z"]) {
        const unit = detectTimeUnit(value)!;
        assert.equal(fromMs(parseTimestampMs(value)!, unit), value);
      }
    },
  );
  await t.step("rejects non-finite and out-of-range input", () => {
    assert.throws(() => fromMs(NaN, "ms"), RangeError);
    assert.throws(() => fromMs(Infinity, "s"), RangeError);
    assert.throws(() => fromMs(9e15, "iso"), RangeError);
  });
  await t.step("rejects unknown units", () => {
    assert.throws(
      () => fromMs(0, "minutes" as "s"),
      (error: unknown) =>
        error instanceof TypeError &&
        error.message ===
          'expected time unit "s", "ms" or "iso", found "minutes"',
    );
  });
});

Deno.test("parseRelativeTime() resolves now±amount against a given now", async (t) => {
  const now = Date.UTC(2024, 0, 10, 12);
  await t.step("every unit", () => {
    assert.equal(parseRelativeTime("now", now), now);
    assert.equal(parseRelativeTime("now-500ms", now), now - 500);
    assert.equal(parseRelativeTime("now-30s", now), now - 30_000);
    assert.equal(parseRelativeTime("now+5m", now), now + 300_000);
    assert.equal(parseRelativeTime("now-1h", now), now - 3_600_000);
    assert.equal(parseRelativeTime("now-2d", now), now - 2 * 86_400_000);
    assert.equal(parseRelativeTime("now+1w", now), now + 7 * 86_400_000);
  });
  await t.step("whitespace, decimals and zero", () => {
    assert.equal(parseRelativeTime("now - 1h", now), now - 3_600_000);
    assert.equal(parseRelativeTime("  now  ", now), now);
    assert.equal(parseRelativeTime(" now -1h ", now), now - 3_600_000);
    assert.equal(parseRelativeTime("now-1.5h", now), now - 5_400_000);
    assert.equal(parseRelativeTime("now-0s", now), now);
  });
  await t.step("malformed text is rejected", () => {
    for (
      const text of [
        "",
        "now-",
        "now-1",
        "now-h",
        "now-1y",
        "now-1M",
        "now-1H",
        "NOW-1h",
        "now*2h",
        "now-1h-1m",
        "now--1h",
        "now-1 hour",
        "now1h",
        "1h",
        "today",
        "nowhere",
      ]
    ) {
      assert.equal(parseRelativeTime(text, now), undefined, text);
    }
  });
  await t.step("parseRelativeOffsetMs() gives the signed offset", () => {
    assert.equal(parseRelativeOffsetMs("now-1h"), -3_600_000);
    assert.equal(parseRelativeOffsetMs("now+1h"), 3_600_000);
    assert.equal(parseRelativeOffsetMs(42 as unknown as string), undefined);
  });
});
