import { readdirSync, readFileSync, statfsSync } from 'node:fs';
import type { UsageSample } from '../../protocol/resources.js';
import { parseLoadavg, parseMeminfo, parseNetDev, parsePidStat, parseStat } from './proc.js';

/** Linux reports CPU times to userspace in USER_HZ, 100 per second on every architecture. */
const USER_HZ = 100;

/**
 * Samples this VM (CPU busy, load, memory, disk, network; from /proc and statfs) and its app's
 * process group (processes, CPU, resident memory). Cheap by design: a handful of small files,
 * plus the stat of each of the app's processes (found from its first process's children lists).
 */
export class Sampler {
  private prevCpu: { total: number; idle: number } | null = null;
  private prevApp = new Map<number, number>();
  private prevAt = 0;
  private readonly pageSize: number;

  constructor(
    private readonly opts: { proc?: string; disk?: string } = {},
  ) {
    this.pageSize = pageSize(this.proc);
    // The baseline: the first sample's rates are over the time since now.
    try {
      this.take(null);
    } catch {
      /* the first real sample reports what it cannot read */
    }
  }

  private get proc(): string {
    return this.opts.proc ?? '/proc';
  }

  /** One sample; `appPgid` is the app's process group (its first process's pid), null when no app runs. */
  take(appPgid: number | null): UsageSample {
    const now = Date.now();
    const read = (f: string): string => readFileSync(`${this.proc}/${f}`, 'latin1');
    const stat = parseStat(read('stat'));
    const mem = parseMeminfo(read('meminfo'));
    const net = parseNetDev(read('net/dev'));
    const disk = statfsSync(this.opts.disk ?? '/');
    const cpuPct = this.prevCpu && stat.total > this.prevCpu.total ? (100 * (1 - (stat.idle - this.prevCpu.idle) / (stat.total - this.prevCpu.total))) : 0;
    const app = this.appGroup(appPgid, now);
    this.prevCpu = stat;
    this.prevAt = now;
    return {
      t: now,
      cpu_pct: round(clamp(cpuPct, 0, 100)),
      cpus: stat.cpus,
      load: parseLoadavg(read('loadavg')),
      mem_total: mem.total,
      mem_available: mem.available,
      disk_total: disk.blocks * disk.bsize,
      disk_used: (disk.blocks - disk.bfree) * disk.bsize,
      net_rx: net.rx,
      net_tx: net.tx,
      app_procs: app.procs,
      app_cpu_pct: round(clamp(app.cpuPct, 0, 100 * stat.cpus)),
      app_rss: app.rss,
    };
  }

  /**
   * The processes that may be in the app's group: the descendants of its first process, from the
   * kernel's children lists (as many files as the app has processes, however busy the machine:
   * in the sim every VM shares the host). When the first process is gone (its group lives on)
   * or the kernel has no children lists, every process of /proc.
   */
  private candidates(pgid: number): string[] {
    const childrenOf = (pid: string): string[] => {
      const out: string[] = [];
      for (const tid of readdirSync(`${this.proc}/${pid}/task`)) {
        for (const c of readFileSync(`${this.proc}/${pid}/task/${tid}/children`, 'latin1').split(' ')) if (c.trim()) out.push(c.trim());
      }
      return out;
    };
    const all = (): string[] => readdirSync(this.proc).filter((e) => e.charCodeAt(0) <= 57 && /^[0-9]+$/.test(e));
    const found = [String(pgid)];
    let todo: string[];
    try {
      todo = childrenOf(found[0]!);
    } catch {
      return all();
    }
    while (todo.length > 0 && found.length < 100_000) {
      const pid = todo.pop()!;
      found.push(pid);
      try {
        todo.push(...childrenOf(pid));
      } catch {
        // it ended meanwhile: its children, if any, are no longer below the app's first process
      }
    }
    return found;
  }

  /** The processes of the app's group: how many, their CPU since the last sample, their memory. */
  private appGroup(pgid: number | null, now: number): { procs: number; cpuPct: number; rss: number } {
    const seen = new Map<number, number>();
    let rss = 0;
    let jiffies = 0;
    if (pgid !== null) {
      for (const entry of this.candidates(pgid)) {
        let s;
        try {
          s = parsePidStat(readFileSync(`${this.proc}/${entry}/stat`, 'latin1'));
        } catch {
          continue; // gone meanwhile
        }
        if (s.pgrp !== pgid) continue;
        const pid = Number(entry);
        seen.set(pid, s.cpu);
        rss += s.rssPages * this.pageSize;
        // A process new since the last sample started within the period: all its time counts.
        jiffies += s.cpu - (this.prevApp.get(pid) ?? 0);
      }
    }
    const secs = this.prevAt ? (now - this.prevAt) / 1000 : 0;
    this.prevApp = seen;
    return { procs: seen.size, cpuPct: secs > 0 ? (100 * Math.max(0, jiffies)) / USER_HZ / secs : 0, rss };
  }
}

/** The page size, from this process's own resident size in kB and in pages (Node has no sysconf). */
function pageSize(proc: string): number {
  try {
    const kb = Number(/^VmRSS:\s+([0-9]+) kB/m.exec(readFileSync(`${proc}/self/status`, 'latin1'))?.[1]);
    const pages = parsePidStat(readFileSync(`${proc}/self/stat`, 'latin1')).rssPages;
    const ratio = (kb * 1024) / pages;
    // Both are read a moment apart: take the power of two nearest to their ratio.
    const p = 2 ** Math.round(Math.log2(ratio));
    return p >= 4096 && p <= 65536 ? p : 4096;
  } catch {
    return 4096;
  }
}

const clamp = (x: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, Number.isFinite(x) ? x : 0));
const round = (x: number): number => Math.round(x * 10) / 10;
