/**
 * Timestamp parsing shared by filters and windows: epoch seconds, epoch
 * milliseconds, strict ISO 8601 strings, `Date` objects and relative times
 * such as `now-1h`.
 *
 * @module
 */

/**
 * Numbers whose magnitude is below this are epoch **seconds**, the rest epoch
 * **milliseconds**. 1e11 seconds is the year 5138, so no realistic seconds
 * timestamp reaches it; 1e11 milliseconds is March 1973, so every millisecond
 * timestamp after that is above it. Millisecond timestamps before March 1973
 * (and seconds timestamps after 5138) are misread.
 */
export const EPOCH_SECONDS_LIMIT = 1e11;

/** The unit a timestamp was written in: epoch seconds, epoch ms or ISO 8601. */
export type TimeUnit = "s" | "ms" | "iso";

/** The largest distance from the epoch a `Date` can represent, in ms. */
const MAX_DATE_MS = 8.64e15;

const MS_PER_UNIT: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

const NUMERIC_STRING = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$/;

// YYYY-MM-DD, optionally followed by T (or a space, as RFC 3339 allows),
// hh:mm, optional :ss, optional fraction and optional Z / ±hh[:]mm offset.
const ISO_8601 =
  /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?([Zz]|[+-]\d{2}(?::?\d{2})?)?)?$/;

const RELATIVE_TIME = /^\s*now\s*(?:([+-])\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h|d|w)\s*)?$/;

// 400 Gregorian years always hold exactly 146097 days.
const FOUR_CENTURIES_MS = 146_097 * 86_400_000;

function daysInMonth(year: number, month: number): number {
  if (month === 2) {
    const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
    return leap ? 29 : 28;
  }
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/**
 * Parses a strict ISO 8601 / RFC 3339 timestamp.
 *
 * Accepted: `YYYY-MM-DD` (midnight UTC), and `YYYY-MM-DDThh:mm[:ss[.fff…]]`
 * followed by `Z`, an offset (`+02:00`, `+0200`, `-05`) or nothing. **A
 * date-time without an offset is read as UTC** (unlike `Date.parse`, which
 * uses the machine's local time zone, so results would depend on the host).
 * Every field is range-checked (`2024-02-30`, `2024-13-45`, `25:00` are
 * rejected, where `Date.parse` would roll some of them over), and loose
 * formats that `Date.parse` happens to accept (`March 7`, `2024/01/02`) are
 * rejected. Leap seconds (`:60`) and `24:00` are not accepted.
 *
 * @param text The string to parse.
 * @returns Epoch milliseconds, or `undefined` when `text` is not strict ISO
 * 8601.
 * @example Parsing ISO timestamps
 * ```ts
 * import { parseIsoTimestampMs } from "./time.ts";
 * console.assert(parseIsoTimestampMs("1970-01-01T00:00:01Z") === 1000);
 * console.assert(parseIsoTimestampMs("1970-01-01T02:00:00+02:00") === 0);
 * console.assert(parseIsoTimestampMs("March 7") === undefined);
 * ```
 */
export function parseIsoTimestampMs(text: string): number | undefined {
  const match = ISO_8601.exec(text);
  if (match === null) return undefined;
  const year = +match[1];
  const month = +match[2];
  const day = +match[3];
  const hour = match[4] === undefined ? 0 : +match[4];
  const minute = match[5] === undefined ? 0 : +match[5];
  const second = match[6] === undefined ? 0 : +match[6];
  if (
    month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) ||
    hour > 23 || minute > 59 || second > 59
  ) {
    return undefined;
  }
  let fractionMs = 0;
  const fraction = match[7];
  if (fraction !== undefined) {
    // Whole milliseconds as an integer, so "…20.123Z" is exactly …123 ms.
    fractionMs = +fraction.slice(0, 3).padEnd(3, "0");
    if (fraction.length > 3) fractionMs += +`0.${fraction.slice(3)}`;
  }
  let offsetMs = 0;
  const zone = match[8];
  if (zone !== undefined && zone !== "Z" && zone !== "z") {
    const digits = zone.slice(1).replace(":", "");
    const offsetHours = +digits.slice(0, 2);
    const offsetMinutes = digits.length > 2 ? +digits.slice(2) : 0;
    if (offsetHours > 23 || offsetMinutes > 59) return undefined;
    offsetMs = (offsetHours * 60 + offsetMinutes) * 60_000;
    if (zone[0] === "-") offsetMs = -offsetMs;
  }
  // Date.UTC maps years 0-99 to 1900-1999; shifting by a whole 400-year cycle
  // avoids that without changing the calendar.
  const utc = Date.UTC(year + 400, month - 1, day, hour, minute, second) -
    FOUR_CENTURIES_MS;
  return utc + fractionMs - offsetMs;
}

