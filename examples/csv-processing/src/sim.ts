#!/usr/bin/env node
/**
 * `npm run sim`: the seed's CSV case study end to end on one machine. A kernel with the sim
 * driver, a group, start-daemon, a sample CSV, put-file, live progress, verification against the
 * input, a report, and a shutdown that leaves no process behind.
 */
import { createWriteStream, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { ADMIN, buildGuestImage, drawTimelines, formatCount, formatDuration, LiveBlock, progressBar, Sim } from 'rack/sim';
import type { Process } from 'rack/libdck';
import { importFile } from './baseline.js';
import { putFile, startDaemon, TEMPLATE, TEMPLATES_DIR, type Target } from './commands.js';
import { generateCsv } from './generate.js';
import type { JobStatus } from './protocol.js';
import { statusKey } from './protocol.js';
import { UsageLog } from './usage.js';

const USAGE = 'usage: npm run sim -- [--rows N | --csv FILE] [--broken FRACTION] [--chaos] [--max-children N] [--chunk-size BYTES] [--max-instances N] [--driver sim|nspawn] [--kernels N] [--store sqlite|redis|URL] [--json] [--keep]';
/** Real guests boot a whole OS each: a smaller default job fits two cores. */
const NSPAWN_DEFAULTS = { rows: 20_000, maxChildren: 2, chunkSize: 512 * 1024 };

interface Options {
  rows: number;
  csv: string | null;
  broken: number;
  chaos: boolean;
  json: boolean;
  keep: boolean;
  maxChildren: number;
  chunkSize: number | null;
  /** Worker VMs the group's pool holds at once (null: unbounded). */
  maxInstances: number | null;
  driver: 'sim' | 'nspawn';
  /** Kernels sharing the store; with --chaos, one of them is killed -9 half-way. */
  kernels: number;
  /** sqlite, redis (a private redis-server), or a redis:// URL. */
  store: string;
}

function options(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      rows: { type: 'string' },
      csv: { type: 'string' },
      broken: { type: 'string' },
      chaos: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      'max-children': { type: 'string' },
      'chunk-size': { type: 'string' },
      'max-instances': { type: 'string' },
      driver: { type: 'string', default: 'sim' },
      kernels: { type: 'string' },
      store: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    process.exit(0);
  }
  const int = (v: string | undefined, name: string, min: number, max: number, d: number): number => {
    if (v === undefined) return d;
    if (!/^[0-9]+$/.test(v) || Number(v) < min || Number(v) > max) throw new Error(`--${name} must be an integer from ${min} to ${max}, got "${v}"`);
    return Number(v);
  };
  const broken = values.broken === undefined ? 0 : Number(values.broken);
  if (!(broken >= 0 && broken < 1)) throw new Error(`--broken must be a fraction from 0 to 1, got "${values.broken}"`);
  if (values.csv !== undefined && values.rows !== undefined) throw new Error('give --rows or --csv, not both');
  if (values.csv !== undefined && !existsSync(values.csv)) throw new Error(`--csv ${values.csv}: no such file`);
  if (values.driver !== 'sim' && values.driver !== 'nspawn') throw new Error(`--driver must be sim or nspawn, got "${values.driver}"`);
  const small = values.driver === 'nspawn';
  const kernels = int(values.kernels, 'kernels', 1, 8, 1);
  // Several kernels share their state: Redis unless told otherwise.
  const store = values.store ?? (kernels > 1 ? 'redis' : 'sqlite');
  if (store !== 'sqlite' && store !== 'redis' && !/^redis(\+cluster)?:\/\/./.test(store)) throw new Error(`--store must be sqlite, redis or a redis:// URL, got "${store}"`);
  if (kernels > 1 && store === 'sqlite') throw new Error('--kernels 2 or more need a store they share: --store redis (or a redis:// URL)');
  if (kernels > 1 && values.driver === 'nspawn') throw new Error('--kernels 2 or more run with the sim driver only');
  return {
    rows: int(values.rows, 'rows', 1, 100_000_000, small ? NSPAWN_DEFAULTS.rows : 200_000),
    csv: values.csv === undefined ? null : resolve(values.csv),
    broken,
    chaos: values.chaos,
    json: values.json,
    keep: values.keep,
    maxChildren: int(values['max-children'], 'max-children', 1, 64, small ? NSPAWN_DEFAULTS.maxChildren : 4),
    chunkSize: values['chunk-size'] === undefined ? (small ? NSPAWN_DEFAULTS.chunkSize : null) : int(values['chunk-size'], 'chunk-size', 1024, 2 ** 40, 0),
    maxInstances: values['max-instances'] === undefined ? null : int(values['max-instances'], 'max-instances', 1, 1000, 0),
    driver: values.driver,
    kernels,
    store,
  };
}

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = options(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`sim: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  // Progress and steps go to stderr with --json, so stdout holds only the report.
  const out = opts.json ? process.stderr : process.stdout;
  const say = (line: string): void => void out.write(line + '\n');
  const live = new LiveBlock(out as NodeJS.WriteStream);
  const work = mkdtempSync(join(tmpdir(), 'rack-csv-'));
  const kernelLog = join(work, 'kernel.log');
  // nspawn: every VM a real Debian guest, from an image with this example baked in.
  if (opts.driver === 'nspawn') {
    try {
      buildGuestImage(TEMPLATE, join(TEMPLATES_DIR, TEMPLATE), ['better-sqlite3']);
    } catch (err) {
      process.stderr.write(`sim: ${(err as Error).message}\n`);
      return 1;
    }
  }
  if (opts.store !== 'sqlite') say(opts.store === 'redis' ? 'starting a private redis-server for the kernels\' state' : `kernels' state in ${opts.store.replace(/\/\/[^@/]*@/, '//')}`);
  const sim = await Sim.start({ templates: opts.driver === 'nspawn' ? [] : [TEMPLATES_DIR], driver: opts.driver, log: pino({ level: 'info' }, createWriteStream(kernelLog)), keepData: opts.keep, kernels: opts.kernels, store: opts.store });
  const k = sim.kernel;
  let stopping = false;
  const stop = async (code: number): Promise<number> => {
    if (stopping) return code;
    stopping = true;
    const left = await sim.shutdown(code === 0 ? 5 : 1);
    rmSync(work, { recursive: true, force: true });
    return left === 0 ? code : code || 1;
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      say(`\n${sig === 'SIGINT' ? 'interrupted' : 'terminated'}: stopping every VM`);
      void stop(sig === 'SIGINT' ? 130 : 143).then((c) => process.exit(c));
    });
  }

  say(`RACK kernel (${opts.driver} driver) at ${k.url}`);
  sim.otherKernels.forEach((o, i) => say(`RACK kernel ${i + 2} (rack kernel, OS pid ${o.pid}) at ${o.url}, on the same store`));
  if (opts.kernels > 1) say(`  every VM is given all ${opts.kernels} kernel URLs; its agent and app use one and move to another if it goes away`);
  const group = await k.kernel.createGroup({ name: 'csv-processing', template: TEMPLATE });
  const t: Target = { url: k.url, token: k.adminToken, gid: group.gid };
  say(`group ${group.gid}`);
  if (opts.maxInstances !== null) {
    // The group's resource pool: the File Catcher's own VM and at most N workers at once.
    await k.kernel.setPool(group.gid, { instances: opts.maxInstances + 1 });
    say(`pool: ${opts.maxInstances + 1} instances (the File Catcher + ${opts.maxInstances} worker${opts.maxInstances === 1 ? '' : 's'} at once); more forks wait in the kernel's queue`);
  }
  // Every process that ever waited in the queue, and what each child used.
  const queued = new Set<number>();
  const names = new Map<number, string>();
  k.kernel.events.on('process', (p: Process) => {
    if (p.gid !== group.gid) return;
    names.set(p.pid, p.name);
    if (p.status === 'QUEUED') queued.add(p.pid);
  });
  const usage = new UsageLog(group.gid, (pid) => names.get(pid));
  k.services.monitor.on('sample', usage.onSample);

  let csv = opts.csv;
  if (!csv) {
    csv = join(work, 'sample.csv');
    const t0 = Date.now();
    await generateCsv(csv, { rows: opts.rows, broken: opts.broken, onProgress: (n) => live.update([`generating a sample CSV  ${progressBar(n / opts.rows)}  ${formatCount(n)} rows`]) });
    live.update([`generated ${formatCount(opts.rows)} rows in ${formatDuration(Date.now() - t0)}  (${csv})`], true);
    live.done();
  }

  say('$ csv-processing start-daemon');
  const catcher = await startDaemon(t, { template: TEMPLATE, maxChildren: opts.maxChildren, ...(opts.chunkSize ? { chunkSize: opts.chunkSize } : {}) });
  say(`  File Catcher + Target Database running as PID ${catcher}`);
  say(`$ csv-processing put-file ${csv}`);
  const started = Date.now();
  const job = await putFile(t, catcher, csv);
  say(`  job ${job}`);

  // Live progress from the File Catcher's status in shared memory, and chaos if asked.
  let status: JobStatus | null = null;
  let chaosVictim: number | null = null;
  const draw = (): void => {
    if (!status || status.state === 'planning') return;
    const total = status.chunks.reduce((n, c) => n + c.bytes, 0) || 1;
    const doneBytes = status.chunks.reduce((n, c) => n + c.done_bytes, 0);
    const rows = status.chunks.reduce((n, c) => n + c.rows, 0);
    const secs = (Date.now() - started) / 1000;
    const lines = status.chunks.map((c) => `  chunk ${String(c.index).padStart(2)}  pid ${String(c.pid ?? '-').padEnd(5)} ${c.state.padEnd(8)} ${progressBar(c.done_bytes / (c.bytes || 1), 12)} ${formatCount(c.rows).padStart(10)} rows${c.attempts > 1 ? `  (attempt ${c.attempts})` : ''}`);
    live.update([...lines, `  ${progressBar(doneBytes / total)}  ${formatCount(rows)} rows  ${formatCount(Math.round(rows / Math.max(secs, 0.001)))} rows/s  ${formatDuration(Date.now() - started)}`]);
  };
  // Chaos: KILL a child while it is sending (its app status says how many batches it has sent),
  // so that part of its rows are stored and the rest must come from its replacement.
  if (opts.chaos) {
    const onProcess = (p: Process): void => {
      const m = /^sent ([0-9]+)\/([0-9]+) batches$/.exec(p.app_status ?? '');
      if (chaosVictim !== null || p.gid !== group.gid || p.ppid !== catcher || p.status !== 'ACTIVE' || !m) return;
      if (Number(m[1]) < 1 || Number(m[1]) >= Number(m[2]) - 1) return;
      chaosVictim = p.pid;
      k.kernel.events.off('process', onProcess);
      live.interrupt(`  chaos: killing child ${p.pid} (${p.name}) after ${m[1]} of ${m[2]} batches`);
      void k.kernel.kill(ADMIN, group.gid, p.pid, { signal: 'KILL' });
    };
    k.kernel.events.on('process', onProcess);
  }
  // Chaos with several kernels: one of them dies the way a machine does (kill -9) half-way
  // through the rows. Its agents and apps move to another kernel; nothing it acked is lost.
  let killedKernel: { index: number; pid: number; connections: number | null } | null = null;
  let lookingToKill = false;
  const killKernelHalfWay = async (s: JobStatus): Promise<void> => {
    const victim = sim.otherKernels[sim.otherKernels.length - 1];
    if (!opts.chaos || killedKernel || lookingToKill || !victim || s.state === 'planning' || s.chunks.length === 0) return;
    const total = s.chunks.reduce((n, c) => n + c.bytes, 0);
    if (s.chunks.reduce((n, c) => n + c.done_bytes, 0) < total / 2) return;
    // Not while a VM is starting: here a VM reads its metadata from the sim driver of the kernel
    // that booted it, which dies with that kernel (on OpenStack, Nova serves it). Its agent would
    // wait two minutes for it, then the VM would end in ERROR and be replaced.
    lookingToKill = true;
    const starting = (await k.kernel.listProcesses(group.gid)).some((p) => (p.status === 'BUILD' || p.status === 'ACTIVE') && p.app_state === 'pending');
    lookingToKill = false;
    if (starting || killedKernel) return;
    killedKernel = { index: sim.otherKernels.length + 1, pid: victim.pid, connections: null };
    const dead = killedKernel;
    // How many agents and apps were on it: they are the ones that must move.
    dead.connections = await connectionsOf(victim.url, k.adminToken);
    await victim.stop('SIGKILL');
    live.interrupt(`  chaos: kill -9 kernel ${dead.index} (OS pid ${dead.pid}) half-way, with ${dead.connections ?? 'unknown'} WebSocket connections of agents and apps on it; they move to another kernel`);
  };
  const finished = new Promise<JobStatus>((resolveJob) => {
    k.services.shm.on('change', (c: { gid: string; key: string }) => {
      if (c.gid !== group.gid || c.key !== statusKey(job)) return;
      void k.services.shm.get(group.gid, c.key).then(({ value }) => {
        status = value as JobStatus;
        void killKernelHalfWay(status);
        draw();
        if (status.state === 'done' || status.state === 'failed') resolveJob(status);
      });
    });
  });
  const ticker = setInterval(draw, 500);
  const final = await finished;
  clearInterval(ticker);
  draw();
  live.done();
  const elapsed = Date.now() - started;
  if (final.state === 'failed') {
    say(`job failed: ${final.error}`);
    return stop(1);
  }

  say('verifying the table against the input...');
  const expected = await importFile(csv);
  const verified = final.rows_inserted === expected.rows && final.checksum === expected.checksum && final.rows_rejected === expected.rejects && (final.reject_lines === null || JSON.stringify(final.reject_lines) === JSON.stringify(expected.rejectLines));
  const lifetimes = [...sim.lifetimes.values()].filter((l) => l.gid === group.gid);
  const t0 = Math.min(...lifetimes.map((l) => l.start));
  const t1 = Math.max(...lifetimes.map((l) => l.end ?? Date.now()));
  const children = final.chunks.length;
  const report = {
    verified,
    job,
    rows: expected.rows + expected.rejects,
    rows_expected: expected.rows,
    rows_inserted: final.rows_inserted,
    rows_rejected: final.rows_rejected,
    children,
    forks: final.forks,
    replacements: final.forks - children,
    elapsed_ms: elapsed,
    rows_per_s: Math.round((final.rows_inserted + final.rows_rejected) / (elapsed / 1000)),
    checksum: final.checksum,
    checksum_expected: expected.checksum,
    chaos_killed: chaosVictim,
    kernels: opts.kernels,
    store: opts.store === 'sqlite' || opts.store === 'redis' ? opts.store : 'redis',
    kernel_killed: killedKernel,
    rejected_lines: final.reject_lines,
    queued_forks: queued.size,
    children_usage: usage.children([catcher]).map(({ cpu: _cpu, ...c }) => c),
    processes_left: 0,
  };

  if (!opts.json) {
    say('');
    say(`${verified ? '✔ verified' : '✘ NOT verified'}: every row of the input is in the Target Database exactly once`);
    say(`  rows       ${formatCount(report.rows)} in the CSV: ${formatCount(report.rows_inserted)} inserted, ${formatCount(report.rows_rejected)} rejected (bad rows, with their line numbers)`);
    say(`  children   ${children} VM${children === 1 ? '' : 's'} for ${children} chunk${children === 1 ? '' : 's'}${report.replacements ? `, ${report.replacements} replacement${report.replacements === 1 ? '' : 's'} after a child died` : ''}`);
    say(`  elapsed    ${formatDuration(elapsed)}, ${formatCount(report.rows_per_s)} rows/s`);
    say(`  checksum   table ${final.checksum} / input ${expected.checksum}`);
    if (opts.maxInstances !== null || queued.size > 0) say(`  queue      ${queued.size} fork${queued.size === 1 ? '' : 's'} waited for room in the pool (room when planned: ${final.pool_free ?? 'unbounded'})`);
    say('');
    say("children's usage (their guest agents' samples, one a second):");
    say(UsageLog.table(usage.children([catcher])));
    say('');
    say(`process tree and VM lifetimes${queued.size > 0 ? ' (┄ waiting in the fork queue, ━ its VM)' : ''}:`);
    say(drawTimelines(lifetimes, t0, t1, 40));
  }

  if (opts.keep) {
    say('');
    say('--keep: the kernel stays up. Explore it with the rack CLI:');
    say(`  export RACK_URL=${k.url} RACK_TOKEN=${k.adminToken} RACK_GID=${group.gid}`);
    say('  npx rack ps --tree; npx rack shm keys; npx rack file ls');
    say('Ctrl-C stops everything.');
    if (opts.json) process.stdout.write(JSON.stringify(report) + '\n');
    await new Promise(() => {});
  }

  say('shutting down: TERM to the File Catcher, then every VM is destroyed');
  const left = await sim.shutdown(5);
  rmSync(work, { recursive: true, force: true });
  report.processes_left = left;
  if (opts.json) process.stdout.write(JSON.stringify(report) + '\n');
  else say(`processes left: ${left}`);
  return verified && left === 0 ? 0 : 1;
}

/** A kernel's open WebSocket connections, from its /metrics (null if it cannot say). */
async function connectionsOf(url: string, token: string): Promise<number | null> {
  try {
    const res = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(2000) });
    const m = /^rack_websocket_connections (\d+)$/m.exec(await res.text());
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`sim: ${err.message}\n`);
    process.exit(1);
  },
);
