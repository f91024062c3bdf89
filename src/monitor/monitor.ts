import { EventEmitter } from 'node:events';
import type { GroupUsage, IpcCounters, ProcessUsage, Usage, UsageSample } from '../protocol/resources.js';

export interface MonitorOptions {
  /** Samples kept per process (the oldest go first): 120 is 10 minutes at the agent's 5 s period. */
  history?: number;
  /** Processes tracked at most, all groups together; samples of more are dropped. */
  maxProcesses?: number;
}

/** Samples closer together than this replace the last one instead of adding to the history. */
const MIN_SPACING_MS = 900;

interface Track {
  gid: string;
  pid: number;
  samples: Usage[];
}

export type IpcKind = keyof IpcCounters;

/**
 * Resource Monitoring: the latest sample and a short history of every live process (what its
 * guest agent measured of its VM and app), roll-ups per group, and counters of each group's IPC.
 * Everything is bounded: the history per process, the processes tracked, and the groups (a
 * process's track ends with it, a group's counters with the group). Event 'sample' (gid, pid,
 * Usage) for live views; 'recorded' (the sample as it came) for the other kernels on the store.
 */
export class Monitor extends EventEmitter<{ sample: [string, number, Usage]; recorded: [string, number, UsageSample, boolean] }> {
  private readonly tracks = new Map<string, Track>();
  private readonly ipc = new Map<string, IpcCounters>();
  private readonly historySize: number;
  private readonly maxProcesses: number;

  constructor(opts: MonitorOptions = {}) {
    super();
    this.setMaxListeners(0);
    this.historySize = opts.history ?? 120;
    this.maxProcesses = opts.maxProcesses ?? 20_000;
  }

  /**
   * A sample from a process's agent; answers it with the rates derived from the one before.
   * `elsewhere`: its agent is connected to another kernel on the store, which sent it on.
   */
  record(gid: string, pid: number, s: UsageSample, elsewhere = false): Usage | null {
    const k = `${gid}/${pid}`;
    let track = this.tracks.get(k);
    if (!track) {
      if (this.tracks.size >= this.maxProcesses) return null;
      track = { gid, pid, samples: [] };
      this.tracks.set(k, track);
    }
    const last = track.samples.at(-1);
    // A late or repeated sample (a resend, a VM clock step back) never rewrites the history.
    if (last && s.t <= last.t) return null;
    const prev = last && s.t - last.t < MIN_SPACING_MS ? track.samples.at(-2) : last;
    const secs = prev ? (s.t - prev.t) / 1000 : 0;
    const rate = (now: number, before: number | undefined): number => (secs > 0 && before !== undefined && now >= before ? Math.round((now - before) / secs) : 0);
    const u: Usage = { ...s, load: [...s.load], net_rx_rate: rate(s.net_rx, prev?.net_rx), net_tx_rate: rate(s.net_tx, prev?.net_tx) };
    if (prev !== last) track.samples[track.samples.length - 1] = u;
    else track.samples.push(u);
    if (track.samples.length > this.historySize) track.samples.splice(0, track.samples.length - this.historySize);
    this.emit('sample', gid, pid, u);
    this.emit('recorded', gid, pid, s, elsewhere);
    return u;
  }

  /** The process ended: its samples go. */
  forget(gid: string, pid: number): void {
    this.tracks.delete(`${gid}/${pid}`);
  }

  forgetGroup(gid: string): void {
    for (const [k, t] of this.tracks) if (t.gid === gid) this.tracks.delete(k);
    this.ipc.delete(gid);
  }

  /** A process's latest sample and at most `history` before it (oldest first). */
  process(gid: string, pid: number, history = 0): ProcessUsage {
    const samples = this.tracks.get(`${gid}/${pid}`)?.samples ?? [];
    return { gid, pid, latest: samples.at(-1) ?? null, history: history > 0 ? samples.slice(-history) : [] };
  }

  /** The group's roll-up: sums over its processes' latest samples, each process with its history. */
  group(gid: string, history = 0): GroupUsage {
    const processes: ProcessUsage[] = [];
    for (const t of this.tracks.values()) if (t.gid === gid) processes.push(this.process(gid, t.pid, history));
    processes.sort((a, b) => a.pid - b.pid);
    const sum = (f: (u: Usage) => number): number => Math.round(processes.reduce((n, p) => n + (p.latest ? f(p.latest) : 0), 0) * 10) / 10;
    return {
      gid,
      reporting: processes.filter((p) => p.latest).length,
      app_cpu_pct: sum((u) => u.app_cpu_pct),
      app_rss: sum((u) => u.app_rss),
      mem_used: sum((u) => u.mem_total - u.mem_available),
      net_rx_rate: sum((u) => u.net_rx_rate),
      net_tx_rate: sum((u) => u.net_tx_rate),
      processes,
      ipc: { ...(this.ipc.get(gid) ?? { messages: 0, shm: 0, pipes: 0, files: 0 }) },
    };
  }

  /** The groups that have samples or IPC counts (for metrics). */
  groups(): string[] {
    const out = new Set<string>(this.ipc.keys());
    for (const t of this.tracks.values()) out.add(t.gid);
    return [...out];
  }

  countIpc(gid: string, kind: IpcKind, n = 1): void {
    let c = this.ipc.get(gid);
    if (!c) this.ipc.set(gid, (c = { messages: 0, shm: 0, pipes: 0, files: 0 }));
    c[kind] += n;
  }
}
