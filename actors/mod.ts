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
import { EventFilterNode } from "./processors/filter.ts";
import { EventTransformNode } from "./processors/transform.ts";
import { RouterNode } from "./processors/router.ts";
import { BatchNode } from "./processors/batch.ts";
import { HealthMonitorNode } from "./processors/health.ts";
import { CodeNode } from "./processors/code.ts";
import { WindowNode } from "./processors/window.ts";
import { ConsoleSinkNode } from "./sinks/console.ts";
import { FileSinkNode } from "./sinks/file.ts";
import { EventStreamNode } from "./sources/kafka.ts";
import { KafkaSinkNode } from "./sinks/kafka.ts";
import { WebSocketNode } from "./sources/websocket.ts";
import { WebSocketClientSinkNode } from "./sinks/websocket_client.ts";
import { WebSocketServerSinkNode } from "./sinks/websocket_server.ts";

export * from "./sources/generator.ts";
export * from "./processors/function.ts";
export * from "./processors/filter.ts";
export * from "./processors/transform.ts";
export * from "./processors/router.ts";
export * from "./sinks/console.ts";
export * from "./sinks/file.ts";
export {
  type EventFormat,
  eventStream,
  type EventStreamConfig,
  EventStreamNode,
  KafkaDecodeError,
  type KafkaEvent,
  type KafkaMetadata,
} from "./sources/kafka.ts";
export {
  type KafkaAcks,
  KafkaSerializationError,
  kafkaSink,
  type KafkaSinkConfig,
  KafkaSinkNode,
} from "./sinks/kafka.ts";
export {
  type KafkaConnectionConfig,
  type KafkaSaslConfig,
  type KafkaSslConfig,
  parseBrokers,
} from "./kafka_client.ts";
export * from "./processors/batch.ts";
export * from "./processors/health.ts";
export * from "./processors/code.ts";
export * from "./processors/window.ts";
export * from "./processors/window_engine.ts";
export * from "./processors/aggregates.ts";
export * from "./sources/websocket.ts";
export * from "./sinks/websocket_client.ts";
export * from "./sinks/websocket_server.ts";

/** Every built-in node type. */
export const builtins: readonly NodeSpec[] = [
  GeneratorNode,
  FunctionNode,
  EventFilterNode,
  EventTransformNode,
  RouterNode,
  BatchNode,
  HealthMonitorNode,
  CodeNode,
  WindowNode,
  ConsoleSinkNode,
  FileSinkNode,
  EventStreamNode,
  KafkaSinkNode,
  WebSocketNode,
  WebSocketClientSinkNode,
  WebSocketServerSinkNode,
];
