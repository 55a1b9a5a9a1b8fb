import assert from "node:assert/strict";
import { ConfigError, RestartIntensityError } from "../../runtime/errors.ts";
import type { ActorContext } from "../../runtime/actor.ts";
import { s } from "../../runtime/schema.ts";
import { numbered, quietWorkflow, testRegistry } from "../helpers.ts";

Deno.test("Workflow delivers every message through a chain in order", async () => {
  const { workflow } = quietWorkflow();
  const out: unknown[] = [];
  workflow
    .addNode("ListSource", "src", { events: numbered(1000), chunk: 64 })
    .addNode("FunctionNode", "double", { fn: (e: { n: number }) => ({ n: e.n * 2 }) })
    .addNode("CollectSink", "sink", { into: out })
    .addConnection("src", "double")
    .addConnection("double", "sink");
  const report = await workflow.run();
  assert.equal(report.status, "completed");
  assert.deepEqual(out, numbered(1000).map((e) => ({ n: e.n * 2 })));
  const byId = Object.fromEntries(report.nodes.map((n) => [n.id, n]));
  assert.equal(byId.src.messagesOut, 1000);
  assert.equal(byId.double.messagesIn, 1000);
  assert.equal(byId.sink.messagesIn, 1000);
});

Deno.test("Workflow validation names the node and the field of every problem", async (t) => {
  const issuesOf = (build: (w: ReturnType<typeof quietWorkflow>["workflow"]) => void) => {
    const { workflow } = quietWorkflow();
    build(workflow);
    return workflow.validate().map((i) => `${i.path}: ${i.message}`);
  };
  await t.step("unknown type with a suggestion", () => {
    const issues = issuesOf((w) =>
      w.addNode("GeneratorNod", "g", {}).addNode("CollectSink", "s", { into: [] })
        .addConnection("g", "s")
    );
    assert.ok(
      issues.some((i) =>
        i.startsWith(
          'nodes[0].type: node "g": unknown node type "GeneratorNod"; did you mean "GeneratorNode"?',
        )
      ),
      issues.join("\n"),
    );
  });
  await t.step("duplicate id", () => {
    const issues = issuesOf((w) =>
      w.addNode("GeneratorNode", "g", {}).addNode("GeneratorNode", "g", {})
    );
    assert.ok(issues.includes('nodes[1].id: duplicate node id "g" (first declared at nodes[0])'));
  });
  await t.step("ill-typed and unknown config keys", () => {
    const issues = issuesOf((w) =>
      w.addNode("GeneratorNode", "g", { message_count: "ten", rate: 5 })
    );
    assert.ok(
      issues.includes(
        'nodes[0].config.message_count: node "g" (GeneratorNode): expected integer >= 0, found the string "ten"',
      ),
      issues.join("\n"),
    );
    assert.ok(
      issues.some((i) =>
        i.startsWith('nodes[0].config.rate: node "g" (GeneratorNode): unknown key "rate"')
      ),
      issues.join("\n"),
    );
  });
  await t.step("missing required config", () => {
    const issues = issuesOf((w) =>
      w.addNode("GeneratorNode", "g", {}).addNode("FileSinkNode", "f", {}).addConnection("g", "f")
    );
    assert.ok(
      issues.includes('nodes[1].config.path: node "f" (FileSinkNode): required string is missing'),
      issues.join("\n"),
    );
  });
  await t.step("unknown ports and nodes", () => {
    const issues = issuesOf((w) =>
      w.addNode("GeneratorNode", "g", {}).addNode("CollectSink", "sink", { into: [] })
        .addConnection("g", "sink", "outt").addConnection("g", "sinc")
    );
    assert.ok(
      issues.includes(
        'connections[0].from_port: node "g" (GeneratorNode) has no output port "outt"; did you mean "out"? (ports: out)',
      ),
      issues.join("\n"),
    );
    assert.ok(issues.includes('connections[1].to: unknown node "sinc"; did you mean "sink"?'));
  });
  await t.step("dangling input", () => {
    const issues = issuesOf((w) =>
      w.addNode("GeneratorNode", "g", {}).addNode("CollectSink", "s", { into: [] })
    );
    assert.ok(issues.includes('nodes[1]: node "s" (CollectSink) has no input connection'));
  });
  await t.step("cycle", () => {
    const fn = { fn: (x: unknown) => x };
    const issues = issuesOf((w) =>
      w.addNode("GeneratorNode", "g", {})
        .addNode("FunctionNode", "a", fn).addNode("FunctionNode", "b", fn)
        .addConnection("g", "a").addConnection("a", "b").addConnection("b", "a")
    );
    assert.ok(
      issues.includes("connections: the connections form a cycle: a -> b -> a"),
      issues.join("\n"),
    );
  });
  await t.step("source as target, sink as origin", () => {
    const issues = issuesOf((w) =>
      w.addNode("GeneratorNode", "g", {}).addNode("CollectSink", "s", { into: [] })
        .addConnection("g", "s").addConnection("s", "g")
    );
    assert.ok(
      issues.includes('connections[1].from: node "s" is a sink (CollectSink) and has no outputs'),
    );
    assert.ok(
      issues.includes('connections[1].to: node "g" is a source (GeneratorNode) and takes no input'),
    );
  });
  await t.step("bad mailbox and supervision", () => {
    const { workflow } = quietWorkflow();
    workflow.addNode("GeneratorNode", "g", {}).addNode("CollectSink", "s", { into: [] }, {
      mailbox: { capacity: 0, overflow: "drop_oldets" as "drop_oldest" },
      supervision: { max_restarts: -1 },
    }).addConnection("g", "s");
    const issues = workflow.validate().map((i) => `${i.path}: ${i.message}`);
    assert.ok(
      issues.includes("nodes[1].mailbox.capacity: expected integer >= 1, found 0"),
      issues.join("\n"),
    );
    assert.ok(
      issues.some((i) =>
        i.startsWith("nodes[1].mailbox.overflow: expected one of block, drop_oldest") &&
        i.endsWith('did you mean "drop_oldest"?')
      ),
      issues.join("\n"),
    );
    assert.ok(
      issues.includes("nodes[1].supervision.max_restarts: expected integer >= 0, found -1"),
    );
  });
  await t.step("run throws a ConfigError carrying every issue", async () => {
    const { workflow } = quietWorkflow();
    workflow.addNode("Nope", "a").addNode("Nope", "a");
    const error = await workflow.run().catch((e) => e);
    assert.ok(error instanceof ConfigError);
    assert.ok(error.issues.length >= 2);
  });
});

