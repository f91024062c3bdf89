import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Process } from '../../src/protocol/process.js';
import { osProcessesOfVm, startTestKernel, untilProcess, type TestKernel } from '../support/kernel.js';

const run = promisify(execFile);

describe('process tree: fork, list, ps --tree, kill cascade', () => {
  let k: TestKernel;

  beforeAll(async () => {
    k = await startTestKernel();
  });
  afterAll(() => k.cleanup());

  /** A new group with a root (100), 3 children (101-103) and 2 grandchildren of 101 (104, 105), all ACTIVE. */
  async function tree(): Promise<{ gid: string; all: Process[] }> {
    const g = await k.call('POST', '/v1/groups', { group: { name: 'tree', template: 'idle' } });
    expect(g.status).toBe(201);
    const gid = g.body.group.gid as string;
    const root = await k.call('POST', `/v1/groups/${gid}/processes`, { process: { name: 'root' } });
    expect(root.status).toBe(202);
    expect(root.body.processes[0]).toMatchObject({ pid: 100, ppid: null });
    const kids = await k.call('POST', `/v1/groups/${gid}/processes`, { process: { ppid: 100, count: 3, name: 'child', args: { role: 'worker' } } });
    expect(kids.body.processes.map((p: Process) => p.pid)).toEqual([101, 102, 103]);
    const grand = await k.call('POST', `/v1/groups/${gid}/processes`, { process: { ppid: 101, count: 2, name: 'grandchild' } });
    expect(grand.body.processes.map((p: Process) => [p.pid, p.ppid])).toEqual([[104, 101], [105, 101]]);
    const all = await Promise.all([100, 101, 102, 103, 104, 105].map((pid) => untilProcess(k, gid, pid, (p) => p.status === 'ACTIVE')));
    return { gid, all };
  }

  it('boots a root, 3 children and 2 grandchildren with the right PPIDs', async () => {
    const { gid, all } = await tree();
    // Children inherit template and args from the parent.
    expect(all[4]!.args).toEqual({ role: 'worker' });
    expect(all[4]!.template).toBe('idle');

    const list = await k.call('GET', `/v1/groups/${gid}/processes`);
    expect(list.body.processes.map((p: Process) => [p.pid, p.ppid])).toEqual([
      [100, null], [101, 100], [102, 100], [103, 100], [104, 101], [105, 101],
    ]);
    const filtered = await k.call('GET', `/v1/groups/${gid}/processes?ppid=101`);
    expect(filtered.body.processes.map((p: Process) => p.pid)).toEqual([104, 105]);
    // Only the fields asked for, in their usual order; an unknown or repeated field is refused.
    const some = await k.call('GET', `/v1/groups/${gid}/processes?ppid=101&fields=status,pid,args`);
    expect(some.body.processes).toEqual([{ pid: 104, args: { role: 'worker' }, status: 'ACTIVE' }, { pid: 105, args: { role: 'worker' }, status: 'ACTIVE' }]);
    expect(Object.keys(some.body.processes[0])).toEqual(['pid', 'args', 'status']);
    expect((await k.call('GET', `/v1/groups/${gid}/processes?fields=pid,secret`)).status).toBe(400);
    expect((await k.call('GET', `/v1/groups/${gid}/processes?fields=pid,pid`)).status).toBe(400);
    for (const p of all) expect(osProcessesOfVm(p.compute_id!).length).toBeGreaterThan(0);
  });

  it('rack ps --tree draws the tree', async () => {
    const { gid } = await tree();
    const { stdout } = await run(process.execPath, ['dist/cli/main.js', 'ps', '--tree', '--gid', gid], {
      env: { ...process.env, RACK_URL: k.url, RACK_TOKEN: k.adminToken },
    });
    const lines = stdout.trim().split('\n').slice(1).map((l) => l.replace(/\s+ACTIVE.*$/, ''));
    expect(lines).toEqual([
      '100 root',
      '├─ 101 child',
      '│  ├─ 104 grandchild',
      '│  └─ 105 grandchild',
      '├─ 102 child',
      '└─ 103 child',
    ]);
    // What an app says of itself shows beside it, on one short line.
    await k.call('PUT', `/v1/groups/${gid}/processes/102`, { process: { app_status: 'sent 3/19 batches\nand a very long tail that does not fit on one line' } });
    const again = await run(process.execPath, ['dist/cli/main.js', 'ps', '--tree', '--gid', gid], { env: { ...process.env, RACK_URL: k.url, RACK_TOKEN: k.adminToken } });
    expect(again.stdout).toMatch(/102 child +ACTIVE.* "sent 3\/19 batches and a very long tail…"\n/);
  });

  it('killing the root ends all 6, descendants first, and leaves no OS process', async () => {
    const { gid, all } = await tree();
    const order: number[] = [];
    const onEvent = (p: Process): void => {
      if (p.gid === gid && p.status === 'KILLED') order.push(p.pid);
    };
    k.kernel.events.on('process', onEvent);
    const res = await k.call('DELETE', `/v1/groups/${gid}/processes/100?signal=KILL`);
    expect(res.status).toBe(202);
    expect(res.body.kill.pids).toEqual([105, 104, 103, 102, 101, 100]);
    await untilProcess(k, gid, 100, (p) => p.status === 'KILLED');
    k.kernel.events.off('process', onEvent);
    expect(order).toEqual([105, 104, 103, 102, 101, 100]);
    for (const p of all) {
      expect(osProcessesOfVm(p.compute_id!)).toEqual([]);
      const shown = await k.call('GET', `/v1/groups/${gid}/processes/${p.pid}`);
      expect(shown.body.process).toMatchObject({ status: 'KILLED', signal: 'KILL' });
    }
  });

  it('TERM without an agent destroys after the grace period', async () => {
    const gid = (await k.call('POST', '/v1/groups', { group: { name: 'term', template: 'idle' } })).body.group.gid;
    const root = await k.call('POST', `/v1/groups/${gid}/processes`, { process: { name: 'term' } });
    const p = await untilProcess(k, gid, root.body.processes[0].pid, (x) => x.status === 'ACTIVE');
    const started = Date.now();
    const res = await k.call('DELETE', `/v1/groups/${gid}/processes/${p.pid}?grace=0.5`);
    expect(res.status).toBe(202);
    const ended = await untilProcess(k, gid, p.pid, (x) => x.status === 'KILLED');
    expect(ended.signal).toBe('TERM');
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
    expect(osProcessesOfVm(p.compute_id!)).toEqual([]);
  });

  it('PIDs are never reused in a group', async () => {
    const gid = (await k.call('POST', '/v1/groups', { group: { name: 'pids', template: 'idle' } })).body.group.gid;
    const first = (await k.call('POST', `/v1/groups/${gid}/processes`, { process: {} })).body.processes[0].pid;
    await k.call('DELETE', `/v1/groups/${gid}/processes/${first}?signal=KILL`);
    await untilProcess(k, gid, first, (x) => x.status === 'KILLED');
    const res = await k.call('POST', `/v1/groups/${gid}/processes`, { process: {} });
    expect(res.body.processes[0].pid).toBe(first + 1);
  });
});
