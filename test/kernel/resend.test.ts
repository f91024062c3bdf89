import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connect } from '../../src/libdck/index.js';
import type { Process } from '../../src/protocol/process.js';
import { credentialsOf } from '../../src/protocol/user-data.js';
import { ADMIN_TOKEN, adminCall, freePort, startKernelProcess, stopKernelProcess } from '../support/kernel-process.js';
import { watchGroup } from '../support/watch.js';

/** One request on a fresh WebSocket (a client that lost its connection and came back). */
async function once(url: string, token: string, frame: Record<string, unknown>): Promise<{ ok: boolean; result?: any; error?: any }> {
  const ws = new WebSocket(url.replace('http', 'ws') + '/v1/ws', { headers: { authorization: `Bearer ${token}` } });
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const answered = (id: number) => new Promise<any>((resolve) => {
    const on = (d: Buffer) => {
      const m = JSON.parse(d.toString());
      if (m.id === id) {
        ws.off('message', on);
        resolve(m);
      }
    };
    ws.on('message', on);
  });
  ws.send(JSON.stringify({ id: 1, op: 'hello', role: 'admin' }));
  await answered(1);
  const reply = answered(2);
  ws.send(JSON.stringify({ id: 2, ...frame }));
  const r = await reply;
  ws.close();
  return r;
}

