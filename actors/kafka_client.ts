/**
 * The Kafka connection settings shared by EventStreamNode and KafkaSinkNode,
 * and how they become a kafkajs client: brokers, client id, SASL and TLS
 * passed through, timeouts, retries, and kafkajs' own log lines routed to the
 * node's logger at warn and above.
 *
 * @example Building a client from a node's config
 * ```ts ignore
 * import { createKafkaClient } from "./kafka_client.ts";
 * import { createLogger } from "../runtime/log.ts";
 * const kafka = await createKafkaClient(
 *   { brokers: "127.0.0.1:9092", connection_timeout: 3, request_timeout: 30, retries: 5, retry_initial_delay: 0.3, retry_max_delay: 30 },
 *   { clientId: "sluice-events", log: createLogger() },
 * );
 * const admin = kafka.admin();
 * ```
 *
 * @module
 */
import type { Kafka, KafkaConfig, logCreator, logLevel, SASLOptions } from "kafkajs";
import type { Logger } from "../runtime/actor.ts";
import type { ConfigIssue } from "../runtime/errors.ts";
import { describe, s, type Schema } from "../runtime/schema.ts";

/** The kafkajs module. */
export type KafkaJs = typeof import("kafkajs");

let kafkajs: Promise<KafkaJs> | undefined;

/**
 * Loads kafkajs on first use. It is imported lazily so that importing sluice
 * (which registers the Kafka nodes) neither loads kafkajs nor needs the
 * permissions kafkajs asks for when it loads (it reads `NODE_ENV`).
 *
 * @returns The kafkajs module.
 * @example
 * ```ts ignore
 * import { loadKafkajs } from "./kafka_client.ts";
 * const { Partitioners } = await loadKafkajs();
 * ```
 */
export function loadKafkajs(): Promise<KafkaJs> {
  return kafkajs ??= import("kafkajs");
}

/** kafkajs' `logLevel` values, so that this module does not load kafkajs. */
const LEVEL = { NOTHING: 0, ERROR: 1, WARN: 2 } as const;

/** TLS settings (PEM text, for example from `${KAFKA_CA}`). */
export interface KafkaSslConfig {
  /** Use TLS. @default {true} */
  enabled: boolean;
  /** CA certificate(s), PEM. */
  ca?: string;
  /** Client certificate, PEM (mutual TLS). */
  cert?: string;
  /** Client private key, PEM (secret). */
  key?: string;
  /** Passphrase of the private key (secret). */
  passphrase?: string;
  /** Verify the broker's certificate. @default {true} */
  reject_unauthorized: boolean;
  /** Server name for SNI and certificate checks. */
  servername?: string;
}

/** SASL settings. */
export interface KafkaSaslConfig {
  /** The mechanism. */
  mechanism: "plain" | "scram-sha-256" | "scram-sha-512";
  /** User name. */
  username: string;
  /** Password (secret). */
  password: string;
}

/** Connection settings common to the Kafka nodes (times in seconds). */
export interface KafkaConnectionConfig {
  /** `host:port` list, or one comma-separated string (`${KAFKA_BROKERS}`). */
  brokers: string | string[];
  /** Client id sent to the brokers. @default {`sluice-<node id>`} */
  client_id?: string;
  /** TLS: `true`, or an object with certificates. */
  ssl?: boolean | KafkaSslConfig;
  /** SASL authentication. */
  sasl?: KafkaSaslConfig;
  /** Connect timeout, seconds. @default {3} */
  connection_timeout: number;
  /** Request timeout, seconds. @default {30} */
  request_timeout: number;
  /** Retries of a failed request before kafkajs gives up. @default {5} */
  retries: number;
  /** First retry delay, seconds. @default {0.3} */
  retry_initial_delay: number;
  /** Longest retry delay, seconds. @default {30} */
  retry_max_delay: number;
}

const sslObject = s.object({
  enabled: s.boolean({ default: true, doc: "Use TLS." }),
  ca: s.string({ optional: true, doc: "CA certificate(s), PEM text." }),
  cert: s.string({ optional: true, doc: "Client certificate, PEM text (mutual TLS)." }),
  key: s.string({ optional: true, secret: true, doc: "Client private key, PEM text." }),
  passphrase: s.string({ optional: true, secret: true, doc: "Passphrase of the key." }),
  reject_unauthorized: s.boolean({ default: true, doc: "Verify the broker's certificate." }),
  servername: s.string({ optional: true, doc: "Server name for SNI." }),
});

const saslSchema: Schema<KafkaSaslConfig | undefined> = s.object({
  mechanism: s.enum(["plain", "scram-sha-256", "scram-sha-512"] as const, {
    doc: "SASL mechanism.",
  }),
  username: s.string({ doc: "User name." }),
  password: s.string({ secret: true, doc: "Password." }),
}, { optional: true, doc: "SASL authentication (plain, scram-sha-256, scram-sha-512)." });

