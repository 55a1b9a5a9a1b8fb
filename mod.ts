/**
 * sluice: an actor-based stream runtime for Deno. Each node is an actor with
 * a bounded mailbox whose overflow policy is the backpressure; a supervisor
 * restarts failed actors with exponential backoff.
 *
 * @example A pipeline in TypeScript
 * ```ts
 * import { Flow, Registry, builtins, generator, map, VirtualClock } from "./mod.ts";
 * const flow = new Flow({ registry: new Registry(builtins), clock: new VirtualClock(0) });
 * const events = flow.add("events", generator({ message_count: 100, start_time: 0 }));
 * const values = flow.add("values", map((e: { data: { value: number } }) => e.data.value));
 * flow.connect(events, values);
 * const report = await flow.run();
 * console.assert(report.nodes[1].messagesOut === 100);
 * ```
 *
 * @module
 */
export * from "./runtime/actor.ts";
export * from "./runtime/backoff.ts";
export * from "./runtime/clock.ts";
export * from "./runtime/codegen.ts";
export * from "./runtime/conditions.ts";
export * from "./runtime/config.ts";
export * from "./runtime/dead_letter.ts";
export * from "./runtime/errors.ts";
export * from "./runtime/fs.ts";
export * from "./runtime/flow.ts";
export * from "./runtime/log.ts";
export * from "./runtime/mailbox.ts";
export * from "./runtime/metrics.ts";
export * from "./runtime/registry.ts";
export * from "./runtime/schema.ts";
export * from "./runtime/supervisor.ts";
export * from "./runtime/workflow.ts";
export * from "./runtime/time.ts";
export * from "./runtime/path.ts";
export {
  type SendOptions,
  TestDriver,
  type TestDriverOptions,
  type TestDriverTextOptions,
  type TestResult,
} from "./testing/test_driver.ts";
export * from "./actors/mod.ts";
// Config types of built-in nodes that public signatures name; not (yet)
// re-exported by actors/mod.ts.
export type { GeneratorConfig } from "./actors/sources/generator.ts";
export type { ConsoleSinkConfig } from "./actors/sinks/console.ts";
export type { FileSinkConfig } from "./actors/sinks/file.ts";
