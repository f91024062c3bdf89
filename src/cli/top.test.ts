import { describe, expect, it } from 'vitest';
import { DEFAULT_QUOTAS, type Process } from '../protocol/process.js';
import type { Usage } from '../protocol/resources.js';
import { sparkline } from './format.js';
import { frame, type GroupSnapshot } from './top.js';

const proc = (pid: number, status: Process['status'] = 'ACTIVE'): Process => ({
  gid: 'g-0000-1111', pid, ppid: pid === 100 ? null : 100, name: `p${pid}`, template: 't', flavor: null, args: {}, status, app_state: status === 'QUEUED' ? 'pending' : 'ready',
  app_status: '', exit_code: null, signal: null, error: null, compute_id: null, created_at: '', updated_at: '', ended_at: null,
});
const usage = (cpu: number, rss: number): Usage => ({
  t: 1, cpu_pct: 50, cpus: 2, load: [1, 1, 1], mem_total: 10, mem_available: 5, disk_total: 1, disk_used: 1, net_rx: 0, net_tx: 0, net_rx_rate: 0, net_tx_rate: 0, app_procs: 1, app_cpu_pct: cpu, app_rss: rss,
});
const pool = { capacity: { instances: 3, vcpus: null, ram_mb: null }, used: { instances: 3, vcpus: 3, ram_mb: 1536 }, free: { instances: 0, vcpus: null, ram_mb: null }, queued: 1 };

describe('rack top frame', () => {
  const snap: GroupSnapshot = {
    group: { gid: 'g-0000-1111', name: 'demo', description: '', template: null, flavor: null, args: {}, quotas: DEFAULT_QUOTAS, created_at: '' },
    processes: [proc(100), proc(101), proc(102), proc(103, 'QUEUED'), proc(99, 'EXITED')],
    usage: {
      gid: 'g', reporting: 3, app_cpu_pct: 60, app_rss: 600, mem_used: 15, net_rx_rate: 0, net_tx_rate: 0, ipc: { messages: 7, shm: 2, pipes: 0, files: 1 },
      processes: [
        { gid: 'g', pid: 100, latest: usage(5, 300), history: [usage(5, 300)] },
        { gid: 'g', pid: 101, latest: usage(50, 100), history: [usage(10, 100), usage(50, 100)] },
        { gid: 'g', pid: 102, latest: usage(5, 200), history: [] },
      ],
    },
    pool: { kernel: pool, group: pool, queue: [{ gid: 'g', pid: 103, position: 1, priority: 0, deadline: null, size: { instances: 1, vcpus: 1, ram_mb: 512 }, waiting_for: 'group' }] },
  };
  const pids = (lines: string[]): number[] => lines.map((l) => /^ +([0-9]+) /.exec(l)?.[1]).filter(Boolean).map(Number);

  it('sorts live processes by the key, lists queued forks last, leaves ended ones out', () => {
    const byCpu = frame([snap], 'cpu', 200);
    expect(pids(byCpu)).toEqual([101, 100, 102, 103]);
    expect(pids(frame([snap], 'mem', 200))).toEqual([100, 102, 101, 103]);
    expect(pids(frame([snap], 'pid', 200))).toEqual([100, 101, 102, 103]);
    expect(byCpu.join('\n')).toContain('7 messages · 2 shm ops · 0 pipe writes · 1 file ops');
    expect(byCpu.join('\n')).toMatch(/103 +100 QUEUED #1 priority 0, waits for the group's pool/);
    expect(byCpu.join('\n')).toContain('group 3/3 instances');
  });

  it('fits every line to the width', () => {
    for (const l of frame([snap], 'cpu', 40)) expect([...l].length).toBeLessThanOrEqual(40);
  });

  it('sparklines scale to their maximum', () => {
    expect(sparkline([0, 50, 100], 100)).toBe('▁▅█');
    expect(sparkline([])).toBe('');
  });
});
