/**
 * Connecting an output of type A to an input of type B is a compile error in
 * the typed builder. `deno check` (part of `deno task test`) compiles this
 * file: each `@ts-expect-error` fails the check if the line below it compiles.
 */
import assert from "node:assert/strict";
import { Flow, node } from "../../runtime/flow.ts";
import { type GeneratedEvent, generator, map } from "../../actors/mod.ts";
import { quietWorkflow, testRegistry } from "../helpers.ts";

Deno.test("Flow connects compatible ports and runs", async () => {
  const { clock, deadLetters } = quietWorkflow();
  const flow = new Flow({ registry: testRegistry(), clock, deadLetters });
  const events = flow.add("events", generator({ message_count: 10, start_time: 0 }));
  const values = flow.add("values", map((e: GeneratedEvent) => e.data.value));
  const doubled = flow.add("doubled", map((n: number) => n * 2));
  const texts = flow.add("texts", map((n: number) => `#${n}`));
  const seen: string[] = [];
  const sink = flow.add("sink", map((t: string) => void seen.push(t)));
  flow.connect(events, values).connect(values, doubled).connect(doubled, texts).connect(
    texts,
    sink,
  );
  const report = await flow.run();
  assert.equal(report.status, "completed");
  assert.deepEqual(seen, Array.from({ length: 10 }, (_, i) => `#${i * 20}`));
});

Deno.test("Flow rejects ill-typed connections at compile time", () => {
  const { clock } = quietWorkflow();
  const flow = new Flow({ registry: testRegistry(), clock });
  const events = flow.add("events", generator({ message_count: 1 }));
  const numbers = flow.add("numbers", map((n: number) => n + 1));
  const strings = flow.add("strings", map((s: string) => s.length));
  // @ts-expect-error GeneratedEvent is not a number
  flow.connect(events, numbers);
  // @ts-expect-error number (the output of numbers) is not a string
  flow.connect(numbers, strings);
  const router = flow.add("router", node<GeneratedEvent, GeneratedEvent>("FunctionNode", {}));
  // @ts-expect-error a named port keeps the node's output type
  flow.connect(router.output("purchase"), numbers);
  flow.connect(router.output("purchase"), flow.add("ok", map((e: GeneratedEvent) => e.id)));
  // These lines only exist for the compiler; the workflow is never run.
  assert.ok(flow.workflow.connections.length === 4);
});
