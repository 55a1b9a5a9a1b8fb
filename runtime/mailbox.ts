/**
 * Bounded mailboxes: the capacity and overflow policy of a node's mailbox are
 * sluice's backpressure.
 *
 * @module
 */
import { MailboxClosedError, MailboxFullError } from "./errors.ts";

/**
 * What a full mailbox does with a new message.
 *
 * - `block`: the sender awaits space (backpressure that reaches the sources).
 * - `drop_oldest`: the oldest queued message is dropped to admit the new one.
 * - `drop_newest`: the new message is dropped.
 * - `sample`: a `sampleRate` fraction of new messages replace the oldest; the
 *   rest are dropped (seeded, so runs are reproducible).
 * - `fail`: the new message is rejected and the receiving node fails with a
 *   {@linkcode MailboxFullError}; the sender is never failed.
 */
export type OverflowPolicy =
  | "block"
  | "drop_oldest"
  | "drop_newest"
  | "sample"
  | "fail";

/** Every overflow policy, in documentation order. */
export const OVERFLOW_POLICIES: readonly OverflowPolicy[] = [
  "block",
  "drop_oldest",
  "drop_newest",
  "sample",
  "fail",
];

/** Why a message was dropped by a mailbox. */
export type DropReason = Exclude<OverflowPolicy, "block">;

/** Options of a {@linkcode Mailbox}. */
export interface MailboxOptions<T> {
  /** Most messages held at once. Must be a positive integer. */
  capacity: number;
  /** What happens when full. @default {"block"} */
  overflow?: OverflowPolicy;
  /** For `sample`: the fraction of new messages admitted when full. @default {0.1} */
  sampleRate?: number;
  /** Seed of the `sample` policy's random choices. @default {1} */
  seed?: number;
  /** The node that owns the mailbox, for error messages. @default {"mailbox"} */
  owner?: string;
  /** Called with every message a policy drops or rejects. */
  onDrop?: (message: T, reason: DropReason) => void;
}

/** Counters of a mailbox, as plain data. */
export interface MailboxCounters {
  /** Messages queued now. */
  depth: number;
  /** The capacity. */
  capacity: number;
  /** The most messages ever queued at once. */
  highWater: number;
  /** Messages admitted. */
  enqueued: number;
  /** Messages taken by the receiver. */
  dequeued: number;
  /** Messages dropped, by policy. */
  dropped: Record<DropReason, number>;
  /** Time senders spent blocked, in milliseconds of `monotonic()`; 0 if unknown. */
  blockedSends: number;
}

/**
 * A position marker that travels with the stream (a checkpoint barrier): it is
 * reached once every message enqueued before it has been taken.
 *
 * @typeParam M The payload type.
 */
export interface MailboxMarker<M> {
  /** The enqueue position at which the marker was placed. */
  readonly position: number;
  /** The marker's payload. */
  readonly value: M;
}

interface BlockedSender<T> {
  items: readonly T[];
  end: number;
  index: number;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** `items[start..end)`, queued as one piece: a hop costs per chunk, not per message. */
interface Chunk<T> {
  readonly items: readonly T[];
  start: number;
  end: number;
}

/** A small deterministic PRNG (mulberry32). */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A bounded single-consumer queue with an overflow policy, batch receive,
 * close-and-drain and counters.
 *
 * It queues chunks, not messages: {@linkcode Mailbox.hand} queues the
 * sender's array itself, and {@linkcode Mailbox.tryReceive} returns a queued
 * array whole when it makes the whole batch, so passing a batch between
 * actors costs the same for one message as for a thousand. The capacity
 * still counts messages: a chunk that does not fit is admitted in part.
 *
 * @typeParam T The message type.
 * @typeParam M The payload type of markers placed with {@linkcode Mailbox.mark}.
 * @example Drop the oldest when full
 * ```ts
 * import { Mailbox } from "./mailbox.ts";
 * const box = new Mailbox<number>({ capacity: 2, overflow: "drop_oldest" });
 * box.send(1);
 * box.send(2);
 * box.send(3);
 * console.assert(box.tryReceive(10).join() === "2,3");
 * console.assert(box.counters().dropped.drop_oldest === 1);
 * ```
 */
export class Mailbox<T, M = unknown> {
  /** Most messages held at once. */
  readonly capacity: number;
  /** What happens when full. */
  readonly overflow: OverflowPolicy;
  /** The node that owns the mailbox, for error messages. */
  readonly owner: string;
  /** The queued chunks, from `#first` on. */
  #chunks: Chunk<T>[] = [];
  #first = 0;
  #size = 0;
  #closed = false;
  #enqueued = 0;
  #dequeued = 0;
  /** Messages that left the queue by being taken or dropped from it. */
  #removed = 0;
  #highWater = 0;
  #blockedSends = 0;
  #dropped: Record<DropReason, number> = {
    drop_oldest: 0,
    drop_newest: 0,
    sample: 0,
    fail: 0,
  };
  #blocked: BlockedSender<T>[] = [];
  #receiver: ((value: void) => void) | undefined;
  #markers: MailboxMarker<M>[] = [];
  #failure: MailboxFullError | undefined;
  #sampleRate: number;
  #random: () => number;
  #onDrop: ((message: T, reason: DropReason) => void) | undefined;

