/**
 * Named error classes shared by the runtime.
 *
 * @module
 */

/** Where in a source file a config problem sits (1-based). */
export interface SourcePosition {
  /** The file the workflow came from, when known. */
  file?: string;
  /** 1-based line. */
  line: number;
  /** 1-based column. */
  column: number;
}

/** One problem found while loading or validating a workflow. */
export interface ConfigIssue {
  /** Key path such as `nodes[1].config.filter_conditions[0].operator`. */
  path: string;
  /** What was expected and what was found. */
  message: string;
  /** Position in the source file, when the workflow came from YAML. */
  position?: SourcePosition;
}

/**
 * Formats one issue as `file:line:col: path: message`.
 *
 * @param issue The issue to format.
 * @returns A single line of text.
 * @example Formatting an issue
 * ```ts
 * import { formatIssue } from "./errors.ts";
 * formatIssue({ path: "nodes[0].type", message: "unknown node type" });
 * ```
 */
export function formatIssue(issue: ConfigIssue): string {
  const where = issue.position
    ? `${issue.position.file ?? "<workflow>"}:${issue.position.line}:${issue.position.column}: `
    : "";
  return `${where}${issue.path ? issue.path + ": " : ""}${issue.message}`;
}

/**
 * A workflow's configuration is invalid. Carries every issue found, so all of
 * them can be reported together before anything starts.
 *
 * @example Catching config errors
 * ```ts
 * import { ConfigError } from "./errors.ts";
 * const error = new ConfigError([{ path: "nodes[0].id", message: "missing" }]);
 * console.assert(error.issues.length === 1);
 * ```
 */
export class ConfigError extends Error {
  /** Every issue found, in source order. */
  readonly issues: readonly ConfigIssue[];
  /**
   * Creates the error; its message lists every issue.
   *
   * @param issues The problems found.
   * @param options Standard error options (`cause`).
   */
  constructor(issues: readonly ConfigIssue[], options?: ErrorOptions) {
    const lines = issues.map(formatIssue);
    super(
      issues.length === 1 ? lines[0] : `${issues.length} config errors:\n  ${lines.join("\n  ")}`,
      options,
    );
    this.name = "ConfigError";
    this.issues = issues;
  }
}

/**
 * A mailbox with the `fail` policy overflowed. It fails the receiving node
 * (whose mailbox overflowed), never the sender.
 *
 * @example Creating the error
 * ```ts
 * import { MailboxFullError } from "./errors.ts";
 * const error = new MailboxFullError("enrich", 1000);
 * console.assert(error.name === "MailboxFullError");
 * ```
 */
export class MailboxFullError extends Error {
  /** The node whose mailbox overflowed. */
  readonly nodeId: string;
  /** The mailbox capacity. */
  readonly capacity: number;
  /**
   * Creates the error for one node's mailbox.
   *
   * @param nodeId The node whose mailbox overflowed.
   * @param capacity Its capacity.
   * @param options Standard error options.
   */
  constructor(nodeId: string, capacity: number, options?: ErrorOptions) {
    super(
      `mailbox of node "${nodeId}" is full (capacity ${capacity}) and its overflow policy is "fail"`,
      options,
    );
    this.name = "MailboxFullError";
    this.nodeId = nodeId;
    this.capacity = capacity;
  }
}

/**
 * A send to a closed mailbox.
 *
 * @example Creating the error
 * ```ts
 * import { MailboxClosedError } from "./errors.ts";
 * console.assert(new MailboxClosedError("sink").name === "MailboxClosedError");
 * ```
 */
export class MailboxClosedError extends Error {
  /** The node whose mailbox was closed. */
  readonly nodeId: string;
  /**
   * Creates the error for one node's mailbox.
   *
   * @param nodeId The node whose mailbox was closed.
   * @param options Standard error options.
   */
  constructor(nodeId: string, options?: ErrorOptions) {
    super(`mailbox of node "${nodeId}" is closed`, options);
    this.name = "MailboxClosedError";
    this.nodeId = nodeId;
  }
}

/**
 * An actor failed more often than its supervisor's intensity allows
 * (at most R restarts in P seconds), so the workflow stops.
 *
 * @example Creating the error
 * ```ts
 * import { RestartIntensityError } from "./errors.ts";
 * const error = new RestartIntensityError("parse", 5, 60, new Error("boom"));
 * console.assert(error.message.includes("parse"));
 * ```
 */
export class RestartIntensityError extends Error {
  /** The actor that exceeded its restart budget. */
  readonly nodeId: string;
  /**
   * Creates the error; `lastError` becomes its `cause`.
   *
   * @param nodeId The failing actor.
   * @param maxRestarts R.
   * @param periodSeconds P.
   * @param lastError The actor's last error.
   */
  constructor(
    nodeId: string,
    maxRestarts: number,
    periodSeconds: number,
    lastError: unknown,
  ) {
    super(
      `node "${nodeId}" failed more than ${maxRestarts} times in ${periodSeconds}s; last error: ${
        errorMessage(lastError)
      }`,
      { cause: lastError },
    );
    this.name = "RestartIntensityError";
    this.nodeId = nodeId;
  }
}

/**
 * Reads a message out of anything thrown.
 *
 * @param error Anything that was thrown.
 * @returns Its message, or its string form.
 * @example Messages of errors and other values
 * ```ts
 * import { errorMessage } from "./errors.ts";
 * console.assert(errorMessage(new Error("x")) === "x");
 * ```
 */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  try {
    return String(error);
  } catch {
    return "unprintable error";
  }
}
