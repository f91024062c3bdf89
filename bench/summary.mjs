#!/usr/bin/env node
// bench/results.json as one table: every figure beside its limit or peer, as a ratio, with the
// target it has (or none). `npm run bench` prints it and writes it into README.md; alone,
// `node bench/summary.mjs` rewrites README's block from the results.json already there, and
// `node bench/summary.mjs --check` only says (exit 1) whether README's block is out of date.
//
// Suites are re-run separately and gain keys over time: a suite missing from results.json, or a
// figure missing from a suite, leaves out its rows and nothing else.
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spliceBlock } from './lib/readme-block.mjs';

/** A figure results.json does not have (yet): the row that needs it is left out. */
class Missing extends Error {}
const must = (x) => {
  if (typeof x !== 'number' || !Number.isFinite(x)) throw new Missing();
  return x;
};

/** 3 significant digits below 100, whole numbers above, with thousands separators. */
const num = (x) => (Math.abs(must(x)) >= 100 ? Math.round(x) : Number(x.toPrecision(3))).toLocaleString('en-US', { maximumFractionDigits: 3 });
const fig = (x, unit) => `${num(x)}${unit}`;
const figs = (xs, unit) => {
  if (xs.length === 0) throw new Missing();
  return `${xs.map(num).join(' / ')}${unit}`;
};
const per = (a, b) => must(a) / must(b);

// Targets are on the ratio: RACK's figure over its peer's, or over its limit (then the bound is 1).
const atMost = (bound) => ({ op: '≤', bound, met: (r) => r <= bound });
const atLeast = (bound) => ({ op: '≥', bound, met: (r) => r >= bound });
const below = (bound) => ({ op: '<', bound, met: (r) => r < bound });

/** measure | RACK | limit or peer | ratios (RACK / limit or peer) | target, met or not (null: no target). */
function row(measure, rack, ref, ratios, target = null) {
  ratios.forEach(must);
  return { measure, rack, ref, ratios, target: target && `${target.op} ${target.bound}x`, met: target ? ratios.every(target.met) : null };
}

/** RACK's figure beside a peer's in the same unit: one ratio. */
const vsPeer = (measure, rack, peerName, peer, unit, target) => row(measure, fig(rack, unit), `${peerName} ${fig(peer, unit)}`, [per(rack, peer)], target);
/** RACK's figure beside a limit: the ratio is to the limit, so the target's bound is 1x. */
const vsLimit = (measure, rackText, value, limit, unit, target = atMost(1)) => row(measure, rackText, `limit ${fig(limit, unit)}`, [per(value, limit)], target);

/** The sizes a suite keyed its figures by ('1', '2', … or 'vms_1', …), in order. */
const sizesOf = (obj, prefix = '') =>
  Object.keys(obj ?? {}).filter((k) => k.startsWith(prefix) && /^\d+$/.test(k.slice(prefix.length))).map((k) => Number(k.slice(prefix.length))).sort((a, b) => a - b);
const vms = (n) => `${n.toLocaleString('en-US')} VM${n === 1 ? '' : 's'}`;
const children = (n) => `${n} child${n === 1 ? '' : 'ren'}`;