Deno.test("Workflow retries a failing message, then dead-letters it; the actor carries on", async () => {
  const { workflow, deadLetters } = quietWorkflow();
  const out: unknown[] = [];
  let calls = 0;
  workflow
    .addNode("ListSource", "src", { events: numbered(3000) })
    .addNode("FunctionNode", "poison", {
      fn: (e: { n: number }) => {
        calls++;
        if (e.n % 1000 === 999) throw new Error(`poison ${e.n}`);
        return e;
      },
    }, { supervision: { max_message_retries: 2 } })
    .addNode("CollectSink", "sink", { into: out })
    .addConnection("src", "poison")
    .addConnection("poison", "sink");
  const report = await workflow.run();
  assert.equal(report.status, "completed");
  assert.equal(out.length, 2997);
  assert.equal(deadLetters.letters.length, 3);
  assert.deepEqual(deadLetters.letters.map((l) => l.message), [{ n: 999 }, { n: 1999 }, {
    n: 2999,
  }]);
  assert.equal(deadLetters.letters[0].error, "poison 999");
  assert.equal(deadLetters.letters[0].attempts, 3);
  assert.equal(deadLetters.letters[0].node, "poison");
  assert.equal(calls, 3000 + 3 * 2, "each poison message tried 1 + 2 times");
  const poison = report.nodes.find((n) => n.id === "poison")!;
  assert.equal(poison.restarts, 0, "message failures never restart the actor");
  assert.equal(poison.errors, 3);
});

