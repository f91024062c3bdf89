#!/usr/bin/env node
// `node bench/csv-profile.mjs [children] [rows]`: one run of the CSV case study (as `npm run sim`
// does it: a kernel with the sim driver in this process, the File Catcher and its workers as VMs)
// with every node process of it under V8's CPU profiler, then where the time went:
//   - the phases, timed from the upload of the CSV (the sim's "elapsed" starts there too);
//   - each process's CPU time (user + system, from the process itself), and its lifetime;
//   - each process's top functions by self time, counting only samples between the upload and
//     the job's end.
// The VMs run from a copy of the example's template whose role commands add the profiler flags
// (the example's own files are not touched). The .cpuprofile files stay in the printed folder.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { root } from './lib/common.mjs';

const children = Number(process.argv[2] ?? 1);
const rows = Number(process.argv[3] ?? 500_000);
const ex = join(root, 'examples/csv-processing');
const { Sim } = await import(join(root, 'dist/sim/index.js'));
const { putFile, startDaemon, TEMPLATE } = await import(join(ex, 'dist/commands.js'));
const { generateCsv } = await import(join(ex, 'dist/generate.js'));
const { statusKey } = await import(join(ex, 'dist/protocol.js'));

const dir = mkdtempSync(join(tmpdir(), 'rack-csv-profile-'));
for (const d of ['app', 'cpu', 'templates/csv-processing/etc/dckinit']) mkdirSync(join(dir, d), { recursive: true });
// The template: the example's, its role commands run node with the profiler and a hook that
// writes the process's CPU time when it exits (a TERM, as the File Catcher gets, exits first).
const hook = join(dir, 'exit-hook.mjs');
writeFileSync(
  hook,
  `import { writeFileSync } from 'node:fs';
process.once('SIGTERM', () => process.exit(0));
process.on('exit', () => {
  const u = process.cpuUsage();
  writeFileSync(${JSON.stringify(join(dir, 'cpu'))} + '/' + process.pid + '.json', JSON.stringify({ script: process.argv[1], cpu_ms: Math.round((u.user + u.system) / 1000), life_ms: Math.round(process.uptime() * 1000) }));
});
`,
);
const config = readFileSync(join(ex, 'etc/dckinit/config.yaml'), 'utf8').replaceAll('exec node "${DCKINIT_ROOT:-}/dist/', `exec node --cpu-prof --cpu-prof-interval=500 --cpu-prof-dir=${join(dir, 'app')} --import ${hook} "${ex}/dist/`);
if (!config.includes('--cpu-prof')) throw new Error('the example\'s role commands are not "exec node ${DCKINIT_ROOT:-}/dist/...": update bench/csv-profile.mjs');
writeFileSync(join(dir, 'templates/csv-processing/etc/dckinit/config.yaml'), config);
copyFileSync(join(ex, 'image.yaml'), join(dir, 'templates/csv-processing/image.yaml'));

const csv = join(dir, 'in.csv');
await generateCsv(csv, { rows });
const sim = await Sim.start({ templates: [join(dir, 'templates')] });
const k = sim.kernel;
const group = await k.kernel.createGroup({ name: 'csv-profile', template: TEMPLATE });
const t = { url: k.url, token: k.adminToken, gid: group.gid };
const catcher = await startDaemon(t, { template: TEMPLATE, maxChildren: children, chunkSize: 1024 });
// Let the File Catcher finish starting (the sim does not wait either, but its start is not the job's).
await new Promise((r) => setTimeout(r, 2000));

