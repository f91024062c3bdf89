import WebSocket from 'ws';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Process } from '../../src/protocol/process.js';
import { startTestKernel, untilProcess, type TestKernel } from '../support/kernel.js';

describe('exit and wait', () => {
  let k: TestKernel;
  let gid: string;
  // Each test has a parent of its own, so that no test waits for another's children.
  let root: Process;
  let rootToken: string;

  beforeAll(async () => {
    k = await startTestKernel();
    gid = (await k.call('POST', '/v1/groups', { group: { name: 'wait', template: 'idle' } })).body.group.gid;
  });
  beforeEach(async () => {
    const r = await k.call('POST', `/v1/groups/${gid}/processes`, { process: {} });
    root = await untilProcess(k, gid, r.body.processes[0].pid, (p) => p.status === 'ACTIVE');
    rootToken = k.tokenOf(root);
  });
  afterAll(() => k.cleanup());

  async function forkChildren(n: number): Promise<Process[]> {
    const res = await k.call('POST', `/v1/groups/${gid}/processes`, { process: { count: n } }, rootToken);
    expect(res.status).toBe(202);
    return Promise.all(res.body.processes.map((p: Process) => untilProcess(k, gid, p.pid, (x) => x.status === 'ACTIVE')));
  }

  it('a parent waits for one child and gets its exit code', async () => {
    const [child] = await forkChildren(1);
    const waiting = k.call('GET', `/v1/groups/${gid}/processes/${root.pid}/wait?pid=${child!.pid}&timeout=20`, undefined, rootToken);
    const exit = await k.call('POST', `/v1/groups/${gid}/processes/${child!.pid}/exit`, { exit: { code: 7 } }, k.tokenOf(child!));
    expect(exit.status).toBe(200);
    expect(exit.body.process).toMatchObject({ status: 'EXITED', exit_code: 7 });
    const res = await waiting;
    expect(res.status).toBe(200);
    expect(res.body.wait).toMatchObject({ pid: child!.pid, ppid: root.pid, status: 'exited', code: 7, signal: null });
  });

  it('wait(any) returns each ended child once, then no_child', async () => {
    const kids = await forkChildren(2);
    await k.call('POST', `/v1/groups/${gid}/processes/${kids[0]!.pid}/exit`, { exit: { code: 3 } }, k.tokenOf(kids[0]!));
    await k.call('DELETE', `/v1/groups/${gid}/processes/${kids[1]!.pid}?signal=KILL`, undefined, rootToken);
    const seen: Array<[number, string, number | null, string | null]> = [];
    for (let i = 0; i < 2; i++) {
      const res = await k.call('GET', `/v1/groups/${gid}/processes/${root.pid}/wait?timeout=20`, undefined, rootToken);
      expect(res.status).toBe(200);
      seen.push([res.body.wait.pid, res.body.wait.status, res.body.wait.code, res.body.wait.signal]);
    }
    expect(seen.sort()).toEqual([
      [kids[0]!.pid, 'exited', 3, null],
      [kids[1]!.pid, 'killed', null, 'KILL'],
    ]);
    // Both are reaped: nothing is left to wait for.
    const none = await k.call('GET', `/v1/groups/${gid}/processes/${root.pid}/wait?timeout=1`, undefined, rootToken);
    expect(none.status).toBe(404);
    expect(none.body.error.code).toBe('no_child');
  });

  it('a wait that times out answers 408, and wait for a non-child 404', async () => {
    const [child] = await forkChildren(1);
    const res = await k.call('GET', `/v1/groups/${gid}/processes/${root.pid}/wait?pid=${child!.pid}&timeout=0.2`, undefined, rootToken);
    expect(res.status).toBe(408);
    expect(res.body.error.code).toBe('timeout');
    const other = await k.call('GET', `/v1/groups/${gid}/processes/${root.pid}/wait?pid=${root.pid}&timeout=1`, undefined, rootToken);
    expect(other.status).toBe(404);
    await k.call('DELETE', `/v1/groups/${gid}/processes/${child!.pid}?signal=KILL`, undefined, rootToken);
  });

  it('wait over WebSocket: an event-driven reply when the child ends', async () => {
    const [child] = await forkChildren(1);
    const ws = new WebSocket(k.url.replace('http', 'ws') + '/v1/ws', { headers: { authorization: `Bearer ${rootToken}` } });
    const frames: any[] = [];
    const next = (id: number): Promise<any> =>
      new Promise((resolve) => {
        const check = (): void => {
          const f = frames.find((x) => x.id === id);
          if (f) {
            ws.off('message', onMsg);
            resolve(f);
          }
        };
        const onMsg = (): void => check();
        ws.on('message', onMsg);
        check();
      });
    ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
    await new Promise((r) => ws.once('open', r));
    ws.send(JSON.stringify({ id: 1, op: 'hello', role: 'app' }));
    expect((await next(1)).ok).toBe(true);
    ws.send(JSON.stringify({ id: 2, op: 'subscribe' }));
    expect((await next(2)).ok).toBe(true);
    ws.send(JSON.stringify({ id: 3, op: 'wait', pid: child!.pid, timeout: 20 }));
    await k.call('POST', `/v1/groups/${gid}/processes/${child!.pid}/exit`, { exit: { code: 42 } }, k.tokenOf(child!));
    const reply = await next(3);
    expect(reply).toMatchObject({ ok: true, result: { pid: child!.pid, status: 'exited', code: 42 } });
    expect(frames.some((f) => f.event === 'process' && f.process.pid === child!.pid && f.process.status === 'EXITED')).toBe(true);
    ws.close();
  });
});
