import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { generateCsv } from '../../examples/csv-processing/src/generate.js';
import { sim } from '../support/sim.js';

describe('npm run sim', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rack-sim-test-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runs the case study on a small CSV and reports it verified, with no process left', async () => {
    const r = await sim(['--rows', '30000', '--chunk-size', '500000', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.report).toMatchObject({ verified: true, rows: 30000, rows_inserted: 30000, rows_rejected: 0, processes_left: 0 });
    expect(r.report.children).toBe(4);
    expect(r.report.elapsed_ms).toBeGreaterThan(0);
  }, 120_000);

  it('--max-instances 2: the pool holds two workers, the queue absorbs the other two forks, and it still verifies', async () => {
    const r = await sim(['--rows', '30000', '--chunk-size', '500000', '--max-instances', '2', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.report).toMatchObject({ verified: true, rows_inserted: 30000, children: 4, queued_forks: 2, processes_left: 0 });
    // What the children used, from their guest agents' samples (those that lived a second or more).
    for (const c of r.report.children_usage) expect(c).toMatchObject({ pid: expect.any(Number), samples: expect.any(Number), rss_peak: expect.any(Number) });
  }, 240_000);

  it('--chaos: a child killed mid-way is replaced and every row still lands exactly once', async () => {
    const r = await sim(['--rows', '150000', '--chunk-size', '4000000', '--chaos', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.report).toMatchObject({ verified: true, rows_inserted: 150000, processes_left: 0 });
    expect(r.report.chaos_killed).toBeGreaterThan(100);
    expect(r.report.replacements).toBeGreaterThanOrEqual(1);
  }, 120_000);

  it('a CSV with 1% broken rows: those lines are in rejects, the rest in the table', async () => {
    const csv = join(dir, 'broken.csv');
    const gen = await generateCsv(csv, { rows: 20_000, broken: 0.01, seed: 7 });
    expect(gen.brokenLines.length).toBeGreaterThan(100);
    const r = await sim(['--csv', csv, '--chunk-size', '400000', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.report.rows_rejected).toBe(gen.brokenLines.length);
    expect(r.report.rows_inserted).toBe(20_000 - gen.brokenLines.length);
    expect(r.report.rejected_lines).toEqual(gen.brokenLines);
    expect(r.report.verified).toBe(true);
  }, 120_000);

  it('bad arguments: one line and exit 2', async () => {
    const r = await sim(['--rows', 'lots']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^sim: --rows must be an integer/);
    const shared = await sim(['--kernels', '2', '--store', 'sqlite']);
    expect([shared.code, shared.stderr.split('\n')[0]]).toEqual([2, 'sim: --kernels 2 or more need a store they share: --store redis (or a redis:// URL)']);
    const store = await sim(['--store', 'mysql://x']);
    expect([store.code, store.stderr.split('\n')[0]]).toEqual([2, 'sim: --store must be sqlite, redis or a redis:// URL, got "mysql://x"']);
  });
});
