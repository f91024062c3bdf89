import { statSync, readFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/log.js';
import type { Process } from '../../src/protocol/process.js';
import { startTestKernel, untilProcess, type TestKernel } from '../support/kernel.js';

describe('authentication and authorization', () => {
  let k: TestKernel;
  let logText = '';
  let a: string;
  let b: string;
  let root: Process;
  let kids: Process[];
  let other: Process;

  beforeAll(async () => {
    const sink = new Writable({
      write(chunk, _enc, cb) {
        logText += chunk.toString();
        cb();
      },
    });
    k = await startTestKernel({ log: createLogger({ name: 'test', level: 'debug', pretty: false, destination: sink }) });
    a = (await k.call('POST', '/v1/groups', { group: { name: 'a', template: 'idle' } })).body.group.gid;
    b = (await k.call('POST', '/v1/groups', { group: { name: 'b', template: 'idle' } })).body.group.gid;
    const r = await k.call('POST', `/v1/groups/${a}/processes`, { process: {} });
    root = await untilProcess(k, a, r.body.processes[0].pid, (p) => p.compute_id !== null);
    const c = await k.call('POST', `/v1/groups/${a}/processes`, { process: { count: 2 } }, k.tokenOf(root));
    kids = await Promise.all(c.body.processes.map((p: Process) => untilProcess(k, a, p.pid, (x) => x.compute_id !== null)));
    const o = await k.call('POST', `/v1/groups/${b}/processes`, { process: {} });
    other = await untilProcess(k, b, o.body.processes[0].pid, (p) => p.compute_id !== null);
  });
  afterAll(() => k.cleanup());

  it('401 without a token or with an unknown one', async () => {
    const none = await fetch(`${k.url}/v1/groups`);
    expect(none.status).toBe(401);
    expect(((await none.json()) as { error: { code: string } }).error.code).toBe('unauthorized');
    expect((await k.call('GET', '/v1/groups', undefined, 'not-a-token')).status).toBe(401);
    expect((await k.call('GET', '/v1/groups', undefined, 'x', { authorization: 'Basic abc' })).status).toBe(401);
  });

  it('a process cannot read or change another group', async () => {
    const t = k.tokenOf(kids[0]!);
    expect((await k.call('GET', `/v1/groups/${b}`, undefined, t)).status).toBe(403);
    expect((await k.call('GET', `/v1/groups/${b}/processes`, undefined, t)).status).toBe(403);
    expect((await k.call('GET', `/v1/groups/${b}/processes/${other.pid}`, undefined, t)).status).toBe(403);
    expect((await k.call('POST', `/v1/groups/${b}/processes`, { process: {} }, t)).status).toBe(403);
    expect((await k.call('DELETE', `/v1/groups/${b}/processes/${other.pid}`, undefined, t)).status).toBe(403);
    expect((await k.call('PUT', `/v1/groups/${b}/processes/${other.pid}`, { process: { app_status: 'x' } }, t)).status).toBe(403);
    expect((await k.call('GET', `/v1/groups/${b}/processes/${other.pid}/console`, undefined, t)).status).toBe(403);
    const groups = await k.call('GET', '/v1/groups', undefined, t);
    expect(groups.body.groups.map((g: { gid: string }) => g.gid)).toEqual([a]);
    expect((await k.call('GET', `/v1/groups/${b}/processes/${other.pid}`)).body.process.status).not.toBe('KILLED');
  });

  it('a process cannot kill its parent or a sibling, nor fork for another parent', async () => {
    const t = k.tokenOf(kids[0]!);
    const parent = await k.call('DELETE', `/v1/groups/${a}/processes/${root.pid}`, undefined, t);
    expect(parent.status).toBe(403);
    expect(parent.body.error.code).toBe('forbidden');
    expect((await k.call('DELETE', `/v1/groups/${a}/processes/${kids[1]!.pid}`, undefined, t)).status).toBe(403);
    expect((await k.call('POST', `/v1/groups/${a}/processes/${kids[1]!.pid}/signal`, { signal: { name: 'USR1' } }, t)).status).toBe(403);
    expect((await k.call('GET', `/v1/groups/${a}/processes/${kids[1]!.pid}/console`, undefined, t)).status).toBe(403);
    expect((await k.call('POST', `/v1/groups/${a}/processes`, { process: { ppid: root.pid } }, t)).status).toBe(403);
    expect((await k.call('PUT', `/v1/groups/${a}/processes/${kids[1]!.pid}`, { process: { app_status: 'x' } }, t)).status).toBe(403);
    expect((await k.call('GET', `/v1/groups/${a}/processes/${root.pid}/wait?timeout=0`, undefined, t)).status).toBe(403);
    expect((await k.call('POST', '/v1/groups', { group: { name: 'mine' } }, t)).status).toBe(403);
    for (const p of [root, kids[1]!]) expect((await k.call('GET', `/v1/groups/${a}/processes/${p.pid}`)).body.process.status).not.toMatch(/KILLED/);
  });

  it('a process may kill its own descendants and itself', async () => {
    const t = k.tokenOf(kids[0]!);
    const g = await k.call('POST', `/v1/groups/${a}/processes`, { process: {} }, t);
    expect(g.status).toBe(202);
    expect(g.body.processes[0].ppid).toBe(kids[0]!.pid);
    expect((await k.call('DELETE', `/v1/groups/${a}/processes/${g.body.processes[0].pid}?signal=KILL`, undefined, t)).status).toBe(202);
    expect((await k.call('DELETE', `/v1/groups/${a}/processes/${kids[0]!.pid}?signal=KILL`, undefined, t)).status).toBe(202);
    await untilProcess(k, a, kids[0]!.pid, (p) => p.status === 'KILLED');
  });

  it('the WebSocket refuses unknown tokens and cross-group ops', async () => {
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(k.url.replace('http', 'ws') + '/v1/ws', { headers: { authorization: 'Bearer nope' } });
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => resolve(101));
    });
    expect(status).toBe(401);
    const ws = new WebSocket(k.url.replace('http', 'ws') + '/v1/ws', { headers: { authorization: `Bearer ${k.tokenOf(kids[1]!)}` } });
    await new Promise((r) => ws.once('open', r));
    const replies: any[] = [];
    const three = new Promise<void>((resolve) =>
      ws.on('message', (d) => {
        replies.push(JSON.parse(d.toString()));
        if (replies.length === 3) resolve();
      }),
    );
    ws.send(JSON.stringify({ id: 1, op: 'hello' }));
    ws.send(JSON.stringify({ id: 2, op: 'list', gid: b }));
    ws.send(JSON.stringify({ id: 3, op: 'kill', pid: root.pid }));
    await three;
    expect(replies.find((r) => r.id === 2).error.code).toBe('forbidden');
    expect(replies.find((r) => r.id === 3).error.code).toBe('forbidden');
    ws.close();
  });

  it('never logs a token', () => {
    expect(logText.length).toBeGreaterThan(0);
    for (const p of [root, ...kids, other]) expect(logText).not.toContain(k.tokenOf(p));
    expect(logText).not.toContain(k.adminToken);
  });

  it('generates the admin token into the data dir with mode 0600', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rack-auth-'));
    const prev = process.env.RACK_ADMIN_TOKEN;
    delete process.env.RACK_ADMIN_TOKEN;
    try {
      const k2 = await startTestKernel({ adminToken: undefined }, dir);
      const file = join(dir, 'admin-token');
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(readFileSync(file, 'utf8').trim()).toBe(k2.adminToken);
      expect((await k2.call('GET', '/v1/groups')).status).toBe(200);
      await k2.cleanup();
    } finally {
      if (prev !== undefined) process.env.RACK_ADMIN_TOKEN = prev;
    }
  });
});
