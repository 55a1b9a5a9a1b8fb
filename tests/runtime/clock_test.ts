import assert from "node:assert/strict";
import { VirtualClock } from "../../runtime/clock.ts";

Deno.test("VirtualClock fires timers in time order as time advances", async () => {
  const clock = new VirtualClock(1000);
  const fired: string[] = [];
  clock.setTimeout(() => fired.push("b@300"), 300);
  clock.setTimeout(() => fired.push("a@100"), 100);
  clock.setTimeout(() => fired.push("c@300"), 300);
  await clock.advance(99);
  assert.deepEqual(fired, []);
  await clock.advance(201);
  assert.deepEqual(fired, ["a@100", "b@300", "c@300"]);
  assert.equal(clock.now(), 1300);
});

Deno.test("VirtualClock sleep resolves at its time and rejects on abort", async () => {
  const clock = new VirtualClock(0);
  let woke = false;
  const sleeping = clock.sleep(500).then(() => woke = true);
  await clock.advance(499);
  assert.equal(woke, false);
  await clock.advance(1);
  await sleeping;
  assert.equal(woke, true);
  const controller = new AbortController();
  const aborted = clock.sleep(100, { signal: controller.signal });
  controller.abort(new Error("cancelled"));
  await assert.rejects(aborted, /cancelled/);
  assert.equal(clock.pendingTimers, 0);
});

Deno.test("VirtualClock runs timers that timers schedule within the same advance", async () => {
  const clock = new VirtualClock(0);
  const at: number[] = [];
  const tick = () => {
    at.push(clock.now());
    if (at.length < 5) clock.setTimeout(tick, 100);
  };
  clock.setTimeout(tick, 100);
  await clock.advance(1000);
  assert.deepEqual(at, [100, 200, 300, 400, 500]);
});

Deno.test("VirtualClock clearTimeout cancels a timer", async () => {
  const clock = new VirtualClock(0);
  let fired = false;
  const id = clock.setTimeout(() => fired = true, 10);
  clock.clearTimeout(id);
  await clock.advance(100);
  assert.equal(fired, false);
  await assert.rejects(() => clock.advance(-1), RangeError);
});
