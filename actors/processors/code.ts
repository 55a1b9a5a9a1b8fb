/**
 * CodeNode: the reference guide's `PythonCodeNode`, in TypeScript. A module
 * named by the workflow handles the messages, in-process or isolated in a
 * Web Worker without any permission.
 *
 * This node is the only place where sluice runs code named by a workflow
 * file.
 *
 * ```yaml
 * - id: enrich
 *   type: CodeNode
 *   config: { module: ./code/enrich.ts, mode: message, isolate: true }
 * ```
 *
 * **The function.** The module's default export is called as
 * `fn(message, ctx)` in `message` mode, or `fn(messages, ctx)` in `batch`
 * mode, where `ctx` is `{nodeId, time}` (plain data, the same in both
 * modes); it may be async. See {@linkcode applyCode} for what its results
 * become. A message it throws on goes to the dead letters at once with the
 * error (counted as an error of the node; not retried, unlike a
 * FunctionNode's) and the stream goes on. It must not modify its input:
 * in-process, messages are shared with the other nodes reading the same
 * output.
 *
 * **In-process** (`isolate: false`, the default): the module is imported
 * into the host with the host's permissions (`--allow-read` at least, to
 * load it). Fast (close to a FunctionNode), but the module can do
 * anything the process can, an error it throws outside a call (in a timer)
 * reaches the host, and its module instance is shared by every CodeNode that
 * names it and survives restarts.
 *
 * **Isolated** (`isolate: true`): the module runs in a Web Worker created
 * with `deno: { permissions: "none" }`: reading or writing files, the
 * network, the environment, subprocesses, FFI, system information and
 * `import()` of a computed specifier all fail with a permission error, so the
 * message goes to the dead letters. Limits to know:
 *
 * - Deno 2.9 gates worker permissions behind `--unstable-worker-options`
 *   (or `"unstable": ["worker-options"]` in `deno.json`); `deno run`,
 *   `deno test`, `deno install` and `deno compile` need it. Without it Deno
 *   **exits the process** (code 70) when the node starts; this cannot be
 *   caught.
 * - The module graph (static imports, `import()` of a literal specifier,
 *   JSON imports, `npm:`/`jsr:`/`https:` modules) is loaded by the host
 *   with the host's permissions, before the sandbox applies: a module can
 *   statically import any JavaScript or JSON file the host may read. Scope
 *   the host's `--allow-read` accordingly.
 * - No CPU limit: a function that never returns blocks the node, and
 *   `Worker.terminate()` does not interrupt a busy loop, so the process
 *   cannot exit either.
 * - Messages and results are structured-cloned both ways: a message or a
 *   result that cannot be cloned (a function, a symbol) is dead-lettered.
 *   An error thrown outside a call crashes the worker: it is replaced and
 *   the batch is retried message by message, so the message that kills it
 *   ends in the dead letters.
 * - Cost, measured on a 2-core machine, 200 000 messages through
 *   `m => ({ n: m.n + 1 })`: with the guide's test events (6 fields, one
 *   nested object) about 2 000 000 messages/s in-process against 110 000 to
 *   170 000 isolated (12 to 20 times slower); with flat 2-field messages
 *   about 1 600 000 against 180 000 to 280 000 (6 to 8 times). The cost is
 *   the structured clone of every message and result; `batch` mode does not
 *   reduce it.
 *
 * @module
 */
import type { Actor, ActorContext } from "../../runtime/actor.ts";
import { type ConfigIssue, errorMessage } from "../../runtime/errors.ts";
import type { NodeDef } from "../../runtime/flow.ts";
import type { NodeSpec } from "../../runtime/registry.ts";
import { s, type Schema } from "../../runtime/schema.ts";
import { resolvePath } from "../sinks/file.ts";
import {
  applyCode,
  type CodeContext,
  type CodeFunction,
  type CodeMode,
  type CodeOptions,
  type CodeResult,
  type CodeRunRequest,
  type CodeWorkerResponse,
} from "./code_worker.ts";