  /**
   * Creates an empty, open mailbox.
   *
   * @param options Capacity, policy and hooks.
   * @throws {RangeError} When the capacity is not a positive integer, the
   * overflow policy is unknown or the sample rate is outside [0, 1].
   */
  constructor(options: MailboxOptions<T>) {
    if (!Number.isInteger(options.capacity) || options.capacity < 1) {
      throw new RangeError(
        `mailbox capacity must be a positive integer, got ${options.capacity}`,
      );
    }
    const overflow = options.overflow ?? "block";
    if (!OVERFLOW_POLICIES.includes(overflow)) {
      throw new RangeError(
        `unknown overflow policy "${overflow}"; expected one of ${OVERFLOW_POLICIES.join(", ")}`,
      );
    }
    const sampleRate = options.sampleRate ?? 0.1;
    if (!(sampleRate >= 0 && sampleRate <= 1)) {
      throw new RangeError(`sampleRate must be within [0, 1], got ${sampleRate}`);
    }
    this.capacity = options.capacity;
    this.overflow = overflow;
    this.owner = options.owner ?? "mailbox";
    this.#sampleRate = sampleRate;
    this.#random = seededRandom(options.seed ?? 1);
    this.#onDrop = options.onDrop;
  }

  /** Messages queued now. */
  get depth(): number {
    return this.#size;
  }
  /** Whether {@linkcode Mailbox.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }
  /** Whether the mailbox is closed and nothing is left to take. */
  get done(): boolean {
    return this.#closed && this.#size === 0 && this.#blocked.length === 0;
  }

  /**
   * Offers one message.
   *
   * @param message The message.
   * @returns `undefined` when handled at once (admitted or dropped by policy),
   * or a promise that resolves once a blocked message is admitted.
   * @throws {MailboxClosedError} When the mailbox is closed.
   */
  send(message: T): Promise<void> | undefined {
    return this.hand([message]);
  }

  /**
   * Offers messages in order, copying the array's first `count` elements
   * (see {@linkcode Mailbox.hand}, which takes the array itself). Under
   * `block` it admits what fits and returns a promise for the rest; the
   * caller must await it before sending more, which is how backpressure
   * travels upstream.
   *
   * @param messages The messages; the mailbox does not keep this array.
   * @param count How many of the array's first elements to send. @default {messages.length}
   * @returns `undefined` when all were handled at once, else a promise.
   * @throws {MailboxClosedError} When the mailbox is closed.
   */
  sendMany(messages: readonly T[], count: number = messages.length): Promise<void> | undefined {
    return this.hand(messages.slice(0, count));
  }

