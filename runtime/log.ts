/**
 * Loggers: plain text or JSON lines on stderr, with a level.
 *
 * @module
 */
import type { LogFields, Logger } from "./actor.ts";

/** Log levels, lowest first. */
export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";

const LEVELS: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3, silent: 4 };

/** Options of {@linkcode createLogger}. */
export interface LoggerOptions {
  /** Lowest level written. @default {"info"} */
  level?: LogLevel;
  /** `text` or `json` (one object per line). @default {"text"} */
  format?: "text" | "json";
  /** Where lines go. @default {writes to stderr} */
  write?: (line: string) => void;
  /** Fields added to every line. */
  fields?: LogFields;
  /** Returns the time for each line. @default {() => new Date().toISOString()} */
  time?: () => string;
  /** Strings to mask in every line (secret values). */
  redact?: () => readonly string[];
}

const encoder = new TextEncoder();

/**
 * Replaces every occurrence of each secret with `***`.
 *
 * @param text Any text.
 * @param secrets The values to hide.
 * @returns The text without them.
 * @example Masking a secret
 * ```ts
 * import { redact } from "./log.ts";
 * console.assert(redact("token abc123", ["abc123"]) === "token ***");
 * ```
 */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length >= 3) out = out.split(secret).join("***");
  }
  return out;
}

/**
 * Creates a logger.
 *
 * @param options Level, format and destination.
 * @returns The logger.
 * @example JSON lines to a custom writer
 * ```ts
 * import { createLogger } from "./log.ts";
 * const lines: string[] = [];
 * const log = createLogger({ format: "json", write: (l) => lines.push(l), time: () => "t" });
 * log.info("started", { node: "a" });
 * console.assert(JSON.parse(lines[0]).node === "a");
 * ```
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const min = LEVELS[options.level ?? "info"];
  const write = options.write ??
    ((line: string) => Deno.stderr.writeSync(encoder.encode(line + "\n")));
  const time = options.time ?? (() => new Date().toISOString());
  const base = options.fields ?? {};
  const emit = (level: LogLevel, message: string, fields?: LogFields) => {
    if (LEVELS[level] < min) return;
    const all = { ...base, ...fields };
    let line: string;
    if (options.format === "json") {
      line = JSON.stringify({ time: time(), level, message, ...all });
    } else {
      const extra = Object.entries(all).map(([k, v]) =>
        `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`
      ).join(" ");
      line = `${time()} ${level.toUpperCase().padEnd(5)} ${message}${extra ? " " + extra : ""}`;
    }
    write(options.redact ? redact(line, options.redact()) : line);
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
  };
}

/**
 * A logger that adds fields to every line of another.
 *
 * @param logger The logger to wrap.
 * @param fields Fields to add.
 * @returns The wrapped logger.
 * @example A logger for one node
 * ```ts
 * import { createLogger, withFields } from "./log.ts";
 * const log = withFields(createLogger({ level: "silent" }), { node: "a" });
 * log.info("x");
 * ```
 */
export function withFields(logger: Logger, fields: LogFields): Logger {
  return {
    debug: (m, f) => logger.debug(m, { ...fields, ...f }),
    info: (m, f) => logger.info(m, { ...fields, ...f }),
    warn: (m, f) => logger.warn(m, { ...fields, ...f }),
    error: (m, f) => logger.error(m, { ...fields, ...f }),
  };
}
