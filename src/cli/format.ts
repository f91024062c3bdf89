/** Small drawings and units shared by `rack ps`, `rack top` and the sim's report. */

const SPARKS = '▁▂▃▄▅▆▇█';

/** A sparkline of the values, scaled to `max` (default: their own maximum), one character each. */
export function sparkline(values: readonly number[], max?: number): string {
  const top = max ?? Math.max(...values, 0);
  if (values.length === 0) return '';
  return values.map((v) => (top <= 0 ? SPARKS[0] : SPARKS[Math.min(7, Math.max(0, Math.round((v / top) * 7)))])).join('');
}

/** 1536 -> "1.5K", 52428800 -> "50M" (powers of 1024, as top shows memory). */
export function formatBytes(n: number): string {
  const units = ['B', 'K', 'M', 'G', 'T'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v >= 100 || u === 0 ? Math.round(v) : v.toFixed(1)}${units[u]}`;
}

export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** A pool bound as "used/capacity", ∞ when unbounded. */
export function formatBound(used: number, capacity: number | null): string {
  return `${Math.round(used * 10) / 10}/${capacity === null ? '∞' : capacity}`;
}

/** Cuts a line to the terminal's width (code points; the drawings here are one column each). */
export function fit(line: string, width: number): string {
  const chars = [...line];
  return chars.length <= width ? line : chars.slice(0, Math.max(0, width - 1)).join('') + '…';
}
