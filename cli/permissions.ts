/**
 * The Deno permissions a workflow needs: the CLI checks them before it
 * starts anything and names the flags that are missing, so a workflow never
 * needs more than `deno run` with exactly those flags.
 *
 * @module
 */
import type { Registry } from "../runtime/registry.ts";
import type { Workflow } from "../runtime/workflow.ts";

/** Every permission the CLI itself needs to run a workflow file. */
export const BASE_PERMISSIONS: readonly string[] = [
  "--allow-read", // the workflow file and node modules
  "--allow-env", // ${VAR} interpolation
  "--allow-write", // the dead-letter file
];

const FLAG_TO_NAME: Record<string, Deno.PermissionName> = {
  "--allow-read": "read",
  "--allow-write": "write",
  "--allow-net": "net",
  "--allow-env": "env",
  "--allow-sys": "sys",
  "--allow-run": "run",
  "--allow-ffi": "ffi",
};

/**
 * The permission flags a workflow needs: the CLI's own plus every node type's.
 *
 * @param workflow The workflow.
 * @param registry The registry it was built from.
 * @param extra Flags the command needs besides (for example `--allow-net` for `--metrics-port`).
 * @returns Sorted, without duplicates.
 * @example
 * ```ts
 * import { requiredPermissions } from "./permissions.ts";
 * import { Registry, Workflow, builtins } from "../mod.ts";
 * const registry = new Registry(builtins);
 * const wf = new Workflow({ registry }).addNode("GeneratorNode", "g", {});
 * console.assert(requiredPermissions(wf, registry).includes("--allow-read"));
 * ```
 */
export function requiredPermissions(
  workflow: Workflow,
  registry: Registry,
  extra: readonly string[] = [],
): string[] {
  const flags = new Set([...BASE_PERMISSIONS, ...extra]);
  for (const node of workflow.nodes) {
    for (const flag of registry.get(node.type)?.permissions ?? []) flags.add(flag);
  }
  return [...flags].sort();
}

/**
 * The flags among `flags` whose permission this process does not have.
 * Unstable flags (`--unstable-*`) are not permissions and are not checked.
 *
 * @param flags Permission flags such as `--allow-net`.
 * @returns The missing ones.
 * @example
 * ```ts
 * import { missingPermissions } from "./permissions.ts";
 * console.assert(Array.isArray(missingPermissions(["--allow-read"])));
 * ```
 */
export function missingPermissions(flags: readonly string[]): string[] {
  const missing: string[] = [];
  for (const flag of flags) {
    const name = FLAG_TO_NAME[flag];
    if (!name) continue;
    if (Deno.permissions.querySync({ name }).state !== "granted") missing.push(flag);
  }
  return missing;
}
