import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Process } from '../../src/protocol/process.js';
import { osProcessesOfVm } from '../support/kernel.js';
import { ADMIN_TOKEN, freePort, startKernelProcess } from '../support/kernel-process.js';
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
    const call = async (method: string, path: string, body?: unknown): Promise<any> => {
      const res = await fetch(url + path, {
        method,
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, body: res.status === 204 ? null : await res.json() };
    };
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
});
