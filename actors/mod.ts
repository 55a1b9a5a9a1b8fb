/**
 * The built-in node types. `builtins` is the list the default registry is
 * built from; nothing registers itself on import.
 *
 * @example
 * ```ts
 * import { builtins } from "./mod.ts";
 * import { Registry } from "../runtime/registry.ts";
 * const registry = new Registry(builtins);
 * console.assert(registry.has("GeneratorNode"));
 * ```
 *
 * @module
 */
import type { NodeSpec } from "../runtime/registry.ts";
import { GeneratorNode } from "./sources/generator.ts";
import { FunctionNode } from "./processors/function.ts";
import { ConsoleSinkNode } from "./sinks/console.ts";
import { FileSinkNode } from "./sinks/file.ts";

export {
  type GeneratedEvent,
  generateEvent,
  generator,
  GeneratorNode,
} from "./sources/generator.ts";
export {
  type BatchFunction,
  type FunctionConfig,
  FunctionNode,
  map,
  mapBatch,
  type MessageFunction,
} from "./processors/function.ts";
export { consoleSink, ConsoleSinkNode, messageLine } from "./sinks/console.ts";
export { fileSink, FileSinkNode, resolvePath } from "./sinks/file.ts";

/** Every built-in node type. */
export const builtins: readonly NodeSpec[] = [
  GeneratorNode,
  FunctionNode,
  ConsoleSinkNode,
  FileSinkNode,
];