/** The connection fields, spread into each Kafka node's config schema. */
export const kafkaConnectionFields: {
  brokers: Schema<string | string[]>;
  client_id: Schema<string | undefined>;
  ssl: Schema<boolean | KafkaSslConfig | undefined>;
  sasl: Schema<KafkaSaslConfig | undefined>;
  connection_timeout: Schema<number>;
  request_timeout: Schema<number>;
  retries: Schema<number>;
  retry_initial_delay: Schema<number>;
  retry_max_delay: Schema<number>;
} = {
  brokers: s.stringOrList({
    doc: 'Bootstrap brokers: a list of "host:port", or one comma-separated string.',
  }),
  client_id: s.string({
    optional: true,
    nonEmpty: true,
    doc: "Client id sent to the brokers. Default: sluice-<node id>.",
  }),
  ssl: s.any<boolean | KafkaSslConfig>({
    optional: true,
    type: "boolean | object",
    doc:
      "TLS: true, or {ca, cert, key, passphrase, reject_unauthorized, servername} with PEM text; key and passphrase are secrets.",
    check: (value, path, issues) => {
      if (typeof value === "boolean") return value;
      return sslObject.parse(value, path, issues) as KafkaSslConfig;
    },
  }),
  sasl: saslSchema,
  connection_timeout: s.number({ greaterThan: 0, default: 3, doc: "Connect timeout, seconds." }),
  request_timeout: s.number({ greaterThan: 0, default: 30, doc: "Request timeout, seconds." }),
  retries: s.integer({
    min: 0,
    default: 5,
    doc: "Retries of a failed request (kafkajs retry) before the node fails and is restarted.",
  }),
  retry_initial_delay: s.number({
    greaterThan: 0,
    default: 0.3,
    doc: "First retry delay, seconds (doubles per retry, with jitter).",
  }),
  retry_max_delay: s.number({ greaterThan: 0, default: 30, doc: "Longest retry delay, seconds." }),
};

/**
 * Splits a brokers setting into `host:port` entries.
 *
 * @param brokers A list, or a comma-separated string.
 * @returns The trimmed, non-empty entries.
 * @example
 * ```ts
 * import { parseBrokers } from "./kafka_client.ts";
 * console.assert(parseBrokers("a:1, b:2,").join() === "a:1,b:2");
 * ```
 */
export function parseBrokers(brokers: string | readonly string[]): string[] {
  const list = typeof brokers === "string"
    ? brokers.split(",")
    : brokers.flatMap((b) => b.split(","));
  return list.map((b) => b.trim()).filter((b) => b.length > 0);
}

/**
 * Cross-field checks of the connection settings: at least one broker, each
 * `host:port` with a port in 1..65535.
 *
 * @param config The parsed config.
 * @param path The config's key path.
 * @param issues Where problems go.
 * @example
 * ```ts
 * import { validateKafkaConnection } from "./kafka_client.ts";
 * const issues: { path: string; message: string }[] = [];
 * validateKafkaConnection({ brokers: "localhost" }, "config", issues);
 * console.assert(issues[0].path === "config.brokers");
 * ```
 */
export function validateKafkaConnection(
  config: Pick<KafkaConnectionConfig, "brokers">,
  path: string,
  issues: ConfigIssue[],
): void {
  const brokers = parseBrokers(config.brokers);
  if (brokers.length === 0) {
    issues.push({
      path: `${path}.brokers`,
      message: `expected at least one "host:port" broker, found ${describe(config.brokers)}`,
    });
  }
  for (const broker of brokers) {
    const m = broker.match(/^(.+):(\d+)$/);
    const port = m ? Number(m[2]) : NaN;
    if (!m || port < 1 || port > 65535) {
      issues.push({
        path: `${path}.brokers`,
        message: `expected "host:port" with a port in 1..65535, found ${JSON.stringify(broker)}`,
      });
    }
  }
}

/**
 * A kafkajs log creator that writes kafkajs' warnings and errors to a sluice
 * logger (kafkajs' info and debug lines are dropped: they are per-request noise).
 *
 * @param log The node's logger.
 * @returns The kafkajs `logCreator`.
 * @example
 * ```ts
 * import { kafkaLogCreator } from "./kafka_client.ts";
 * import { createLogger } from "../runtime/log.ts";
 * const lines: string[] = [];
 * const WARN = 2; // kafkajs' logLevel.WARN
 * const write = kafkaLogCreator(createLogger({ write: (l) => lines.push(l) }))(WARN);
 * write({ namespace: "Consumer", level: WARN, label: "WARN", log: { timestamp: "", message: "slow" } });
 * console.assert(lines[0].includes("kafkajs: slow"));
 * ```
 */
