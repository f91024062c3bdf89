import { describe, expect, it } from 'vitest';
import { sim } from '../support/sim.js';

describe('npm run sim -- --kernels 2 --store redis', () => {
  it('--chaos: a child killed and one kernel killed -9 half-way; every row lands once, no process is left', async () => {
    const r = await sim(['--kernels', '2', '--store', 'redis', '--rows', '150000', '--chunk-size', '4000000', '--chaos', '--json'], 150_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.report).toMatchObject({ verified: true, rows_inserted: 150000, kernels: 2, store: 'redis', processes_left: 0 });
    expect(r.report.chaos_killed).toBeGreaterThan(100);
    // The kernel died with agents and apps on it (each VM picks its kernel at random: with
    // five VMs, two connections each, all on one kernel is one chance in a thousand).
    expect(r.report.kernel_killed).toMatchObject({ index: 2, pid: expect.any(Number), connections: expect.any(Number) });
    expect(r.stderr).toMatch(/chaos: kill -9 kernel 2 \(OS pid [0-9]+\) half-way/);
  }, 180_000);
});