function epochNumberToMs(value: number): number | undefined {
  // Plain arithmetic and comparisons only: this runs once per event in
  // windows and time filters, and stays small enough to inline.
  if (value - value !== 0) return undefined; // NaN, ±Infinity
  if (value < EPOCH_SECONDS_LIMIT && value > -EPOCH_SECONDS_LIMIT) {
    const ms = value * 1000;
    // Drop binary floating-point noise (1.1 * 1000 = 1100.0000000000002)
    // while keeping microseconds; whole milliseconds need no rounding.
    return ms === Math.floor(ms) ? ms : Math.round(ms * 1000) / 1000;
  }
  return value <= MAX_DATE_MS && value >= -MAX_DATE_MS ? value : undefined;
}

/**
 * Parses a timestamp in any of the forms events carry.
 *
 * - numbers with magnitude below {@linkcode EPOCH_SECONDS_LIMIT} (1e11) are
 *   epoch **seconds** and may be fractional (`1700000000.25`);
 * - numbers from 1e11 up are epoch **milliseconds**;
 * - decimal strings (`"1700000000"`, `"-5"`, `"1.5"`, no exponent, no
 *   surrounding spaces) are read as the number they spell, with the same
 *   threshold;
 * - strict ISO 8601 strings (see {@linkcode parseIsoTimestampMs});
 * - valid `Date` objects.
 *
 * The threshold rests on 1e11 seconds being the year 5138 and 1e11
 * milliseconds being March 1973: numbers are unambiguous for any timestamp
 * between 1973 and 5138.
 *
 * @param value The value to interpret.
 * @returns Epoch milliseconds, or `undefined` for anything else: `null`,
 * `NaN`, `±Infinity`, values outside the `Date` range, invalid or non-strict
 * ISO strings (`"2024-13-45"`, `"March 7"`), invalid `Date`s, booleans,
 * objects and arrays.
 * @example Seconds, milliseconds and ISO all give epoch milliseconds
 * ```ts
 * import { parseTimestampMs } from "./time.ts";
 * console.assert(parseTimestampMs(1700000000) === 1700000000000);
 * console.assert(parseTimestampMs(1700000000000) === 1700000000000);
 * console.assert(parseTimestampMs("2023-11-14T22:13:20Z") === 1700000000000);
 * console.assert(parseTimestampMs("2024-13-45") === undefined);
 * ```
 */
export function parseTimestampMs(value: unknown): number | undefined {
  // Numbers first and alone, so that the common case inlines into callers.
  if (typeof value === "number") return epochNumberToMs(value);
  return parseNonNumberTimestampMs(value);
}

function parseNonNumberTimestampMs(value: unknown): number | undefined {
  if (typeof value === "string") {
    if (NUMERIC_STRING.test(value)) return epochNumberToMs(+value);
    return parseIsoTimestampMs(value);
  }
  if (value instanceof Date) {
    const ms = value.getTime();
    return Number.isNaN(ms) ? undefined : ms;
  }
  return undefined;
}

/**
 * The unit a timestamp is written in, so results (such as window bounds) can
 * be given back in the same unit with {@linkcode fromMs}.
 *
 * Numbers and decimal strings give `"s"` or `"ms"` by the
 * {@linkcode EPOCH_SECONDS_LIMIT} threshold; ISO strings and `Date` objects
 * give `"iso"`.
 *
 * @param value A timestamp in any form {@linkcode parseTimestampMs} accepts.
 * @returns The unit, or `undefined` when `value` is not a timestamp.
 * @example Detecting units
 * ```ts
 * import { detectTimeUnit } from "./time.ts";
 * console.assert(detectTimeUnit(1700000000) === "s");
 * console.assert(detectTimeUnit(1700000000000) === "ms");
 * console.assert(detectTimeUnit("2024-01-01") === "iso");
 * console.assert(detectTimeUnit("soon") === undefined);
 * ```
 */
