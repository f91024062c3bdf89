import { Transform } from 'node:stream';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(n: number): string {
  let i = 0;
  while (n >= 1024 && i < UNITS.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${UNITS[i]}`;
}

/**
 * Counts the bytes that flow through and, when stderr is a terminal, keeps one status line up to
 * date (done, total when known, rate): long transfers show that they move. Silent elsewhere, so
 * scripts and pipes get clean output.
 */
export function progress(label: string, total: number | null, out: NodeJS.WriteStream = process.stderr): Transform {
  const started = Date.now();
  let done = 0;
  let shown = 0;
  const draw = (final: boolean): void => {
    const secs = Math.max((Date.now() - started) / 1000, 0.001);
    const of = total ? ` of ${formatBytes(total)} (${Math.floor((done / total) * 100)}%)` : '';
    out.write(`\r${label}: ${formatBytes(done)}${of}, ${formatBytes(done / secs)}/s\x1b[K${final ? '\n' : ''}`);
  };
  const tty = Boolean(out.isTTY);
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      done += chunk.length;
      if (tty && Date.now() - shown > 200) {
        shown = Date.now();
        draw(false);
      }
      cb(null, chunk);
    },
    flush(cb) {
      if (tty && done > 0) draw(true);
      cb();
    },
  });
}