  /**
   * Offers messages in order and takes the array: it is queued as one chunk
   * and may be handed to the receiver as its batch, so the caller must not
   * change it afterwards. Under `block` it admits what fits and returns a
   * promise for the rest; the caller must await it before sending more.
   *
   * @param messages The messages, now owned by the mailbox.
   * @returns `undefined` when all were handled at once, else a promise.
   * @throws {MailboxClosedError} When the mailbox is closed.
   * @example Hand a batch over
   * ```ts
   * import { Mailbox } from "./mailbox.ts";
   * const box = new Mailbox<number>({ capacity: 10 });
   * const batch = [1, 2, 3];
   * box.hand(batch);
   * console.assert(box.tryReceive(10) === batch); // the same array, not a copy
   * ```
   */
  hand(messages: readonly T[]): Promise<void> | undefined {
    if (this.#closed) throw new MailboxClosedError(this.owner);
    const n = messages.length;
    let index = 0;
    const room = this.capacity - this.#size;
    if (this.#blocked.length === 0 && room > 0 && n > 0) {
      index = Math.min(n, room);
      this.#admit(messages, 0, index);
    }
    if (index === n) {
      this.#wake();
      return undefined;
    }
    switch (this.overflow) {
      case "block":
        this.#wake();
        return new Promise<void>((resolve, reject) => {
          this.#blocked.push({ items: messages, end: n, index, resolve, reject });
        });
      case "drop_oldest":
        for (; index < n; index++) {
          this.#dropOldest("drop_oldest");
          this.#admit(messages, index, index + 1);
        }
        break;
      case "drop_newest":
        for (; index < n; index++) this.#drop(messages[index], "drop_newest");
        break;
      case "sample":
        for (; index < n; index++) {
          if (this.#random() < this.#sampleRate) {
            this.#dropOldest("sample");
            this.#admit(messages, index, index + 1);
          } else {
            this.#drop(messages[index], "sample");
          }
        }
        break;
      case "fail":
        this.#failure ??= new MailboxFullError(this.owner, this.capacity);
        for (; index < n; index++) this.#drop(messages[index], "fail");
        break;
    }
    this.#wake();
    return undefined;
  }

  /**
   * Takes up to `max` messages without waiting. A queued array that makes
   * the whole batch (exactly `max` messages, or everything queued) is
   * returned as it is (no copy); otherwise pieces are gathered into a new
   * array, so batches are as full as the queue allows.
   *
   * @param max The most messages to take.
   * @returns The messages, oldest first (possibly none); the caller owns the array.
   */
  tryReceive(max: number): T[] {
    const count = Math.min(max, this.#size);
    if (count <= 0) return [];
    const chunks = this.#chunks;
    const head = chunks[this.#first];
    const length = head.end - head.start;
    let out: T[];
    // Handed over as it is only when it makes the whole batch: with more
    // queued behind it, a fuller batch (gathered by copying) is worth more to
    // receivers whose cost is per batch (a network round trip).
    if (
      head.start === 0 && head.end === head.items.length &&
      (length === count || length === this.#size && length <= max)
    ) {
      out = head.items as T[];
      this.#shift();
    } else {
      out = new Array<T>(count);
      let taken = 0;
      while (taken < count) {
        const chunk = chunks[this.#first];
        const items = chunk.items;
        const end = Math.min(chunk.end, chunk.start + count - taken);
        for (let i = chunk.start; i < end; i++) out[taken++] = items[i];
        chunk.start = end;
        if (end === chunk.end) this.#shift();
      }
    }
    const taken = out.length;
    this.#size -= taken;
    this.#dequeued += taken;
    this.#removed += taken;
    if (this.#blocked.length > 0) this.#admitBlocked();
    return out;
  }

  /**
   * Waits until there is something to do: messages to take, a marker reached,
   * a failure to report, or the mailbox is closed and empty, or
   * {@linkcode Mailbox.interrupt} was called.
   *
   * @returns A promise, or `undefined` when there is something to do already.
   */
  ready(): Promise<void> | undefined {
    if (
      this.#size > 0 || this.#closed || this.#failure ||
      this.#reachedMarker()
    ) return undefined;
    return new Promise((resolve) => this.#receiver = resolve);
  }

  /**
   * Takes up to `max` messages, waiting when none are queued.
   *
   * @param max The most messages to take.
   * @returns The messages; an empty array when closed and drained, or when
   * woken for a marker, a failure or an interrupt.
   */
  async receive(max: number): Promise<T[]> {
    await this.ready();
    return this.tryReceive(max);
  }

  /**
   * Counts messages the receiver took directly from a sender while this
   * mailbox was empty (they never queued): they are counted as enqueued and
   * taken, so the counters and marker positions cover every message.
   *
   * @param count How many messages.
   * @example Counting a direct hand-over
   * ```ts
   * import { Mailbox } from "./mailbox.ts";
   * const box = new Mailbox<number>({ capacity: 4 });
   * box.bypass(3);
   * console.assert(box.counters().enqueued === 3 && box.counters().dequeued === 3);
   * console.assert(box.depth === 0);
   * ```
   */
  bypass(count: number): void {
    this.#enqueued += count;
    this.#dequeued += count;
    this.#removed += count;
  }

  /** Wakes a waiting receiver without a message (used to deliver timers). */
  interrupt(): void {
    this.#wake();
  }

  /**
   * Places a marker after everything enqueued so far.
   *
   * @param value The marker's payload.
   * @throws {MailboxClosedError} When the mailbox is closed.
   */
  mark(value: M): void {
    if (this.#closed) throw new MailboxClosedError(this.owner);
    this.#markers.push({
      position: this.#enqueued + this.#pendingBlocked(),
      value,
    });
    this.#wake();
  }

  /**
   * Removes and returns the markers that every message before them has passed.
   *
   * @returns The payloads, in order.
   */
  takeMarkers(): M[] {
    if (this.#markers.length === 0) return [];
    const out: M[] = [];
    let i = 0;
    // Messages dropped by drop_newest/sample/fail never entered, so the
    // position counts admitted messages only.
    while (
      i < this.#markers.length && this.#markers[i].position <= this.#removed
    ) out.push(this.#markers[i++].value);
    if (i > 0) this.#markers.splice(0, i);
    return out;
  }

  /** Markers not yet reached. */
  get pendingMarkers(): number {
    return this.#markers.length;
  }

  /**
   * Returns and clears the overflow failure of a `fail` mailbox.
   *
   * @returns The error, or `undefined`.
   */
  takeFailure(): MailboxFullError | undefined {
    const failure = this.#failure;
    this.#failure = undefined;
    return failure;
  }

  /**
   * Closes the mailbox: sends are refused; the receiver drains what is queued.
   *
   * @param reason When given, blocked senders are rejected with it.
   */
  close(reason?: unknown): void {
    this.#closed = true;
    if (reason !== undefined) {
      for (const b of this.#blocked) b.reject(reason);
      this.#blocked = [];
    }
    this.#wake();
  }

  /**
   * Removes every queued and blocked message (for a node that is gone).
   *
   * @returns The removed messages.
   */
  drainAll(): T[] {
    // Not tryReceive: it would admit blocked messages into the room it frees.
    const out: T[] = [];
    for (let c = this.#first; c < this.#chunks.length; c++) {
      const chunk = this.#chunks[c];
      for (let i = chunk.start; i < chunk.end; i++) out.push(chunk.items[i]);
    }
    const queued = this.#size;
    this.#chunks = [];
    this.#first = 0;
    this.#size = 0;
    this.#dequeued += queued;
    this.#removed += queued;
    for (const b of this.#blocked) {
      for (let i = b.index; i < b.end; i++) out.push(b.items[i]);
      this.#dequeued += b.end - b.index;
      this.#removed += b.end - b.index;
      b.resolve();
    }
    this.#blocked = [];
    return out;
  }

  /**
   * The counters now.
   *
   * @returns A fresh object; later sends do not change it.
   */
  counters(): MailboxCounters {
    return {
      depth: this.#size,
      capacity: this.capacity,
      highWater: this.#highWater,
      enqueued: this.#enqueued,
      dequeued: this.#dequeued,
      dropped: { ...this.#dropped },
      blockedSends: this.#blockedSends,
    };
  }

  #pendingBlocked(): number {
    let n = 0;
    for (const b of this.#blocked) n += b.end - b.index;
    return n;
  }

  #reachedMarker(): boolean {
    return this.#markers.length > 0 &&
      this.#markers[0].position <= this.#removed;
  }

  /** Queues `items[start..end)`, extending the last chunk when it continues it. */
  #admit(items: readonly T[], start: number, end: number): void {
    const last = this.#chunks.length > this.#first
      ? this.#chunks[this.#chunks.length - 1]
      : undefined;
    if (last !== undefined && last.items === items && last.end === start) last.end = end;
    else this.#chunks.push({ items, start, end });
    const n = end - start;
    this.#size += n;
    this.#enqueued += n;
    if (this.#size > this.#highWater) this.#highWater = this.#size;
  }

  /** Removes the head chunk. */
  #shift(): void {
    const first = ++this.#first;
    const chunks = this.#chunks;
    if (first === chunks.length) {
      chunks.length = 0;
      this.#first = 0;
    } else if (first >= 64 && first * 2 >= chunks.length) {
      chunks.splice(0, first);
      this.#first = 0;
    }
  }

  #dropOldest(reason: DropReason): void {
    const head = this.#chunks[this.#first];
    const oldest = head.items[head.start++];
    if (head.start === head.end) this.#shift();
    this.#size--;
    this.#removed++;
    this.#drop(oldest, reason);
  }

  #drop(message: T, reason: DropReason): void {
    this.#dropped[reason]++;
    this.#onDrop?.(message, reason);
  }

  #admitBlocked(): void {
    while (this.#blocked.length > 0 && this.#size < this.capacity) {
      const b = this.#blocked[0];
      const take = Math.min(b.end - b.index, this.capacity - this.#size);
      this.#admit(b.items, b.index, b.index + take);
      b.index += take;
      if (b.index === b.end) {
        this.#blocked.shift();
        this.#blockedSends++;
        b.resolve();
      }
    }
  }

  #wake(): void {
    const receiver = this.#receiver;
    if (receiver) {
      this.#receiver = undefined;
      receiver();
    }
  }
}