// One function per suite, in the order `npm run bench` runs them: the suite's figures → row
// builders (each may throw Missing). Targets are the speed issue's; where a suite records the
// limit it measured against, that one is used.
const SUITES = {
  dckinit: (s) => [
    () => row('dckinit: fork → app running, p50', `${fig(s.start_to_running_ms?.p50, ' ms')} (max ${num(s.start_to_running_ms?.max)})`, '', []),
    () => vsLimit('dckinit: resident memory while idle, p50', `${fig(s.idle_rss_mib?.p50, ' MiB')} (max ${num(s.idle_rss_mib?.max)})`, s.idle_rss_mib?.p50, 50, ' MiB'),
  ],
  fork: (s) =>
    (s.rows ?? []).flatMap((r) => [
      () => vsPeer(`fork → ACTIVE, ${vms(r.n)} at once`, r.fork_active_ms, 'agents spawned directly', r.direct_started_ms, ' ms'),
      () => vsPeer(`fork → app running, ${vms(r.n)} at once`, r.fork_running_ms, 'agent and app spawned directly', r.direct_running_ms, ' ms', atMost(r.limit ?? (r.n === 1 ? 1.3 : 2))),
    ]),
  ipc: (s) => {
    const k = s.messages_kernel ?? {};
    const relay = s.messages_ws_relay ?? {};
    // Redis peers have no target: what a broker reaches that does not store (PUB/SUB) or does (Streams).
    const peers = [['Redis PUB/SUB', s.messages_redis_pubsub], ['Redis Streams', s.messages_redis_streams]].filter(([, p]) => p);
    const messages = (key, what, unit, target) => [
      () => vsPeer(`messages: ${what}`, k[key], 'raw ws relay', relay[key], unit, target),
      ...peers.map(([name, p]) => () => vsPeer(`messages: ${what}`, k[key], name, p[key], unit)),
    ];
    const pipe = s.pipe_kernel?.bytes ? `pipe: ${num(s.pipe_kernel.bytes / 2 ** 20)} MiB` : 'pipe';
    return [
      ...messages('p50_us', 'latency p50', ' µs', atMost(2)),
      () => vsPeer('messages: latency p99', k.p99_us, 'raw ws relay', relay.p99_us, ' µs'),
      ...messages('msgs_per_s', 'throughput, durable, 16 in flight', '/s', atLeast(0.5)),
      () => vsPeer(`shared memory: incr, ${s.shm_kernel?.clients ?? 8} clients`, s.shm_kernel?.ops_per_s, 'redis-benchmark INCR', s.shm_redis?.ops_per_s, ' ops/s', atLeast(0.7)),
      () => vsPeer(`${pipe}, one VM to another`, s.pipe_kernel?.mb_per_s, 'raw loopback TCP', s.pipe_tcp?.mb_per_s, ' MB/s', atLeast(0.5)),
    ];
  },
  csv: (s) => {
    const n = sizesOf(s.sim);
    const rate = (c) => s.sim[c]?.rows_per_s;
    const title = `CSV case study${s.rows ? `, ${num(s.rows)} rows` : ''}`;
    return [
      () => vsPeer(`${title}: 1 child`, rate(1), 'single process', s.single_process?.rows_per_s, ' rows/s', atLeast(0.8)),
      // More children must never be slower than fewer: each size against the one before it.
      ...n.slice(1).map((c, i) => () => vsPeer(`${title}: ${children(c)}`, rate(c), children(n[i]), rate(n[i]), ' rows/s', atLeast(1))),
    ];
  },
  nspawn: (s) => {
    const n = sizesOf(s, 'vms_');
    const p50s = (key) => n.map((c) => s[`vms_${c}`][key]?.p50);
    const [guests, sims] = [p50s('nspawn_fork_to_running_ms'), p50s('sim_fork_to_running_ms')];
    const userspace = n.map((c) => Number(/([\d.]+)s \(userspace\)/.exec(s[`vms_${c}`].systemd_analyze?.[0] ?? '')?.[1]));
    return [
      () => row(`real guests (nspawn): fork → app running, ${n.join(' / ')} VMs at once, p50`, figs(guests, ' ms'), `sim driver ${figs(sims, ' ms')}`, guests.map((g, i) => per(g, sims[i]))),
      // systemd-analyze times another span of the same boot: beside it, not a ratio.
      () => row(`real guests (nspawn): boot → dckinit READY=1, ${n.join(' / ')} VMs, p50`, figs(p50s('nspawn_boot_to_ready_ms'), ' ms'), `systemd-analyze ${figs(userspace, ' s')} userspace`, []),
    ];
  },
  scale: (s) => {
    // The limit is on growth: per-VM kernel CPU at the largest size over the smallest's.
    const growth = (list, key, what, unit) => () => {
      const sorted = [...(list ?? [])].sort((a, b) => a.n - b.n);
      const [first, last] = [sorted[0], sorted.at(-1)];
      if (!first || first === last) throw new Missing();
      return vsPeer(`${what}, ${vms(last.n)}`, last[key], `${vms(first.n)}:`, first[key], unit, atMost(s.limit ?? 1.5));
    };
    const ps = s.ps ?? {};
    return [
      growth(s.fake, 'fork', 'kernel CPU per VM to fork, fake driver', ' µs'),
      growth(s.fake, 'del', 'kernel CPU per VM to delete the group, fake driver', ' µs'),
      growth(s.sim, 'cpuMsPerVm', 'kernel CPU per VM to delete the group, sim VMs', ' ms'),
      () => vsLimit(`rack ps of ${num(ps.n)} processes, best of 5`, fig(ps.ps_s, ' s'), ps.ps_s, ps.limit_s ?? 0.5, ' s'),
      () => vsLimit(`rack ps --tree of ${num(ps.n)} processes, best of 5`, fig(ps.tree_s, ' s'), ps.tree_s, ps.limit_s ?? 0.5, ' s'),
    ];
  },
  agents: (s) => [
    () => vsLimit(`${num(s.agents)} connected agents: kernel memory per agent`, fig(s.kib_per_agent, ' KiB'), s.kib_per_agent, s.limit?.kib_per_agent ?? 100, ' KiB'),
    () => vsLimit(`${num(s.agents)} connected agents: CPU they add`, `${fig(s.cpu_percent, '%')} of a core (kernel alone ${fig(s.cpu_idle_percent, '%')})`, s.cpu_percent, s.limit?.cpu_percent ?? 1, '%'),
  ],
  kernels: (s) => {
    const setups = Object.fromEntries((s.rows ?? []).map((r) => [r.setup, r]));
    const redis = (s.rows ?? []).filter((r) => r.setup.startsWith('redis-'));
    const title = `Redis store, ${redis.map((r) => r.kernels).join(' / ')} kernels`;
    // The suite's ratios are medians of each round's ratio (not a ratio of medians): use them.
    const against = (key, what, unit, peer, name) => () =>
      row(`${title}: ${what}`, figs(redis.map((r) => r[key]), unit), `${name} ${fig(setups[peer]?.[key], unit)}`, redis.map((r) => r[`${key}_vs_${peer}`] ?? per(r[key], setups[peer]?.[key])));
    return [
      ['p50_us', 'message latency p50', ' µs'],
      ['msgs_per_s', 'message throughput', '/s'],
      ['shm_ops_per_s', 'shared-memory incr', ' ops/s'],
      ['fork_ms', `fork → ACTIVE, ${s.params?.fork_vms ?? 20} sim VMs`, ' ms'],
    ].flatMap(([key, what, unit]) => [against(key, what, unit, 'sqlite', 'SQLite kernel'), against(key, what, unit, 'raw', 'raw Redis')]);
  },
  limits: (s) => [
    () => vsLimit('/healthz beside a client that never reads, max', `${fig(s.greedy?.max, ' ms')} (p50 ${num(s.greedy?.p50)})`, s.greedy?.max, s.limit_ms ?? 50, ' ms', below(1)),
    () => vsLimit('/healthz with no other client, max', `${fig(s.quiet?.max, ' ms')} (p50 ${num(s.quiet?.p50)})`, s.quiet?.max, s.limit_ms ?? 50, ' ms', null),
  ],
  openstack: (s) => {
    const n = sizesOf(s.sizes);
    const at = (key) => n.map((c) => s.sizes[c][key]);
    const title = `real OpenStack (fake virt driver), ${n.join(' / ')} servers`;
    // Both against the same servers created with Nova's API, to ACTIVE.
    const against = (what, key) => () =>
      row(`${title}: ${what}`, figs(at(key), ' ms'), `Nova API directly ${figs(at('nova_direct_active_ms'), ' ms')}`, n.map((c) => per(s.sizes[c][key], s.sizes[c].nova_direct_active_ms)));
    return [against('fork → ACTIVE', 'rack_fork_to_active_ms'), against('fork → app running', 'rack_fork_to_running_ms')];
  },
};

