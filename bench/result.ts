/** What every benchmark returns. */
export interface BenchResult {
  /** Benchmark name. */
  name: string;
  /** The headline ratio. */
  ratio: number;
  /** The target, in words. */
  target?: string;
  /** Whether the target was met. */
  pass?: boolean;
  /** Every figure measured. */
  details: Record<string, number>;
}
