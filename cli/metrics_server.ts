/**
 * The `--metrics-port` HTTP endpoint of `sluice run`: Prometheus text at
 * `/metrics` and the health verdict with the snapshot at `/health`.
 *
 * @module
 */
import { redact } from "../runtime/log.ts";
import { prometheusText, type WorkflowSnapshot } from "../runtime/metrics.ts";
import type { HealthReport } from "./status.ts";

/** Options of {@linkcode serveMetrics}. */
export interface MetricsServerOptions {
  /** The workflow's metrics now. */
  snapshot: () => WorkflowSnapshot;
  /** The health verdict of a snapshot. */
  health: (snapshot: WorkflowSnapshot) => HealthReport;
  /** TCP port; 0 picks a free one. */
  port: number;
  /** Interface to listen on. @default {"127.0.0.1"} */
  hostname?: string;
  /** Values never to appear in a response (secrets from the environment). */
  secrets?: readonly string[];
  /** Called once the server listens. */
  onListen?: (address: { hostname: string; port: number }) => void;
}

/** A running metrics server. */
export interface MetricsServer {
  /** The interface it listens on. */
  readonly hostname: string;
  /** The port it listens on (the real one when 0 was asked for). */
  readonly port: number;
  /** Stops accepting connections and waits for open ones to finish. */
  shutdown(): Promise<void>;
}

/**
 * Serves `GET /metrics` (Prometheus text exposition format) and
 * `GET /health` (JSON `{status, reasons, snapshot}`; HTTP 503 when
 * unhealthy) with `Deno.serve`.
 *
 * @param options What to serve and where.
 * @returns The server, already listening.
 * @example Serving metrics on a free port
 * ```ts
 * import { serveMetrics } from "./metrics_server.ts";
 * const server = serveMetrics({
 *   snapshot: () => ({ name: "w", time: 0, uptimeMs: 0, nodes: [], deadLetters: 0 }),
 *   health: () => ({ status: "healthy", reasons: [] }),
 *   port: 0,
 * });
 * const response = await fetch(`http://127.0.0.1:${server.port}/metrics`);
 * console.assert((await response.text()).includes("sluice_dead_letters_total"));
 * await server.shutdown();
 * ```
 */
export function serveMetrics(options: MetricsServerOptions): MetricsServer {
  const hostname = options.hostname ?? "127.0.0.1";
  const secrets = options.secrets ?? [];
  const server = Deno.serve({
    hostname,
    port: options.port,
    // The CLI announces the address itself.
    onListen: () => {},
  }, (request) => {
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("method not allowed\n", {
        status: 405,
        headers: { allow: "GET, HEAD" },
      });
    }
    const path = new URL(request.url).pathname;
    if (path === "/metrics") {
      return new Response(redact(prometheusText(options.snapshot()), secrets), {
        headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
      });
    }
    if (path === "/health") {
      const snapshot = options.snapshot();
      const health = options.health(snapshot);
      const body = JSON.stringify({ status: health.status, reasons: health.reasons, snapshot });
      return new Response(redact(body, secrets), {
        status: health.status === "unhealthy" ? 503 : 200,
        headers: { "content-type": "application/json; charset=utf-8" },
      });
    }
    return new Response("not found: try /metrics or /health\n", { status: 404 });
  });
  const addr = server.addr as Deno.NetAddr;
  const address = { hostname: addr.hostname, port: addr.port };
  options.onListen?.(address);
  return {
    hostname: address.hostname,
    port: address.port,
    shutdown: () => server.shutdown(),
  };
}
