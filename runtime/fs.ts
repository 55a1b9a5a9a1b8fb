/**
 * File-system helpers shared by the runtime and the file-writing nodes.
 *
 * @module
 */

/**
 * Creates the directory a file goes into, when it does not exist yet.
 *
 * @param path A file path.
 * @returns A promise that resolves when the directory exists.
 * @example Making room for an output file
 * ```ts
 * import { ensureParentDir } from "./fs.ts";
 * const dir = await Deno.makeTempDir();
 * await ensureParentDir(`${dir}/a/b/out.ndjson`);
 * console.assert((await Deno.stat(`${dir}/a/b`)).isDirectory);
 * ```
 */
export async function ensureParentDir(path: string): Promise<void> {
  const i = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  if (i <= 0) return;
  await Deno.mkdir(path.slice(0, i), { recursive: true });
}
