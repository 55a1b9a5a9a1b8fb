import assert from "node:assert/strict";
import { Mailbox } from "../../runtime/mailbox.ts";
import { MailboxClosedError, MailboxFullError } from "../../runtime/errors.ts";

function fill(box: Mailbox<number>, from: number, to: number): void {
  for (let i = from; i < to; i++) box.send(i);
}

Deno.test("Mailbox block admits up to capacity and makes the sender wait for space", async () => {
  const box = new Mailbox<number>({ capacity: 3, overflow: "block" });
  assert.equal(box.sendMany([1, 2, 3]), undefined);
  let admitted = false;
  const blocked = box.sendMany([4, 5])!;
  assert.ok(blocked instanceof Promise);
  blocked.then(() => admitted = true);
  await Promise.resolve();
  assert.equal(admitted, false);
  assert.deepEqual(box.tryReceive(1), [1]);
  await Promise.resolve();
  assert.equal(admitted, false, "only one of two blocked messages fits");
  assert.deepEqual(box.tryReceive(1), [2]);
  await blocked;
  assert.equal(admitted, true);
  assert.deepEqual(box.tryReceive(10), [3, 4, 5]);
  const c = box.counters();
  assert.equal(c.enqueued, 5);
  assert.equal(c.dequeued, 5);
  assert.equal(c.highWater, 3);
  assert.deepEqual(c.dropped, { drop_oldest: 0, drop_newest: 0, sample: 0, fail: 0 });
});

Deno.test("Mailbox block keeps the order of blocked senders", async () => {
  const box = new Mailbox<string>({ capacity: 1 });
  box.send("a");
  const p1 = box.sendMany(["b", "c"]);
  const p2 = box.send("d");
  const got: string[] = [];
  while (got.length < 4) got.push(...box.tryReceive(1));
  await Promise.all([p1, p2]);
  assert.deepEqual(got, ["a", "b", "c", "d"]);
});

Deno.test("Mailbox drop_oldest keeps the newest capacity messages", () => {
  const dropped: number[] = [];
  const box = new Mailbox<number>({
    capacity: 4,
    overflow: "drop_oldest",
    onDrop: (m) => dropped.push(m),
  });
  fill(box, 0, 10);
  assert.deepEqual(box.tryReceive(100), [6, 7, 8, 9]);
  assert.deepEqual(dropped, [0, 1, 2, 3, 4, 5]);
  assert.equal(box.counters().dropped.drop_oldest, 6);
  assert.equal(box.counters().enqueued, 10);
});

Deno.test("Mailbox drop_newest keeps the first capacity messages", () => {
  const box = new Mailbox<number>({ capacity: 4, overflow: "drop_newest" });
  fill(box, 0, 10);
  assert.deepEqual(box.tryReceive(100), [0, 1, 2, 3]);
  assert.equal(box.counters().dropped.drop_newest, 6);
  assert.equal(box.counters().enqueued, 4);
});

Deno.test("Mailbox sample admits a seeded fraction in place of the oldest", () => {
  const run = (seed: number) => {
    const box = new Mailbox<number>({ capacity: 10, overflow: "sample", sampleRate: 0.25, seed });
    fill(box, 0, 10_010);
    return { kept: box.tryReceive(100), counters: box.counters() };
  };
  const a = run(7);
  const b = run(7);
  assert.deepEqual(a.kept, b.kept, "same seed, same result");
  assert.equal(a.kept.length, 10);
  const { counters } = a;
  // Every offered message is either queued now or dropped.
  assert.equal(counters.dropped.sample + 10, 10_010);
  const admittedWhenFull = counters.enqueued - 10;
  assert.ok(
    admittedWhenFull > 2_300 && admittedWhenFull < 2_700,
    `about 25% of 10,000 admitted when full, got ${admittedWhenFull}`,
  );
  assert.notDeepEqual(run(8).kept, a.kept, "another seed, another sample");
});

Deno.test("Mailbox fail rejects the overflow and reports a MailboxFullError to the receiver", () => {
  const rejected: number[] = [];
  const box = new Mailbox<number>({
    capacity: 2,
    overflow: "fail",
    owner: "slow",
    onDrop: (m, reason) => {
      assert.equal(reason, "fail");
      rejected.push(m);
    },
  });
  // The sender is never failed: send returns normally.
  assert.equal(box.sendMany([1, 2, 3, 4]), undefined);
  assert.deepEqual(rejected, [3, 4]);
  const failure = box.takeFailure();
  assert.ok(failure instanceof MailboxFullError);
  assert.equal(failure.nodeId, "slow");
  assert.equal(box.takeFailure(), undefined, "reported once");
  assert.deepEqual(box.tryReceive(10), [1, 2]);
});