export function kafkaLogCreator(log: Logger): logCreator {
  return () => ({ namespace, level, log: entry }) => {
    if (level > LEVEL.WARN || level === LEVEL.NOTHING) return;
    const { message, timestamp: _t, stack: _s, ...rest } = entry;
    const fields: Record<string, unknown> = { kafkajs: namespace };
    for (const [k, v] of Object.entries(rest)) {
      // Keep log lines small: the offsets and broker lists kafkajs attaches can be long.
      if (v === undefined || (typeof v === "object" && v !== null)) continue;
      fields[k] = v;
    }
    if (level === LEVEL.ERROR) log.error(`kafkajs: ${message}`, fields);
    else log.warn(`kafkajs: ${message}`, fields);
  };
}

/**
 * The kafkajs client configuration of a node's connection settings.
 *
 * @param config The connection settings.
 * @param options The client id to use when none is configured, and the node's logger.
 * @returns A kafkajs `KafkaConfig`.
 * @example
 * ```ts
 * import { kafkaClientConfig } from "./kafka_client.ts";
 * import { createLogger } from "../runtime/log.ts";
 * const c = kafkaClientConfig({
 *   brokers: "a:1,b:2", sasl: { mechanism: "plain", username: "u", password: "p" },
 *   connection_timeout: 3, request_timeout: 30, retries: 5, retry_initial_delay: 0.3, retry_max_delay: 30,
 * }, { clientId: "sluice-x", log: createLogger({ level: "silent" }) });
 * console.assert(c.brokers.length === 2 && c.clientId === "sluice-x" && c.connectionTimeout === 3000);
 * ```
 */
export function kafkaClientConfig(
  config: KafkaConnectionConfig,
  options: { clientId: string; log: Logger },
): KafkaConfig & { brokers: string[] } {
  const ssl = config.ssl;
  let tls: KafkaConfig["ssl"];
  if (typeof ssl === "boolean") tls = ssl;
  else if (ssl && ssl.enabled) {
    tls = {
      rejectUnauthorized: ssl.reject_unauthorized,
      ...(ssl.ca !== undefined ? { ca: [ssl.ca] } : {}),
      ...(ssl.cert !== undefined ? { cert: ssl.cert } : {}),
      ...(ssl.key !== undefined ? { key: ssl.key } : {}),
      ...(ssl.passphrase !== undefined ? { passphrase: ssl.passphrase } : {}),
      ...(ssl.servername !== undefined ? { servername: ssl.servername } : {}),
    };
  }
  return {
    brokers: parseBrokers(config.brokers),
    clientId: config.client_id ?? options.clientId,
    ...(tls !== undefined ? { ssl: tls } : {}),
    ...(config.sasl ? { sasl: { ...config.sasl } as SASLOptions } : {}),
    connectionTimeout: Math.round(config.connection_timeout * 1000),
    requestTimeout: Math.round(config.request_timeout * 1000),
    retry: retryOptions(config),
    logLevel: LEVEL.WARN as logLevel,
    logCreator: kafkaLogCreator(options.log),
  };
}

/**
 * kafkajs retry options of the connection settings (milliseconds).
 *
 * @param config The connection settings.
 * @returns `{retries, initialRetryTime, maxRetryTime}`.
 * @example
 * ```ts
 * import { retryOptions } from "./kafka_client.ts";
 * console.assert(retryOptions({ retries: 2, retry_initial_delay: 0.1, retry_max_delay: 1 }).initialRetryTime === 100);
 * ```
 */
export function retryOptions(
  config: Pick<KafkaConnectionConfig, "retries" | "retry_initial_delay" | "retry_max_delay">,
): { retries: number; initialRetryTime: number; maxRetryTime: number } {
  return {
    retries: config.retries,
    initialRetryTime: Math.round(config.retry_initial_delay * 1000),
    maxRetryTime: Math.round(config.retry_max_delay * 1000),
  };
}

/**
 * Creates a kafkajs client for a node.
 *
 * @param config The connection settings.
 * @param options The default client id and the node's logger.
 * @returns The client.
 * @example
 * ```ts ignore
 * import { createKafkaClient } from "./kafka_client.ts";
 * import { createLogger } from "../runtime/log.ts";
 * const kafka = await createKafkaClient(
 *   { brokers: "127.0.0.1:9092", connection_timeout: 3, request_timeout: 30, retries: 5, retry_initial_delay: 0.3, retry_max_delay: 30 },
 *   { clientId: "sluice-test", log: createLogger() },
 * );
 * ```
 */
export async function createKafkaClient(
  config: KafkaConnectionConfig,
  options: { clientId: string; log: Logger },
): Promise<Kafka> {
  const { Kafka } = await loadKafkajs();
  return new Kafka(kafkaClientConfig(config, options));
}