Deno.test("Workflow batch handler failures are isolated to the failing messages", async () => {
  const { workflow, deadLetters } = quietWorkflow();
  const out: unknown[] = [];
  workflow
    .addNode("ListSource", "src", { events: numbered(10), chunk: 10 })
    .addNode("FunctionNode", "b", {
      batch: (events: { n: number }[]) => {
        if (events.some((e) => e.n === 4)) throw new Error("bad batch");
        return events;
      },
    }, { supervision: { max_message_retries: 0 } })
    .addNode("CollectSink", "sink", { into: out })
    .addConnection("src", "b").addConnection("b", "sink");
  await workflow.run();
  assert.deepEqual(out.map((e) => (e as { n: number }).n), [0, 1, 2, 3, 5, 6, 7, 8, 9]);
  assert.deepEqual(deadLetters.letters.map((l) => l.message), [{ n: 4 }]);
});

/** A processor that crashes (actor-level) on the given calls of handle. */
function crashingSpec(
  crashOn: (call: number) => boolean,
  starts: number[],
  clockNow: () => number,
) {
  let calls = 0;
  return {
    type: "Crashy",
    kind: "processor" as const,
    description: "crashes",
    config: s.any(),
    create: () => ({
      start() {
        starts.push(clockNow());
      },
      handleMessage(message: unknown, ctx: ActorContext) {
        if (crashOn(++calls)) throw new Error(`crash on call ${calls}`);
        ctx.emit(message);
      },
    }),
  };
}

Deno.test("Supervisor restarts with exponential backoff and retries the crashed message", async () => {
  const starts: number[] = [];
  const { clock } = quietWorkflow();
  const spec = crashingSpec((call) => call >= 2 && call <= 4, starts, () => clock.now());
  const { workflow, deadLetters } = quietWorkflow({ clock, registry: testRegistry(spec) });
  const out: unknown[] = [];
  workflow
    .addNode("ListSource", "src", { events: numbered(3), chunk: 1 })
    .addNode("Crashy", "c", {}, {
      supervision: {
        on_message_error: "restart",
        initial_delay: 1,
        backoff_factor: 2,
        max_delay: 10,
        jitter: 0,
        max_restarts: 10,
        max_message_retries: 5,
      },
    })
    .addNode("CollectSink", "sink", { into: out })
    .addConnection("src", "c").addConnection("c", "sink");
  const running = workflow.run();
  await clock.advance(60_000);
  const report = await running;
  assert.equal(report.status, "completed");
  // Calls 2, 3, 4 crash on message 1; each restart waits 1 s, 2 s, 4 s.
  assert.deepEqual(starts, [0, 1000, 3000, 7000]);
  assert.deepEqual(out, numbered(3), "the crashed message was retried, nothing lost");
  assert.equal(deadLetters.letters.length, 0);
  assert.equal(report.nodes.find((n) => n.id === "c")!.restarts, 3);
});

Deno.test("Supervisor escalates past the intensity: the workflow fails naming the actor", async () => {
  const starts: number[] = [];
  const { clock } = quietWorkflow();
  const spec = crashingSpec(() => true, starts, () => clock.now());
  const { workflow, deadLetters } = quietWorkflow({ clock, registry: testRegistry(spec) });
  const out: unknown[] = [];
  workflow
    .addNode("ListSource", "src", { events: numbered(5), chunk: 5 })
    .addNode("Crashy", "c", {}, {
      supervision: {
        on_message_error: "restart",
        initial_delay: 0.1,
        jitter: 0,
        max_restarts: 3,
        restart_period: 60,
        max_message_retries: 100,
      },
    })
    .addNode("CollectSink", "sink", { into: out })
    .addConnection("src", "c").addConnection("c", "sink");
  const running = workflow.run();
  await clock.advance(10_000);
  const report = await running;
  assert.equal(report.status, "failed");
  assert.ok(report.error instanceof RestartIntensityError);
  assert.match(
    report.error.message,
    /node "c" failed more than 3 times in 60s; last error: crash on call 4/,
  );
  assert.equal(starts.length, 4, "first start and 3 restarts");
  // Nothing accepted is silently lost: all five messages are in dead letters.
  assert.equal(out.length, 0);
  assert.equal(deadLetters.letters.length, 5);
});