export {
  applyCode,
  type CodeContext,
  type CodeFailure,
  type CodeFunction,
  type CodeMode,
  type CodeOptions,
  type CodeResult,
} from "./code_worker.ts";

/** Config of CodeNode. */
export interface CodeConfig {
  /**
   * The module whose default export handles the messages: a path relative to
   * the workflow file, an absolute path or a `file:` URL.
   */
  module: string;
  /**
   * `message`: the function gets one message; `batch`: the array of messages
   * the node takes at once (up to its mailbox's `batch_size`). @default {"message"}
   */
  mode: CodeMode;
  /** `message` mode: an array result is emitted element by element. @default {false} */
  flatten: boolean;
  /**
   * Run the module in a Web Worker with no permissions at all (no files, no
   * network, no environment, no subprocesses). Needs Deno's
   * `--unstable-worker-options`. @default {false}
   */
  isolate: boolean;
}

const codeConfig: Schema<CodeConfig> = s.object({
  module: s.string({
    nonEmpty: true,
    doc: "Module whose default export handles the messages: a path relative to the workflow " +
      "file, an absolute path or a file: URL.",
  }),
  mode: s.enum(["message", "batch"] as const, {
    default: "message",
    doc: "message: the function gets each message and returns one message (or undefined/null " +
      "for none); batch: it gets the messages taken at once (up to mailbox.batch_size) and " +
      "returns an array of messages.",
  }),
  flatten: s.boolean({
    default: false,
    doc: "message mode: emit the elements of an array result as separate messages.",
  }),
  isolate: s.boolean({
    default: false,
    doc: "Run the module in a Web Worker with no permissions (no files, network, env, run). " +
      "Needs Deno's --unstable-worker-options.",
  }),
});

/**
 * The module of a CodeNode could not be loaded: missing file, syntax error,
 * or no default export function. Thrown when the node starts (the supervisor
 * then restarts it, and the workflow fails once its restart budget is spent).
 *
 * @example Creating the error
 * ```ts
 * import { CodeModuleError } from "./code.ts";
 * const error = new CodeModuleError("./enrich.ts", "file not found");
 * console.assert(error.message.includes("./enrich.ts") && error.name === "CodeModuleError");
 * ```
 */
export class CodeModuleError extends Error {
  /** The module as the config names it. */
  readonly module: string;
  /**
   * Creates the error for one module.
   *
   * @param module The module as the config names it.
   * @param reason What went wrong.
   * @param options Standard error options (`cause`).
   */
  constructor(module: string, reason: string, options?: ErrorOptions) {
    super(`cannot load code module "${module}": ${reason}`, options);
    this.name = "CodeModuleError";
    this.module = module;
  }
}

/**
 * The isolated worker of a CodeNode died while it handled a batch (an
 * uncaught error outside the function call, for example in a timer the
 * module started). The batch is retried message by message on a new worker.
 *
 * @example Creating the error
 * ```ts
 * import { CodeWorkerError } from "./code.ts";
 * console.assert(new CodeWorkerError("./enrich.ts", "boom").name === "CodeWorkerError");
 * ```
 */
export class CodeWorkerError extends Error {
  /** The module as the config names it. */
  readonly module: string;
  /**
   * Creates the error for one module's worker.
   *
   * @param module The module as the config names it.
   * @param reason What the worker reported.
   * @param options Standard error options (`cause`).
   */
  constructor(module: string, reason: string, options?: ErrorOptions) {
    super(`the isolated worker of code module "${module}" failed: ${reason}`, options);
    this.name = "CodeWorkerError";
    this.module = module;
  }
}

const REMOTE = /^(?!file:)[A-Za-z][A-Za-z0-9+.-]+:/;
const WINDOWS_DRIVE = /^[A-Za-z]:[\\/]/;
const EXTENSIONS = /\.(ts|mts|tsx|js|mjs|jsx)$/;

