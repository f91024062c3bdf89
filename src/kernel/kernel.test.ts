import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ADMIN } from '../auth/auth.js';
import { RackError } from '../common/errors.js';
import { silentLogger } from '../common/log.js';
import { until } from '../common/until.js';
import { FakeDriver } from '../compute/fake/fake-driver.js';
import type { Process } from '../protocol/process.js';
import { SqliteStore } from '../store/sqlite/sqlite-store.js';
import { Kernel, type KernelOptions } from './kernel.js';

/** The kernel's own logic, on a fake compute driver and an in-memory store: no VM, no network. */
describe('kernel', () => {
  let store: SqliteStore;
  let compute: FakeDriver;
  let kernel: Kernel;
  let gid: string;

  const make = async (opts: Partial<KernelOptions> = {}): Promise<void> => {
    kernel = new Kernel({ store, compute, tokens: { issue: async (_g, pid) => ({ app: `rkp_test-app-${pid}`, agent: `rkg_test-agent-${pid}` }) }, log: silentLogger(), url: () => 'http://kernel', ...opts });
    gid = (await kernel.createGroup({ name: 'g', template: 'image' })).gid;
  };
  const untilStatus = (pid: number, pred: (p: Process) => boolean): Promise<Process> =>
    until(kernel.events, 'process', (p: Process) => p.pid === pid, async () => {
      const p = await kernel.getProcess(gid, pid);
      return pred(p) ? p : null;
    }, Date.now() + 2000);

  beforeEach(async () => {
    store = new SqliteStore(':memory:');
    compute = new FakeDriver();
    await make();
  });
  afterEach(async () => {
    await kernel.close();
    await store.close();
  });

  it('fork answers once the VMs are accepted, with the rack_* metadata; BUILD turns ACTIVE when the driver says so', async () => {
    compute.bootState = 'BUILD';
    const [root] = await kernel.fork(ADMIN, gid, { args: { color: 'red' } });
    expect(root).toMatchObject({ pid: 100, ppid: null, status: 'BUILD', compute_id: 'fake-1' });
    expect(compute.vms.get('fake-1')!.req.meta).toMatchObject({ rack_gid: gid, rack_pid: '100', rack_ppid: '', rack_url: 'http://kernel', color: 'red' });
    compute.change('fake-1', 'ACTIVE');
    expect((await untilStatus(100, (p) => p.status === 'ACTIVE')).status).toBe('ACTIVE');
  });

  it('a fork the compute service refuses is rolled back whole: no process, no VM, the refusal is the answer', async () => {
    const [root] = await kernel.fork(ADMIN, gid, {});
    let boots = 0;
    compute.boot = async function (this: FakeDriver, req) {
      if (++boots === 3) throw new RackError('quota_exceeded', 'Quota exceeded for instances');
      return FakeDriver.prototype.boot.call(this, req);
    };
    const seen: Process[] = [];
    kernel.events.on('process', (p) => seen.push(p));
    await expect(kernel.fork({ kind: 'process', gid, pid: root!.pid, role: 'app' }, gid, { count: 4 })).rejects.toMatchObject({ code: 'quota_exceeded' });
    expect((await kernel.listProcesses(gid)).map((p) => p.pid)).toEqual([root!.pid]);
    expect([...compute.vms.keys()]).toEqual([root!.compute_id]);
    // Observers saw the would-be children end, so nothing they track stays BUILD.
    expect(seen.filter((p) => p.status === 'ERROR').length).toBe(4);
  });

  it('boots at most bootConcurrency VMs at a time', async () => {
    await kernel.close();
    await make({ bootConcurrency: 2 });
    const [root] = await kernel.fork(ADMIN, gid, {});
    let open!: () => void;
    compute.gate = new Promise((r) => (open = r));
    const boot = compute.boot.bind(compute);
    let inFlight = 0;
    let most = 0;
    let entered = 0;
    let twoIn!: () => void;
    const two = new Promise<void>((r) => (twoIn = r));
    compute.boot = async (req) => {
      most = Math.max(most, ++inFlight);
      if (++entered === 2) twoIn();
      try {
        return await boot(req);
      } finally {
        inFlight--;
      }
    };
    const forking = kernel.fork(ADMIN, gid, { ppid: root!.pid, count: 5 });
    await two;
    await new Promise((r) => setImmediate(r));
    expect(entered).toBe(2);
    open();
    const kids = await forking;
    expect(kids.map((p) => p.compute_id !== null)).toEqual([true, true, true, true, true]);
    expect(most).toBe(2);
  });

  it('a process killed while its VM is being asked for gets its VM destroyed once it exists', async () => {
    let open!: () => void;
    compute.gate = new Promise((r) => (open = r));
    const forking = kernel.fork(ADMIN, gid, {});
    const built = await until(kernel.events, 'process', () => true, async () => (await kernel.listProcesses(gid))[0] ?? null, Date.now() + 2000);
    await kernel.kill(ADMIN, gid, built.pid, { signal: 'KILL' });
    await untilStatus(built.pid, (p) => p.status === 'KILLED');
    open();
    await forking;
    expect(compute.vms.size).toBe(0);
    expect(compute.destroyed).toEqual(['fake-1']);
    expect((await kernel.getProcess(gid, built.pid)).compute_id).toBe('fake-1');
  });

  it('TERM: the agent is asked, and what is left after the grace period is destroyed, children first', async () => {
    const [root] = await kernel.fork(ADMIN, gid, {});
    const [kid] = await kernel.fork(ADMIN, gid, { ppid: root!.pid });
    const sent: string[] = [];
    kernel.attachAgent(gid, root!.pid, { send: (e) => sent.push(`${e.signal}:${e.grace_ms}`) });
    expect(await kernel.kill(ADMIN, gid, root!.pid, { signal: 'TERM', graceMs: 200 })).toEqual([kid!.pid, root!.pid]);
    // The child's app exits within the grace period; the root's does not.
    await kernel.exit(gid, kid!.pid, 0);
    const killed = await untilStatus(root!.pid, (p) => p.status === 'KILLED');
    expect(killed).toMatchObject({ signal: 'TERM', app_state: 'exited' });
    expect(sent).toEqual(['TERM:200']);
    expect((await kernel.getProcess(gid, kid!.pid)).status).toBe('EXITED');
    expect(compute.destroyed).toEqual([kid!.compute_id, root!.compute_id]);
  });

  it('kill answers once the kill is stored (a restarted kernel finishes it), on a store whose writes take a round trip', async () => {
    const [root] = await kernel.fork(ADMIN, gid, {});
    const put = store.kills.put.bind(store.kills);
    const stored: number[] = [];
    store.kills.put = async (k) => {
      await new Promise((r) => setImmediate(r));
      await put(k);
      stored.push(k.pid);
    };
    await kernel.kill(ADMIN, gid, root!.pid, { signal: 'KILL' });
    expect(stored).toContain(root!.pid);
  });

  it('signals for an agent that is not connected wait in the store and go out in order when it connects', async () => {
    const [p] = await kernel.fork(ADMIN, gid, {});
    await kernel.signal(ADMIN, gid, p!.pid, 'USR1');
    await kernel.signal(ADMIN, gid, p!.pid, 'HUP');
    const got: string[] = [];
    kernel.attachAgent(gid, p!.pid, { send: (e) => got.push(e.signal) });
    await kernel.signal(ADMIN, gid, p!.pid, 'USR2');
    expect(got).toEqual(['USR1', 'HUP', 'USR2']);
  });

  it('a VM that fails or vanishes ends its process in ERROR, with the fault', async () => {
    const [a, b] = await kernel.fork(ADMIN, gid, { count: 2 });
    compute.change(a!.compute_id!, 'ERROR', 'No valid host was found.');
    compute.change(b!.compute_id!, 'GONE');
    expect((await untilStatus(a!.pid, (p) => p.status === 'ERROR')).error).toMatch(/No valid host was found/);
    expect((await untilStatus(b!.pid, (p) => p.status === 'ERROR')).error).toMatch(/stopped without its app reporting an exit/);
  });

  it('reconcile: lost VMs end in ERROR, finished builds turn ACTIVE, orphan VMs are destroyed, unfinished kills go on', async () => {
    compute.bootState = 'BUILD';
    const [lost, building, dying] = await kernel.fork(ADMIN, gid, { count: 3 });
    // The kernel goes away; meanwhile one VM vanishes and one finishes building.
    await kernel.close();
    compute.vms.delete(lost!.compute_id!);
    compute.vms.get(building!.compute_id!)!.state = 'ACTIVE';
    await store.kills.put({ gid, pid: dying!.pid, signal: 'KILL', deadline: Date.now() });
    const orphan = compute.orphan();
    kernel = new Kernel({ store, compute, tokens: { issue: async () => ({ app: 'rkp_test-app', agent: 'rkg_test-agent' }) }, log: silentLogger(), url: () => 'http://kernel' });
    expect(await kernel.reconcile()).toEqual({ lost: 1, orphans: 1 });
    expect((await kernel.getProcess(gid, lost!.pid)).status).toBe('ERROR');
    expect((await kernel.getProcess(gid, building!.pid)).status).toBe('ACTIVE');
    expect(compute.destroyed).toContain(orphan);
    expect((await untilStatus(dying!.pid, (p) => p.status === 'KILLED')).signal).toBe('KILL');
  });

  it('reactions run in order before a change is announced', async () => {
    const log: string[] = [];
    kernel.use({ name: 'a', forked: (p) => void log.push(`a forked ${p.pid}`), ended: (p) => void log.push(`a ended ${p.pid}`) });
    kernel.use({ name: 'b', ended: async (p) => void log.push(`b ended ${p.pid}`) });
    kernel.events.on('process', (p) => log.push(`event ${p.pid} ${p.status}`));
    const [p] = await kernel.fork(ADMIN, gid, {});
    await kernel.exit(gid, p!.pid, 0);
    expect(log).toEqual(['a forked 100', 'event 100 BUILD', 'event 100 ACTIVE', 'a ended 100', 'b ended 100', 'event 100 EXITED']);
  });

  it('wait(any) answers each ended child once, then no_child', async () => {
    const [root] = await kernel.fork(ADMIN, gid, {});
    const [c1, c2] = await kernel.fork(ADMIN, gid, { ppid: root!.pid, count: 2 });
    await kernel.exit(gid, c2!.pid, 2);
    await kernel.exit(gid, c1!.pid, 1);
    const first = await kernel.wait(gid, root!.pid, { timeoutMs: 100 });
    const second = await kernel.wait(gid, root!.pid, { timeoutMs: 100 });
    expect([first.code, second.code].sort()).toEqual([1, 2]);
    await expect(kernel.wait(gid, root!.pid, { timeoutMs: 100 })).rejects.toMatchObject({ code: 'no_child' });
  });
});
