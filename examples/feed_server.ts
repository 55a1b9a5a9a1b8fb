/**
 * A local WebSocket feed for the WebSocket examples (`websocket_stream.yaml`):
 * the clickstream feed of `sluice demo`, on a fixed port, until Ctrl-C.
 * Every connection gets `--rate` JSON events per second for `--duration`
 * seconds, then a close frame (code 1000).
 *
 * ```sh
 * deno run -A examples/feed_server.ts                 # ws://127.0.0.1:8765/feed
 * deno run -A examples/feed_server.ts --port 9000 --duration 30 --rate 200
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { startClickstreamFeed } from "../cli/demo.ts";

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      port: { type: "string", default: "8765" },
      duration: { type: "string", default: "60" },
      rate: { type: "string", default: "50" },
    },
  });
  const feed = startClickstreamFeed({
    port: Number(values.port),
    durationSeconds: Number(values.duration),
    ratePerSecond: Number(values.rate),
    onStreamEnd: (sent) => console.error(`feed: a stream ended after ${sent} events`),
  });
  console.error(
    `feed: ${feed.url} (${values.rate} events/s for ${values.duration} s per connection); ` +
      "Ctrl-C stops it",
  );
  const stop = () => {
    feed.close().then(() => Deno.exit(0));
  };
  Deno.addSignalListener("SIGINT", stop);
  if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", stop);
}
