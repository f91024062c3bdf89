#!/usr/bin/env node
// Guest agent benchmarks: from boot (fork) to the app running, through the whole path a VM takes
// in the sim (process start, metadata read, role, app launch, channel hello, state report); and
// the agent's resident memory while its app idles.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { jsonOut, percentile, root, startKernel, table, writeJson } from './lib/common.mjs';

const RUNS = 10;
const k = await startKernel([join(root, 'test/fixtures/templates')]);
const { gid } = await k.kernel.createGroup({ name: 'bench', template: 'agent-app', args: { out: '/tmp' } });
const admin = { kind: 'admin' };
const times = [];
const rss = [];
for (let i = 0; i < RUNS; i++) {
  const t0 = performance.now();
  const [p] = await k.kernel.fork(admin, gid, {});
  const [running] = await k.kernel.waitRunning(gid, [p.pid], 60_000);
  times.push(performance.now() - t0);
  // The agent: the VM's process whose command line is dckinit.
  const pids = readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  for (const pid of pids) {
    try {
      const env = readFileSync(`/proc/${pid}/environ`, 'latin1');
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
      if (env.includes(`RACK_SIM_VM=${running.compute_id}`) && cmd.includes('dckinit/main.js')) {
        // Let the agent settle into idle before reading its memory.
        await new Promise((r) => setTimeout(r, 1500));
        const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
        if (m) rss.push(Number(m[1]) / 1024);
      }
    } catch {}
  }
  await k.kernel.kill(admin, gid, p.pid, { signal: 'KILL' });
}
times.sort((a, b) => a - b);
rss.sort((a, b) => a - b);
const results = {
  start_to_running_ms: { p50: Math.round(percentile(times, 50)), max: Math.round(times.at(-1)) },
  idle_rss_mib: { p50: Math.round(percentile(rss, 50) * 10) / 10, max: Math.round(rss.at(-1) * 10) / 10 },
  runs: RUNS,
};
table(`dckinit, ${RUNS} sim VMs (metadata served locally)`, ['measure', 'p50', 'max'], [
  ['fork -> app running (ms)', results.start_to_running_ms.p50, results.start_to_running_ms.max],
  ['agent resident memory, idle (MiB)', results.idle_rss_mib.p50, results.idle_rss_mib.max],
]);
await k.kernel.deleteGroup(gid);
await k.close();
writeJson(jsonOut(), results);
process.exit(0);
