#!/usr/bin/env node
// Real guests beside the sim: fork -> app running for 1 and 4 VMs at once, each VM a
// systemd-nspawn machine (systemd, cloud-init, dckinit) or a sim process tree; and, inside each
// guest, how long its boot took to dckinit's READY=1 (systemd's own clock, as systemd-analyze).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jsonOut, percentile, root, startKernel, table, writeJson } from './lib/common.mjs';

if (process.getuid?.() !== 0) {
  console.log('nspawn: skipped: real guests need root (systemd-nspawn, network namespaces)');
  process.exit(0);
}
const { startKernel: startAny } = await import(join(root, 'dist/server/start.js'));
const { silentLogger } = await import(join(root, 'dist/common/log.js'));
const { buildGuestImage } = await import(join(root, 'dist/sim/index.js'));
const { readVm } = await import(join(root, 'dist/compute/nspawn/index.js'));
const admin = { kind: 'admin' };
const COUNTS = [1, 4];

buildGuestImage('rack-test-app', join(root, 'test/guest/fixtures/guest-app'));
const dataDir = mkdtempSync(join(tmpdir(), 'rack-bench-nspawn-'));
const nspawn = await startAny({ listen: '127.0.0.1:0', dataDir, driver: 'nspawn', templates: [], adminToken: 'bench-admin-token-0123456789', log: silentLogger() });
const sim = await startKernel([join(root, 'test/fixtures/templates')]);

/** fork N VMs at once; ms from the fork to each one's app running. */
async function forkToRunning(k, template, args, n) {
  const { gid } = await k.kernel.createGroup({ name: `bench-${n}`, template, args });
  const t0 = performance.now();
  const procs = await k.kernel.fork(admin, gid, { count: n });
  const times = [];
  await new Promise((resolve) => {
    const on = (p) => {
      // An app that says READY=1 at once may be reported ready with no running before it.
      if (p.gid !== gid || (p.app_state !== 'running' && p.app_state !== 'ready') || times.some((t) => t.pid === p.pid)) return;
      times.push({ pid: p.pid, ms: performance.now() - t0 });
      if (times.length === n) {
        k.kernel.events.off('process', on);
        resolve();
      }
    };
    k.kernel.events.on('process', on);
  });
  return { gid, procs: await k.kernel.listProcesses(gid), ms: times.map((t) => t.ms).sort((a, b) => a - b) };
}

/** Inside a guest: ms from systemd's start to dckinit's READY=1, and systemd-analyze's line. */
function bootToReady(vm) {
  const sh = (cmd) =>
    execFileSync('nsenter', ['--target', String(vm.leader.pid), '--mount', '--uts', '--ipc', '--net', '--pid', '--root', '--wd', '--', ...cmd], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 300_000 });
  // Once the guest's boot is over (its last units, cloud-final among them, have run), both
  // timestamps are there; the wait answers non-zero for a degraded system, which still counts.
  try {
    sh(['systemctl', 'is-system-running', '--wait']);
  } catch {}
  const prop = (unit, p) => Number(sh(['systemctl', 'show', ...(unit ? [unit] : []), '-p', p, '--value']).trim());
  const ready = prop('dckinit.service', 'ActiveEnterTimestampMonotonic') - prop(null, 'UserspaceTimestampMonotonic');
  return { ms: ready / 1000, analyze: sh(['systemd-analyze']).split('\n')[0] };
}

const rows = [];
const results = {};
try {
  for (const n of COUNTS) {
    const s = await forkToRunning(sim, 'agent-app', { out: '/tmp' }, n);
    await sim.kernel.deleteGroup(s.gid);
    const g = await forkToRunning(nspawn, 'rack-test-app', { hold: '1' }, n);
    const boots = g.procs.map((p) => bootToReady(readVm(dataDir, p.compute_id)));
    await nspawn.kernel.deleteGroup(g.gid);
    const ready = boots.map((b) => b.ms).sort((a, b) => a - b);
    results[`vms_${n}`] = {
      sim_fork_to_running_ms: { p50: Math.round(percentile(s.ms, 50)), max: Math.round(s.ms.at(-1)) },
      nspawn_fork_to_running_ms: { p50: Math.round(percentile(g.ms, 50)), max: Math.round(g.ms.at(-1)) },
      nspawn_boot_to_ready_ms: { p50: Math.round(percentile(ready, 50)), max: Math.round(ready.at(-1)) },
      systemd_analyze: boots.map((b) => b.analyze),
    };
    const r = results[`vms_${n}`];
    rows.push([`${n} VM${n > 1 ? 's' : ''}: fork -> app running (ms)`, `${r.sim_fork_to_running_ms.p50} / ${r.sim_fork_to_running_ms.max}`, `${r.nspawn_fork_to_running_ms.p50} / ${r.nspawn_fork_to_running_ms.max}`]);
    rows.push([`${n} VM${n > 1 ? 's' : ''}: guest boot -> READY=1 (ms)`, '', `${r.nspawn_boot_to_ready_ms.p50} / ${r.nspawn_boot_to_ready_ms.max}`]);
  }
} finally {
  await nspawn.close();
  await sim.close();
  rmSync(dataDir, { recursive: true, force: true });
}
table('real guests (systemd-nspawn) beside the sim, p50 / max', ['measure', 'sim', 'nspawn'], rows);
for (const [k, r] of Object.entries(results)) console.log(`  ${k}: ${r.systemd_analyze[0]}`);
writeJson(jsonOut(), results);
process.exit(0);
