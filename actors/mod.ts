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
export { eventFilter, type EventFilterConfig, EventFilterNode } from "./processors/filter.ts";
export {
  compileTemplate,
  compileTransformations,
  compileWritePath,
  deadLetterContext,
  EventDraft,
  eventTransform,
  type EventTransformConfig,
  EventTransformNode,
  type Template,
  TRANSFORM_OPERATIONS,
  type Transformation,
  type TransformBatchResult,
  TransformError,
  type TransformOperation,
  type TransformOptions,
  type TransformPipeline,
} from "./processors/transform.ts";
export {
  type EnrichmentRule,
  eventRouter,
  type RouterConfig,
  RouterNode,
  routerPorts,
  type RoutingRule,
  UNMATCHED_PORT,
} from "./processors/router.ts";
export { consoleSink, ConsoleSinkNode, messageLine } from "./sinks/console.ts";
export { fileSink, FileSinkNode, resolvePath } from "./sinks/file.ts";
export {
  type EventFormat,
  type EventStreamConfig,
  EventStreamNode,
  eventStream,
  KafkaDecodeError,
  type KafkaEvent,
  kafkaEvent,
  type KafkaMetadata,
  OffsetTracker,
} from "./sources/kafka.ts";
export {
  type KafkaAcks,
  KafkaRecordEncoder,
  KafkaSerializationError,
  kafkaSink,
  type KafkaSinkConfig,
  KafkaSinkNode,
} from "./sinks/kafka.ts";
export {
  createKafkaClient,
  type KafkaConnectionConfig,
  type KafkaSaslConfig,
  type KafkaSslConfig,
  parseBrokers,
} from "./kafka_client.ts";

export {
  type Batch,
  batch,
  type BatchConfig,
  BatchNode,
  type BatchSizeInput,
  type BatchTrigger,
  nextBatchSize,
} from "./processors/batch.ts";
export {
  HEALTH_ALERT_TYPES,
  type HealthAlert,
  type HealthAlertType,
  type HealthMetrics,
  healthMonitor,
  type HealthMonitorConfig,
  HealthMonitorNode,
  type HealthReport,
  type HealthThresholds,
  type NodeHealth,
} from "./processors/health.ts";
export {
  applyCode,
  code,
  type CodeConfig,
  type CodeContext,
  type CodeFailure,
  type CodeFunction,
  type CodeMode,
  CodeModuleError,
  CodeNode,
  type CodeOptions,
  type CodeResult,
  CodeWorkerError,
  resolveModuleUrl,
} from "./processors/code.ts";

export {
  type WindowConfig,
  type WindowOutput,
  window,
  WindowNode,
} from "./processors/window.ts";
export {
  type WindowEngineOptions,
  WindowEngine,
  type WindowRecord,
  type WindowType,
} from "./processors/window_engine.ts";
export {
  Accumulator,
  AGGREGATION_NAMES,
  type AggregationName,
  QuantileSketch,
} from "./processors/aggregates.ts";
export {
  safeUrl,
  webSocket,
  type WebSocketBatch,
  type WebSocketConfig,
  WebSocketConnection,
  WebSocketConnectionError,
  WebSocketFrameError,
  WebSocketHandshakeError,
  WebSocketNode,
  WebSocketProtocolError,
  WebSocketTimeoutError,
} from "./sources/websocket.ts";
export {
  webSocketClientSink,
  type WebSocketClientSinkConfig,
  WebSocketClientSinkNode,
} from "./sinks/websocket_client.ts";
export {
  type SlowClientPolicy,
  webSocketServerSink,
  type WebSocketServerSinkConfig,
  WebSocketServerSinkNode,
} from "./sinks/websocket_server.ts";

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
