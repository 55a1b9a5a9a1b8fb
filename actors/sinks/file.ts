/**
 * FileSinkNode: appends messages to a file as NDJSON, flushed on drain.
 *
 * @module
 */
import type { Actor, ActorContext } from "../../runtime/actor.ts";
import type { NodeSpec } from "../../runtime/registry.ts";
import { s, type Schema } from "../../runtime/schema.ts";
import type { NodeDef } from "../../runtime/flow.ts";
import { messageLine } from "./console.ts";
import { ensureParentDir } from "../../runtime/fs.ts";

/** Config of FileSinkNode. */
export interface FileSinkConfig {
  /** File to write; relative paths resolve against the workflow file. */
  path: string;
  /** Append instead of replacing the file at start. @default {false} */
  append: boolean;
}

const fileConfig: Schema<FileSinkConfig> = s.object({
  path: s.string({ nonEmpty: true, doc: "File to write; relative to the workflow file." }),
  append: s.boolean({
    default: false,
    doc: "Append to an existing file instead of replacing it at start.",
  }),
});

/**
 * Resolves a path from a config against a base directory.
 *
 * @param baseDir The directory of the workflow file.
 * @param path The configured path.
 * @returns An absolute path, or `path` when it is absolute already.
 * @example A relative path
 * ```ts
 * import { resolvePath } from "./file.ts";
 * console.assert(resolvePath("/a", "b.txt") === "/a/b.txt");
 * ```
 */
export function resolvePath(baseDir: string, path: string): string {
  if (path.startsWith("/") || /^[A-Za-z]:[\\/]/.test(path)) return path;
  return `${baseDir.replace(/[\\/]+$/, "")}/${path}`;
}

class FileSinkActor implements Actor {
  #path: string;
  #append: boolean;
  #file: Deno.FsFile | undefined;
  #encoder = new TextEncoder();
  #state: Map<string, unknown>;
  constructor(config: FileSinkConfig, baseDir: string, state: Map<string, unknown>) {
    this.#path = resolvePath(baseDir, config.path);
    this.#append = config.append;
    this.#state = state;
  }
  async start(): Promise<void> {
    // Truncate only on the first start: a restart must not erase what was written.
    const truncate = !this.#append && !this.#state.has("opened");
    await ensureParentDir(this.#path);
    this.#file = await Deno.open(this.#path, {
      create: true,
      write: true,
      truncate,
      append: !truncate,
    });
    this.#state.set("opened", true);
  }
  async handle(batch: unknown[], _ctx: ActorContext): Promise<void> {
    let text = "";
    for (const m of batch) text += messageLine(m) + "\n";
    const bytes = this.#encoder.encode(text);
    let written = 0;
    while (written < bytes.length) written += await this.#file!.write(bytes.subarray(written));
  }
  async drain(): Promise<void> {
    await this.#file?.sync();
  }
  close(): void {
    this.#file?.close();
    this.#file = undefined;
  }
}

/** The FileSinkNode type. */
export const FileSinkNode: NodeSpec<FileSinkConfig> = {
  type: "FileSinkNode",
  kind: "sink",
  description:
    "Writes each message as one line of JSON (NDJSON) to a file; each batch is written before the next is taken, and the file is synced on drain.",
  config: fileConfig,
  permissions: ["--allow-write"],
  create: (config, env) => new FileSinkActor(config, env.baseDir, env.persistent),
};

/**
 * A typed FileSinkNode.
 *
 * @param config The node's config.
 * @returns A node definition accepting anything.
 * @example A file sink for the fluent builder
 * ```ts
 * import { fileSink } from "./file.ts";
 * console.assert(fileSink({ path: "out.ndjson" }).type === "FileSinkNode");
 * ```
 */
export function fileSink(config: { path: string; append?: boolean }): NodeDef<unknown, never> {
  return { type: "FileSinkNode", config };
}
