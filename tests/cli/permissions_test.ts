import assert from "node:assert/strict";
import { requiredPermissions } from "../../cli/permissions.ts";
import { builtins, Registry, Workflow } from "../../mod.ts";

const CLI = new URL("../../cli/main.ts", import.meta.url).pathname;

Deno.test("requiredPermissions adds each node type's flags to the CLI's own", () => {
  const registry = new Registry(builtins);
  const workflow = new Workflow({ registry })
    .addNode("GeneratorNode", "g", {})
    .addNode("WebSocketServerSinkNode", "ws", { port: 0 });
  assert.deepEqual(requiredPermissions(workflow, registry), [
    "--allow-env",
    "--allow-net",
    "--allow-read",
    "--allow-write",
  ]);
  assert.deepEqual(
    requiredPermissions(new Workflow({ registry }).addNode("GeneratorNode", "g", {}), registry),
    ["--allow-env", "--allow-read", "--allow-write"],
  );
});

Deno.test("sluice run names the missing permission flags and starts nothing", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(
    `${dir}/wf.yaml`,
    `nodes:
  - {id: g, type: GeneratorNode, config: {message_count: 3, start_time: 0}}
  - {id: f, type: FileSinkNode, config: {path: out.ndjson}}
connections:
  - {from: g, to: f}
`,
  );
  const denied = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-env", CLI, "run", `${dir}/wf.yaml`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(denied.stderr);
  assert.equal(denied.code, 2, stderr);
  assert.match(
    stderr,
    /this workflow needs --allow-write \(in all: --allow-env --allow-read --allow-write\)/,
  );
  assert.equal(await Deno.stat(`${dir}/out.ndjson`).catch(() => undefined), undefined);
  const allowed = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-env",
      "--allow-write",
      CLI,
      "run",
      `${dir}/wf.yaml`,
      "--quiet",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(allowed.code, 0, new TextDecoder().decode(allowed.stderr));
  assert.equal((await Deno.readTextFile(`${dir}/out.ndjson`)).trimEnd().split("\n").length, 3);
  await Deno.remove(dir, { recursive: true });
});
