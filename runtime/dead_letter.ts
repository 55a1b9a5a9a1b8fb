/**
 * Dead letters: one place per workflow where failed messages go, with the
 * node, the error and the original message.
 *
 * @module
 */
import { ensureParentDir } from "./fs.ts";

/** One failed message. */
export interface DeadLetter {
  /** Clock time, ISO 8601. */
  time: string;
  /** The node where it failed. */
  node: string;
  /** Why it failed. */
  error: string;
  /** The error's class name. */
  errorName: string;
  /** How many times it was tried. */
  attempts: number;
  /** The original message (binary payloads as base64). */
  message: unknown;
  /** Extra context (for example topic, partition and offset). */
  context?: Record<string, unknown>;
}

/** Where dead letters are written. */
export interface DeadLetterSink {
  /** Stores one dead letter. Must not throw. */
  write(letter: DeadLetter): void;
  /** Makes everything written durable. */
  flush(): Promise<void>;
  /** Flushes and releases resources. */
  close(): Promise<void>;
}

/**
 * Keeps dead letters in memory (tests, the `TestDriver`).
 *
 * @example Collecting dead letters in a test
 * ```ts
 * import { MemoryDeadLetters } from "./dead_letter.ts";
 * const dl = new MemoryDeadLetters();
 * dl.write({ time: "", node: "n", error: "e", errorName: "Error", attempts: 1, message: 1 });
 * console.assert(dl.letters.length === 1);
 * ```
 */
export class MemoryDeadLetters implements DeadLetterSink {
  /** Every dead letter, in order. */
  readonly letters: DeadLetter[] = [];
  /**
   * Stores one dead letter as it is.
   *
   * @param letter The dead letter.
   */
  write(letter: DeadLetter): void {
    this.letters.push(letter);
  }
  /**
   * Nothing to flush: letters are kept in memory.
   *
   * @returns A resolved promise.
   */
  flush(): Promise<void> {
    return Promise.resolve();
  }
  /**
   * Nothing to close; the letters stay readable.
   *
   * @returns A resolved promise.
   */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * Makes a message JSON-safe for a dead letter: binary as base64, bigint as
 * string, cycles cut.
 *
 * @param message Any value.
 * @returns A JSON-serialisable value.
 * @example Binary payloads become base64
 * ```ts
 * import { toJsonSafe } from "./dead_letter.ts";
 * console.assert(JSON.stringify(toJsonSafe(new Uint8Array([1]))) === '{"base64":"AQ=="}');
 * ```
 */
export function toJsonSafe(message: unknown): unknown {
  const seen = new WeakSet<object>();
  const walk = (v: unknown, depth: number): unknown => {
    if (v instanceof Uint8Array) {
      let binary = "";
      for (let i = 0; i < v.length; i++) binary += String.fromCharCode(v[i]);
      return { base64: btoa(binary) };
    }
    if (typeof v === "bigint") return v.toString();
    if (typeof v === "number" && !Number.isFinite(v)) return String(v);
    if (typeof v === "function" || typeof v === "symbol") return String(v);
    if (v === null || typeof v !== "object") return v;
    if (v instanceof Date) return v.toISOString();
    if (seen.has(v) || depth > 64) return "[cycle or too deep]";
    seen.add(v);
    if (Array.isArray(v)) return v.map((x) => walk(x, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if (k === "__proto__") continue;
      out[k] = walk(x, depth + 1);
    }
    return out;
  };
  return walk(message, 0);
}

/**
 * Appends dead letters to an NDJSON file, created on the first letter.
 *
 * @example Writing dead letters to a temporary file
 * ```ts
 * import { FileDeadLetters } from "./dead_letter.ts";
 * const path = await Deno.makeTempFile();
 * const dl = new FileDeadLetters(path);
 * dl.write({ time: "", node: "n", error: "e", errorName: "Error", attempts: 1, message: 1 });
 * await dl.close();
 * console.assert((await Deno.readTextFile(path)).includes('"node":"n"'));
 * ```
 */
export class FileDeadLetters implements DeadLetterSink {
  /** The file path. */
  readonly path: string;
  #pending: string[] = [];
  #file: Deno.FsFile | undefined;
  #encoder = new TextEncoder();
  /**
   * Creates a sink; the file is opened (and created if missing) on the first
   * flush that has letters to write.
   *
   * @param path The NDJSON file to append to.
   */
  constructor(path: string) {
    this.path = path;
  }
  /**
   * Queues one letter; written on the next flush.
   *
   * @param letter The dead letter; its message is made JSON-safe first.
   */
  write(letter: DeadLetter): void {
    this.#pending.push(JSON.stringify({ ...letter, message: toJsonSafe(letter.message) }));
  }
  /**
   * Appends the queued letters.
   *
   * @returns A promise that resolves once they are written.
   */
  async flush(): Promise<void> {
    if (this.#pending.length === 0) return;
    const text = this.#pending.join("\n") + "\n";
    this.#pending = [];
    if (!this.#file) {
      await ensureParentDir(this.path);
      this.#file = await Deno.open(this.path, { append: true, create: true });
    }
    const bytes = this.#encoder.encode(text);
    let written = 0;
    while (written < bytes.length) written += await this.#file.write(bytes.subarray(written));
  }
  /**
   * Flushes and closes the file.
   *
   * @returns A promise that resolves once the file is closed.
   */
  async close(): Promise<void> {
    await this.flush();
    this.#file?.close();
    this.#file = undefined;
  }
}