const session = new Session();
session.connect();
await session.post('Profiler.enable');
await session.post('Profiler.setSamplingInterval', { interval: 500 });
await session.post('Profiler.start');
const phases = [];
const t0 = process.hrtime.bigint();
const now = () => Number((process.hrtime.bigint() - t0) / 1000n) / 1000; // ms
const mark = (what) => phases.push([now(), what]);
const seen = new Map();
k.kernel.events.on('process', (p) => {
  if (p.gid !== group.gid || p.ppid !== catcher) return;
  const state = `${p.status}/${p.app_state ?? ''}`;
  if (seen.get(p.pid) === state) return;
  seen.set(p.pid, state);
  if (p.status === 'BUILD' || p.app_state === 'starting' || p.app_state === 'exited' || p.status === 'DELETED') mark(`child ${p.pid} ${p.app_state === 'starting' ? 'app starting (VM booted)' : p.app_state === 'exited' ? 'app exited' : p.status === 'BUILD' ? 'forked' : p.status}`);
});
let firstRows = false;
const done = new Promise((resolve) => {
  k.services.shm.on('change', (c) => {
    if (c.gid !== group.gid || c.key.indexOf('csv:') !== 0) return;
    void k.services.shm.get(group.gid, c.key).then(({ value }) => {
      if (!firstRows && value.chunks.some((x) => x.rows > 0)) {
        firstRows = true;
        mark('first rows stored (as published, every 200 ms)');
      }
      if (value.state === 'done' || value.state === 'failed') resolve(value);
    });
  });
});
mark('upload starts');
const cpu0 = process.cpuUsage();
const job = await putFile(t, catcher, csv);
mark('uploaded, put-file sent');
const status = await done;
mark(`job ${status.state}`);
const windowCpu = process.cpuUsage(cpu0);
const startUs = Number(t0 / 1000n);
const { profile } = await session.post('Profiler.stop');
writeFileSync(join(dir, 'kernel.cpuprofile'), JSON.stringify(profile));
const endUs = startUs + Math.round(now() * 1000);
await sim.shutdown(5);
const selfCpu = process.cpuUsage();

console.log(`\nCSV case study, ${rows.toLocaleString('en-US')} rows, ${children} child${children > 1 ? 'ren' : ''}: ${status.state}, ${status.rows_inserted} rows (job ${job})`);
console.log('\nphases (ms from the upload):');
for (const [ms, what] of phases) console.log(`${ms.toFixed(0).padStart(8)}  ${what}`);

// Self time per function (and per file) of one profile, within [from, to] (µs, CLOCK_MONOTONIC).
const where = (cf) => (cf.url ? `${cf.url.startsWith('file://') ? relative(root, new URL(cf.url).pathname) : cf.url}:${cf.lineNumber + 1}` : '');
function top(p, from, to, n = 12) {
  const self = new Map();
  let at = p.startTime;
  p.samples.forEach((id, i) => {
    at += p.timeDeltas[i];
    if (at >= from && at <= to) self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i + 1] ?? 0));
  });
  const byFn = new Map();
  let busy = 0;
  for (const node of p.nodes) {
    const us = self.get(node.id) ?? 0;
    if (node.callFrame.functionName === '(idle)' || us === 0) continue;
    busy += us;
    const fn = `${node.callFrame.functionName || '(anonymous)'} ${where(node.callFrame)}`.trim();
    byFn.set(fn, (byFn.get(fn) ?? 0) + us);
  }
  return { busy, top: [...byFn].sort((a, b) => b[1] - a[1]).slice(0, n) };
}
const cpu = new Map(readdirSync(join(dir, 'cpu')).map((f) => { const r = JSON.parse(readFileSync(join(dir, 'cpu', f), 'utf8')); return [Number(f.split('.')[0]), r]; }));
const apps = readdirSync(join(dir, 'app')).filter((f) => f.endsWith('.cpuprofile')).map((f) => ({ pid: Number(f.split('.')[3]), profile: JSON.parse(readFileSync(join(dir, 'app', f), 'utf8')) }));
const show = (name, p, c) => {
  const { busy, top: fns } = top(p, startUs, endUs);
  console.log(`\n${name}: ${c ? `${c.cpu_ms} ms of CPU in its ${c.life_ms} ms life; ` : ''}busy ${(busy / 1000).toFixed(0)} ms between the upload and the job's end (wall-clock samples: time spent runnable but waiting for a core counts too)`);
  for (const [fn, us] of fns) console.log(`${(us / 1000).toFixed(0).padStart(8)} ms ${((100 * us) / busy).toFixed(1).padStart(5)}%  ${fn}`);
};
console.log(`\nkernel (this process: the kernel, the sim driver, the upload's client): ${Math.round((windowCpu.user + windowCpu.system) / 1000)} ms of CPU between the upload and the job's end (${Math.round((selfCpu.user + selfCpu.system) / 1000)} ms in its life, with the CSV's generation)`);
show('kernel', profile, null);
for (const { pid, profile: p } of apps.sort((a, b) => a.profile.startTime - b.profile.startTime)) {
  const c = cpu.get(pid);
  show(`${c?.script?.endsWith('file-catcher.js') ? 'File Catcher' : 'worker'} (OS pid ${pid}, started at ${((p.startTime - startUs) / 1000).toFixed(0)} ms)`, p, c);
}
console.log(`\nprofiles: ${dir}`);
const r = spawnSync('sh', ['-c', 'cut -d" " -f1-3 /proc/loadavg'], { encoding: 'utf8' });
console.log(`load average: ${r.stdout.trim()}`);
process.exit(0);
