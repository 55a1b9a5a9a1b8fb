import assert from "node:assert/strict";
import { validateCommand } from "../../cli/validate.ts";
import { main } from "../../cli/main.ts";

const root = new URL("../../", import.meta.url).pathname;
const rel = "tests/fixtures/broken";
const dir = `${root}${rel}`;
const example = `${root}examples/cli_pipeline.yaml`;

/** Runs `sluice validate` in-process. */
async function validate(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await validateCommand(args, { out: (t) => out += t, err: (t) => err += t }, {
    env: (name) => env[name],
  });
  return { code, out, err };
}

const corpus: Record<string, string[]> = {
  "syntax.yaml": [
    "7:3: YAML syntax error: Flow map in block collection must be sufficiently indented and end with a }",
    "7:9: YAML syntax error: Nested mappings are not allowed in compact mappings",
    "7:9: YAML syntax error: Implicit keys need to be on a single line",
  ],
  "not_a_map.yaml": [
    "1:1: a workflow file must be a map with at least a `nodes` list",
  ],
  "wrong_types.yaml": [
    '7:7: nodes[0].config.message_count: node "events" (GeneratorNode): expected integer >= 0, found the string "ten"',
    '8:7: nodes[0].config.rate_per_second: node "events" (GeneratorNode): expected number > 0, found -1',
    '9:7: nodes[0].config.realtime: node "events" (GeneratorNode): expected true or false, found the string "yes"',
    '13:7: nodes[1].mailbox.capacity: expected integer >= 1, found the string "big"',
    '16:7: nodes[1].config.path: node "out" (FileSinkNode): expected a string, found number 42',
  ],
  "unknown_type.yaml": [
    '5:5: nodes[0].type: node "events": unknown node type "GeneratorNod"; did you mean "GeneratorNode"? (run `sluice nodes` for the list)',
  ],
  "unknown_key.yaml": [
    '7:7: nodes[0].config.mesage_count: node "events" (GeneratorNode): unknown key "mesage_count"; did you mean "message_count"? (known keys: message_count, rate_per_second, start_time, realtime)',
    '8:5: nodes[1]: node "out" (FileSinkNode) has no input connection',
    '11:1: conections: unknown key "conections"; did you mean "connections"? (known keys: name, dead_letter, defaults, supervision, nodes, connections)',
  ],
  "missing_variable.yaml": [
    "7:22: nodes[0].config.message_count: environment variable EVENT_COUNT is not set (write ${EVENT_COUNT:-default} for a default)",
    '8:7: nodes[0].config.rate_per_second: node "events" (GeneratorNode): expected number > 0, found the string "***"',
    "12:13: nodes[1].config.path: environment variable OUT_DIR is not set (write ${OUT_DIR:-default} for a default)",
  ],
  "duplicate_id.yaml": [
    '9:5: nodes[2].id: duplicate node id "out" (first declared at nodes[1])',
  ],
  "unknown_port.yaml": [
    '13:29: connections[0].from_port: node "events" (GeneratorNode) has no output port "ot"; did you mean "out"? (ports: out)',
    '14:30: connections[1].to_port: node "copy" (FileSinkNode) has no input port "side" (ports: in)',
    '15:6: connections[2].from: node "out" is a sink (FileSinkNode) and has no outputs',
  ],
  "dangling_input.yaml": [
    '6:5: nodes[1]: node "batches" (BatchNode) has no input connection',
    '13:20: connections[1].to: unknown node "sinc"; did you mean "sink"?',
  ],
  "cycle.yaml": [
    "13:1: connections: the connections form a cycle: first -> second -> first",
  ],
};

Deno.test("validateCommand reports every issue of a broken file as file:line:col: path: message", async (t) => {
  const files = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.endsWith(".yaml"));
  assert.deepEqual(files.sort(), Object.keys(corpus).sort(), "every corpus file has expectations");
  for (const [name, lines] of Object.entries(corpus)) {
    await t.step(name, async () => {
      // RATE is a value from the environment: it must never be printed.
      const { code, out, err } = await validate([`${dir}/${name}`], { RATE: "fast-secret" });
      assert.equal(code, 2);
      assert.equal(out, "");
      const n = lines.length;
      assert.equal(
        err,
        lines.map((l) => `${dir}/${name}:${l}\n`).join("") +
          `invalid: ${n} error${n === 1 ? "" : "s"}\n`,
      );
      assert.ok(!err.includes("fast-secret"));
    });
  }
});

Deno.test("validateCommand prints ok with the node and connection counts", async (t) => {
  await t.step("one valid file", async () => {
    const result = await validate([example]);
    assert.deepEqual(result, { code: 0, out: "ok: 2 nodes, 1 connection\n", err: "" });
  });
  await t.step("several files: each line names its file, any invalid one fails", async () => {
    const result = await validate([example, `${dir}/duplicate_id.yaml`]);
    assert.equal(result.code, 2);
    assert.equal(result.out, `${example}: ok: 2 nodes, 1 connection\n`);
    assert.equal(
      result.err,
      `${dir}/duplicate_id.yaml:9:5: nodes[2].id: duplicate node id "out" (first declared at nodes[1])\n` +
        `invalid: 1 error in ${dir}/duplicate_id.yaml\n`,
    );
  });
  await t.step("an unreadable file", async () => {
    const result = await validate(["no/such.yaml"]);
    assert.equal(result.code, 2);
    assert.match(result.err, /^cannot read workflow file no\/such\.yaml: .+\ninvalid: 1 error\n$/);
  });
  await t.step("usage errors and help", async () => {
    assert.equal((await validate([])).code, 2);
    assert.equal((await validate(["--bogus", "x.yaml"])).code, 2);
    const help = await validate(["--help"]);
    assert.equal(help.code, 0);
    assert.match(help.out, /^Usage: sluice validate/);
  });
});

Deno.test("main dispatches validate and every command answers --help", async () => {
  for (const command of ["run", "validate", "graph", "test", "nodes", "demo"]) {
    let out = "";
    const code = await main([command, "--help"], { out: (t) => out += t, err: () => {} });
    assert.equal(code, 0, command);
    assert.match(out, new RegExp(`^Usage: sluice ${command}`), command);
  }
  let err = "";
  assert.equal(await main(["frobnicate"], { out: () => {}, err: (t) => err += t }), 2);
  assert.match(err, /^error: unknown command "frobnicate"/);
});

Deno.test("sluice validate as a subprocess exits 2 on a broken file and 0 on a valid one", async () => {
  const run = async (file: string) => {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "cli/main.ts", "validate", file],
      cwd: root,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decode = (b: Uint8Array) => new TextDecoder().decode(b);
    return { code: output.code, out: decode(output.stdout), err: decode(output.stderr) };
  };
  const broken = await run(`${rel}/unknown_type.yaml`);
  assert.equal(broken.code, 2);
  assert.equal(
    broken.err,
    `${rel}/unknown_type.yaml:5:5: nodes[0].type: node "events": unknown node type "GeneratorNod"; did you mean "GeneratorNode"? (run \`sluice nodes\` for the list)\ninvalid: 1 error\n`,
  );
  const valid = await run("examples/cli_pipeline.yaml");
  assert.deepEqual(valid, { code: 0, out: "ok: 2 nodes, 1 connection\n", err: "" });
});
