import assert from "node:assert/strict";
import { backoffDelay, backoffSchedule } from "../../runtime/backoff.ts";

Deno.test("backoffDelay grows by the factor up to the cap", () => {
  const options = { initialDelayMs: 100, factor: 3, maxDelayMs: 2000, jitter: 0 };
  assert.deepEqual(backoffSchedule(5, options), [100, 300, 900, 2000, 2000]);
});

Deno.test("backoffDelay jitter draws from [d * (1 - jitter), d]", () => {
  const options = { initialDelayMs: 1000, factor: 2, maxDelayMs: 60_000, jitter: 0.5 };
  assert.equal(backoffDelay(2, options, 0), 2000);
  assert.equal(backoffDelay(2, options, 1), 1000);
  assert.equal(backoffDelay(2, options, 0.5), 1500);
});

Deno.test("backoffDelay with factor 1 is a constant delay", () => {
  assert.deepEqual(backoffSchedule(3, { initialDelayMs: 50, factor: 1, jitter: 0 }), [50, 50, 50]);
});

Deno.test("backoffDelay rejects a non-positive attempt", () => {
  assert.throws(() => backoffDelay(0), RangeError);
  assert.throws(() => backoffDelay(1.5), RangeError);
});

Deno.test("backoffDelay stays finite for huge attempt numbers and a zero initial delay", () => {
  assert.equal(backoffDelay(5000, { initialDelayMs: 0, factor: 2 }), 0);
  assert.equal(
    backoffDelay(5000, { initialDelayMs: 10, factor: 2, maxDelayMs: 1000, jitter: 0 }),
    1000,
  );
});
