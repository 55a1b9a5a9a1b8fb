/**
 * `deno task compile` builds the single `sluice` binary. `deno compile`
 * downloads its runtime (denort) unless DENORT_BIN points to one, and that
 * download is not possible everywhere, so this test runs only where
 * DENORT_BIN is set.
 */
import assert from "node:assert/strict";

const denort = Deno.env.get("DENORT_BIN");
if (!denort) {
  console.log(
    "%c  compile test skipped: set DENORT_BIN to a denort binary to run it",
    "color: yellow",
  );
}

Deno.test({
  name: "deno task compile builds a sluice binary that validates and runs a workflow",
  ignore: !denort,
  async fn() {
    const root = new URL("../../", import.meta.url).pathname;
    const dir = await Deno.makeTempDir();
    const binary = `${dir}/sluice`;
    const compiled = await new Deno.Command(Deno.execPath(), {
      args: [
        "compile",
        "-A",
        "--v8-flags=--max-semi-space-size=8",
        "--output",
        binary,
        `${root}cli/main.ts`,
      ],
      env: { DENORT_BIN: denort! },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(compiled.code, 0, new TextDecoder().decode(compiled.stderr));
    const help = await new Deno.Command(binary, { args: ["--help"], stdout: "piped" }).output();
    assert.equal(help.code, 0);
    assert.match(new TextDecoder().decode(help.stdout), /sluice/);
    await Deno.writeTextFile(
      `${dir}/wf.yaml`,
      `nodes:
  - {id: g, type: GeneratorNode, config: {message_count: 5, start_time: 0}}
  - {id: f, type: FileSinkNode, config: {path: out.ndjson}}
connections:
  - {from: g, to: f}
`,
    );
    const validate = await new Deno.Command(binary, {
      args: ["validate", `${dir}/wf.yaml`],
      stdout: "piped",
    }).output();
    assert.equal(validate.code, 0);
    const run = await new Deno.Command(binary, {
      args: ["run", `${dir}/wf.yaml`, "--quiet"],
      stderr: "piped",
    }).output();
    assert.equal(run.code, 0, new TextDecoder().decode(run.stderr));
    assert.equal((await Deno.readTextFile(`${dir}/out.ndjson`)).trimEnd().split("\n").length, 5);
    await Deno.remove(dir, { recursive: true });
  },
});