/**
 * Resolves a CodeNode's `module` to a `file:` URL.
 *
 * @param baseDir The directory relative paths resolve against (the workflow file's).
 * @param module A relative or absolute path, or a `file:` URL.
 * @returns The module's URL.
 * @example Relative and absolute paths
 * ```ts
 * import { resolveModuleUrl } from "./code.ts";
 * console.assert(resolveModuleUrl("/flows", "./code/enrich.ts").href === "file:///flows/code/enrich.ts");
 * console.assert(resolveModuleUrl("/flows", "/opt/a b#1.ts").href === "file:///opt/a%20b%231.ts");
 * ```
 */
export function resolveModuleUrl(baseDir: string, module: string): URL {
  if (module.startsWith("file:")) return new URL(module);
  const path = resolvePath(baseDir, module).replace(/\\/g, "/");
  const url = new URL("file:///");
  // The pathname setter escapes spaces, "?" and "#", but not "%".
  url.pathname = (WINDOWS_DRIVE.test(path) ? "/" : "") + path.replace(/%/g, "%25");
  // Drop "." and ".." segments the way a file system would.
  return new URL(url.href);
}

/** Runs the user function on batches, in-process or in a worker. */
interface CodeRunner {
  run(messages: unknown[], options: CodeOptions, context: CodeContext): Promise<CodeResult>;
  close(): void;
}

async function assertExists(module: string, url: URL): Promise<void> {
  try {
    await Deno.stat(url);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new CodeModuleError(module, `no file at ${decodeURIComponent(url.pathname)}`, {
        cause: error,
      });
    }
    // Without read permission, let the import report the problem.
  }
}

/** The in-process runner: the module runs with the process's permissions. */
async function loadInProcess(module: string, url: URL): Promise<CodeRunner> {
  await assertExists(module, url);
  let namespace: Record<string, unknown>;
  try {
    namespace = await import(url.href);
  } catch (error) {
    throw new CodeModuleError(module, stripAnsi(errorMessage(error)), { cause: error });
  }
  const fn = namespace.default;
  if (typeof fn !== "function") {
    throw new CodeModuleError(
      module,
      `expected a default export that is a function, found ${
        "default" in namespace ? (fn === null ? "null" : typeof fn) : "no default export"
      }`,
    );
  }
  return {
    run: (messages, options, context) => applyCode(fn as CodeFunction, messages, options, context),
    close: () => {},
  };
}

// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;

function stripAnsi(text: string): string {
  return text.replace(ANSI, "");
}

/** What Deno's Worker constructor accepts beyond the web standard. */
type DenoWorkerOptions = WorkerOptions & { deno: { permissions: "none" } };

/**
 * The isolated runner: a module Web Worker with no permissions. Its entry is
 * a two-line bootstrap that imports the user module and this node's worker
 * side: a permission-less worker may not `import()` files itself, but its
 * entry module's static imports are loaded by the host.
 */
class WorkerRunner implements CodeRunner {
  #module: string;
  #worker: Worker;
  #nextId = 1;
  #pending:
    | { id: number; resolve: (r: CodeResult) => void; reject: (e: Error) => void }
    | undefined;
  #failure: CodeWorkerError | undefined;

  private constructor(module: string, worker: Worker) {
    this.#module = module;
    this.#worker = worker;
  }

  static async spawn(
    module: string,
    url: URL,
    nodeId: string,
    signal: AbortSignal,
  ): Promise<WorkerRunner> {
    await assertExists(module, url);
    const entry = new URL("./code_worker.ts", import.meta.url).href;
    const bootstrap = `import * as userModule from ${JSON.stringify(url.href)};\n` +
      `import { serveCodeModule } from ${JSON.stringify(entry)};\n` +
      `serveCodeModule(userModule);\n`;
    const blobUrl = URL.createObjectURL(new Blob([bootstrap], { type: "text/javascript" }));
    const options: DenoWorkerOptions = {
      type: "module",
      name: `sluice CodeNode ${nodeId}`,
      deno: { permissions: "none" },
    };
    // Without --unstable-worker-options, Deno exits the process here (exit
    // code 70, "Unstable API 'Worker.deno.permissions'"); it cannot be caught.
    const worker = new Worker(blobUrl, options);
    const runner = new WorkerRunner(module, worker);
    try {
      await runner.#ready(signal);
    } catch (error) {
      runner.close();
      throw error;
    } finally {
      URL.revokeObjectURL(blobUrl);
    }
    return runner;
  }

