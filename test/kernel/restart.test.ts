import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Process } from '../../src/protocol/process.js';
import { osProcessesOfVm } from '../support/kernel.js';
import { ADMIN_TOKEN, adminCall, freePort, startKernelProcess } from '../support/kernel-process.js';
import { watchGroup } from '../support/watch.js';

const TOKEN = ADMIN_TOKEN;

describe('kernel restart after kill -9', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'rack-restart-'));
  let kernel: ChildProcess | undefined;
  afterAll(() => {
    kernel?.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('keeps the process table and control over the same 5 processes', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const call = adminCall(url);
    const listAll = async (gid: string): Promise<Process[]> => (await call('GET', `/v1/groups/${gid}/processes`)).body.processes;

    kernel = await startKernelProcess(port, dataDir);
    const gid = (await call('POST', '/v1/groups', { group: { name: 'restart', template: 'idle' } })).body.group.gid;
    const watch = await watchGroup(url, TOKEN, gid);
    await call('POST', `/v1/groups/${gid}/processes`, { process: {} });
    await call('POST', `/v1/groups/${gid}/processes`, { process: { ppid: 100, count: 4 } });
    await watch.until((all) => all.size === 5 && [...all.values()].every((p) => p.status === 'ACTIVE'));
    watch.close();
    const before = await listAll(gid);
    expect(before.map((p) => p.status)).toEqual(Array(5).fill('ACTIVE'));

    kernel.kill('SIGKILL');
    await new Promise((r) => kernel!.once('exit', r));
    // The VMs survive the kernel.
    for (const p of before) expect(osProcessesOfVm(p.compute_id!).length).toBeGreaterThan(0);

    kernel = await startKernelProcess(port, dataDir);
    const after = await listAll(gid);
    expect(after.map((p) => [p.pid, p.ppid, p.status, p.compute_id])).toEqual(before.map((p) => [p.pid, p.ppid, 'ACTIVE', p.compute_id]));

    // Still controllable: kill one child, fork a new one (PIDs keep increasing).
    expect((await call('DELETE', `/v1/groups/${gid}/processes/104?signal=KILL`)).status).toBe(202);
    const waited = await call('GET', `/v1/groups/${gid}/processes/100/wait?pid=104&timeout=20`);
    expect(waited.body.wait).toMatchObject({ pid: 104, status: 'killed', signal: 'KILL' });
    expect(osProcessesOfVm(before.find((p) => p.pid === 104)!.compute_id!)).toEqual([]);
    const forked = await call('POST', `/v1/groups/${gid}/processes`, { process: { ppid: 100 } });
    expect(forked.body.processes[0].pid).toBe(105);

    // A VM that dies while the kernel is down becomes ERROR at the next start.
    kernel.kill('SIGKILL');
    await new Promise((r) => kernel!.once('exit', r));
    const victim = before.find((p) => p.pid === 103)!;
    for (const pid of osProcessesOfVm(victim.compute_id!)) process.kill(pid, 'SIGKILL');
    kernel = await startKernelProcess(port, dataDir);
    const lost = (await call('GET', `/v1/groups/${gid}/processes/103`)).body.process;
    expect(lost.status).toBe('ERROR');
    expect(lost.error).toMatch(/lost/);

    expect((await call('DELETE', `/v1/groups/${gid}`)).status).toBe(204);
    for (const p of before) expect(osProcessesOfVm(p.compute_id!)).toEqual([]);
  });

  it('a TERM kill cut short by kill -9 of the kernel is finished after the restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rack-restart-kill-'));
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const call = adminCall(url);
    let k = await startKernelProcess(port, dir);
    try {
      const gid = (await call('POST', '/v1/groups', { group: { name: 'restart-kill', template: 'idle' } })).body.group.gid;
      let watch = await watchGroup(url, TOKEN, gid);
      await call('POST', `/v1/groups/${gid}/processes`, { process: {} });
      await call('POST', `/v1/groups/${gid}/processes`, { process: { ppid: 100, count: 2 } });
      await watch.until((all) => all.size === 3 && [...all.values()].every((p) => p.status === 'ACTIVE'));
      watch.close();
      const vms = (await call('GET', `/v1/groups/${gid}/processes`)).body.processes.map((p: Process) => p.compute_id!);
      // The idle image has no agent to hear the TERM: the whole grace period runs.
      expect((await call('DELETE', `/v1/groups/${gid}/processes/100?signal=TERM&grace=2`)).status).toBe(202);
      k.kill('SIGKILL');
      await new Promise((r) => k.once('exit', r));
      for (const vm of vms) expect(osProcessesOfVm(vm).length).toBeGreaterThan(0);

      k = await startKernelProcess(port, dir);
      watch = await watchGroup(url, TOKEN, gid);
      const listed = (await call('GET', `/v1/groups/${gid}/processes`)).body.processes as Process[];
      for (const p of listed) watch.latest.set(p.pid, p);
      await watch.until((all) => [...all.values()].filter((p) => p.status === 'KILLED').length === 3);
      watch.close();
      const after = (await call('GET', `/v1/groups/${gid}/processes`)).body.processes as Process[];
      expect(after.map((p) => [p.pid, p.status, p.signal])).toEqual([[100, 'KILLED', 'TERM'], [101, 'KILLED', 'TERM'], [102, 'KILLED', 'TERM']]);
      for (const vm of vms) expect(osProcessesOfVm(vm)).toEqual([]);
    } finally {
      k.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