Deno.test("Supervisor max_message_retries bounds the retries of a crashing message", async () => {
  const starts: number[] = [];
  const { clock } = quietWorkflow();
  const spec = crashingSpec((call) => call === 1 || call === 2, starts, () => clock.now());
  const { workflow, deadLetters } = quietWorkflow({ clock, registry: testRegistry(spec) });
  const out: unknown[] = [];
  workflow
    .addNode("ListSource", "src", { events: numbered(2), chunk: 2 })
    .addNode("Crashy", "c", {}, {
      supervision: { on_message_error: "restart", initial_delay: 0, max_message_retries: 1 },
    })
    .addNode("CollectSink", "sink", { into: out })
    .addConnection("src", "c").addConnection("c", "sink");
  const running = workflow.run();
  await clock.advance(1000);
  await running;
  // Call 1 crashes on {n:0}; retry (call 2) crashes again: over the limit, dead-lettered
  // together with the rest of its batch; the actor goes on with later messages.
  assert.deepEqual(deadLetters.letters.map((l) => l.message), [{ n: 0 }, { n: 1 }]);
  assert.equal(deadLetters.letters[0].attempts, 2);
  assert.deepEqual(out, []);
});

Deno.test("Supervisor one_for_all restarts every actor; rest_for_one only later ones", async (t) => {
  for (const [strategy, expected] of [["one_for_all", 2], ["rest_for_one", 1]] as const) {
    await t.step(strategy, async () => {
      const starts: number[] = [];
      const { clock } = quietWorkflow();
      const crashy = crashingSpec((call) => call === 1, starts, () => clock.now());
      const otherStarts: number[] = [];
      const observer = {
        type: "Observer",
        kind: "processor" as const,
        description: "",
        config: s.any(),
        create: () => ({
          start: () => void otherStarts.push(clock.now()),
          handleMessage: (m: unknown, ctx: ActorContext) => ctx.emit(m),
        }),
      };
      const { workflow } = quietWorkflow({
        clock,
        registry: testRegistry(crashy, observer),
        strategy,
      });
      const out: unknown[] = [];
      workflow
        .addNode("ListSource", "src", { events: numbered(3), waitFor: () => clock.sleep(2000) })
        .addNode("Observer", "before", {})
        .addNode("Crashy", "c", {}, {
          supervision: { on_message_error: "restart", initial_delay: 1, jitter: 0 },
        })
        .addNode("Observer", "after", {})
        .addNode("CollectSink", "sink", { into: out })
        .addConnection("src", "before").addConnection("before", "c")
        .addConnection("c", "after").addConnection("after", "sink");
      const running = workflow.run();
      await clock.advance(5000);
      await running;
      assert.deepEqual(out, numbered(3));
      // "before" and "after" both restart under one_for_all; only "after" under rest_for_one.
      assert.equal(otherStarts.length - 2, expected, `restarts of the others: ${otherStarts}`);
    });
  }
});

