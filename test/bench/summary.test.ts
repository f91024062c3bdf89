import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { markdown, summarize, writeReadme } from '../../bench/summary.mjs';
import { BEGIN, END, spliceBlock } from '../../bench/lib/readme-block.mjs';

// A results.json in miniature: two suites, one of them missing a figure.
const results = {
  date: '2026-12-01T10:00:00.000Z',
  machine: { cpu: 'Test CPU', cores: 2, memory_gib: 4, kernel: '6.1.0', node: 'v20.0.0' },
  suites: {
    ipc: {
      date: '2026-12-01T10:05:00.000Z',
      messages_kernel: { p50_us: 90, p99_us: 400, msgs_per_s: 30_000 },
      messages_ws_relay: { p50_us: 50, p99_us: 100, msgs_per_s: 100_000 },
      messages_redis_streams: { p50_us: 60, msgs_per_s: 40_000 },
      shm_kernel: { clients: 8, ops_per_s: 8_000 },
      shm_redis: { clients: 8, ops_per_s: 10_000 },
      // no pipe figures: that row is left out
    },
    csv: { date: '2026-11-28T08:00:00.000Z', rows: 1000, single_process: { rows_per_s: 100 }, sim: { 1: { rows_per_s: 80 }, 2: { rows_per_s: 90 }, 4: { rows_per_s: 45 } } },
    agents: { date: '2026-11-29T08:00:00.000Z', agents: 1000, kib_per_agent: 20, cpu_percent: 2.5, cpu_idle_percent: 0.1 },
  },
};

describe('bench/summary.mjs', () => {
  const groups = summarize(results);
  const rowOf = (suite: string, measure: string, ref = '') =>
    groups.find((g) => g.suite === suite)?.rows.find((r) => r.measure === measure && r.ref.startsWith(ref));

  it('one group per suite present, in run order, each with its own date', () => {
    expect(groups.map((g) => [g.suite, g.date])).toEqual([['ipc', '2026-12-01'], ['csv', '2026-11-28'], ['agents', '2026-11-29']]);
  });

  it('each row is a ratio beside its limit or peer, met or not', () => {
    expect(rowOf('ipc', 'messages: latency p50', 'raw ws relay')).toMatchObject({ rack: '90 µs', ref: 'raw ws relay 50 µs', ratios: [1.8], target: '≤ 2x', met: true });
    expect(rowOf('ipc', 'messages: throughput, durable, 16 in flight', 'raw ws relay')).toMatchObject({ ratios: [0.3], target: '≥ 0.5x', met: false });
    expect(rowOf('ipc', 'shared memory: incr, 8 clients')).toMatchObject({ rack: '8,000 ops/s', ratios: [0.8], target: '≥ 0.7x', met: true });
    // A limit rather than a peer: the ratio is to the limit, the bound 1x; defaults when the suite records none.
    expect(rowOf('agents', '1,000 connected agents: kernel memory per agent')).toMatchObject({ ref: 'limit 100 KiB', ratios: [0.2], target: '≤ 1x', met: true });
    expect(rowOf('agents', '1,000 connected agents: CPU they add')).toMatchObject({ ratios: [2.5], met: false });
    // CSV: 1 child against the single process; more children against fewer, never slower.
    expect(rowOf('csv', 'CSV case study, 1,000 rows: 1 child')).toMatchObject({ ref: 'single process 100 rows/s', ratios: [0.8], target: '≥ 0.8x', met: true });
    expect(rowOf('csv', 'CSV case study, 1,000 rows: 2 children')).toMatchObject({ ref: '1 child 80 rows/s', target: '≥ 1x', met: true });
    expect(rowOf('csv', 'CSV case study, 1,000 rows: 4 children')).toMatchObject({ ref: '2 children 90 rows/s', ratios: [0.5], met: false });
  });

  it('a peer without a target shows its ratio and no verdict', () => {
    expect(rowOf('ipc', 'messages: latency p50', 'Redis Streams')).toMatchObject({ ratios: [1.5], target: null, met: null });
  });

  it('skips a missing suite and a row whose figures are missing', () => {
    expect(groups.some((g) => g.suite === 'fork' || g.suite === 'kernels')).toBe(false);
    expect(groups.flatMap((g) => g.rows).some((r) => r.measure.startsWith('pipe'))).toBe(false);
    expect(summarize({ suites: {} })).toEqual([]);
    expect(summarize({})).toEqual([]);
  });

  it('the markdown carries the machine, the dates and ✔ / ✘ / —', () => {
    const md = markdown(results);
    expect(md).toContain('Machine: 2 × Test CPU, 4 GiB, Linux 6.1.0, Node v20.0.0; last `npm run bench` 2026-12-01');
    expect(md).toContain('| **agents (bench/agents.mjs), 2026-11-29** | | | | |');
    expect(md).toContain('| messages: latency p50 | 90 µs | raw ws relay 50 µs | 1.80x | ≤ 2x ✔ |');
    expect(md).toContain('| 1,000 connected agents: CPU they add | 2.5% of a core (kernel alone 0.1%) | limit 1% | 2.50x | ≤ 1x ✘ |');
    expect(md).toContain('| messages: latency p50 | 90 µs | Redis Streams 60 µs | 1.50x | — |');
  });

  it('rewrites only what lies between the markers', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'rack-summary-')), 'README.md');
    writeFileSync(file, `# T\n\nprose before\n\n${BEGIN}\nold table\n${END}\n\nprose after\n`);
    expect(writeReadme(results, file)).toBe(true);
    const after = readFileSync(file, 'utf8');
    expect(after).toBe(`# T\n\nprose before\n\n${BEGIN}\n${markdown(results)}${END}\n\nprose after\n`);
    expect(writeReadme(results, file)).toBe(false);
    expect(() => spliceBlock('no markers', 'x')).toThrow(/bench:begin/);
  });
});
