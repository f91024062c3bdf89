import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeystoneSession } from '../../src/openstack/keystone.js';
import type { Process } from '../../src/protocol/process.js';
import { watchGroup } from '../support/watch.js';
import { admin, fixture, kernelTag, nova, rack, ROOT, serversOf, session, startKernel, untilServersGone, type KernelProcess } from './support/fixture.js';
import { GuestHost } from './support/guests.mjs';

const TREE = join(import.meta.dirname, 'templates', 'tree');
const HELLO = join(ROOT, 'examples', 'hello');

/**
 * The process model on a real Nova, end to end through the rack CLI and libdck: the kernel is
 * `rack kernel --driver nova`, each process a Nova server, each guest the real dckinit reading its
 * server's metadata through a neutron-like metadata proxy.
 */
describe('processes on a real OpenStack', () => {
  const fx = fixture();
  let k: KernelProcess;
  let os: KeystoneSession;
  const hosts: GuestHost[] = [];

  const group = async (name: string, template: string, args: string[] = []): Promise<string> => {
    const r = await rack(['group', 'create', name, '--template', fx.image, '--flavor', fx.flavor, ...args, '--json'], k.env);
    expect(r.code, r.stderr).toBe(0);
    const gid = JSON.parse(r.stdout).gid as string;
    // a guest for every ACTIVE server of this group, from `template`
    hosts.push(new GuestHost({ session: os, secret: fx.metadataSecret, template, match: (s: { metadata: Record<string, string> }) => s.metadata.rack_gid === gid }).start());
    return gid;
  };
  const ps = async (gid: string): Promise<Process[]> => (await admin(k, 'GET', `/v1/groups/${gid}/processes`)).body.processes;

  beforeAll(async () => {
    os = session('rack');
    k = await startKernel();
  });
  afterAll(async () => {
    try {
      for (const g of (await admin(k, 'GET', '/v1/groups')).body.groups) await admin(k, 'DELETE', `/v1/groups/${g.gid}`);
      // Deleting its groups ends every process: none of this kernel's servers may be left in Nova.
      await untilServersGone(os, (await serversOf(os, kernelTag(k))).map((s) => s.id));
    } finally {
      for (const h of hosts) await h.stop();
      await k.stop();
      await os.close();
    }
  });

  it('a root forks 3 children, each a grandchild: ps --tree, servers with rack_* metadata, console, kill cascade', async () => {
    const gid = await group('tree', TREE, ['--arg', 'fanout=3', '--arg', 'next=1']);
    const w = await watchGroup(k.url, k.env.RACK_TOKEN!, gid);
    try {
      const r = await rack(['fork', '--gid', gid, '--json'], k.env);
      expect(r.code, r.stderr).toBe(0);
      await w.until((all) => all.size === 7 && [...all.values()].every((p) => p.status === 'ACTIVE' && p.app_status.startsWith('forked')), 240_000);
      const procs = await ps(gid);
      expect(procs.filter((p) => p.ppid === 100)).toHaveLength(3);
      expect(procs.filter((p) => p.ppid !== null && p.ppid !== 100)).toHaveLength(3);

      const tree = await rack(['ps', '--gid', gid, '--tree'], k.env);
      expect(tree.code).toBe(0);
      for (const p of procs) expect(tree.stdout).toContain(String(p.pid));
      expect(tree.stdout.split('\n').filter((l) => /ACTIVE/.test(l))).toHaveLength(7);

      const servers = await serversOf(os, kernelTag(k));
      for (const p of procs) {
        const s = servers.find((x) => x.id === p.compute_id);
        expect(s, `server of ${p.pid}`).toBeDefined();
        expect(s!.status).toBe('ACTIVE');
        expect(s!.metadata).toMatchObject({ rack_gid: gid, rack_pid: String(p.pid), rack_ppid: p.ppid === null ? '' : String(p.ppid), rack_url: k.url });
      }

      const con = await rack(['console', '100', '--gid', gid], k.env);
      expect(con.code, con.stderr).toBe(0);
      expect(con.stdout).toContain('FAKE CONSOLE OUTPUT'); // Nova's os-getConsoleOutput of the fake virt driver

      const kill = await rack(['kill', '100', '--gid', gid, '--signal', 'KILL'], k.env);
      expect(kill.code, kill.stderr).toBe(0);
      await w.until((all) => [...all.values()].every((p) => p.status === 'KILLED'), 120_000);
      await untilServersGone(os, procs.map((p) => p.compute_id));
    } finally {
      w.close();
    }
  });

  it('examples/hello: children exit with their codes, the parent waits for them, each child\'s self-kill deletes its server', async () => {
    const gid = await group('hello', HELLO, ['--arg', 'children=3']);
    const w = await watchGroup(k.url, k.env.RACK_TOKEN!, gid);
    try {
      expect((await rack(['fork', '--gid', gid], k.env)).code).toBe(0);
      await w.until((all) => all.get(100)?.status === 'EXITED', 240_000);
      const procs = await ps(gid);
      expect(procs.find((p) => p.pid === 100)).toMatchObject({ status: 'EXITED', exit_code: 0 });
      const children = procs.filter((p) => p.ppid === 100);
      expect(children.map((p) => [p.pid, p.status, p.exit_code])).toEqual([[101, 'EXITED', 1], [102, 'EXITED', 2], [103, 'EXITED', 3]]);
      await untilServersGone(os, children.map((c) => c.compute_id));
      // The parent's guest printed what its wait() returned.
      const host = hosts.at(-1)!;
      const root = host.guests.get(procs.find((p) => p.pid === 100)!.compute_id!)!;
      const said = root.console.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l).msg);
      expect(said).toContain('parent 100: exit codes {"101":1,"102":2,"103":3}');
    } finally {
      w.close();
    }
  });

  it('8 parallel forks all become ACTIVE servers; a server deleted behind RACK\'s back makes its process ERROR', async () => {
    const gid = await group('parallel', TREE);
    const w = await watchGroup(k.url, k.env.RACK_TOKEN!, gid);
    try {
      const forks = await Promise.all(Array.from({ length: 8 }, () => rack(['fork', '--gid', gid, '--arg', 'fanout=0', '--json'], k.env)));
      for (const f of forks) expect(f.code, f.stderr).toBe(0);
      await w.until((all) => all.size === 8 && [...all.values()].every((p) => p.status === 'ACTIVE'), 240_000);
      const procs = await ps(gid);
      const servers = await serversOf(os, kernelTag(k));
      for (const p of procs) expect(servers.find((s) => s.id === p.compute_id)?.status).toBe('ACTIVE');

      const victim = procs[3]!;
      expect((await nova(os, 'DELETE', `/servers/${victim.compute_id}`)).status).toBe(204);
      await w.until((all) => all.get(victim.pid)?.status === 'ERROR', 120_000);
      expect((await ps(gid)).find((p) => p.pid === victim.pid)!.error).toMatch(/stopped without its app reporting an exit/);
    } finally {
      w.close();
    }
  });
});
