/**
 * What each child VM used, from its guest agent's samples (Resource Monitoring): the sim follows
 * the kernel's samples as they arrive, since a child's samples go when its VM does.
 */
import { formatBytes, sparkline } from 'rack/sim';
import type { Usage } from 'rack/libdck';

export interface ChildUsage {
  pid: number;
  name: string;
  samples: number;
  cpu_peak_pct: number;
  rss_peak: number;
  cpu: number[];
}

export class UsageLog {
  private readonly byPid = new Map<number, ChildUsage>();

  constructor(
    private readonly gid: string,
    private readonly names: (pid: number) => string | undefined,
  ) {}

  /** For the kernel's monitor 'sample' events. */
  readonly onSample = (gid: string, pid: number, u: Usage): void => {
    if (gid !== this.gid) return;
    const c = this.byPid.get(pid) ?? { pid, name: this.names(pid) ?? '', samples: 0, cpu_peak_pct: 0, rss_peak: 0, cpu: [] };
    c.samples++;
    c.cpu_peak_pct = Math.max(c.cpu_peak_pct, u.app_cpu_pct);
    c.rss_peak = Math.max(c.rss_peak, u.app_rss);
    if (c.cpu.length < 60) c.cpu.push(u.app_cpu_pct);
    this.byPid.set(pid, c);
  };

  /** Every process but those in `skip` (the File Catcher), by PID. */
  children(skip: number[]): ChildUsage[] {
    return [...this.byPid.values()].filter((c) => !skip.includes(c.pid)).sort((a, b) => a.pid - b.pid);
  }

  /** The report's table: one line per child, its app's CPU drawn over its life. */
  static table(rows: readonly ChildUsage[]): string {
    if (rows.length === 0) return '  (no child lived long enough for a sample)';
    const head = `  ${'PID'.padEnd(6)}${'NAME'.padEnd(10)}${'SAMPLES'.padStart(8)}${'CPU PEAK'.padStart(10)}${'RSS PEAK'.padStart(10)}  CPU (% of one core, each sample)`;
    const lines = rows.map((c) => `  ${String(c.pid).padEnd(6)}${c.name.padEnd(10)}${String(c.samples).padStart(8)}${`${c.cpu_peak_pct.toFixed(0)}%`.padStart(10)}${formatBytes(c.rss_peak).padStart(10)}  ${sparkline(c.cpu, 100)}`);
    return [head, ...lines].join('\n');
  }
}
