import type { Kernel } from '../kernel/kernel.js';
import type { Monitor } from '../monitor/monitor.js';
import type { GroupUsage } from '../protocol/resources.js';
import type { Metrics } from './metrics.js';

/**
 * The groups with the most CPU get a `gid` label of their own; the rest are summed under
 * gid="_other", so that /metrics stays bounded however many groups there are.
 */
export const MAX_GROUP_LABELS = 50;

type Labels = Record<string, string>;

/** Per-group gauges of Resource Monitoring and the Resource Scheduler on /metrics. */
export function registerGroupMetrics(metrics: Metrics, kernel: Kernel, monitor: Monitor): void {
  // One roll-up per scrape, shared by the gauges read in that scrape.
  let cache: { at: number; rows: Array<[string, GroupUsage, number]> } | null = null;
  const rows = (): Array<[string, GroupUsage, number]> => {
    if (cache && Date.now() - cache.at < 1000) return cache.rows;
    const queued = kernel.scheduler.queuedByGroup();
    const gids = new Set([...monitor.groups(), ...queued.keys()]);
    const all = [...gids].map((gid) => [gid, monitor.group(gid), queued.get(gid) ?? 0] as [string, GroupUsage, number]);
    all.sort((a, b) => b[1].app_cpu_pct - a[1].app_cpu_pct || a[0].localeCompare(b[0]));
    const top = all.slice(0, MAX_GROUP_LABELS);
    const rest = all.slice(MAX_GROUP_LABELS);
    if (rest.length > 0) {
      const other = monitor.group('_other');
      for (const [, g] of rest) {
        for (const k of ['reporting', 'app_cpu_pct', 'app_rss', 'mem_used', 'net_rx_rate', 'net_tx_rate'] as const) other[k] += g[k];
        for (const k of ['messages', 'shm', 'pipes', 'files'] as const) other.ipc[k] += g.ipc[k];
      }
      top.push(['_other', other, rest.reduce((n, r) => n + r[2], 0)]);
    }
    cache = { at: Date.now(), rows: top };
    return top;
  };
  const gauge = (name: string, help: string, value: (g: GroupUsage, queued: number) => number): void =>
    metrics.gauge(name, help, async () => rows().map(([gid, g, q]) => [{ gid }, value(g, q)] as [Labels, number]));
  gauge('rack_group_processes_reporting', 'Processes of the group whose guest agent has reported a usage sample', (g) => g.reporting);
  gauge('rack_group_app_cpu_percent', "CPU of the group's apps, in % of one CPU, summed", (g) => g.app_cpu_pct);
  gauge('rack_group_app_resident_bytes', "Resident memory of the group's apps, summed", (g) => g.app_rss);
  gauge('rack_group_vm_memory_used_bytes', "Memory in use in the group's VMs, summed", (g) => g.mem_used);
  gauge('rack_group_network_receive_bytes_per_second', "Bytes per second received by the group's VMs", (g) => g.net_rx_rate);
  gauge('rack_group_network_transmit_bytes_per_second', "Bytes per second sent by the group's VMs", (g) => g.net_tx_rate);
  gauge('rack_group_queued_forks', "The group's processes waiting in the fork queue", (_g, q) => q);
  metrics.gauge('rack_group_ipc_operations', "The group's IPC operations since the kernel started, by kind", async () =>
    rows().flatMap(([gid, g]) => (['messages', 'shm', 'pipes', 'files'] as const).map((kind) => [{ gid, kind }, g.ipc[kind]] as [Labels, number])),
  );
}
