import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { parseLoadavg, parseMeminfo, parseNetDev, parsePidStat, parseStat } from './proc.js';
import { Sampler } from './sampler.js';

describe('/proc parsers', () => {
  it('read what they need and refuse what they cannot read, in one line', () => {
    expect(parseStat('cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\ncpu1 50 0 25 400 25 0 0 0 0 0\nintr 1\n')).toEqual({ total: 1000, idle: 850, cpus: 2 });
    expect(() => parseStat('nonsense')).toThrow(/no "cpu" line/);
    expect(parseLoadavg('0.50 1.25 2.00 3/400 1234\n')).toEqual([0.5, 1.25, 2]);
    expect(() => parseLoadavg('x y z')).toThrow(/three numbers/);
    expect(parseMeminfo('MemTotal:  2048 kB\nMemFree: 10 kB\nMemAvailable:   1024 kB\n')).toEqual({ total: 2048 * 1024, available: 1024 * 1024 });
    expect(() => parseMeminfo('MemTotal: 1 kB\n')).toThrow(/MemAvailable/);
    const dev = 'Inter-| Receive | Transmit\n face |bytes packets ...\n    lo: 999 1 0 0 0 0 0 0 999 1 0 0 0 0 0 0\n  eth0: 100 2 0 0 0 0 0 0 40 1 0 0 0 0 0 0\n  eth1: 5 1 0 0 0 0 0 0 6 1 0 0 0 0 0 0\n';
    expect(parseNetDev(dev)).toEqual({ rx: 105, tx: 46 });
    // A command name with spaces and parentheses does not shift the fields.
    const stat = '42 (my (odd) app) S 1 42 42 0 -1 4194304 100 0 0 0 30 12 0 0 20 0 1 0 556879 3133440 382 18446744073709551615';
    expect(parsePidStat(stat)).toEqual({ pgrp: 42, cpu: 42, rssPages: 382 });
  });
});

describe('sampler (real /proc)', () => {
  it("measures the VM and the app's process group, well under 1% of a CPU at a 5 s period", async () => {
    const sampler = new Sampler();
    // An app in its own process group: it burns 0.3 s of CPU, starts a second process, then idles.
    const app = spawn(process.execPath, ['-e', "const t=process.cpuUsage();while(process.cpuUsage(t).user<300000);require('child_process').spawn('sleep',['60']);console.log('idle');setInterval(()=>{},1000)"], { detached: true, stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const lines = createInterface({ input: app.stdout! });
      await once(lines, 'line');
      const s = sampler.take(app.pid!);
      expect(s.app_procs).toBe(2);
      expect(s.app_cpu_pct).toBeGreaterThan(0);
      expect(s.app_rss).toBeGreaterThan(10 * 1024 * 1024);
      expect(s.cpus).toBeGreaterThanOrEqual(1);
      expect(s.mem_total).toBeGreaterThan(s.mem_available);
      expect(s.disk_total).toBeGreaterThan(s.disk_used);
      expect(s.load).toHaveLength(3);

      // The budget: CPU time this process spends per sample (not wall-clock time), against 1% of 5 s.
      const before = process.cpuUsage();
      const n = 20;
      for (let i = 0; i < n; i++) sampler.take(app.pid!);
      const used = process.cpuUsage(before);
      const perSampleMs = (used.user + used.system) / 1000 / n;
      expect(perSampleMs).toBeLessThan(50);
    } finally {
      process.kill(-app.pid!, 'SIGKILL');
    }
  });

  it('reports no app when none runs', () => {
    const s = new Sampler().take(null);
    expect(s).toMatchObject({ app_procs: 0, app_cpu_pct: 0, app_rss: 0 });
  });
});
