import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Process } from '../../src/protocol/process.js';
import { osProcessesOfVm } from '../support/kernel.js';
import { ADMIN_TOKEN, adminCall, freePort, startKernelProcess, stopKernelProcess } from '../support/kernel-process.js';
import { watchGroup } from '../support/watch.js';

/** The fork queue with real sim VMs, a kernel of its own (kill -9 and restart), REST and the CLI. */
describe('resource scheduler: the fork queue', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'rack-queue-'));
  let kernel: ChildProcess | undefined;
  const vms = new Set<string>();
  afterAll(async () => {
    if (kernel) await stopKernelProcess(kernel);
    for (const id of vms) for (const pid of osProcessesOfVm(id)) process.kill(pid, 'SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('queues what the pool cannot hold, keeps the queue across a kill -9, boots in order as capacity frees, and a kill removes a queued fork', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const call = adminCall(url);
    const rack = (args: string[], gid: string): Promise<{ code: number; stdout: string; stderr: string }> =>
      new Promise((resolve) =>
        execFile(process.execPath, ['dist/cli/main.js', ...args], { env: { ...process.env, RACK_URL: url, RACK_TOKEN: ADMIN_TOKEN, RACK_GID: gid } }, (err, stdout, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        ),
      );
    // The kernel-wide pool: 3 instances (the root and two children).
    kernel = await startKernelProcess(port, dataDir, ['--max-instances', '3']);
    const gid = (await call('POST', '/v1/groups', { group: { name: 'queue', template: 'idle' } })).body.group.gid;
    const watch = await watchGroup(url, ADMIN_TOKEN, gid);
    await call('POST', `/v1/groups/${gid}/processes`, { process: {} });
    const kids = (await call('POST', `/v1/groups/${gid}/processes`, { process: { ppid: 100, count: 4 } })).body.processes as Process[];
    expect(kids.map((p) => p.status)).toEqual(['ACTIVE', 'ACTIVE', 'QUEUED', 'QUEUED']);
    const [late] = (await call('POST', `/v1/groups/${gid}/processes`, { process: { ppid: 100, priority: 7 } })).body.processes as Process[];
    expect(late!.status).toBe('QUEUED');

    // --no-queue fails at once, with the scheduler's error code, and makes nothing.
    const refused = await call('POST', `/v1/groups/${gid}/processes`, { process: { ppid: 100, no_queue: true } });
    expect(refused.status).toBe(503);
    expect(refused.body.error.code).toBe('no_capacity');
    expect(refused.body.error.message).toMatch(/kernel-wide pool has 0 of 3 instances free|queued forks are ahead/);

    // rack ps shows the queue, in boot order (priority first).
    const ps = await rack(['ps'], gid);
    expect(ps.code).toBe(0);
    expect(ps.stdout).toMatch(new RegExp(`^${late!.pid} +100 +QUEUED .* +#1 `, 'm'));
    expect(ps.stdout).toContain(`queue: ${late!.pid} #1 (priority 7, waits for the kernel-wide pool), ${kids[2]!.pid} #2`);
    const pool = await rack(['pool', '--json'], gid);
    expect(JSON.parse(pool.stdout).kernel).toMatchObject({ capacity: { instances: 3 }, used: { instances: 3 }, queued: 3 });

    // kill -9: the queue is in the store, so the restarted kernel has it in the same order.
    await watch.until((all) => [100, kids[0]!.pid, kids[1]!.pid].every((pid) => all.get(pid)?.status === 'ACTIVE'));
    watch.close();
    for (const p of (await call('GET', `/v1/groups/${gid}/processes`)).body.processes as Process[]) if (p.compute_id) vms.add(p.compute_id);
    await stopKernelProcess(kernel);
    kernel = await startKernelProcess(port, dataDir, ['--max-instances', '3']);
    const q = (await call('GET', `/v1/groups/${gid}/pool`)).body.pool.queue;
    expect(q.map((x: { pid: number }) => x.pid)).toEqual([late!.pid, kids[2]!.pid, kids[3]!.pid]);

    // A queued process killed: KILLED at once, no VM ever.
    const watch2 = await watchGroup(url, ADMIN_TOKEN, gid);
    expect((await call('DELETE', `/v1/groups/${gid}/processes/${kids[3]!.pid}?grace=60`)).status).toBe(202);
    await watch2.until((all) => all.get(kids[3]!.pid)?.status === 'KILLED');
    // A running child ends: the first in the queue boots, the next waits.
    await call('DELETE', `/v1/groups/${gid}/processes/${kids[0]!.pid}?signal=KILL`);
    await watch2.until((all) => all.get(late!.pid)?.status === 'ACTIVE');
    const now = (await call('GET', `/v1/groups/${gid}/processes`)).body.processes as Process[];
    const byPid = new Map(now.map((p) => [p.pid, p]));
    expect(byPid.get(kids[2]!.pid)!.status).toBe('QUEUED');
    expect(byPid.get(kids[3]!.pid)).toMatchObject({ status: 'KILLED', compute_id: null });
    for (const p of now) if (p.compute_id) vms.add(p.compute_id);
    watch2.close();
    await call('DELETE', `/v1/groups/${gid}`);
    for (const id of vms) expect(osProcessesOfVm(id)).toEqual([]);
  });
});
