// Real guests: every VM a systemd-nspawn machine with systemd as PID 1 and cloud-init reading
// the OpenStack metadata service, both ways an image gets the agent (baked in by install.sh, or
// installed at first boot by the project's user-data from a mirror, with no internet).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ADMIN } from '../../src/auth/auth.js';
import type { NspawnVm } from '../../src/compute/nspawn/index.js';
import { NSPAWN_MIRROR_URL } from '../../src/compute/nspawn/index.js';
import { agentJournal, GuestKernel, inGuest, leftovers, machineGone, MIRROR, unitProperties } from './support.js';

const APP = 'test/guest/fixtures/guest-app';
/** A guest boots a whole OS on two busy cores: minutes, not seconds, are the honest bound. */
const BOOT_MS = 240_000;

/** cloud-init/user-data.yaml as a user fills it in: the mirror's URLs, this suite's app and roles. */
function userData(): string {
  const doc = yaml.load(readFileSync('cloud-init/user-data.yaml', 'utf8')) as { write_files: Array<{ path: string; content: string; permissions?: string }> };
  const files = readdirSync(MIRROR);
  const node = files.find((f) => f.startsWith('node-'))!;
  const bundle = files.find((f) => f.startsWith('rack-'))!;
  const vars = doc.write_files[0]!;
  vars.content = vars.content
    .replace(/^RACK_NODE_VERSION=.*$/m, `RACK_NODE_VERSION=${/^node-v([0-9.]+)-/.exec(node)![1]}`)
    .replace(/^RACK_NODE_URL=.*$/m, `RACK_NODE_URL=${NSPAWN_MIRROR_URL}/${node}`)
    .replace(/^RACK_BUNDLE_URL=.*$/m, `RACK_BUNDLE_URL=${NSPAWN_MIRROR_URL}/${bundle}`);
  doc.write_files.find((f) => f.path === '/etc/dckinit/config.yaml')!.content = readFileSync(join(APP, 'etc/dckinit/config.yaml'), 'utf8');
  doc.write_files.push({ path: '/opt/app/app.mjs', content: readFileSync(join(APP, 'opt/app/app.mjs'), 'utf8'), permissions: '0644' });
  return '#cloud-config\n' + yaml.dump(doc, { lineWidth: -1 });
}

const WAYS = [
  { way: 'baked', template: 'rack-test-app', userdata: undefined },
  { way: 'user-data', template: 'rack-test-stock', userdata: userData },
] as const;

describe.each(WAYS)('$way guests', ({ template, userdata }) => {
  let gk: GuestKernel;
  beforeEach(async () => {
    gk = await GuestKernel.start();
  });
  afterEach(async () => {
    await gk?.close();
  });

  async function root(name: string, rootArgs: Record<string, string>): Promise<{ gid: string; pid: number }> {
    // The group's user_data: every fork gets it, the children the app forks included.
    const g = await gk.kernel.createGroup({ name, template, ...(userdata ? { userdata: userdata() } : {}) });
    const [p] = await gk.kernel.fork(ADMIN, g.gid, { args: rootArgs });
    return { gid: g.gid, pid: p!.pid };
  }

  it('cloud-init (OpenStack datasource) and dckinit under systemd; the app forks two nspawn children; exit codes reach rack ps; app lines in the journal; rack group rm leaves nothing', async () => {
    const { gid, pid } = await root('tree', { children: '2', exit: '5' });
    const parent = await gk.ended(gid, pid, BOOT_MS * 2);
    expect(parent).toMatchObject({ status: 'EXITED', exit_code: 5 });

    const ps = await gk.ps(gid);
    const kids = ps.filter((p) => p.ppid === pid);
    expect(kids.map((k) => [k.pid, k.status, k.exit_code])).toEqual([
      [pid + 1, 'EXITED', 1],
      [pid + 2, 'EXITED', 2],
    ]);
    for (const p of ps) expect(p.compute_id).toMatch(/^nspawn-/);

    // The parent's VM stays (on_exit: stay): look inside it.
    const vm = gk.vm(parent);
    const status = await inGuest(vm, ['cloud-init', 'status', '--long', '--wait'], BOOT_MS);
    expect(status).toMatch(/^status: done$/m);
    expect(status).toMatch(/DataSourceOpenStack/);
    const unit = await unitProperties(vm, 'dckinit.service');
    expect(unit).toMatchObject({ Type: 'notify', ActiveState: 'active', SubState: 'running', NRestarts: '0' });
    expect(unit.StatusText).not.toBe('');
    const journal = await agentJournal(vm);
    expect(journal).toContain(`parent ${pid}: exit codes {"${pid + 1}":1,"${pid + 2}":2}`);
    // Each child ran on a machine of its own, named by cloud-init from that VM's own metadata.
    const g8 = gid.slice(0, 8);
    expect(journal).toContain(`parent ${pid}: children ran on ${pid + 1}=rack-${g8}-${pid + 1} ${pid + 2}=rack-${g8}-${pid + 2}`);

    const vms: NspawnVm[] = [vm];
    const rm = await gk.rack('group', 'rm', gid);
    expect(rm.code, rm.stderr).toBe(0);
    expect(leftovers(vms)).toEqual([]);
    expect(readdirSync(join(gk.dataDir, 'vms')).filter((e) => e.startsWith('nspawn-'))).toEqual([]);
  });

  it('a 30 s kernel outage while one app runs and after another has ended: both agents reconnect within 10 s and still take a kill', async () => {
    const running = await root('running', { hold: '1' });
    const ended = await root('ended', { exit: '7' });
    await gk.until(running.gid, running.pid, (p) => p.app_status === 'holding until signalled', BOOT_MS, 'holding');
    const endedProc = await gk.ended(ended.gid, ended.pid, BOOT_MS);
    expect(endedProc).toMatchObject({ status: 'EXITED', exit_code: 7 });
    await gk.agentConnected(running.gid, running.pid, 60_000);
    await gk.agentConnected(ended.gid, ended.pid, 60_000);
    const vms = [gk.vm(await gk.kernel.getProcess(running.gid, running.pid)), gk.vm(endedProc)];

    await gk.outage(30_000);
    await Promise.all([gk.agentConnected(running.gid, running.pid, 10_000), gk.agentConnected(ended.gid, ended.pid, 10_000)]);

    for (const vm of vms) {
      // The agent rode the outage out: it never ended, and the ended app did not run again.
      expect(await unitProperties(vm, 'dckinit.service')).toMatchObject({ ActiveState: 'active', SubState: 'running', NRestarts: '0' });
      expect((await agentJournal(vm)).filter((l) => l.includes(' runs on '))).toHaveLength(1);
    }

    // TERM travels through the agent to the app, which answers it with 143.
    const kill = await gk.rack('kill', String(running.pid), '--gid', running.gid, '--grace', '30');
    expect(kill.code, kill.stderr).toBe(0);
    expect(await gk.ended(running.gid, running.pid, 60_000)).toMatchObject({ status: 'EXITED', exit_code: 143 });
    const kill2 = await gk.rack('kill', String(ended.pid), '--gid', ended.gid, '--signal', 'KILL');
    expect(kill2.code, kill2.stderr).toBe(0);
    await machineGone(vms[1]!, 60_000);
    await gk.rack('group', 'rm', running.gid);
    await gk.rack('group', 'rm', ended.gid);
    expect(leftovers(vms)).toEqual([]);
  });
});
