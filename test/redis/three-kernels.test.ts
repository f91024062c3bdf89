import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Process } from '../../src/protocol/process.js';
import { osProcessesOfVm } from '../support/kernel.js';
import { ADMIN_TOKEN, adminCall, credentialsOfVm, startKernelOn, stopKernelProcess, type KernelOnStore } from '../support/kernel-process.js';
import { startRedisCluster, type RedisServers } from '../support/redis-server.js';
import { watchGroup } from '../support/watch.js';
import { RawClient } from '../support/ws-client.js';

/**
 * Three kernels, each its own OS process, on a three-master Redis Cluster: a group's keys are in
 * one slot, the kernels' leases and lists in others. One group's processes talk to each other
 * each through a different kernel.
 */
describe('three kernels on a three-master Redis Cluster', () => {
  let cluster: RedisServers;
  let kernels: KernelOnStore[] = [];
  const dirs: string[] = [];
  const vms = new Set<string>();

  beforeAll(async () => {
    cluster = await startRedisCluster(3);
    for (let i = 0; i < 3; i++) dirs.push(mkdtempSync(join(tmpdir(), `rack-three-${i}-`)));
    kernels = await Promise.all(dirs.map((d) => startKernelOn(cluster.url, d)));
  }, 120_000);

  afterAll(async () => {
    await Promise.all(kernels.map((k) => stopKernelProcess(k.child, 'SIGTERM')));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    const left = [...vms].flatMap((id) => osProcessesOfVm(id));
    for (const pid of left) process.kill(pid, 'SIGKILL');
    await cluster?.stop();
    expect(left).toEqual([]);
  });

  it('fork through A; a message, a pipe and shared memory across B and C; a kill through B waited for through C', async () => {
    const [a, b, c] = kernels as [KernelOnStore, KernelOnStore, KernelOnStore];
    const callA = adminCall(a.url);
    const gid = (await callA('POST', '/v1/groups', { group: { name: 'three', template: 'idle' } })).body.group.gid;
    const watch = await watchGroup(c.url, ADMIN_TOKEN, gid);
    const [root] = (await callA('POST', `/v1/groups/${gid}/processes`, { process: {} })).body.processes as Process[];
    const kids = (await callA('POST', `/v1/groups/${gid}/processes`, { process: { ppid: root!.pid, count: 2 } })).body.processes as Process[];
    await watch.until((all) => all.size === 3 && [...all.values()].every((p) => p.status === 'ACTIVE'));
    const all = (await adminCall(c.url)('GET', `/v1/groups/${gid}/processes`)).body.processes as Process[];
    for (const p of all) vms.add(p.compute_id!);
    const byPid = new Map(all.map((p) => [p.pid, p]));
    const token = (pid: number): string => credentialsOfVm(a, byPid.get(pid)!).token;

    // The root listens on C; a child writes on B.
    const onC = await RawClient.connect(c.url, token(root!.pid));
    const onB = await RawClient.connect(b.url, token(kids[0]!.pid));
    const got: number[] = [];
    let done!: () => void;
    const allMail = new Promise<void>((ok) => (done = ok));
    onC.on((e) => {
      if (e.event !== 'message') return;
      got.push(e.data.i);
      void onC.call('ack', { seq: e.seq });
      if (got.length === 50) done();
    });
    expect((await onC.call('recv.start')).ok).toBe(true);
    await Promise.all(Array.from({ length: 50 }, (_, i) => onB.call('send', { to: root!.pid, data: { i } })));
    await allMail;
    expect(got).toEqual(Array.from({ length: 50 }, (_, i) => i));

    // A FIFO written through B, read through C.
    const pipe = (await onB.call('fifo.open', { name: 'three' })).result.pipe;
    const rEnd = (await onC.call('pipe.open', { pipe, mode: 'r' })).result.end;
    const wEnd = (await onB.call('pipe.open', { pipe, mode: 'w' })).result.end;
    const data = randomBytes(3 * 1024 * 1024);
    const hash = createHash('sha256');
    const eof = new Promise<void>((resolve) =>
      onC.on((e, payload) => {
        if (e.event === 'pipe.data' && payload) {
          hash.update(payload);
          void onC.call('pipe.read', { end: rEnd, bytes: payload.length });
        }
        if (e.event === 'pipe.eof') resolve();
      }),
    );
    await onC.call('pipe.read', { end: rEnd, bytes: 256 * 1024 });
    for (let off = 0; off < data.length; off += 256 * 1024) expect((await onB.callBinary('pipe.write', { end: wEnd }, data.subarray(off, off + 256 * 1024))).ok).toBe(true);
    await onB.call('pipe.close', { end: wEnd });
    await eof;
    expect(hash.digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));

    // One counter, incremented through the three kernels at once.
    const onA = await RawClient.connect(a.url, token(kids[1]!.pid));
    await Promise.all([onA, onB, onC].flatMap((cl) => Array.from({ length: 100 }, () => cl.call('shm.incr', { key: 'n', by: 1 }))));
    expect((await onA.call('shm.get', { key: 'n' })).result.value).toBe(300);

    // A child killed through B; its parent's wait through C returns.
    const waited = onC.call('wait', { pid: kids[0]!.pid, timeout: 30 });
    expect((await adminCall(b.url)('DELETE', `/v1/groups/${gid}/processes/${kids[0]!.pid}?signal=KILL`)).status).toBe(202);
    expect((await waited).result).toMatchObject({ pid: kids[0]!.pid, status: 'killed' });
    await Promise.all([onA.close(), onB.close(), onC.close()]);
    watch.close();
    await callA('DELETE', `/v1/groups/${gid}`);
  });
});
