/**
 * The user-code side of CodeNode: how a module's default export is applied to
 * a batch ({@linkcode applyCode}, shared by both modes), and the message loop
 * an isolated worker runs ({@linkcode serveCodeModule}).
 *
 * Importing this module has no side effects: the worker's bootstrap calls
 * {@linkcode serveCodeModule} with the user's module.
 *
 * @module
 */

/** How the function is called: once per message, or once per batch. */
export type CodeMode = "message" | "batch";

/** What user code is given besides its input. Plain data, the same in both modes. */
export interface CodeContext {
  /** The CodeNode's id. */
  nodeId: string;
  /** The workflow clock's time when the batch was handed over, epoch milliseconds. */
  time: number;
}

/**
 * A module's default export. In `message` mode it gets one message, in
 * `batch` mode the array of messages of one batch; it may be async.
 */
export type CodeFunction = (input: unknown, ctx: CodeContext) => unknown;

/** How results become messages. */
export interface CodeOptions {
  /** `message` or `batch`. */
  mode: CodeMode;
  /** `message` mode: emit the elements of an array result instead of the array. */
  flatten: boolean;
}

/** A message the function failed on (the error travels as plain data). */
export interface CodeFailure {
  /** Index of the message in the batch. */
  index: number;
  /** The error's class name (`TypeError`, `NotCapable`, ...). */
  name: string;
  /** The error's message. */
  message: string;
}

/** The outcome of one batch. */
export interface CodeResult {
  /** The messages to emit, in order. */
  emitted: unknown[];
  /**
   * For each emitted message, the index of the input message it came from;
   * `-1` for the output of a whole batch (`batch` mode).
   */
  origins: number[];
  /** The messages the function failed on. */
  failures: CodeFailure[];
}

/** What the parent sends to an isolated worker. */
export interface CodeRunRequest {
  /** Correlates the response. */
  id: number;
  /** The batch. */
  messages: unknown[];
  /** Mode and flattening. */
  options: CodeOptions;
  /** The context for this batch. */
  context: CodeContext;
}

/** What an isolated worker sends back. */
export type CodeWorkerResponse =
  | { type: "ready" }
  | { type: "load-error"; message: string }
  | { type: "result"; id: number; result: CodeResult }
  | { type: "crash"; message: string };

/** The part of a worker's global scope {@linkcode serveCodeModule} uses. */
export interface CodeWorkerScope {
  /** Sends to the parent. */
  postMessage(message: CodeWorkerResponse): void;
  /** Receives from the parent. */
  onmessage: ((event: MessageEvent<CodeRunRequest>) => unknown) | null;
  /** A worker's global scope: where uncaught errors and unhandled rejections are caught. */
  addEventListener?(type: "error" | "unhandledrejection", listener: (event: Event) => void): void;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `${typeof value}`;
}

function failure(index: number, error: unknown): CodeFailure {
  if (error instanceof Error) return { index, name: error.name, message: error.message };
  let message: string;
  try {
    message = String(error);
  } catch {
    message = "unprintable error";
  }
  return { index, name: typeof error, message };
}

function push(result: CodeResult, value: unknown, origin: number, flatten: boolean): void {
  if (value === undefined || value === null) return;
  if (flatten && Array.isArray(value)) {
    for (const item of value) {
      if (item === undefined || item === null) continue;
      result.emitted.push(item);
      result.origins.push(origin);
    }
    return;
  }
  result.emitted.push(value);
  result.origins.push(origin);
}

async function callBatch(
  fn: CodeFunction,
  messages: unknown[],
  ctx: CodeContext,
): Promise<unknown[]> {
  const out = await fn(messages, ctx);
  if (out === undefined || out === null) return [];
  if (!Array.isArray(out)) {
    throw new TypeError(
      `a batch mode function must return an array, undefined or null; found ${describe(out)}`,
    );
  }
  return out;
}

/**
 * Applies a user function to a batch.
 *
 * - `message` mode: the function is called per message, in order (awaited
 *   when it returns a promise). A result of `undefined` or `null` emits
 *   nothing; anything else is one message, except that with `flatten` an
 *   array is emitted element by element (its `null`/`undefined` elements
 *   skipped). A throw fails that message only.
 * - `batch` mode: the function is called once with the batch and must
 *   return an array (each element not `null`/`undefined` is emitted),
 *   `undefined` or `null`. When it throws, it is called again with each
 *   message alone, so only the messages it fails on are reported.
 *
 * @param fn The function.
 * @param messages The batch (not modified).
 * @param options Mode and flattening.
 * @param context Passed to the function.
 * @returns What to emit and which messages failed.
 * @example Flattening and a failing message
 * ```ts
 * import { applyCode } from "./code_worker.ts";
 * const fn = (m: unknown) => {
 *   if (m === 0) throw new RangeError("zero");
 *   return [m, m];
 * };
 * const result = await applyCode(fn as (m: unknown) => unknown, [1, 0, 2], {
 *   mode: "message",
 *   flatten: true,
 * }, { nodeId: "n", time: 0 });
 * console.assert(result.emitted.join() === "1,1,2,2");
 * console.assert(result.failures[0].index === 1 && result.failures[0].name === "RangeError");
 * ```
 */