/** f(), or nothing if a figure it needs is missing. */
function unlessMissing(f) {
  try {
    return [f()];
  } catch (err) {
    if (err instanceof Missing) return [];
    throw err;
  }
}

/** results.json → [{ suite, date, rows }], a suite with no row it can build left out. */
export function summarize(results) {
  const groups = [];
  for (const [suite, builders] of Object.entries(SUITES)) {
    const s = results?.suites?.[suite];
    if (!s) continue;
    const rows = unlessMissing(() => builders(s)).flat().flatMap(unlessMissing);
    if (rows.length > 0) groups.push({ suite, date: s.date?.slice(0, 10) ?? 'undated', rows });
  }
  return groups;
}

const HEADER = ['measure', 'RACK', 'limit or peer', 'ratio', 'target'];
const cells = (r) => [r.measure, r.rack, r.ref, r.ratios.length ? r.ratios.map((x) => `${x.toFixed(2)}x`).join(' / ') : '—', r.target ? `${r.target} ${r.met ? '✔' : '✘'}` : '—'];
const machineOf = (m) => (m ? `${m.cores} × ${m.cpu}, ${m.memory_gib} GiB, Linux ${m.kernel}, Node ${m.node}` : 'a machine not recorded');
const groupTitle = (g) => `${g.suite} (bench/${g.suite}.mjs), ${g.date}`;

