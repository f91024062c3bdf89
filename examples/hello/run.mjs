#!/usr/bin/env node
// `npm run hello -- [--children N] [--driver sim|nspawn]`: the hello app. A kernel on loopback, a
// group whose image is this directory (with nspawn: a real Debian guest with this directory baked
// in), one root process; every line the apps print is shown with its PID.
import { basename, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildGuestImage, drawTimelines, Sim } from 'rack/sim';

const USAGE = 'usage: npm run hello -- [--children N] [--driver sim|nspawn]   (N from 1 to 50, default 3)';
let children, driver;
try {
  const { values } = parseArgs({ options: { children: { type: 'string', default: '3' }, driver: { type: 'string', default: 'sim' }, help: { type: 'boolean' } } });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  if (!/^[0-9]+$/.test(values.children) || +values.children < 1 || +values.children > 50) throw new Error(`--children must be an integer from 1 to 50, got "${values.children}"`);
  if (values.driver !== 'sim' && values.driver !== 'nspawn') throw new Error(`--driver must be sim or nspawn, got "${values.driver}"`);
  children = values.children;
  driver = values.driver;
} catch (err) {
  console.error(`hello: ${err.message}\n${USAGE}`);
  process.exit(2);
}

const here = dirname(fileURLToPath(import.meta.url));
let image = basename(here);
if (driver === 'nspawn') {
  try {
    buildGuestImage('hello', here);
  } catch (err) {
    console.error(`hello: ${err.message}`);
    process.exit(1);
  }
  image = 'hello';
}
const sim = await Sim.start({
  templates: driver === 'nspawn' ? [] : [dirname(here)],
  driver,
  onAppLine: (l) => console.log(`  ${String(l.pid).padStart(4)} │ ${l.text}`),
});
const k = sim.kernel.kernel;
const admin = { kind: 'admin' };
console.log(`RACK kernel (${driver} driver) at ${sim.url}`);
const group = await k.createGroup({ name: 'hello', template: image });
const t0 = Date.now();
const [root] = await k.fork(admin, group.gid, { args: { children } });
console.log(`group ${group.gid}: root process ${root.pid} boots, then forks ${children} children\n`);

const ended = await sim.untilAllEnded(group.gid, driver === 'nspawn' ? 900_000 : 120_000);
const t1 = Date.now();
const procs = await k.listProcesses(group.gid);
const lifetimes = [...sim.lifetimes.values()].filter((l) => l.gid === group.gid);
console.log('\n' + drawTimelines(lifetimes, t0, t1));

// What should have happened: the root exited 0, and child N exited with N - root.
const want = procs.filter((p) => p.ppid === root.pid).map((p) => p.status === 'EXITED' && p.exit_code === p.pid - root.pid);
const rootOk = procs.find((p) => p.pid === root.pid)?.exit_code === 0;
const ok = ended && rootOk && want.length === Number(children) && want.every(Boolean);
const left = await sim.shutdown(2);
console.log(ok && left === 0 ? `\n✓ ${children} children forked, waited for, each with its own exit code; no process left` : `\n✗ something went wrong (ended: ${ended}, root exit 0: ${rootOk}, processes left: ${left})`);
process.exit(ok && left === 0 ? 0 : 1);