export function detectTimeUnit(value: unknown): TimeUnit | undefined {
  if (parseTimestampMs(value) === undefined) return undefined;
  if (typeof value === "number") {
    return Math.abs(value) < EPOCH_SECONDS_LIMIT ? "s" : "ms";
  }
  if (typeof value === "string" && NUMERIC_STRING.test(value)) {
    return Math.abs(+value) < EPOCH_SECONDS_LIMIT ? "s" : "ms";
  }
  return "iso";
}

/**
 * Converts epoch milliseconds back to a unit.
 *
 * @param ms Epoch milliseconds.
 * @param unit `"s"` for epoch seconds (possibly fractional), `"ms"` for epoch
 * milliseconds, `"iso"` for an ISO 8601 string in UTC
 * (`Date.prototype.toISOString`).
 * @returns A number for `"s"` and `"ms"`, a string for `"iso"`.
 * @throws {RangeError} When `ms` is not finite, or is outside the `Date`
 * range for `"iso"`.
 * @throws {TypeError} When `unit` is not one of `"s"`, `"ms"`, `"iso"`.
 * @example Round-tripping a window bound
 * ```ts
 * import { fromMs } from "./time.ts";
 * console.assert(fromMs(1500, "s") === 1.5);
 * console.assert(fromMs(0, "iso") === "1970-01-01T00:00:00.000Z");
 * ```
 */
export function fromMs(ms: number, unit: TimeUnit): number | string {
  if (!Number.isFinite(ms)) {
    throw new RangeError(`expected finite epoch milliseconds, found ${ms}`);
  }
  switch (unit) {
    case "s":
      return ms / 1000;
    case "ms":
      return ms;
    case "iso":
      if (Math.abs(ms) > MAX_DATE_MS) {
        throw new RangeError(
          `expected epoch milliseconds within ±${MAX_DATE_MS}, found ${ms}`,
        );
      }
      return new Date(ms).toISOString();
    default:
      throw new TypeError(
        `expected time unit "s", "ms" or "iso", found ${JSON.stringify(unit)}`,
      );
  }
}

/**
 * Parses the offset of a relative time such as `now-1h`, for callers that
 * compile it once and add the current time at each use.
 *
 * Grammar: `now`, optionally followed by `+` or `-`, an amount (decimals
 * allowed: `now-1.5h`) and a unit: `ms`, `s`, `m` (minutes), `h`, `d`, `w`.
 * Whitespace around the parts is allowed (`now - 1h`). Everything is lower
 * case; `M` is not a unit (months have no fixed length).
 *
 * @param text The relative time.
 * @returns The offset from now in milliseconds (negative for the past), or
 * `undefined` when `text` does not follow the grammar.
 * @example Offsets
 * ```ts
 * import { parseRelativeOffsetMs } from "./time.ts";
 * console.assert(parseRelativeOffsetMs("now-1h") === -3600000);
 * console.assert(parseRelativeOffsetMs("now") === 0);
 * console.assert(parseRelativeOffsetMs("now-1y") === undefined);
 * ```
 */
export function parseRelativeOffsetMs(text: string): number | undefined {
  if (typeof text !== "string") return undefined;
  const match = RELATIVE_TIME.exec(text);
  if (match === null) return undefined;
  if (match[1] === undefined) return 0;
  const offset = +match[2] * MS_PER_UNIT[match[3]];
  return match[1] === "-" ? -offset : offset;
}

/**
 * Resolves a relative time such as `now-1h` against a given current time.
 * See {@linkcode parseRelativeOffsetMs} for the grammar.
 *
 * @param text The relative time: `now`, `now-30s`, `now + 5m`, `now-500ms`…
 * @param nowMs The current time in epoch milliseconds (from a `Clock`).
 * @returns Epoch milliseconds, or `undefined` when `text` does not parse.
 * @example One hour before a fixed "now"
 * ```ts
 * import { parseRelativeTime } from "./time.ts";
 * const now = Date.UTC(2024, 0, 1, 12);
 * console.assert(parseRelativeTime("now-1h", now) === Date.UTC(2024, 0, 1, 11));
 * console.assert(parseRelativeTime("now - 2d", now) === Date.UTC(2023, 11, 30, 12));
 * ```
 */
export function parseRelativeTime(
  text: string,
  nowMs: number,
): number | undefined {
  const offset = parseRelativeOffsetMs(text);
  return offset === undefined ? undefined : nowMs + offset;
}
