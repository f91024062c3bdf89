import type { Group, Process } from '../protocol/process.js';
import type { GroupUsage, PoolView, QueuedFork, Usage } from '../protocol/resources.js';
import type { RestClient } from './client.js';
import { fit, formatBound, formatBytes, formatRate, sparkline } from './format.js';
import { shorten } from './tree.js';

export type SortKey = 'cpu' | 'mem' | 'pid' | 'net';
export const SORT_KEYS: readonly SortKey[] = ['cpu', 'mem', 'pid', 'net'];

/** Samples drawn in each process's sparkline. */
const SPARK = 16;

export interface GroupSnapshot {
  group: Group;
  processes: Process[];
  usage: GroupUsage;
  pool: { kernel: PoolView; group: PoolView; queue: QueuedFork[] };
}

/** One group's processes, usage (with a short history) and pool, read over REST. */
export async function snapshot(c: RestClient, group: Group): Promise<GroupSnapshot> {
  const g = `/v1/groups/${encodeURIComponent(group.gid)}`;
  const [processes, usage, pool] = await Promise.all([
    c.call<{ processes: Process[] }>('GET', `${g}/processes`),
    c.call<{ usage: GroupUsage }>('GET', `${g}/usage?history=${SPARK}`),
    c.call<{ pool: GroupSnapshot['pool'] }>('GET', `${g}/pool`),
  ]);
  return { group, processes: processes.processes, usage: usage.usage, pool: pool.pool };
}

const live = (p: Process): boolean => p.status === 'QUEUED' || p.status === 'BUILD' || p.status === 'ACTIVE';

/**
 * The lines of one `rack top` frame: per group a summary (pool, roll-up, IPC), then its live
 * processes sorted by `sort`, each with its app's CPU sparkline; queued forks last, in boot order.
 */
export function frame(snaps: readonly GroupSnapshot[], sort: SortKey, width: number, now = new Date()): string[] {
  const lines = [`rack top  ${now.toTimeString().slice(0, 8)}  sort: ${sort} (c m p n to change, q to quit)`];
  for (const s of snaps) {
    const { usage: u, pool } = s;
    const procs = s.processes.filter(live);
    const queued = procs.filter((p) => p.status === 'QUEUED').length;
    lines.push(
      '',
      `group ${s.group.name} (${s.group.gid.slice(0, 8)})  ${procs.length} live, ${queued} queued`,
      `  pool   group ${formatBound(pool.group.used.instances, pool.group.capacity.instances)} instances ${formatBound(pool.group.used.vcpus, pool.group.capacity.vcpus)} vCPUs ${formatBound(pool.group.used.ram_mb, pool.group.capacity.ram_mb)} MiB · kernel ${formatBound(pool.kernel.used.instances, pool.kernel.capacity.instances)} instances`,
      `  apps   CPU ${u.app_cpu_pct.toFixed(1)}%  RSS ${formatBytes(u.app_rss)}   VMs: mem ${formatBytes(u.mem_used)} used  net ↓${formatRate(u.net_rx_rate)} ↑${formatRate(u.net_tx_rate)}`,
      `  ipc    ${u.ipc.messages} messages · ${u.ipc.shm} shm ops · ${u.ipc.pipes} pipe writes · ${u.ipc.files} file ops`,
      '',
      `  ${'PID'.padStart(5)} ${'PPID'.padStart(5)} STATUS APP      ${'CPU%'.padStart(6)} ${'CPU'.padEnd(SPARK)} ${'RSS'.padStart(6)} ${'VMCPU%'.padStart(6)} ${'LOAD'.padStart(5)} NAME`,
    );
    const byPid = new Map(u.processes.map((p) => [p.pid, p]));
    const latest = (p: Process): Usage | null => byPid.get(p.pid)?.latest ?? null;
    const key = (p: Process): number => {
      const l = latest(p);
      if (sort === 'pid') return -p.pid;
      if (!l) return -Infinity;
      return sort === 'cpu' ? l.app_cpu_pct : sort === 'mem' ? l.app_rss : l.net_rx_rate + l.net_tx_rate;
    };
    const running = procs.filter((p) => p.status !== 'QUEUED').sort((a, b) => key(b) - key(a) || a.pid - b.pid);
    for (const p of running) {
      const l = latest(p);
      const hist = byPid.get(p.pid)?.history.map((h) => h.app_cpu_pct) ?? [];
      const cols = l
        ? `${l.app_cpu_pct.toFixed(1).padStart(6)} ${sparkline(hist, Math.max(100, ...hist)).padEnd(SPARK)} ${formatBytes(l.app_rss).padStart(6)} ${l.cpu_pct.toFixed(1).padStart(6)} ${l.load[0].toFixed(2).padStart(5)}`
        : `${'-'.padStart(6)} ${''.padEnd(SPARK)} ${'-'.padStart(6)} ${'-'.padStart(6)} ${'-'.padStart(5)}`;
      lines.push(`  ${String(p.pid).padStart(5)} ${String(p.ppid ?? '-').padStart(5)} ${p.status.padEnd(6)} ${p.app_state.padEnd(8)} ${cols} ${p.name}${p.app_status ? `  "${shorten(p.app_status)}"` : ''}`);
    }
    for (const q of pool.queue) {
      const p = s.processes.find((x) => x.pid === q.pid);
      lines.push(`  ${String(q.pid).padStart(5)} ${String(p?.ppid ?? '-').padStart(5)} QUEUED #${q.position} priority ${q.priority}, waits for the ${q.waiting_for === 'group' ? "group's" : 'kernel-wide'} pool${q.deadline ? ` until ${q.deadline.slice(11, 19)}` : ''}  ${p?.name ?? ''}`);
    }
  }
  return lines.map((l) => fit(l, width));
}