Deno.test("Mailbox receive waits for a message and batch receive takes up to N", async () => {
  const box = new Mailbox<number>({ capacity: 100 });
  const pending = box.receive(3);
  box.sendMany([1, 2, 3, 4, 5]);
  assert.deepEqual(await pending, [1, 2, 3]);
  assert.deepEqual(await box.receive(3), [4, 5]);
});

Deno.test("Mailbox close drains what is queued, then reports done", async () => {
  const box = new Mailbox<number>({ capacity: 10, owner: "n" });
  box.sendMany([1, 2]);
  box.close();
  assert.throws(() => box.send(3), MailboxClosedError);
  assert.equal(box.done, false);
  assert.deepEqual(await box.receive(10), [1, 2]);
  assert.equal(box.done, true);
  assert.deepEqual(await box.receive(10), []);
});

Deno.test("Mailbox close with a reason rejects blocked senders", async () => {
  const box = new Mailbox<number>({ capacity: 1 });
  box.send(1);
  const blocked = box.send(2)!;
  box.close(new Error("stopped"));
  await assert.rejects(blocked, /stopped/);
});

Deno.test("Mailbox markers are reached once every earlier message is taken", async (t) => {
  await t.step("in order with messages", () => {
    const box = new Mailbox<number, string>({ capacity: 10 });
    box.sendMany([1, 2]);
    box.mark("A");
    box.send(3);
    box.mark("B");
    assert.deepEqual(box.takeMarkers(), []);
    box.tryReceive(1);
    assert.deepEqual(box.takeMarkers(), []);
    box.tryReceive(1);
    assert.deepEqual(box.takeMarkers(), ["A"]);
    box.tryReceive(1);
    assert.deepEqual(box.takeMarkers(), ["B"]);
  });
  await t.step("counting messages still blocked behind the capacity", async () => {
    const box = new Mailbox<number, string>({ capacity: 1 });
    box.send(1);
    const blocked = box.sendMany([2, 3]);
    box.mark("after-3");
    box.tryReceive(1);
    box.tryReceive(1);
    assert.deepEqual(box.takeMarkers(), []);
    box.tryReceive(1);
    await blocked;
    assert.deepEqual(box.takeMarkers(), ["after-3"]);
  });
  await t.step("passing messages dropped by drop_oldest", () => {
    const box = new Mailbox<number, string>({ capacity: 2, overflow: "drop_oldest" });
    box.sendMany([1, 2]);
    box.mark("A");
    box.sendMany([3, 4]);
    assert.deepEqual(box.takeMarkers(), ["A"], "1 and 2 were dropped, so A is reached");
  });
  await t.step("an empty mailbox wakes its receiver for a marker", async () => {
    const box = new Mailbox<number, string>({ capacity: 2 });
    const waiting = box.ready();
    assert.ok(waiting);
    box.mark("A");
    await waiting;
    assert.deepEqual(box.takeMarkers(), ["A"]);
  });
});

Deno.test("Mailbox rejects bad options", () => {
  assert.throws(() => new Mailbox({ capacity: 0 }), RangeError);
  assert.throws(() => new Mailbox({ capacity: 1.5 }), RangeError);
  // deno-lint-ignore no-explicit-any
  assert.throws(() => new Mailbox({ capacity: 1, overflow: "dropp" as any }), /unknown overflow/);
  assert.throws(() => new Mailbox({ capacity: 1, sampleRate: 2 }), RangeError);
});

Deno.test("Mailbox ring buffer grows to capacity and wraps in FIFO order", () => {
  const box = new Mailbox<number>({ capacity: 5000, overflow: "drop_newest" });
  let next = 0;
  let last = -1;
  let received = 0;
  const take = (n: number) => {
    for (const m of box.tryReceive(n)) {
      assert.ok(m > last, `FIFO order: ${m} after ${last}`);
      last = m;
      received++;
    }
  };
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < 3000; i++) box.send(next++);
    take(2500);
  }
  take(100_000);
  assert.equal(received + box.counters().dropped.drop_newest, next);
  assert.equal(box.counters().highWater, 5000);
});