/** Requests sent again with the same request id (`rid`) are done once, across a kernel kill -9. */
describe('the same request twice', () => {
  let dataDir: string;
  let port: number;
  let url: string;
  let kernel: ChildProcess;
  let call: ReturnType<typeof adminCall>;
  let gid: string;

  beforeEach(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'rack-resend-'));
    port = await freePort();
    url = `http://127.0.0.1:${port}`;
    kernel = await startKernelProcess(port, dataDir);
    call = adminCall(url);
    gid = (await call('POST', '/v1/groups', { group: { name: 'resend', template: 'idle' } })).body.group.gid;
  });
  afterEach(async () => {
    await call('DELETE', `/v1/groups/${gid}`).catch(() => {});
    await stopKernelProcess(kernel, 'SIGTERM');
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** kill -9 of the kernel, `downMs` without one, then the kernel again on the same data. */
  const restart = async (downMs = 0): Promise<void> => {
    await stopKernelProcess(kernel, 'SIGKILL');
    if (downMs > 0) await new Promise((r) => setTimeout(r, downMs)); // the outage itself, not a wait for an event
    kernel = await startKernelProcess(port, dataDir);
  };

  it('shm.incr, push, pop, cas and fork sent again after a kill -9 answer as the first time and change nothing more', async () => {
    const first = {
      incr: await once(url, ADMIN_TOKEN, { op: 'shm.incr', rid: 'r-incr', gid, key: 'n', by: 5 }),
      push: await once(url, ADMIN_TOKEN, { op: 'shm.push', rid: 'r-push', gid, key: 'q', values: ['a', 'b'] }),
      pop: await once(url, ADMIN_TOKEN, { op: 'shm.pop', rid: 'r-pop', gid, key: 'q' }),
      cas: await once(url, ADMIN_TOKEN, { op: 'shm.cas', rid: 'r-cas', gid, key: 'c', expect: null, value: 1 }),
      fork: await once(url, ADMIN_TOKEN, { op: 'fork', rid: 'r-fork', gid, count: 2 }),
    };
    expect(first.incr.result).toEqual({ value: 5 });
    expect(first.pop.result).toEqual({ value: 'a' });
    expect(first.cas.result).toEqual({ ok: true, value: 1 });
    expect(first.fork.result.processes.map((p: Process) => p.pid)).toEqual([100, 101]);
    await restart();
    const again = {
      incr: await once(url, ADMIN_TOKEN, { op: 'shm.incr', rid: 'r-incr', gid, key: 'n', by: 5 }),
      push: await once(url, ADMIN_TOKEN, { op: 'shm.push', rid: 'r-push', gid, key: 'q', values: ['a', 'b'] }),
      pop: await once(url, ADMIN_TOKEN, { op: 'shm.pop', rid: 'r-pop', gid, key: 'q' }),
      cas: await once(url, ADMIN_TOKEN, { op: 'shm.cas', rid: 'r-cas', gid, key: 'c', expect: null, value: 1 }),
      fork: await once(url, ADMIN_TOKEN, { op: 'fork', rid: 'r-fork', gid, count: 2 }),
    };
    expect(again.incr.result).toEqual(first.incr.result);
    expect(again.push.result).toEqual(first.push.result);
    expect(again.pop.result).toEqual(first.pop.result);
    expect(again.cas.result).toEqual(first.cas.result);
    expect(again.fork.result.processes.map((p: Process) => p.pid)).toEqual([100, 101]);
    // Done once: the counter, the list and the process table say so.
    expect((await call('GET', `/v1/groups/${gid}/shm/n`)).body.value).toBe(5);
    expect((await once(url, ADMIN_TOKEN, { op: 'shm.range', gid, key: 'q', start: 0, stop: -1 })).result.values).toEqual(['b']);
    expect((await call('GET', `/v1/groups/${gid}/processes`)).body.processes.map((p: Process) => p.pid)).toEqual([100, 101]);
    // A new request id is a new request.
    expect((await once(url, ADMIN_TOKEN, { op: 'shm.incr', rid: 'r-incr-2', gid, key: 'n', by: 5 })).result).toEqual({ value: 10 });
    // What is not a request id is refused.
    const bad = await once(url, ADMIN_TOKEN, { op: 'shm.incr', rid: 'not a valid id!', gid, key: 'n' });
    expect(bad.error.code).toBe('bad_request');
  }, 60_000);

  it('over REST, the Idempotency-Key header is the request id', async () => {
    const incr = (key?: string) =>
      fetch(`${url}/v1/groups/${gid}/shm/k/incr`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) },
        body: JSON.stringify({ by: 2 }),
      }).then(async (r) => ({ status: r.status, body: await r.json() }));
    expect((await incr('k-1')).body).toEqual({ value: 2 });
    expect((await incr('k-1')).body).toEqual({ value: 2 });
    expect((await incr()).body).toEqual({ value: 4 });
    expect((await incr('bad key with spaces')).status).toBe(400);
  }, 30_000);

  it('a libdck app with calls in flight across a kernel kill -9 and 30 s down gets every answer once: no error, the counter exact, one fork', async () => {
    const watch = await watchGroup(url, ADMIN_TOKEN, gid);
    await call('POST', `/v1/groups/${gid}/processes`, { process: {} });
    await watch.until((all) => [...all.values()].some((p) => p.compute_id !== null));
    const [root] = [...watch.latest.values()];
    const token = credentialsOf(JSON.parse(readFileSync(join(dataDir, 'vms', root!.compute_id!, 'vm.json'), 'utf8')).userData)!.token;
    const app = await connect({ url, token });
    const CALLS = 400;
    let done = 0;
    let restarted: Promise<void> | null = null;
    let forked: Promise<Process[]> | null = null;
    const values: number[] = [];
    // Eight callers at once, so that some calls are always in flight when the kernel dies.
    const counting = Promise.all(Array.from({ length: 8 }, async () => {
      while (done < CALLS) {
        done++;
        values.push(await app.shm.incr('counter'));
        if (values.length === CALLS / 4 && !restarted) {
          // The kill -9 goes at once; the fork is made while the kernel dies, and goes when it is back.
          restarted = restart(30_000);
          forked = app.fork({ count: 1 });
        }
      }
    }));
    await counting;
    await restarted;
    const children = await forked!;
    expect(values).toHaveLength(CALLS);
    expect(new Set(values).size).toBe(CALLS);
    expect(Math.max(...values)).toBe(CALLS);
    expect((await call('GET', `/v1/groups/${gid}/shm/counter`)).body.value).toBe(CALLS);
    expect(children).toHaveLength(1);
    const all = (await call('GET', `/v1/groups/${gid}/processes`)).body.processes as Process[];
    expect(all.map((p) => p.pid)).toEqual([root!.pid, children[0]!.pid]);
    app.close();
    watch.close();
  }, 90_000);
});
