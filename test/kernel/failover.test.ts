import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KernelSocket } from '../../src/client/kernel-socket.js';
import { Backoff } from '../../src/common/backoff.js';
import { freePort } from '../support/kernel-process.js';
import { startTestKernel, type TestKernel } from '../support/kernel.js';

/**
 * Several kernel URLs (RACK_URL and the metadata may carry a comma-separated list: kernels over
 * one store): the client core dials the next when its kernel cannot be reached or goes away, and
 * libdck.sh moves on when one does not take the connection. Two kernels with one admin token
 * stand in for kernels sharing a store.
 */
describe('a client given several kernels', () => {
  const ADMIN = 'failover-admin-token-0123456789';
  let a: TestKernel;
  let b: TestKernel;
  let dead: string;
  const sockets: KernelSocket[] = [];
  const socket = (url: string, token = ADMIN): KernelSocket => {
    const s = new KernelSocket({ url, token, role: 'admin', backoff: new Backoff(20, 100) });
    sockets.push(s);
    return s;
  };

  beforeAll(async () => {
    [a, b] = await Promise.all([startTestKernel({ adminToken: ADMIN }), startTestKernel({ adminToken: ADMIN })]);
    dead = `http://127.0.0.1:${await freePort()}`;
  });
  afterAll(async () => {
    for (const s of sockets) s.close();
    await a.cleanup();
    await b?.cleanup();
  });

  it('connects to one that answers, whichever order they come in', async () => {
    for (const list of [`${dead},${a.url}`, `${a.url}, ${dead}`]) {
      const s = socket(list);
      await s.open();
      expect(s.url).toBe(a.url);
      expect((await s.call('group.list')).groups).toEqual([]);
      s.close();
    }
  });

  it('gives up after trying each when none answers (unavailable), and at once when a kernel refuses the token', async () => {
    await expect(socket(`${dead},${dead}/`).open()).rejects.toMatchObject({ code: 'unavailable' });
    await expect(socket(`${dead},${a.url}`, 'wrong-token-0123456789').open()).rejects.toMatchObject({ code: 'unauthorized' });
  });

  it('moves to the other kernel when its own goes away, and goes on', async () => {
    const s = socket(`${a.url},${b.url}`);
    await s.open();
    const first = s.url === a.url ? a : b;
    const other = first === a ? b : a;
    const reconnected = new Promise((resolve) => s.once('reconnect', resolve));
    await first.close();
    await reconnected;
    expect(s.url).toBe(other.url);
    expect((await s.call('group.list')).groups).toEqual([]);
    if (first === a) a = await startTestKernel({ adminToken: ADMIN });
    else b = await startTestKernel({ adminToken: ADMIN });
  });

  it('libdck.sh: a call goes to the first kernel that takes the connection; with none, exit 3 (also through a pipeline)', async () => {
    const gid = (await a.call('POST', '/v1/groups', { group: { name: 'sh', template: 'idle' } })).body.group.gid;
    const sh = `. ${join(process.cwd(), 'src/libdck/libdck.sh')}; dck_shm_incr n 5 && echo && dck_shm_get n && dck_file_ls`;
    const env = { ...process.env, RACK_URL: `${dead},${a.url}`, RACK_TOKEN: ADMIN, RACK_GID: gid, RACK_PID: '' };
    const { stdout } = await promisify(execFile)('sh', ['-c', sh], { env });
    expect(stdout).toBe('5\n5\n');
    for (const fn of ['dck_shm_incr n', 'dck_shm_get n', 'dck_file_ls']) {
      const none = await promisify(execFile)('sh', ['-c', `. ${join(process.cwd(), 'src/libdck/libdck.sh')}; ${fn}`], { env: { ...env, RACK_URL: `${dead},${dead}` } }).catch((e: { code: number; stderr: string }) => e);
      expect(none, fn).toMatchObject({ code: 3 });
      expect((none as { stderr: string }).stderr).toContain('cannot reach the kernel');
    }
  });
});
