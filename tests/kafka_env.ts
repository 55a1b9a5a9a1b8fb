/**
 * Test helpers for the Kafka tests: the broker address from `KAFKA_BROKERS`,
 * a `Deno.test` wrapper that skips loudly without a broker (and fails when
 * `CI=true`), kcat wrappers, topic creation and bounded waits.
 *
 * Start a broker for local runs with
 * `eval "$(bash scripts/kafka.sh start)" && export KAFKA_BROKERS`.
 *
 * @module
 */
import { Kafka, logLevel } from "kafkajs";
import type { Logger } from "../runtime/actor.ts";
import { RealClock } from "../runtime/clock.ts";
import { createLogger } from "../runtime/log.ts";

/** The broker list from `KAFKA_BROKERS`, or `undefined`. */
export const KAFKA_BROKERS: string | undefined = Deno.env.get("KAFKA_BROKERS") || undefined;

const IN_CI = Deno.env.get("CI") === "true";
let warned = false;

function warnSkipped(): void {
  if (warned) return;
  warned = true;
  console.error(
    [
      "",
      "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
      "!!  KAFKA_BROKERS is not set: the Kafka tests are SKIPPED.",
      '!!  Run them with: eval "$(bash scripts/kafka.sh start)" && export KAFKA_BROKERS',
      "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
      "",
    ].join("\n"),
  );
}

/**
 * Registers a test that needs the broker. Without `KAFKA_BROKERS` it is
 * ignored with a loud message, or fails when `CI=true`. The sanitizers are
 * off: kafkajs keeps sockets and timers of its own (request queues, retry and
 * restart timers) that outlive a disconnect by a tick.
 *
 * @param name What the test shows.
 * @param fn The test, given the broker list.
 */
export function kafkaTest(
  name: string,
  fn: (t: Deno.TestContext, brokers: string) => Promise<void>,
): void {
  if (!KAFKA_BROKERS) {
    if (IN_CI) {
      Deno.test(name, () => {
        throw new Error(
          "KAFKA_BROKERS is not set but CI=true: the Kafka tests need a broker (.ci/run starts one with scripts/kafka.sh)",
        );
      });
      return;
    }
    warnSkipped();
    Deno.test({ name, ignore: true, fn: () => {} });
    return;
  }
  const brokers = KAFKA_BROKERS;
  Deno.test({
    name,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: (t) => fn(t, brokers),
  });
}

/** The clock the Kafka tests wait with. */
export const clock: RealClock = new RealClock();

/**
 * A topic name no other test (or earlier run on the same broker) uses.
 *
 * @param prefix A readable prefix.
 * @returns The name.
 */
export function uniqueTopic(prefix: string): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
}

/**
 * Creates a topic with a number of partitions and waits for its leaders.
 *
 * @param brokers The broker list.
 * @param topic The topic.
 * @param partitions Partitions. @default {1}
 */
export async function createTopic(brokers: string, topic: string, partitions = 1): Promise<void> {
  const kafka = new Kafka({
    brokers: brokers.split(","),
    clientId: "sluice-test-admin",
    logLevel: logLevel.ERROR,
  });
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({
      topics: [{ topic, numPartitions: partitions }],
      waitForLeaders: true,
    });
  } finally {
    await admin.disconnect();
  }
}

/**
 * The committed offsets of a group on a topic, per partition.
 *
 * @param brokers The broker list.
 * @param group The consumer group.
 * @param topic The topic.
 * @returns Partition to committed offset (-1 when none).
 */
export async function committedOffsets(
  brokers: string,
  group: string,
  topic: string,
): Promise<Map<number, number>> {
  const kafka = new Kafka({
    brokers: brokers.split(","),
    clientId: "sluice-test-admin",
    logLevel: logLevel.ERROR,
  });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [entry] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    return new Map(entry.partitions.map((p) => [p.partition, Number(p.offset)]));
  } finally {
    await admin.disconnect();
  }
}

async function run(
  args: string[],
  stdin: string | undefined,
  timeoutMs: number,
): Promise<string> {
  const child = new Deno.Command("kcat", {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdin));
    await writer.close();
  }
  const out = await child.output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(
      `kcat ${args.join(" ")} failed (${out.code}${out.signal ? ", " + out.signal : ""}): ${
        new TextDecoder().decode(out.stderr).trim()
      }`,
    );
  }
  return text;
}

/**
 * Produces lines with kcat (one message per line; `key<TAB>value` with `keyed`).
 *
 * @param brokers The broker list.
 * @param topic The topic.
 * @param lines The messages.
 * @param options Keys, a fixed partition, headers.
 */
export async function kcatProduce(
  brokers: string,
  topic: string,
  lines: readonly string[],
  options: { keyed?: boolean; partition?: number; headers?: Record<string, string> } = {},
): Promise<void> {
  if (lines.length === 0) return;
  const args = ["-P", "-b", brokers, "-t", topic];
  if (options.keyed) args.push("-K", "\t");
  if (options.partition !== undefined) args.push("-p", String(options.partition));
  for (const [k, v] of Object.entries(options.headers ?? {})) args.push("-H", `${k}=${v}`);
  await run(args, lines.join("\n") + "\n", 60_000);
}

/** One message read by kcat. */
export interface KcatMessage {
  /** Key text (empty when none). */
  key: string;
  /** Value text. */
  value: string;
  /** Partition. */
  partition: number;
  /** Offset. */
  offset: number;
  /** Headers as `k=v` pairs joined with commas, as kcat prints them. */
  headers: string;
}

/**
 * Reads a topic from the beginning to its current end with kcat.
 *
 * @param brokers The broker list.
 * @param topic The topic.
 * @returns Every message.
 */
export async function kcatConsume(brokers: string, topic: string): Promise<KcatMessage[]> {
  const text = await run(
    [
      "-C",
      "-b",
      brokers,
      "-t",
      topic,
      "-o",
      "beginning",
      "-e",
      "-q",
      "-u",
      "-f",
      "%p\x1f%o\x1f%k\x1f%h\x1f%s\x1e",
    ],
    undefined,
    60_000,
  );
  return text.split("\x1e").filter((r) => r.length > 0).map((r) => {
    const [p, o, key, headers, value] = r.split("\x1f");
    return { partition: Number(p), offset: Number(o), key, headers, value };
  });
}

/**
 * Polls `check` until it returns true, or fails after `timeoutMs`.
 *
 * @param what What is awaited, for the error.
 * @param check The condition.
 * @param timeoutMs The bound. @default {30000}
 */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 30_000,
): Promise<void> {
  const start = clock.monotonic();
  while (!(await check())) {
    if (clock.monotonic() - start > timeoutMs) {
      throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
    }
    await clock.sleep(50);
  }
}

/**
 * A logger that keeps every line (info and up) for assertions, and echoes
 * warnings and errors to stderr when `SLUICE_TEST_LOG=1` (every line with `all`).
 *
 * @returns The logger and its lines.
 */
export function captureLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const mode = Deno.env.get("SLUICE_TEST_LOG");
  const logger = createLogger({
    level: "info",
    format: "json",
    write: (line) => {
      lines.push(line);
      if (mode === "all" || (mode === "1" && !line.includes('"level":"info"'))) {
        console.error(line);
      }
    },
  });
  return { logger, lines };
}
