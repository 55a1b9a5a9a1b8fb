/**
 * "Did you mean …?" suggestions for misspelled config names (operators, keys,
 * node types).
 *
 * @module
 */

/**
 * The Levenshtein edit distance between two strings: the fewest single
 * character insertions, deletions or substitutions that turn `a` into `b`.
 * Characters are Unicode code points, so an emoji counts as one character.
 *
 * @param a The first string.
 * @param b The second string.
 * @returns The edit distance, 0 when the strings are equal.
 * @example Distance between an operator typo and the real name
 * ```ts
 * import { levenshtein } from "./suggest.ts";
 * console.assert(levenshtein("inn", "in") === 1);
 * console.assert(levenshtein("kitten", "sitting") === 3);
 * ```
 */
export function levenshtein(a: string, b: string): number {
  if (a === b) return 0;
  const s = Array.from(a);
  const t = Array.from(b);
  if (s.length === 0) return t.length;
  if (t.length === 0) return s.length;
  // Two rows of the dynamic-programming table are enough.
  let previous = new Array<number>(t.length + 1);
  let current = new Array<number>(t.length + 1);
  for (let j = 0; j <= t.length; j++) previous[j] = j;
  for (let i = 1; i <= s.length; i++) {
    current[0] = i;
    for (let j = 1; j <= t.length; j++) {
      const cost = s[i - 1] === t[j - 1] ? 0 : 1;
      current[j] = Math.min(
        previous[j] + 1,
        current[j - 1] + 1,
        previous[j - 1] + cost,
      );
    }
    [previous, current] = [current, previous];
  }
  return previous[t.length];
}

/**
 * The candidate closest to a misspelled `name`, for "did you mean" messages.
 *
 * Names are compared case-insensitively. A candidate qualifies when its
 * distance is at most `maxDistance` and smaller than its own length, so a
 * two-letter typo such as `"gt"` does not "suggest" the unrelated `"in"`. On a
 * tie the earlier candidate wins.
 *
 * @param name The unknown name the user wrote.
 * @param candidates The valid names.
 * @param maxDistance The largest edit distance still worth suggesting.
 * @returns The best candidate, or `undefined` when none is close enough.
 * @example Suggesting an operator
 * ```ts
 * import { suggest } from "./suggest.ts";
 * console.assert(suggest("inn", ["equals", "in", "not_in"]) === "in");
 * console.assert(suggest("feild", ["field", "operator"]) === "field");
 * console.assert(suggest("zzzzzz", ["field", "operator"]) === undefined);
 * ```
 */
export function suggest(
  name: string,
  candidates: Iterable<string>,
  maxDistance: number = 2,
): string | undefined {
  const wanted = name.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = levenshtein(wanted, candidate.toLowerCase());
    if (
      distance <= maxDistance &&
      distance < Array.from(candidate).length &&
      distance < bestDistance
    ) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}