  #ready(signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      const done = () => signal.removeEventListener("abort", onAbort);
      this.#worker.onmessage = (event: MessageEvent<CodeWorkerResponse>) => {
        done();
        const data = event.data;
        if (data.type === "ready") {
          this.#listen();
          resolve();
        } else if (data.type === "load-error") {
          reject(new CodeModuleError(this.#module, data.message));
        }
      };
      this.#worker.onerror = (event: ErrorEvent) => {
        // Handled here: an unhandled worker error would reach the host's global scope.
        event.preventDefault();
        done();
        reject(new CodeModuleError(this.#module, stripAnsi(event.message)));
      };
    });
  }

  #listen(): void {
    const fail = (reason: string) => {
      this.#failure ??= new CodeWorkerError(this.#module, reason);
      const pending = this.#pending;
      this.#pending = undefined;
      pending?.reject(this.#failure);
    };
    this.#worker.onmessage = (event: MessageEvent<CodeWorkerResponse>) => {
      const data = event.data;
      if (data.type === "crash") return fail(data.message);
      if (data.type !== "result") return;
      const pending = this.#pending;
      if (pending?.id !== data.id) return;
      this.#pending = undefined;
      pending.resolve(data.result);
    };
    this.#worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      fail(stripAnsi(event.message));
    };
    this.#worker.onmessageerror = () => fail("a result could not be deserialized");
  }

  /** Whether the worker died and a new one is needed. */
  get failed(): boolean {
    return this.#failure !== undefined;
  }

  run(messages: unknown[], options: CodeOptions, context: CodeContext): Promise<CodeResult> {
    if (this.#failure) return Promise.reject(this.#failure);
    const id = this.#nextId++;
    const request: CodeRunRequest = { id, messages, options, context };
    try {
      this.#worker.postMessage(request);
    } catch {
      // Some message cannot be cloned (a function, a symbol...): send the others.
      return this.#runCloneable(messages, options, context);
    }
    return new Promise((resolve, reject) => this.#pending = { id, resolve, reject });
  }

  async #runCloneable(
    messages: unknown[],
    options: CodeOptions,
    context: CodeContext,
  ): Promise<CodeResult> {
    const sendable: unknown[] = [];
    const indexes: number[] = [];
    const failures: CodeResult["failures"] = [];
    messages.forEach((message, index) => {
      try {
        structuredClone(message);
        sendable.push(message);
        indexes.push(index);
      } catch (error) {
        failures.push({
          index,
          name: error instanceof Error ? error.name : "DataCloneError",
          message: `the message cannot be sent to an isolated worker: ${errorMessage(error)}`,
        });
      }
    });
    const result = sendable.length > 0
      ? await this.run(sendable, options, context)
      : { emitted: [], origins: [], failures: [] };
    // Map indexes back to the original batch.
    return {
      emitted: result.emitted,
      origins: result.origins.map((o) => o === -1 ? -1 : indexes[o]),
      failures: [...failures, ...result.failures.map((f) => ({ ...f, index: indexes[f.index] }))]
        .sort((a, b) => a.index - b.index),
    };
  }

  close(): void {
    this.#worker.terminate();
    const pending = this.#pending;
    this.#pending = undefined;
    pending?.reject(new CodeWorkerError(this.#module, "the worker was terminated"));
  }
}

class CodeActor implements Actor {
  #config: CodeConfig;
  #url: URL;
  #options: CodeOptions;
  #runner: CodeRunner | undefined;

  constructor(config: CodeConfig, baseDir: string) {
    this.#config = config;
    this.#url = resolveModuleUrl(baseDir, config.module);
    this.#options = { mode: config.mode, flatten: config.flatten };
  }

  async start(ctx: ActorContext): Promise<void> {
    this.#runner = await this.#load(ctx);
  }

  #load(ctx: ActorContext): Promise<CodeRunner> {
    return this.#config.isolate
      ? WorkerRunner.spawn(this.#config.module, this.#url, ctx.nodeId, ctx.signal)
      : loadInProcess(this.#config.module, this.#url);
  }

  async handle(batch: unknown[], ctx: ActorContext): Promise<void> {
    let runner = this.#runner;
    if (!runner || (runner instanceof WorkerRunner && runner.failed)) {
      runner?.close();
      this.#runner = undefined;
      runner = this.#runner = await this.#load(ctx);
    }
    const context: CodeContext = { nodeId: ctx.nodeId, time: ctx.clock.now() };
    // A dead worker rejects: the runtime retries the batch message by message.
    const result = await runner.run(batch, this.#options, context);
    for (const message of result.emitted) ctx.emit(message);
    for (const f of result.failures) {
      const error = new Error(f.message);
      error.name = f.name;
      ctx.metrics.errors++;
      ctx.metrics.lastError = f.message;
      ctx.deadLetter(batch[f.index], error, {
        module: this.#config.module,
        isolate: this.#config.isolate,
      });
    }
  }

  close(): void {
    this.#runner?.close();
    this.#runner = undefined;
  }
}

/** The CodeNode type. */
export const CodeNode: NodeSpec<CodeConfig> = {
  type: "CodeNode",
  kind: "processor",
  description:
    "Runs the default export of a TypeScript/JavaScript module (module: path relative to the workflow file) on each message (mode: message; the result is emitted unless undefined/null; flatten: true emits array elements) or on each batch (mode: batch; returns an array). A message the function throws on goes to the dead letters and the stream goes on. isolate: true runs the module in a Web Worker with no permissions (needs --unstable-worker-options); otherwise it runs in-process with the process's permissions.",
  config: codeConfig,
  permissions: ["--allow-read", "--unstable-worker-options"],
  validate(config, path, issues: ConfigIssue[]) {
    const module = config.module;
    if (REMOTE.test(module) && !WINDOWS_DRIVE.test(module)) {
      issues.push({
        path: `${path}.module`,
        message:
          `expected a local module (a path relative to the workflow file, an absolute path or a file: URL), found "${module}"`,
      });
    } else if (!EXTENSIONS.test(module)) {
      issues.push({
        path: `${path}.module`,
        message: `expected a .ts, .mts, .tsx, .js, .mjs or .jsx module, found "${module}"`,
      });
    } else if (module.startsWith("file:") || module.startsWith("/") || WINDOWS_DRIVE.test(module)) {
      // Relative paths are checked when the node starts: only then is the
      // workflow file's directory known.
      const url = resolveModuleUrl("/", module);
      try {
        Deno.statSync(url);
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) {
          issues.push({
            path: `${path}.module`,
            message: `no file at ${decodeURIComponent(url.pathname)}`,
          });
        }
      }
    }
    if (config.flatten && config.mode === "batch") {
      issues.push({
        path: `${path}.flatten`,
        message:
          "flatten applies to mode message only (a batch function's array is always flattened)",
      });
    }
  },
  create: (config, env) => new CodeActor(config, env.baseDir),
};

/**
 * A typed CodeNode for the fluent builder.
 *
 * @typeParam In What the module's function accepts.
 * @typeParam Out What it returns.
 * @param config The node's config.
 * @returns A node definition.
 * @example A typed CodeNode
 * ```ts
 * import { code } from "./code.ts";
 * const def = code<{ n: number }, { n: number }>({ module: "./double.ts", isolate: true });
 * console.assert(def.type === "CodeNode");
 * ```
 */
export function code<In = unknown, Out = unknown>(
  config: { module: string; mode?: CodeMode; flatten?: boolean; isolate?: boolean },
): NodeDef<In, Out> {
  return { type: "CodeNode", config };
}
