import { describe, expect, it } from 'vitest';
import type { UsageSample } from '../protocol/resources.js';
import { Monitor } from './monitor.js';

const sample = (t: number, over: Partial<UsageSample> = {}): UsageSample => ({
  t, cpu_pct: 10, cpus: 2, load: [0.1, 0.2, 0.3], mem_total: 1000, mem_available: 400, disk_total: 10, disk_used: 5,
  net_rx: t, net_tx: 2 * t, app_procs: 1, app_cpu_pct: 5, app_rss: 100, ...over,
});

describe('monitor', () => {
  it('keeps a bounded history per process, derives network rates, and drops late samples', () => {
    const m = new Monitor({ history: 3 });
    for (let i = 1; i <= 5; i++) m.record('g', 100, sample(i * 5000));
    const u = m.process('g', 100, 10);
    expect(u.history.map((s) => s.t)).toEqual([15000, 20000, 25000]);
    expect(u.latest).toMatchObject({ t: 25000, net_rx_rate: 1000, net_tx_rate: 2000 });
    expect(m.record('g', 100, sample(20000))).toBeNull();
    // Samples too close together replace the last one, and the rate is over the longer period.
    m.record('g', 100, sample(25500));
    expect(m.process('g', 100, 10).history.map((s) => s.t)).toEqual([15000, 20000, 25500]);
    expect(m.process('g', 100).latest!.net_rx_rate).toBe(1000);
  });

  it('rolls a group up, counts its IPC, and forgets ended processes and deleted groups', () => {
    const m = new Monitor({ maxProcesses: 3 });
    m.record('g', 100, sample(1000, { app_cpu_pct: 10, app_rss: 1 }));
    m.record('g', 101, sample(1000, { app_cpu_pct: 20.5, app_rss: 2 }));
    m.record('h', 100, sample(1000));
    expect(m.record('h', 101, sample(1000))).toBeNull(); // past maxProcesses
    m.countIpc('g', 'messages', 3);
    m.countIpc('g', 'shm');
    const g = m.group('g');
    expect(g).toMatchObject({ reporting: 2, app_cpu_pct: 30.5, app_rss: 3, mem_used: 1200, ipc: { messages: 3, shm: 1, pipes: 0, files: 0 } });
    m.forget('g', 101);
    expect(m.group('g').reporting).toBe(1);
    m.forgetGroup('g');
    expect(m.group('g')).toMatchObject({ reporting: 0, ipc: { messages: 0 } });
    expect(m.groups()).toEqual(['h']);
  });
});
