import assert from "node:assert/strict";
import { builtins } from "../../actors/mod.ts";
import { CodeModuleError, CodeNode, CodeWorkerError } from "../../actors/processors/code.ts";
import type { Actor, ActorContext } from "../../runtime/actor.ts";
import { VirtualClock } from "../../runtime/clock.ts";
import { MemoryDeadLetters } from "../../runtime/dead_letter.ts";
import { createLogger } from "../../runtime/log.ts";
import { NodeMetrics } from "../../runtime/metrics.ts";
import { type NodeSpec, Registry } from "../../runtime/registry.ts";
import { s } from "../../runtime/schema.ts";
import type { RunReport } from "../../runtime/workflow.ts";
import { Workflow } from "../../runtime/workflow.ts";

const FIXTURES = new URL("../fixtures/code/", import.meta.url).pathname;

/**
 * `isolate: true` needs Deno's worker-options feature. Without it Deno exits
 * the whole process (code 70) at `new Worker`, which no test can catch; this
 * check turns that into a readable failure. The feature comes from the
 * `--unstable-worker-options` flag or `"unstable": ["worker-options"]` in deno.json.
 */
function assertWorkerOptionsEnabled(): void {
  let enabled = false;
  try {
    enabled = Deno.readTextFileSync("/proc/self/cmdline").split("\0")
      .includes("--unstable-worker-options");
  } catch {
    // Not Linux: rely on deno.json.
  }
  try {
    const config = JSON.parse(
      Deno.readTextFileSync(new URL("../../deno.json", import.meta.url)),
    ) as { unstable?: string[] };
    enabled ||= config.unstable?.includes("worker-options") ?? false;
  } catch {
    // No readable deno.json.
  }
  if (!enabled) {
    assert.fail(
      'isolated CodeNode tests need --unstable-worker-options (or "unstable": ["worker-options"] in deno.json)',
    );
  }
}

const ListSource: NodeSpec<unknown[]> = {
  type: "ListSource",
  kind: "source",
  description: "",
  config: s.any<unknown[]>(),
  create: (events): Actor => ({
    async run(ctx: ActorContext) {
      for (const e of events) ctx.emit(e);
      await ctx.flush();
      return "end";
    },
  }),
};

interface Outcome {
  report: RunReport;
  out: unknown[];
  dead: MemoryDeadLetters["letters"];
}

async function runCode(
  events: unknown[],
  config: Record<string, unknown>,
  options: { supervision?: Record<string, unknown>; batchSize?: number } = {},
): Promise<Outcome> {
  const out: unknown[] = [];
  const deadLetters = new MemoryDeadLetters();
  const wf = new Workflow({
    registry: new Registry(builtins).with(ListSource),
    clock: new VirtualClock(0),
    deadLetters,
    logger: createLogger({ level: "silent" }),
    baseDir: FIXTURES,
  })
    .addNode("ListSource", "src", events)
    .addNode("CodeNode", "code", config, {
      supervision: options.supervision,
      mailbox: options.batchSize ? { batch_size: options.batchSize } : undefined,
    })
    .addNode("FunctionNode", "sink", {
      fn: (m: unknown) => {
        out.push(m);
      },
    })
    .addConnection("src", "code")
    .addConnection("code", "sink");
  const report = await wf.run();
  return { report, out, dead: deadLetters.letters };
}

const numbers = [{ n: 1 }, { n: -2 }, { n: 3 }];

