import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_QUOTAS, type Process } from '../../src/protocol/process.js';
import { startTestKernel, untilProcess, type TestKernel } from '../support/kernel.js';

/** Quotas per group: past one, a clear 403 quota_exceeded, and nothing half-made. */
describe('quotas', () => {
  let k: TestKernel;
  beforeAll(async () => {
    // The operator's default for live processes, and a group that sets its own.
    k = await startTestKernel({ quotas: { processes: 50 } });
  });
  afterAll(() => k.cleanup());

  const group = async (quotas: object): Promise<string> => {
    const r = await k.call('POST', '/v1/groups', { group: { name: 'q', template: 'idle', quotas } });
    expect(r.status).toBe(201);
    return r.body.group.gid;
  };
  const refused = (res: { status: number; body: any }, what: RegExp): void => {
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('quota_exceeded');
    expect(res.body.error.message).toMatch(what);
  };

  it('a group shows its quotas: its own, the operator\'s defaults for the rest', async () => {
    const gid = await group({ pipes: 7 });
    const g = (await k.call('GET', `/v1/groups/${gid}`)).body.group;
    expect(g.quotas).toEqual({ ...DEFAULT_QUOTAS, processes: 50, pipes: 7 });
  });

  it('live processes and forks in all', async () => {
    const gid = await group({ processes: 3, forks: 5 });
    const fork = (count: number) => k.call('POST', `/v1/groups/${gid}/processes`, { process: { count } });
    const first = (await fork(3)).body.processes as Process[];
    refused(await fork(1), /3 live processes; it has 3/);
    expect((await k.call('GET', `/v1/groups/${gid}/processes`)).body.processes).toHaveLength(3);
    const kill = async (p: Process): Promise<void> => {
      await k.call('DELETE', `/v1/groups/${gid}/processes/${p.pid}?signal=KILL`);
      await untilProcess(k, gid, p.pid, (x) => x.status === 'KILLED');
    };
    await kill(first[0]!);
    await kill(first[1]!);
    expect((await fork(2)).status).toBe(202);
    // Five forked, three live: with one more ended there is room for a live one, not for a fork.
    await kill(first[2]!);
    refused(await fork(1), /fork 5 processes in all; it has forked 5/);
  });

  it('shared memory bytes: a write past the quota changes nothing', async () => {
    const gid = await group({ shm_bytes: 2000 });
    expect((await k.call('PUT', `/v1/groups/${gid}/shm/a`, { value: 'x'.repeat(1500) })).status).toBe(200);
    refused(await k.call('PUT', `/v1/groups/${gid}/shm/b`, { value: 'y'.repeat(1000) }), /shared memory may hold 2000 bytes/);
    expect((await k.call('GET', `/v1/groups/${gid}/shm/b`)).body.value).toBeNull();
    refused(await k.call('POST', `/v1/groups/${gid}/shm/l/push`, { values: ['z'.repeat(600)] }), /shared memory/);
    // Replacing a value counts only the difference; deleting gives the bytes back.
    expect((await k.call('PUT', `/v1/groups/${gid}/shm/a`, { value: 'x'.repeat(1700) })).status).toBe(200);
    await k.call('DELETE', `/v1/groups/${gid}/shm/a`);
    expect((await k.call('PUT', `/v1/groups/${gid}/shm/b`, { value: 'y'.repeat(1900) })).status).toBe(200);
  });

  it('file bytes: a put past the quota leaves nothing (and the old file as it was)', async () => {
    const gid = await group({ file_bytes: 1000 });
    const put = (path: string, n: number) => fetch(`${k.url}/v1/groups/${gid}/files/${path}`, { method: 'PUT', headers: { authorization: `Bearer ${k.adminToken}` }, body: 'a'.repeat(n) });
    expect((await put('one', 800)).status).toBe(201);
    const over = await put('two', 300);
    expect(over.status).toBe(403);
    expect(((await over.json()) as { error: { code: string } }).error.code).toBe('quota_exceeded');
    expect((await k.call('GET', `/v1/groups/${gid}/files`)).body.files.map((f: { path: string }) => f.path)).toEqual(['one']);
    expect((await put('one', 1001)).status).toBe(403);
    expect((await k.call('GET', `/v1/groups/${gid}/files`)).body.files[0].size).toBe(800);
    expect((await put('one', 1000)).status).toBe(201);
  });

  it('open pipes', async () => {
    const gid = await group({ pipes: 2 });
    for (let i = 0; i < 2; i++) expect((await k.call('POST', `/v1/groups/${gid}/pipes`)).status).toBe(201);
    refused(await k.call('POST', `/v1/groups/${gid}/pipes`), /2 pipes open at once/);
    refused(await k.call('PUT', `/v1/groups/${gid}/fifos/logs`), /pipes open/);
  });

  it('a quota that is not a quota, or not a count, is refused', async () => {
    for (const quotas of [{ vms: 3 }, { processes: -1 }, { processes: 1.5 }]) {
      const r = await k.call('POST', '/v1/groups', { group: { name: 'q', quotas } });
      expect(r.status).toBe(400);
    }
  });
});
