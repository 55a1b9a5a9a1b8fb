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

Deno.test("Mailbox keeps FIFO order up to its capacity through many chunks", () => {
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

// ---- chunks: hand, identity hand-over, partial admission -------------------

Deno.test("Mailbox hand queues the array itself and tryReceive returns it when it is the batch", () => {
  const box = new Mailbox<number>({ capacity: 10 });
  const batch = [1, 2, 3];
  assert.equal(box.hand(batch), undefined);
  assert.equal(box.depth, 3);
  const got = box.tryReceive(10);
  assert.equal(got, batch, "the very same array, not a copy");
  assert.equal(box.depth, 0);
  // The receiver owns it now: changing it does not disturb the mailbox.
  got.length = 0;
  box.hand([4]);
  assert.deepEqual(box.tryReceive(10), [4]);
  const c = box.counters();
  assert.equal(c.enqueued, 4);
  assert.equal(c.dequeued, 4);
});

Deno.test("Mailbox tryReceive hands a head chunk over whole only when it makes the batch", async (t) => {
  await t.step("alone in the queue and within max", () => {
    const box = new Mailbox<number>({ capacity: 100 });
    const a = [1, 2, 3, 4, 5];
    box.hand(a);
    assert.equal(box.tryReceive(5), a, "length equals max");
  });
  await t.step("larger than max: split into new arrays", () => {
    const box = new Mailbox<number>({ capacity: 100 });
    const a = [1, 2, 3, 4, 5];
    box.hand(a);
    const first = box.tryReceive(2);
    assert.notEqual(first, a);
    assert.deepEqual(first, [1, 2]);
    const rest = box.tryReceive(10);
    assert.notEqual(rest, a, "a partly taken chunk is never handed over whole");
    assert.deepEqual(rest, [3, 4, 5]);
    assert.deepEqual(a, [1, 2, 3, 4, 5], "the handed array is not changed");
  });
  await t.step("small chunks with more behind are gathered", () => {
    const box = new Mailbox<number>({ capacity: 100 });
    const a = [1, 2, 3];
    const b = [4, 5];
    box.hand(a);
    box.hand(b);
    const got = box.tryReceive(10);
    assert.notEqual(got, a);
    assert.notEqual(got, b);
    assert.deepEqual(got, [1, 2, 3, 4, 5]);
    assert.deepEqual(a, [1, 2, 3]);
    assert.deepEqual(b, [4, 5]);
    assert.equal(box.depth, 0);
  });
  await t.step("a small head chunk whose length equals the batch is handed over", () => {
    const box = new Mailbox<number>({ capacity: 100 });
    const a = [1, 2, 3];
    const b = [4, 5];
    box.hand(a);
    box.hand(b);
    assert.equal(box.tryReceive(3), a, "count === length of the head chunk");
    assert.equal(box.tryReceive(3), b, "then alone in the queue");
  });
  await t.step("a head chunk with more behind is gathered into a fuller batch", () => {
    const box = new Mailbox<number>({ capacity: 1000 });
    const big = Array.from({ length: 64 }, (_, i) => i);
    const small = [64, 65];
    box.hand(big);
    box.hand(small);
    const gathered = box.tryReceive(500);
    assert.notEqual(gathered, big, "more queued behind: one fuller batch");
    assert.deepEqual(gathered, Array.from({ length: 66 }, (_, i) => i));
    assert.deepEqual(big, Array.from({ length: 64 }, (_, i) => i), "the handed array is unchanged");
    box.hand(big);
    box.hand(small);
    assert.equal(box.tryReceive(64), big, "exactly max: handed over");
    assert.equal(box.tryReceive(500), small, "alone in the queue: handed over");
  });
  await t.step("a head chunk larger than max is split", () => {
    const box = new Mailbox<number>({ capacity: 1000 });
    const big = Array.from({ length: 100 }, (_, i) => i);
    box.hand(big);
    const first = box.tryReceive(64);
    assert.notEqual(first, big);
    assert.deepEqual(first, big.slice(0, 64));
    assert.deepEqual(box.tryReceive(1000), big.slice(64));
  });
  await t.step("send() of single messages gathers them into one batch", () => {
    const box = new Mailbox<number>({ capacity: 100 });
    for (let i = 0; i < 10; i++) box.send(i);
    assert.deepEqual(box.tryReceive(100), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});

Deno.test("Mailbox block admits a chunk larger than the free room in part", async () => {
  const box = new Mailbox<number>({ capacity: 3 });
  box.hand([0]);
  const chunk = [1, 2, 3, 4, 5, 6];
  let admitted = false;
  const blocked = box.hand(chunk);
  assert.ok(blocked instanceof Promise, "the rest waits for room");
  blocked.then(() => admitted = true);
  assert.equal(box.depth, 3, "as much as fits is admitted at once");
  const depths: number[] = [box.depth];
  const got: number[] = [];
  for (const max of [2, 1, 3]) {
    const batch = box.tryReceive(max);
    assert.notEqual(batch, chunk, "a partly admitted chunk is never handed over whole");
    got.push(...batch);
    depths.push(box.depth);
    await null;
    await null;
    if (got.length < 4) assert.equal(admitted, false, `still blocked after ${got}`);
  }
  await blocked;
  assert.equal(admitted, true);
  got.push(...box.tryReceive(10));
  assert.deepEqual(got, [0, 1, 2, 3, 4, 5, 6]);
  assert.ok(depths.every((d) => d <= 3), `depth never exceeds capacity: ${depths}`);
  const c = box.counters();
  assert.equal(c.highWater, 3);
  assert.equal(c.enqueued, 7);
  assert.equal(c.dequeued, 7);
  assert.equal(c.blockedSends, 1);
  assert.deepEqual(chunk, [1, 2, 3, 4, 5, 6], "the handed array is left as it was");
});

Deno.test("Mailbox block: later sends queue behind a partly admitted chunk", async () => {
  const box = new Mailbox<string>({ capacity: 2 });
  const p1 = box.hand(["a", "b", "c", "d"])!;
  const p2 = box.hand(["e"])!;
  assert.ok(p1 instanceof Promise);
  assert.ok(p2 instanceof Promise, "no overtaking while others are blocked");
  assert.equal(box.depth, 2);
  const got: string[] = [];
  while (got.length < 5) {
    got.push(...box.tryReceive(1));
    assert.ok(box.depth <= 2);
  }
  await Promise.all([p1, p2]);
  assert.deepEqual(got, ["a", "b", "c", "d", "e"]);
});

Deno.test("Mailbox sendMany copies: the caller may reuse its array", async () => {
  const box = new Mailbox<number>({ capacity: 10 });
  const buffer = [1, 2, 3, 4];
  assert.equal(box.sendMany(buffer, 3), undefined);
  buffer[0] = 99;
  buffer.length = 0;
  buffer.push(7, 7, 7);
  const got = box.tryReceive(10);
  assert.notEqual(got, buffer);
  assert.deepEqual(got, [1, 2, 3], "count limits what is sent; later changes do not show");

  // Also for the part that waits under block.
  const small = new Mailbox<number>({ capacity: 2 });
  const reused = [1, 2, 3, 4];
  const blocked = small.sendMany(reused);
  assert.ok(blocked instanceof Promise);
  reused.fill(0);
  const all: number[] = [];
  while (all.length < 4) all.push(...small.tryReceive(10));
  await blocked;
  assert.deepEqual(all, [1, 2, 3, 4]);
});

Deno.test("Mailbox overflow policies count drops exactly with chunks", async (t) => {
  await t.step("drop_oldest drops across chunk boundaries, oldest first", () => {
    const dropped: number[] = [];
    const box = new Mailbox<number>({
      capacity: 4,
      overflow: "drop_oldest",
      onDrop: (m, reason) => {
        assert.equal(reason, "drop_oldest");
        dropped.push(m);
      },
    });
    assert.equal(box.hand([0, 1, 2]), undefined);
    assert.equal(box.hand([3, 4]), undefined);
    assert.equal(box.depth, 4);
    assert.equal(box.hand([5, 6, 7, 8, 9, 10]), undefined);
    assert.equal(box.depth, 4);
    assert.deepEqual(box.tryReceive(100), [7, 8, 9, 10]);
    assert.deepEqual(dropped, [0, 1, 2, 3, 4, 5, 6]);
    const c = box.counters();
    assert.equal(c.dropped.drop_oldest, 7);
    assert.equal(c.enqueued, 11);
    assert.equal(c.dequeued, 4);
    assert.equal(c.highWater, 4);
  });
  await t.step("drop_oldest with a partly taken head chunk", () => {
    const dropped: number[] = [];
    const box = new Mailbox<number>({
      capacity: 3,
      overflow: "drop_oldest",
      onDrop: (m) => dropped.push(m),
    });
    box.hand([0, 1, 2]);
    assert.deepEqual(box.tryReceive(1), [0]);
    box.hand([3, 4]);
    assert.deepEqual(dropped, [1]);
    assert.deepEqual(box.tryReceive(10), [2, 3, 4]);
  });
  await t.step("drop_newest admits what fits of a chunk and drops the rest", () => {
    const dropped: number[] = [];
    const box = new Mailbox<number>({
      capacity: 4,
      overflow: "drop_newest",
      onDrop: (m, reason) => {
        assert.equal(reason, "drop_newest");
        dropped.push(m);
      },
    });
    box.hand([0, 1]);
    const chunk = [2, 3, 4, 5, 6];
    assert.equal(box.hand(chunk), undefined);
    assert.equal(box.hand([7]), undefined);
    assert.deepEqual(dropped, [4, 5, 6, 7]);
    const got = box.tryReceive(100);
    assert.notEqual(got, chunk);
    assert.deepEqual(got, [0, 1, 2, 3]);
    const c = box.counters();
    assert.equal(c.dropped.drop_newest, 4);
    assert.equal(c.enqueued, 4);
  });
  await t.step("sample: every offered message is queued or dropped", () => {
    let onDrops = 0;
    const box = new Mailbox<number>({
      capacity: 5,
      overflow: "sample",
      sampleRate: 0.5,
      seed: 3,
      onDrop: (_, reason) => {
        assert.equal(reason, "sample");
        onDrops++;
      },
    });
    let offered = 0;
    for (let i = 0; i < 50; i++) {
      const chunk = Array.from({ length: 1 + (i % 7) }, () => offered++);
      assert.equal(box.hand(chunk), undefined);
      assert.ok(box.depth <= 5);
    }
    const kept = box.tryReceive(100);
    assert.equal(kept.length, 5);
    for (let i = 1; i < kept.length; i++) assert.ok(kept[i] > kept[i - 1], "FIFO");
    const c = box.counters();
    assert.equal(c.dropped.sample + kept.length, offered);
    assert.equal(onDrops, c.dropped.sample);
    assert.ok(c.enqueued > 5 && c.enqueued < offered, `some admitted when full: ${c.enqueued}`);
    assert.equal(c.enqueued - c.dequeued, c.dropped.sample - (offered - c.enqueued));
  });
  await t.step("fail rejects the part of a chunk that does not fit", () => {
    const rejected: number[] = [];
    const box = new Mailbox<number>({
      capacity: 3,
      overflow: "fail",
      onDrop: (m, reason) => {
        assert.equal(reason, "fail");
        rejected.push(m);
      },
    });
    box.hand([0]);
    assert.equal(box.hand([1, 2, 3, 4]), undefined);
    assert.deepEqual(rejected, [3, 4]);
    assert.ok(box.takeFailure() instanceof MailboxFullError);
    assert.deepEqual(box.tryReceive(10), [0, 1, 2]);
    assert.equal(box.counters().dropped.fail, 2);
    assert.equal(box.counters().enqueued, 3);
  });
});

Deno.test("Mailbox markers stay in place when chunks are split", async (t) => {
  await t.step("a marker between two chunks taken in uneven pieces", () => {
    const box = new Mailbox<number, string>({ capacity: 20 });
    box.hand([1, 2, 3, 4, 5]);
    box.mark("A");
    box.hand([6, 7, 8]);
    box.mark("B");
    assert.deepEqual(box.tryReceive(3), [1, 2, 3]);
    assert.deepEqual(box.takeMarkers(), []);
    assert.deepEqual(box.tryReceive(1), [4]);
    assert.deepEqual(box.takeMarkers(), []);
    assert.deepEqual(box.tryReceive(3), [5, 6, 7]);
    assert.deepEqual(box.takeMarkers(), ["A"]);
    assert.deepEqual(box.tryReceive(3), [8]);
    assert.deepEqual(box.takeMarkers(), ["B"]);
  });
  await t.step("a marker after a chunk admitted in part", async () => {
    const box = new Mailbox<number, string>({ capacity: 2 });
    const blocked = box.hand([1, 2, 3, 4, 5]);
    box.mark("after-5");
    box.hand([6]);
    box.mark("after-6");
    const got: number[] = [];
    const reachedAt: Record<string, number> = {};
    while (got.length < 6) {
      got.push(...box.tryReceive(1));
      for (const m of box.takeMarkers()) reachedAt[m] = got.length;
    }
    await blocked;
    assert.deepEqual(got, [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(reachedAt, { "after-5": 5, "after-6": 6 });
  });
  await t.step("drop_oldest dropping part of a chunk passes the marker", () => {
    const box = new Mailbox<number, string>({ capacity: 3, overflow: "drop_oldest" });
    box.hand([1, 2, 3]);
    box.mark("A");
    box.hand([4]);
    assert.deepEqual(box.takeMarkers(), [], "2 and 3 are still queued");
    box.hand([5, 6]);
    assert.deepEqual(box.takeMarkers(), ["A"], "1, 2, 3 were dropped");
    assert.deepEqual(box.tryReceive(10), [4, 5, 6]);
  });
  await t.step("drop_newest: a dropped part of a chunk does not hold the marker", () => {
    const box = new Mailbox<number, string>({ capacity: 3, overflow: "drop_newest" });
    box.hand([1, 2, 3, 4, 5]);
    box.mark("A");
    assert.deepEqual(box.tryReceive(2), [1, 2]);
    assert.deepEqual(box.takeMarkers(), []);
    assert.deepEqual(box.tryReceive(2), [3]);
    assert.deepEqual(box.takeMarkers(), ["A"]);
  });
});

Deno.test("Mailbox drainAll returns the queued chunks' messages in order", () => {
  const box = new Mailbox<number>({ capacity: 10 });
  box.hand([1, 2, 3]);
  box.hand([4]);
  box.hand([5, 6]);
  assert.deepEqual(box.tryReceive(2), [1, 2]);
  assert.deepEqual(box.drainAll(), [3, 4, 5, 6]);
  assert.equal(box.depth, 0);
  assert.deepEqual(box.tryReceive(10), []);
  const c = box.counters();
  assert.equal(c.enqueued, 6);
  assert.equal(c.dequeued, 6);
});

Deno.test({
  // drainAll once emptied the queue with tryReceive, which admitted blocked
  // messages into the room it freed and then lost track of them.
  name: "Mailbox drainAll returns queued and blocked messages in order and empties the mailbox",
  fn: async () => {
    const box = new Mailbox<number>({ capacity: 3 });
    box.hand([1, 2]);
    const p1 = box.hand([3, 4, 5])!;
    const p2 = box.hand([6])!;
    assert.ok(p1 instanceof Promise && p2 instanceof Promise);
    assert.deepEqual(box.drainAll(), [1, 2, 3, 4, 5, 6]);
    assert.equal(box.depth, 0);
    assert.deepEqual(box.tryReceive(10), []);
    await Promise.all([p1, p2]);
    const c = box.counters();
    assert.equal(c.dequeued, 6);
    assert.equal(c.depth, 0);
  },
});

/** The mulberry32 PRNG, for reproducible randomized tests. */
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

Deno.test("Mailbox with chunks behaves as a plain FIFO model under random operations", async () => {
  for (const overflow of ["block", "drop_oldest", "drop_newest", "fail"] as const) {
    for (let seed = 1; seed <= 30; seed++) {
      const random = prng(seed * 7919 + overflow.length);
      const int = (n: number) => Math.floor(random() * n);
      const capacity = 1 + int(12);
      const label = `${overflow} seed ${seed} capacity ${capacity}`;
      const dropped: number[] = [];
      const box = new Mailbox<number, number>({
        capacity,
        overflow,
        onDrop: (m) => dropped.push(m),
      });
      // The model: queued messages, blocked senders' leftovers, markers.
      const queue: number[] = [];
      const blocked: { rest: number[]; done: boolean; resolved: boolean }[] = [];
      const everBlocked: { rest: number[]; done: boolean; resolved: boolean }[] = [];
      const markers: { position: number; id: number }[] = [];
      const modelDropped: number[] = [];
      let admitted = 0;
      let removed = 0;
      let next = 0;
      let markerId = 0;
      const handed = new Map<number[], number>(); // arrays given by hand → their length
      const copied = new Set<unknown[]>();
      const admitBlocked = () => {
        while (blocked.length > 0 && queue.length < capacity) {
          const b = blocked[0];
          const take = Math.min(b.rest.length, capacity - queue.length);
          queue.push(...b.rest.splice(0, take));
          admitted += take;
          if (b.rest.length === 0) {
            blocked.shift();
            b.done = true;
          }
        }
      };
      for (let step = 0; step < 300; step++) {
        const op = random();
        if (op < 0.45) {
          const n = int(capacity * 2 + 2);
          const messages = Array.from({ length: n }, () => next++);
          const useHand = random() < 0.6;
          const arrayGiven = useHand ? messages : [...messages, -1, -2];
          if (useHand) handed.set(messages, n);
          else copied.add(arrayGiven);
          const result = useHand ? box.hand(messages) : box.sendMany(arrayGiven, n);
          // model
          let index = 0;
          if (blocked.length === 0) {
            index = Math.min(n, capacity - queue.length);
            queue.push(...messages.slice(0, index));
            admitted += index;
          }
          if (index < n) {
            if (overflow === "block") {
              const entry = { rest: messages.slice(index), done: false, resolved: false };
              blocked.push(entry);
              everBlocked.push(entry);
              assert.ok(result instanceof Promise, `${label}: a blocked send returns a promise`);
              result.then(() => entry.resolved = true);
            } else {
              assert.equal(result, undefined, label);
              for (; index < n; index++) {
                if (overflow === "drop_oldest") {
                  modelDropped.push(queue.shift()!);
                  removed++;
                  queue.push(messages[index]);
                  admitted++;
                } else {
                  modelDropped.push(messages[index]);
                }
              }
            }
          } else {
            assert.equal(result, undefined, `${label}: a send that fits returns undefined`);
          }
          if (!useHand) arrayGiven.fill(-9); // sendMany copied: reuse is safe
        } else if (op < 0.9) {
          const max = 1 + int(capacity + 3);
          const got = box.tryReceive(max);
          const want = queue.splice(0, Math.min(max, queue.length));
          removed += want.length;
          admitBlocked();
          assert.deepEqual(got, want, `${label} step ${step}: tryReceive(${max})`);
          if (handed.has(got)) {
            assert.equal(handed.get(got), got.length, `${label}: a whole handed array`);
            handed.delete(got);
          }
          assert.ok(!copied.has(got), `${label}: sendMany's array is never handed out`);
          got.fill(-7); // the receiver owns the array
        } else {
          const id = markerId++;
          box.mark(id);
          let pending = 0;
          for (const b of blocked) pending += b.rest.length;
          markers.push({ position: admitted + pending, id });
        }
        const wantMarkers: number[] = [];
        while (markers.length > 0 && markers[0].position <= removed) {
          wantMarkers.push(markers.shift()!.id);
        }
        assert.deepEqual(box.takeMarkers(), wantMarkers, `${label} step ${step}: markers`);
        assert.equal(box.depth, queue.length, `${label} step ${step}: depth`);
        assert.ok(box.depth <= capacity, `${label}: depth within capacity`);
        await null;
        await null;
        for (const b of everBlocked) {
          assert.equal(b.resolved, b.done, `${label} step ${step}: resolved once all admitted`);
        }
      }
      await null;
      const c = box.counters();
      assert.deepEqual(dropped, modelDropped, `${label}: dropped messages`);
      assert.equal(c.highWater <= capacity, true);
      assert.equal(c.enqueued, admitted, `${label}: enqueued`);
      const droppedCount = c.dropped.drop_oldest + c.dropped.drop_newest + c.dropped.fail +
        c.dropped.sample;
      assert.equal(droppedCount, modelDropped.length, `${label}: drop counters`);
      assert.equal(c.dropped[overflow === "block" ? "fail" : overflow], modelDropped.length);
    }
  }
});