Deno.test("Overflow fail fails the receiving node, never the sender", async () => {
  const { clock } = quietWorkflow();
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const { workflow, deadLetters } = quietWorkflow({ clock });
  const out: unknown[] = [];
  workflow
    .addNode("ListSource", "src", { events: numbered(20), chunk: 20 })
    .addNode("CollectSink", "slow", { into: out, delay: () => gate }, {
      mailbox: { capacity: 5, overflow: "fail", batch_size: 5 },
      supervision: { initial_delay: 0, jitter: 0 },
    })
    .addConnection("src", "slow");
  const running = workflow.run();
  await clock.settle(5);
  release();
  await clock.advance(1000);
  const report = await running;
  const src = report.nodes.find((n) => n.id === "src")!;
  const slow = report.nodes.find((n) => n.id === "slow")!;
  assert.equal(src.restarts, 0);
  assert.equal(src.errors, 0);
  assert.equal(slow.restarts, 1, "the overflowed node was restarted");
  assert.equal(slow.dropped, 15);
  assert.equal(out.length + deadLetters.letters.length, 20, "every message accounted for");
  assert.equal(deadLetters.letters.length, 15);
});

Deno.test("Workflow stop drains in-flight messages without loss under block", async () => {
  const { workflow, clock } = quietWorkflow();
  const out: unknown[] = [];
  workflow
    .addNode("GeneratorNode", "gen", { rate_per_second: 1000, start_time: 0 })
    .addNode("FunctionNode", "f", { fn: (e: unknown) => e }, { mailbox: { capacity: 16 } })
    .addNode("CollectSink", "sink", { into: out, delay: () => clock.sleep(1) }, {
      mailbox: { capacity: 16 },
    })
    .addConnection("gen", "f").addConnection("f", "sink");
  const running = workflow.run();
  await clock.advance(50);
  workflow.stop();
  await clock.advance(100_000);
  const report = await running;
  assert.equal(report.status, "stopped");
  const gen = report.nodes.find((n) => n.id === "gen")!;
  assert.ok(gen.messagesOut > 0);
  assert.equal(out.length, gen.messagesOut, "every generated message reached the sink");
  assert.equal(report.abandoned, 0);
  const seqs = (out as { sequence: number }[]).map((e) => e.sequence);
  assert.deepEqual(seqs, seqs.map((_, i) => i));
});

Deno.test("Workflow drain deadline abandons what is queued and counts it", async () => {
  const { workflow, clock } = quietWorkflow();
  const out: unknown[] = [];
  const never = new Promise<void>(() => {});
  workflow
    .addNode("ListSource", "src", { events: numbered(10) })
    .addNode("CollectSink", "stuck", { into: out, delay: () => never }, {
      mailbox: { capacity: 100, batch_size: 1 },
    })
    .addConnection("src", "stuck");
  const running = workflow.run({ drainTimeoutMs: 500 });
  await clock.settle();
  workflow.stop();
  await clock.advance(500);
  const report = await running;
  assert.equal(report.status, "stopped");
  assert.equal(report.abandoned, 10, "one message in the stuck handler, nine queued");
});

Deno.test("Checkpoints complete only after every downstream actor is done with them", async () => {
  const { workflow, clock } = quietWorkflow();
  const completed: number[] = [];
  const outA: unknown[] = [];
  const outB: unknown[] = [];
  let releaseB!: () => void;
  let gateB = new Promise<void>((r) => releaseB = r);
  workflow
    .addNode("ListSource", "src", {
      events: numbered(30),
      chunk: 10,
      onCheckpoint: (upTo: number) => completed.push(upTo),
    })
    .addNode("FunctionNode", "f", { fn: (e: unknown) => e })
    .addNode("CollectSink", "a", { into: outA })
    .addNode("CollectSink", "b", { into: outB, delay: () => gateB }, {
      mailbox: { batch_size: 10 },
    })
    .addConnection("src", "f").addConnection("f", "a").addConnection("f", "b");
  const running = workflow.run();
  await clock.settle(5);
  assert.equal(outA.length, 30, "the fast branch has everything");
  assert.deepEqual(completed, [], "the slow branch holds every checkpoint back");
  releaseB();
  gateB = Promise.resolve();
  await running;
  assert.deepEqual(completed, [10, 20, 30]);
  assert.equal(outB.length, 30);
});
