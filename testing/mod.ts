/**
 * Test helpers for sluice workflows: the {@linkcode TestDriver} that runs a
 * whole workflow in memory on a virtual clock, plus the virtual clock and
 * in-memory dead letters, for `deno test`.
 *
 * @example Testing a workflow file's pipeline without its services
 * ```ts
 * import { TestDriver } from "./mod.ts";
 * const driver = TestDriver.fromWorkflowText(`
 * nodes:
 *   - {id: events, type: GeneratorNode}
 *   - {id: out, type: ConsoleSinkNode}
 * connections:
 *   - {from: events, to: out}
 * `);
 * driver.send("events", [{ id: 1 }, { id: 2 }]);
 * const { outputs, deadLetters } = await driver.finish();
 * console.assert(outputs.out.length === 2 && deadLetters.length === 0);
 * ```
 *
 * @module
 */
export { VirtualClock } from "../runtime/clock.ts";
export { MemoryDeadLetters } from "../runtime/dead_letter.ts";
export {
  type SendOptions,
  TestDriver,
  type TestDriverOptions,
  type TestDriverTextOptions,
  type TestResult,
} from "./test_driver.ts";
