/** Text drawings for the sim: a progress bar, a live status block and per-VM lifetime timelines. */

export function progressBar(fraction: number, width = 30): string {
  const f = Math.max(0, Math.min(1, Number.isFinite(fraction) ? fraction : 0));
  const full = Math.floor(f * width);
  const partial = ['', '▏', '▎', '▍', '▌', '▋', '▊', '▉'][Math.floor((f * width - full) * 8)] ?? '';
  return `${'█'.repeat(full)}${partial}`.padEnd(width, '·');
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

export interface Lifetime {
  pid: number;
  ppid: number | null;
  label: string;
  start: number;
  /** null while it still runs. */
  end: number | null;
  /** How it ended, shown after the bar. */
  outcome: string;
  /** When it left the fork queue and its VM started booting; unset if it never waited. */
  booted?: number;
}

/**
 * One line per VM: its place in the PPID tree, then a bar from boot to end on a shared time axis
 * (dotted while it waited in the fork queue), so restarts, overlaps, queueing and stragglers are
 * visible at a glance.
 */
export function drawTimelines(items: readonly Lifetime[], t0: number, t1: number, width = 40): string {
  const span = Math.max(1, t1 - t0);
  const byPid = new Map(items.map((i) => [i.pid, i]));
  const depth = (i: Lifetime): number => {
    let d = 0;
    for (let p = i.ppid; p !== null && byPid.has(p) && d < 50; p = byPid.get(p)!.ppid) d++;
    return d;
  };
  const ordered = [...items].sort((a, b) => a.pid - b.pid);
  const names = ordered.map((i) => `${'  '.repeat(depth(i))}${i.pid} ${i.label}`);
  const nameWidth = Math.max(...names.map((n) => n.length), 8);
  const axis = `${' '.repeat(nameWidth)}  0${' '.repeat(Math.max(0, width - 1 - formatDuration(span).length))}${formatDuration(span)}`;
  const lines = ordered.map((i, n) => {
    // Clamped: a VM may have started before the window drawn, or still be running after it.
    const from = Math.min(width - 1, Math.max(0, Math.floor(((i.start - t0) / span) * width)));
    const to = Math.max(from + 1, Math.ceil((((i.end ?? t1) - t0) / span) * width));
    // The time a process waited in the fork queue (no VM yet) is dotted.
    const boot = i.booted === undefined ? from : Math.min(Math.min(width, to), Math.max(from, Math.floor(((i.booted - t0) / span) * width)));
    const bar = ' '.repeat(from) + '┄'.repeat(boot - from) + '━'.repeat(Math.min(width, to) - boot);
    return `${names[n]!.padEnd(nameWidth)}  ${bar.padEnd(width)}  ${i.outcome}`;
  });
  return [axis, ...lines].join('\n');
}

/**
 * A block of lines redrawn in place on a terminal; elsewhere (CI, pipes) each new state is printed
 * as plain lines, at most once per `plainEveryMs`.
 */
export class LiveBlock {
  private drawn = 0;
  private lastPlain = 0;

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly plainEveryMs = 2000,
  ) {}

  get tty(): boolean {
    return Boolean(this.out.isTTY);
  }

  update(lines: string[], force = false): void {
    if (this.tty) {
      const up = this.drawn > 0 ? `\x1b[${this.drawn}F` : '';
      this.out.write(up + lines.map((l) => `\x1b[2K${l}`).join('\n') + '\n');
      // Clear lines left over from a taller previous frame.
      const extra = this.drawn - lines.length;
      if (extra > 0) this.out.write('\x1b[2K\n'.repeat(extra) + `\x1b[${extra}F`);
      this.drawn = lines.length;
      return;
    }
    const now = Date.now();
    if (!force && now - this.lastPlain < this.plainEveryMs) return;
    this.lastPlain = now;
    this.out.write(lines.join('\n') + '\n');
  }

  /** Prints a line where the frame is (the next update draws the frame below it). */
  interrupt(line: string): void {
    const up = this.tty && this.drawn > 0 ? `\x1b[${this.drawn}F\x1b[0J` : '';
    this.out.write(up + line + '\n');
    this.drawn = 0;
  }

  /** Leaves the last frame on screen; the next output starts below it. */
  done(): void {
    this.drawn = 0;
  }
}