/** The README block: the machine, the date, and one table with a heading row per suite. */
export function markdown(results) {
  const lines = [
    `Machine: ${machineOf(results.machine)}; last \`npm run bench\` ${results.date?.slice(0, 10) ?? 'undated'}, each suite's own date in its heading row.`,
    'Ratio: RACK over the limit or peer beside it; target: ✔ met, ✘ not met, — none. Generated by `node bench/summary.mjs` from `bench/results.json`.',
    '',
    `| ${HEADER.join(' | ')} |`,
    `|${HEADER.map(() => '---').join('|')}|`,
  ];
  for (const g of summarize(results)) {
    lines.push(`| **${groupTitle(g)}** | | | | |`);
    for (const r of g.rows) lines.push(`| ${cells(r).join(' | ')} |`);
  }
  return lines.join('\n') + '\n';
}

/** The same rows as aligned text, for the terminal. */
export function text(results) {
  const groups = summarize(results);
  const all = [HEADER, ...groups.flatMap((g) => g.rows.map(cells))];
  const widths = HEADER.map((_, i) => Math.max(...all.map((c) => c[i].length)));
  const line = (c) => '  ' + c.map((x, i) => x.padEnd(widths[i])).join('  ').trimEnd();
  const out = [`RACK benchmarks on ${machineOf(results.machine)}`, line(HEADER)];
  for (const g of groups) out.push(`${groupTitle(g)}`, ...g.rows.map((r) => line(cells(r))));
  return out.join('\n') + '\n';
}

const here = import.meta.dirname;
export const README = join(here, '..', 'README.md');

/** Rewrites README's bench block from `results`; false when it was already up to date. */
export function writeReadme(results, file = README) {
  const before = readFileSync(file, 'utf8');
  const after = spliceBlock(before, markdown(results));
  if (after !== before) writeFileSync(file, after);
  return after !== before;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const results = JSON.parse(readFileSync(join(here, 'results.json'), 'utf8'));
  if (process.argv.includes('--check')) {
    const current = readFileSync(README, 'utf8');
    const stale = spliceBlock(current, markdown(results)) !== current;
    if (stale) console.error('README.md: the bench block is out of date with bench/results.json (node bench/summary.mjs rewrites it)');
    process.exitCode = stale ? 1 : 0;
  } else {
    process.stdout.write(text(results));
    console.log(writeReadme(results) ? '\nwritten: README.md (bench block)' : '\nREADME.md: bench block already up to date');
  }
}
