import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ADMIN } from '../auth/auth.js';
import { silentLogger } from '../common/log.js';
import { until } from '../common/until.js';
import { FakeDriver } from '../compute/fake/fake-driver.js';
import { DEFAULT_QUOTAS, type Process } from '../protocol/process.js';
import type { Capacity } from '../protocol/resources.js';
import { SqliteStore } from '../store/sqlite/sqlite-store.js';
import { Kernel } from './kernel.js';

/** The Resource Scheduler's fork queue, on a fake compute driver and an in-memory store. */
describe('fork queue', () => {
  let store: SqliteStore;
  let compute: FakeDriver;
  let kernel: Kernel;
  let gid: string;
  let root: Process;

  const make = (pool?: Capacity): Kernel =>
    new Kernel({ store, compute, tokens: { issue: async (_g, pid) => ({ app: `rkp_app-${pid}`, agent: `rkg_agent-${pid}` }) }, log: silentLogger(), url: () => 'http://kernel', pool });
  const statusOf = async (pid: number): Promise<string> => (await kernel.getProcess(gid, pid)).status;
  const untilStatus = (pid: number, status: string): Promise<Process> =>
    until(kernel.events, 'process', (p: Process) => p.pid === pid, async () => {
      const p = await kernel.getProcess(gid, pid);
      return p.status === status ? p : null;
    }, Date.now() + 5000, { timeoutMessage: `process ${pid} never became ${status}` });
  const child = (pid: number, extra: Parameters<Kernel['fork']>[2] = {}): Promise<Process[]> => kernel.fork({ kind: 'process', gid, pid, role: 'app' }, gid, extra);

  beforeEach(async () => {
    store = new SqliteStore(':memory:');
    compute = new FakeDriver();
    kernel = make();
    gid = (await kernel.createGroup({ name: 'g', template: 'image' })).gid;
    // The root and two children fit the group's pool; the rest must queue.
    await kernel.setPool(gid, { instances: 3 });
    [root] = await kernel.fork(ADMIN, gid, {});
  });
  afterEach(async () => {
    await kernel.close();
    await store.close();
  });

  it('what does not fit is QUEUED without a VM, and boots in priority then fork order as capacity frees up', async () => {
    const kids = await child(root.pid, { count: 4 });
    expect(kids.map((p) => p.status)).toEqual(['ACTIVE', 'ACTIVE', 'QUEUED', 'QUEUED']);
    expect(kids.slice(2).every((p) => p.compute_id === null)).toBe(true);
    const [urgent] = await child(root.pid, { priority: 5 });
    expect(urgent!.status).toBe('QUEUED');
    const view = await kernel.pool(gid);
    expect(view.group).toMatchObject({ capacity: { instances: 3 }, used: { instances: 3 }, free: { instances: 0 }, queued: 3 });
    expect(view.queue.map((q) => [q.pid, q.position, q.priority, q.waiting_for])).toEqual([
      [urgent!.pid, 1, 5, 'group'],
      [kids[2]!.pid, 2, 0, 'group'],
      [kids[3]!.pid, 3, 0, 'group'],
    ]);
    // One child ends: the urgent fork boots first, though it was forked last.
    await kernel.exit(gid, kids[0]!.pid, 0);
    expect((await untilStatus(urgent!.pid, 'ACTIVE')).compute_id).not.toBeNull();
    expect(await statusOf(kids[2]!.pid)).toBe('QUEUED');
    await kernel.exit(gid, kids[1]!.pid, 0);
    await untilStatus(kids[2]!.pid, 'ACTIVE');
    expect(await statusOf(kids[3]!.pid)).toBe('QUEUED');
    // A queued child is a child: wait() has something to wait for.
    const w = await kernel.wait(gid, root.pid, { timeoutMs: 1000 });
    expect(w.status).toBe('exited');
  });

  it('no_queue fails at once with no_capacity and creates nothing', async () => {
    await child(root.pid, { count: 2 });
    await expect(child(root.pid, { noQueue: true })).rejects.toMatchObject({ code: 'no_capacity', message: expect.stringMatching(/group's pool has 0 of 3 instances free/) });
    expect((await kernel.listProcesses(gid)).length).toBe(3);
    // A fork that fits is not refused.
    await kernel.setPool(gid, { instances: 4 });
    expect((await child(root.pid, { noQueue: true }))[0]!.status).toBe('ACTIVE');
  });

  it("a queued process counts against the group's quota of live processes: past it the fork is quota_exceeded and nothing queues", async () => {
    const q = (await kernel.createGroup({ name: 'quota', template: 'image', quotas: { processes: 3 } })).gid;
    await kernel.setPool(q, { instances: 1 });
    const [r] = await kernel.fork(ADMIN, q, {});
    const kids = await kernel.fork(ADMIN, q, { ppid: r!.pid, count: 2 });
    expect(kids.map((p) => p.status)).toEqual(['QUEUED', 'QUEUED']);
    await expect(kernel.fork(ADMIN, q, { ppid: r!.pid })).rejects.toMatchObject({ code: 'quota_exceeded' });
    const pool = await kernel.pool(q);
    expect(pool.queue.map((e) => e.pid)).toEqual(kids.map((p) => p.pid));
    // The refused fork's reservation was given back.
    expect(pool.group.used.instances).toBe(1);
    expect((await kernel.listProcesses(q)).length).toBe(3);
  });

  it('a queued fork whose timeout passes ends in ERROR (no_capacity), and its parent hears of it', async () => {
    await child(root.pid, { count: 2 });
    const [late] = await child(root.pid, { timeoutMs: 50 });
    const ended = await untilStatus(late!.pid, 'ERROR');
    expect(ended.error).toMatch(/^no_capacity: /);
    expect((await kernel.pool(gid)).queue).toEqual([]);
    expect(compute.vms.size).toBe(3);
  });

  it('a kill of a queued process just removes it: KILLED at once, no VM, never boots', async () => {
    const kids = await child(root.pid, { count: 3 });
    const queued = kids[2]!;
    expect(await kernel.kill(ADMIN, gid, queued.pid, { signal: 'TERM', graceMs: 60_000 })).toEqual([queued.pid]);
    const killed = await untilStatus(queued.pid, 'KILLED');
    expect(killed).toMatchObject({ compute_id: null, signal: 'TERM' });
    await kernel.exit(gid, kids[0]!.pid, 0);
    // The freed place is not taken by the killed one.
    expect((await kernel.pool(gid)).group.used.instances).toBe(2);
    expect((await kernel.getProcess(gid, queued.pid)).compute_id).toBeNull();
  });

  it('the queue survives a kernel restart, in its order, and boots when capacity frees up', async () => {
    const kids = await child(root.pid, { count: 4, priority: 1 });
    const [low] = await child(root.pid, { priority: -1 });
    await kernel.close();
    kernel = make();
    await kernel.reconcile();
    expect((await kernel.pool(gid)).queue.map((q) => q.pid)).toEqual([kids[2]!.pid, kids[3]!.pid, low!.pid]);
    expect(await statusOf(kids[2]!.pid)).toBe('QUEUED');
    await kernel.exit(gid, kids[0]!.pid, 0);
    await untilStatus(kids[2]!.pid, 'ACTIVE');
    expect(await statusOf(low!.pid)).toBe('QUEUED');
  });

  it('a QUEUED process the queue does not know (a restart between its fork and its record) ends in ERROR at start', async () => {
    const { processes: [lost] } = await store.processes.insert(gid, [{ gid, ppid: root.pid, name: 'lost', template: 'image', flavor: null, args: {}, status: 'QUEUED', app_state: 'pending', app_status: '', exit_code: null, signal: null, error: null, compute_id: null }], DEFAULT_QUOTAS);
    await kernel.close();
    kernel = make();
    await kernel.reconcile();
    expect((await kernel.getProcess(gid, lost!.pid)).error).toMatch(/interrupted by a kernel restart/);
  });

  it("a group waiting for its own pool does not hold back another group's forks", async () => {
    await child(root.pid, { count: 3 });
    const other = (await kernel.createGroup({ name: 'other', template: 'image' })).gid;
    const [r] = await kernel.fork(ADMIN, other, {});
    expect(r!.status).toBe('ACTIVE');
  });

  it("the kernel-wide pool follows the project's limits, less what the project's other servers use", async () => {
    await kernel.close();
    // 10 instances in the project, 7 used by servers that are not this kernel's (plus the root's 1).
    compute.projectLimits = { max: { instances: 10, vcpus: null, ram_mb: null }, used: { instances: 8, vcpus: 8, ram_mb: 4096 } };
    kernel = make({ vcpus: 64 });
    await kernel.reconcile();
    await kernel.setPool(gid, null);
    const kids = await child(root.pid, { count: 4 });
    expect(kids.map((p) => p.status)).toEqual(['ACTIVE', 'ACTIVE', 'QUEUED', 'QUEUED']);
    const view = await kernel.pool(gid);
    expect(view.kernel.capacity).toEqual({ instances: 3, vcpus: 64, ram_mb: null });
    expect(view.queue[0]!.waiting_for).toBe('kernel');
  });

  it("a VM bigger than the project's quota itself is refused with quota_exceeded, not queued for ever", async () => {
    await kernel.close();
    compute.projectLimits = { max: { instances: 0, vcpus: null, ram_mb: null }, used: { instances: 0, vcpus: 0, ram_mb: 0 } };
    kernel = make();
    await kernel.reconcile();
    await kernel.setPool(gid, null);
    await expect(child(root.pid)).rejects.toMatchObject({ code: 'quota_exceeded', message: expect.stringMatching(/compute project's quota has 0 of 0 instances free/) });
    expect((await kernel.listProcesses(gid)).map((p) => p.pid)).toEqual([root.pid]);
  });

  it('sizes forks by flavor: vCPUs and RAM count, an unknown flavor is refused', async () => {
    await kernel.setPool(gid, { vcpus: 6 });
    const kids = await child(root.pid, { flavor: 'large', count: 2 });
    expect(kids.map((p) => p.status)).toEqual(['ACTIVE', 'QUEUED']);
    await expect(child(root.pid, { flavor: 'huge' })).rejects.toMatchObject({ code: 'bad_request' });
  });
});