export async function applyCode(
  fn: CodeFunction,
  messages: unknown[],
  options: CodeOptions,
  context: CodeContext,
): Promise<CodeResult> {
  const result: CodeResult = { emitted: [], origins: [], failures: [] };
  if (options.mode === "message") {
    for (let i = 0; i < messages.length; i++) {
      try {
        push(result, await fn(messages[i], context), i, options.flatten);
      } catch (error) {
        result.failures.push(failure(i, error));
      }
    }
    return result;
  }
  try {
    for (const value of await callBatch(fn, messages.slice(), context)) {
      push(result, value, -1, false);
    }
    return result;
  } catch (error) {
    if (messages.length === 1) {
      result.failures.push(failure(0, error));
      return result;
    }
  }
  // Find the failing messages by calling the function with each one alone.
  for (let i = 0; i < messages.length; i++) {
    try {
      for (const value of await callBatch(fn, [messages[i]], context)) {
        push(result, value, i, false);
      }
    } catch (error) {
      result.failures.push(failure(i, error));
    }
  }
  return result;
}

/**
 * Drops the outputs that cannot be structured-cloned (functions, symbols...),
 * failing the messages they came from, so the rest can still be posted.
 */
function cloneable(result: CodeResult, count: number): CodeResult {
  const failed = new Map<number, CodeFailure>(result.failures.map((f) => [f.index, f]));
  for (let i = 0; i < result.emitted.length; i++) {
    try {
      structuredClone(result.emitted[i]);
    } catch (error) {
      const origin = result.origins[i];
      const indexes = origin === -1 ? Array.from({ length: count }, (_, k) => k) : [origin];
      for (const index of indexes) {
        if (!failed.has(index)) {
          const f = failure(index, error);
          failed.set(index, { ...f, message: `the result cannot be sent back: ${f.message}` });
        }
      }
    }
  }
  const out: CodeResult = { emitted: [], origins: [], failures: [] };
  for (let i = 0; i < result.emitted.length; i++) {
    const origin = result.origins[i];
    if (origin === -1 ? failed.size > 0 : failed.has(origin)) continue;
    out.emitted.push(result.emitted[i]);
    out.origins.push(origin);
  }
  out.failures = [...failed.values()].sort((a, b) => a.index - b.index);
  return out;
}

/**
 * Serves a user module inside an isolated worker: reports whether its
 * default export is a function (`ready` or `load-error`), then answers each
 * {@linkcode CodeRunRequest} with a `result`.
 *
 * @param module The user module's namespace.
 * @param scope The worker's global scope. @default {globalThis}
 * @example A scope in memory
 * ```ts
 * import { type CodeWorkerResponse, type CodeWorkerScope, serveCodeModule } from "./code_worker.ts";
 * const sent: CodeWorkerResponse[] = [];
 * const scope: CodeWorkerScope = { postMessage: (m) => void sent.push(m), onmessage: null };
 * serveCodeModule({ default: (n: number) => n + 1 }, scope);
 * await scope.onmessage!(new MessageEvent("message", {
 *   data: { id: 1, messages: [1, 2], options: { mode: "message", flatten: false }, context: { nodeId: "n", time: 0 } },
 * }));
 * console.assert(sent[0].type === "ready");
 * console.assert(sent[1].type === "result" && sent[1].result.emitted.join() === "2,3");
 * ```
 */
export function serveCodeModule(
  module: Record<string, unknown>,
  scope: CodeWorkerScope = globalThis as unknown as CodeWorkerScope,
): void {
  const fn = module.default;
  if (typeof fn !== "function") {
    scope.postMessage({
      type: "load-error",
      message: `expected a default export that is a function, found ${
        "default" in module ? describe(fn) : "no default export"
      }`,
    });
    return;
  }
  // An error thrown outside a call (in a timer or a stray promise the module
  // started) is reported to the parent as a crash instead of being printed
  // and propagated: the parent replaces the worker.
  const crash = (event: Event, reason: unknown) => {
    event.preventDefault();
    scope.postMessage({ type: "crash", message: failure(0, reason).message });
  };
  scope.addEventListener?.("error", (event) => crash(event, (event as ErrorEvent).error));
  scope.addEventListener?.(
    "unhandledrejection",
    (event) => crash(event, (event as PromiseRejectionEvent).reason),
  );
  scope.onmessage = async (event) => {
    const { id, messages, options, context } = event.data;
    const result = await applyCode(fn as CodeFunction, messages, options, context);
    try {
      scope.postMessage({ type: "result", id, result });
    } catch {
      scope.postMessage({ type: "result", id, result: cloneable(result, messages.length) });
    }
  };
  scope.postMessage({ type: "ready" });
}
