/** A seeded PRNG and generators of hostile values for fuzz tests. */

/** mulberry32: small, fast, reproducible. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NASTY_KEYS = [
  "__proto__",
  "constructor",
  "prototype",
  "toString",
  "hasOwnProperty",
  "",
  "a.b",
  "😀",
];
const NASTY_STRINGS = [
  "",
  "now-1h",
  "now+",
  "${HOME}",
  "${UNSET_VAR_FOR_FUZZ}",
  "2024-13-45T99:99:99Z",
  "((((",
  "[a-",
  "\u0000",
  "\ud800",
  "NaN",
  "Infinity",
  "-0",
  "1e309",
  "null",
  "{}",
  "'",
  '"',
  "\n- - -\n",
  "&anchor",
  "*alias",
  "!!js/function 'x'",
];

/** A random value of any JSON-ish shape, hostile on purpose. */
export function hostileValue(random: () => number, depth = 0): unknown {
  const r = random();
  if (depth > 6 || r < 0.35) {
    const pick = random();
    if (pick < 0.2) return NASTY_STRINGS[Math.floor(random() * NASTY_STRINGS.length)];
    if (pick < 0.3) {
      return [NaN, Infinity, -Infinity, -0, 1e308, Number.MIN_VALUE][Math.floor(random() * 6)];
    }
    if (pick < 0.4) return random() < 0.5 ? null : undefined;
    if (pick < 0.5) return random() < 0.5;
    if (pick < 0.6) return "x".repeat(Math.floor(random() * 100_000));
    if (pick < 0.8) return Math.floor(random() * 2e6) - 1e6;
    return String.fromCharCode(...Array.from({ length: 8 }, () => Math.floor(random() * 0xffff)));
  }
  if (r < 0.6) {
    return Array.from({ length: Math.floor(random() * 4) }, () => hostileValue(random, depth + 1));
  }
  const out: Record<string, unknown> = {};
  const n = Math.floor(random() * 4);
  for (let i = 0; i < n; i++) {
    const key = random() < 0.3
      ? NASTY_KEYS[Math.floor(random() * NASTY_KEYS.length)]
      : `k${Math.floor(random() * 10)}`;
    Object.defineProperty(out, key, {
      value: hostileValue(random, depth + 1),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

/** Nests a value `depth` levels deep in arrays or objects. */
export function deeplyNested(depth: number, asObject: boolean): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = asObject ? { a: v } : [v];
  return v;
}

/** Throws when Object.prototype has gained any property. */
export function assertPrototypeClean(): void {
  const names = Object.getOwnPropertyNames(Object.prototype);
  // deno-lint-ignore no-explicit-any
  const polluted = ({} as any).polluted ?? ({} as any).k0 ?? ({} as any).a;
  if (polluted !== undefined || names.some((n) => n.startsWith("k") || n === "polluted")) {
    throw new Error(`Object.prototype was polluted: ${names.join(",")}`);
  }
}
