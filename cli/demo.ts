/**
 * `sluice demo`: runs an embedded pipeline that needs no services.
 *
 * @module
 */
import { buildWorkflow, parseWorkflowText } from "../runtime/config.ts";
import { MemoryDeadLetters } from "../runtime/dead_letter.ts";
import { createLogger } from "../runtime/log.ts";
import { Registry } from "../runtime/registry.ts";
import { builtins } from "../actors/mod.ts";
import { type CommandIo, EXIT, formatReport } from "./run.ts";

/** The embedded demo workflow. */
export const DEMO_WORKFLOW = `name: demo
nodes:
  - id: events
    type: GeneratorNode
    config: {message_count: 20, rate_per_second: 10, realtime: true}
  - id: out
    type: ConsoleSinkNode
connections:
  - {from: events, to: out}
`;

/**
 * Runs the demo.
 *
 * @param _args Unused.
 * @param io Output streams.
 * @returns The exit code.
 * @example
 * ```ts ignore
 * import { demoCommand } from "./demo.ts";
 * await demoCommand([]);
 * ```
 */
export async function demoCommand(_args: string[], io: CommandIo): Promise<number> {
  const workflow = buildWorkflow(parseWorkflowText(DEMO_WORKFLOW, { file: "<demo>" }), {
    registry: new Registry(builtins),
    deadLetters: new MemoryDeadLetters(),
    logger: createLogger({ write: (line) => io.err(line + "\n") }),
  });
  const report = await workflow.run({ handleSignals: true });
  io.err(formatReport(report));
  return report.status === "failed" ? EXIT.runtime : EXIT.ok;
}