for (const isolate of [false, true]) {
  const mode = isolate ? "isolated" : "in-process";

  Deno.test(`CodeNode (${mode}) emits results and dead-letters the messages it throws on`, async () => {
    if (isolate) assertWorkerOptionsEnabled();
    const { report, out, dead } = await runCode(numbers, { module: "./double.ts", isolate });
    assert.equal(report.status, "completed");
    assert.deepEqual(out, [{ n: 2, node: "code" }, { n: 6, node: "code" }]);
    assert.equal(dead.length, 1);
    assert.deepEqual(dead[0].message, { n: -2 });
    assert.equal(dead[0].node, "code");
    assert.equal(dead[0].errorName, "RangeError");
    assert.equal(dead[0].error, "negative: -2");
    assert.deepEqual(dead[0].context, { module: "./double.ts", isolate });
    const node = report.nodes.find((n) => n.id === "code")!;
    assert.equal(node.errors, 1);
    assert.equal(node.deadLettered, 1);
    assert.equal(node.restarts, 0);
  });

  Deno.test(`CodeNode (${mode}) emits array elements only with flatten`, async (t) => {
    if (isolate) assertWorkerOptionsEnabled();
    const events = [{ text: "a b" }, { text: "  " }, { text: "c" }];
    await t.step("flatten: true", async () => {
      const { out } = await runCode(events, { module: "./split.ts", flatten: true, isolate });
      assert.deepEqual(out, ["a", "b", "c"]);
    });
    await t.step("flatten: false emits each array as one message; null emits nothing", async () => {
      const { out } = await runCode(events, { module: "./split.ts", isolate });
      assert.deepEqual(out, [["a", "b"], ["c"]]);
    });
  });

  Deno.test(`CodeNode (${mode}) batch mode calls the function per batch, then per message on a throw`, async () => {
    if (isolate) assertWorkerOptionsEnabled();
    const events = [1, 2, 3, 4, 5, 6].map((n) => ({ n, poison: n === 5 }));
    const { out, dead } = await runCode(events, {
      module: "./batch_sum.ts",
      mode: "batch",
      isolate,
    }, {
      batchSize: 3,
    });
    // First batch whole; the second fails, so each of its messages is tried alone.
    assert.deepEqual(out, [{ sum: 6, count: 3 }, { sum: 4, count: 1 }, { sum: 6, count: 1 }]);
    assert.equal(dead.length, 1);
    assert.deepEqual(dead[0].message, { n: 5, poison: true });
    assert.equal(dead[0].error, "poisoned batch");
  });

  Deno.test(`CodeNode (${mode}) resolves static imports of the module`, async () => {
    if (isolate) assertWorkerOptionsEnabled();
    const { out } = await runCode([{ n: 2 }], { module: "./helper_import.ts", isolate });
    assert.deepEqual(out, [{ n: 5 }]);
  });

  Deno.test(`CodeNode (${mode}) names the module when it cannot be loaded`, async (t) => {
    if (isolate) assertWorkerOptionsEnabled();
    // Fail at the first crash instead of restarting with backoff.
    const failFast = { supervision: { max_restarts: 0 } };
    const failure = async (module: string) => {
      const { report, out } = await runCode([{ n: 1 }], { module, isolate }, failFast);
      assert.equal(report.status, "failed");
      assert.deepEqual(out, []);
      const cause = report.error!.cause;
      assert.ok(cause instanceof CodeModuleError, `expected a CodeModuleError, found ${cause}`);
      assert.equal(cause.module, module);
      return report.error!.message;
    };
    await t.step("a missing file", async () => {
      const message = await failure("./missing.ts");
      assert.match(
        message,
        /cannot load code module "\.\/missing\.ts": no file at .*fixtures\/code\/missing\.ts/,
      );
    });
    await t.step("a syntax error", async () => {
      const dir = await Deno.makeTempDir();
      try {
        await Deno.writeTextFile(`${dir}/broken.ts`, "export default function (\n");
        const message = await failure(`${dir}/broken.ts`);
        assert.match(message, /cannot load code module ".*broken\.ts": .*(SyntaxError|Unexpected)/);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
    await t.step("no default export", async () => {
      assert.match(
        await failure("./no_default.ts"),
        /"\.\/no_default\.ts": expected a default export that is a function, found no default export/,
      );
    });
    await t.step("a default export that is not a function", async () => {
      assert.match(
        await failure("./not_function.ts"),
        /"\.\/not_function\.ts": expected a default export that is a function, found number/,
      );
    });
  });
}

Deno.test("CodeNode in-process runs with the process's permissions", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/secret.txt`, "s3cret");
    const { out, dead } = await runCode([{ path: `${dir}/secret.txt` }], {
      module: "./read_file.ts",
    });
    assert.deepEqual(dead, []);
    assert.deepEqual(out, [{ text: "s3cret" }]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CodeNode isolated denies files, network, environment and dynamic imports", async (t) => {
  assertWorkerOptionsEnabled();
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/secret.txt`, "s3cret");
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = (async () => {
    for await (const conn of listener) conn.close();
  })();
  try {
    const denied = async (module: string, events: unknown[], pattern: RegExp) => {
      const { report, out, dead } = await runCode(events, { module, isolate: true });
      assert.equal(report.status, "completed", "the stream goes on");
      assert.deepEqual(out, []);
      assert.equal(dead.length, events.length);
      for (const letter of dead) {
        assert.match(`${letter.errorName}: ${letter.error}`, pattern);
        assert.deepEqual(letter.context, { module, isolate: true });
      }
      assert.deepEqual(dead.map((d) => d.message), events);
    };
    await t.step("reading a file", async () => {
      await denied(
        "./read_file.ts",
        [{ path: `${dir}/secret.txt` }],
        /NotCapable: Requires read access/,
      );
    });
    await t.step("opening a socket (a listener is waiting)", async () => {
      const port = (listener.addr as Deno.NetAddr).port;
      await denied("./open_socket.ts", [{ port }], /NotCapable: Requires net access/);
    });
    await t.step("reading the environment", async () => {
      await denied("./read_env.ts", [{ name: "HOME" }], /NotCapable: Requires env access/);
    });
    await t.step("importing a file at run time", async () => {
      await denied("./import_file.ts", [{}], /Requires read access/);
    });
  } finally {
    listener.close();
    await accepted;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CodeNode isolated dead-letters what cannot cross the worker boundary", async (t) => {
  assertWorkerOptionsEnabled();
  await t.step("a message that cannot be cloned", async () => {
    const events = [{ n: 1 }, { n: 2, fn: () => 0 }, { n: 3 }];
    const { out, dead } = await runCode(events, { module: "./double.ts", isolate: true });
    assert.deepEqual(out, [{ n: 2, node: "code" }, { n: 6, node: "code" }]);
    assert.equal(dead.length, 1);
    assert.equal(dead[0].message, events[1]);
    assert.match(dead[0].error, /cannot be sent to an isolated worker/);
    assert.equal(dead[0].errorName, "DataCloneError");
  });
  await t.step("a result that cannot be cloned", async () => {
    const events = [{ n: 1 }, { n: 2, fn: true }, { n: 3 }];
    const { out, dead } = await runCode(events, { module: "./uncloneable.ts", isolate: true });
    assert.deepEqual(out, [{ n: 1 }, { n: 3 }]);
    assert.equal(dead.length, 1);
    assert.deepEqual(dead[0].message, { n: 2, fn: true });
    assert.match(dead[0].error, /the result cannot be sent back/);
  });
});

Deno.test("CodeNode isolated replaces a worker that died and dead-letters the message that killed it", async () => {
  assertWorkerOptionsEnabled();
  const events = [{ id: 1 }, { id: 2, crash: true }, { id: 3 }];
  const { report, out, dead } = await runCode(events, {
    module: "./crash_worker.ts",
    isolate: true,
  }, {
    supervision: { max_message_retries: 1 },
  });
  assert.equal(report.status, "completed");
  assert.deepEqual(out, [{ id: 1 }, { id: 3 }]);
  assert.equal(dead.length, 1);
  assert.deepEqual(dead[0].message, { id: 2, crash: true });
  assert.equal(dead[0].errorName, "CodeWorkerError");
  assert.match(
    dead[0].error,
    /isolated worker of code module "\.\/crash_worker\.ts" failed: .*uncaught in the worker/,
  );
});

Deno.test("CodeNode close() terminates the worker, failing the batch in progress", async () => {
  assertWorkerOptionsEnabled();
  const config = CodeNode.config.parse({ module: "./hang.ts", isolate: true }, "config", []);
  const clock = new VirtualClock(0);
  const actor = CodeNode.create(config, {
    id: "code",
    clock,
    baseDir: FIXTURES,
    persistent: new Map(),
  });
  const ctx: ActorContext = {
    nodeId: "code",
    clock,
    signal: new AbortController().signal,
    log: createLogger({ level: "silent" }),
    metrics: new NodeMetrics(),
    connectedPorts: new Set(["out"]),
    restarts: 0,
    emit: () => {},
    emitMany: () => {},
    flush: () => undefined,
    deadLetter: () => {},
    checkpoint: () => {},
    schedule: () => () => {},
    resetBackoff: () => {},
    snapshot: () => ({ name: "w", time: 0, uptimeMs: 0, nodes: [], deadLetters: 0 }),
  };
  await actor.start!(ctx);
  const handling = actor.handle!([{ n: 1 }], ctx);
  await actor.close!();
  await assert.rejects(handling as Promise<void>, (error: unknown) => {
    assert.ok(error instanceof CodeWorkerError);
    assert.match(error.message, /terminated/);
    return true;
  });
});

Deno.test("CodeNode reports config problems with their paths", async (t) => {
  const issuesOf = (config: unknown) =>
    new Workflow({ registry: new Registry(builtins), clock: new VirtualClock(0) })
      .addNode("GeneratorNode", "g", { message_count: 1 })
      .addNode("CodeNode", "c", config)
      .addConnection("g", "c")
      .validate()
      .map((i) => `${i.path}: ${i.message}`);
  await t.step("a valid relative module (checked when the node starts)", () => {
    assert.deepEqual(issuesOf({ module: "./not/checked/yet.ts" }), []);
  });
  await t.step("module is required", () => {
    assert.match(issuesOf({})[0], /config\.module: .*required string is missing/);
  });
  await t.step("a remote module", () => {
    assert.match(
      issuesOf({ module: "https://example.com/x.ts" })[0],
      /config\.module: .*expected a local module.*found "https:\/\/example\.com\/x\.ts"/,
    );
    assert.match(issuesOf({ module: "npm:left-pad" })[0], /expected a local module/);
  });
  await t.step("not a script", () => {
    assert.match(
      issuesOf({ module: "./data.json" })[0],
      /config\.module: .*\.ts, .*found "\.\/data\.json"/,
    );
  });
  await t.step("a missing absolute path", () => {
    assert.match(
      issuesOf({ module: `${FIXTURES}nope.ts` })[0],
      /config\.module: .*no file at .*fixtures\/code\/nope\.ts/,
    );
    assert.deepEqual(issuesOf({ module: `${FIXTURES}double.ts` }), []);
    assert.deepEqual(issuesOf({ module: new URL("double.ts", `file://${FIXTURES}`).href }), []);
  });
  await t.step("flatten with batch mode", () => {
    assert.match(
      issuesOf({ module: "./x.ts", mode: "batch", flatten: true })[0],
      /config\.flatten: .*applies to mode message only/,
    );
  });
  await t.step("an unknown mode", () => {
    assert.match(
      issuesOf({ module: "./x.ts", mode: "stream" })[0],
      /config\.mode: .*expected one of message, batch/,
    );
  });
});
