import { request } from 'node:http';
import { connect } from 'node:net';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKernel, untilProcess, type TestKernel } from '../support/kernel.js';

/** Every bad input gets a 4xx with {"error": {code, message}}, and nothing stored changes. */
describe('bad input', () => {
  let k: TestKernel;
  let gid: string;
  let snapshot: string;

  const state = async (): Promise<string> => {
    const groups = await k.call('GET', '/v1/groups');
    const procs = await k.call('GET', `/v1/groups/${gid}/processes`);
    return JSON.stringify([groups.body, procs.body.processes.map((p: any) => ({ ...p, updated_at: undefined }))]);
  };

  beforeAll(async () => {
    k = await startTestKernel({ forkLimit: 50 });
    gid = (await k.call('POST', '/v1/groups', { group: { name: 'bad', template: 'idle' } })).body.group.gid;
    const r = await k.call('POST', `/v1/groups/${gid}/processes`, { process: {} });
    await untilProcess(k, gid, r.body.processes[0].pid, (p) => p.status === 'ACTIVE');
    const c = await k.call('POST', `/v1/groups/${gid}/processes`, { process: { ppid: 100, count: 2 } });
    for (const p of c.body.processes) await untilProcess(k, gid, p.pid, (x) => x.status === 'ACTIVE');
    snapshot = await state();
  });
  afterAll(() => k.cleanup());

  const cases: Array<[string, string, string, unknown, number, string?]> = [
    ['malformed JSON', 'POST', '/v1/groups', '{"group": {', 400, 'invalid_json'],
    ['empty body', 'POST', '/v1/groups', '', 400, 'invalid_json'],
    ['JSON that is not an object', 'POST', '/v1/groups', '[1,2]', 400, 'bad_request'],
    ['wrong type', 'POST', '/v1/groups', { group: { name: 5 } }, 400, 'bad_request'],
    ['missing field', 'POST', '/v1/groups', { group: {} }, 400, 'bad_request'],
    ['unknown field', 'POST', '/v1/groups', { group: { name: 'x', colour: 'red' } }, 400, 'bad_request'],
    ['unknown top-level field', 'POST', '/v1/groups', { group: { name: 'x' }, extra: 1 }, 400, 'bad_request'],
    ['string over 255', 'POST', '/v1/groups', { group: { name: 'x'.repeat(256) } }, 400, 'bad_request'],
    ['arg value over 255', 'POST', 'PROC', { process: { ppid: 100, args: { a: 'x'.repeat(256) } } }, 400, 'bad_request'],
    ['arg value not a string', 'POST', 'PROC', { process: { ppid: 100, args: { a: 1 } } }, 400, 'bad_request'],
    ['arg name reserved', 'POST', 'PROC', { process: { ppid: 100, args: { rack_pid: '1' } } }, 400, 'bad_request'],
    ['arg name not an identifier', 'POST', 'PROC', { process: { ppid: 100, args: { 'a-b': '1' } } }, 400, 'bad_request'],
    ['userdata not base64', 'POST', 'PROC', { process: { ppid: 100, userdata: '!!notbase64' } }, 400, 'bad_request'],
    ['count 0', 'POST', 'PROC', { process: { ppid: 100, count: 0 } }, 400, 'bad_request'],
    ['count negative', 'POST', 'PROC', { process: { ppid: 100, count: -3 } }, 400, 'bad_request'],
    ['count over the limit', 'POST', 'PROC', { process: { ppid: 100, count: 51 } }, 400, 'bad_request'],
    ['count fractional', 'POST', 'PROC', { process: { ppid: 100, count: 1.5 } }, 400, 'bad_request'],
    ['count a string', 'POST', 'PROC', { process: { ppid: 100, count: '2' } }, 400, 'bad_request'],
    ['ppid negative', 'POST', 'PROC', { process: { ppid: -1 } }, 400, 'bad_request'],
    ['ppid fractional', 'POST', 'PROC', { process: { ppid: 100.5 } }, 400, 'bad_request'],
    ['ppid unknown', 'POST', 'PROC', { process: { ppid: 999 } }, 404, 'not_found'],
    ['unknown gid', 'GET', '/v1/groups/00000000-0000-0000-0000-000000000000/processes', undefined, 404, 'not_found'],
    ['unknown gid on fork', 'POST', '/v1/groups/00000000-0000-0000-0000-000000000000/processes', { process: {} }, 404, 'not_found'],
    ['malformed gid', 'GET', '/v1/groups/bad%20gid!', undefined, 400, 'bad_request'],
    ['unknown pid', 'GET', 'PROC/999', undefined, 404, 'not_found'],
    ['negative pid', 'GET', 'PROC/-1', undefined, 400, 'bad_request'],
    ['fractional pid', 'GET', 'PROC/100.5', undefined, 400, 'bad_request'],
    ['pid not a number', 'GET', 'PROC/abc', undefined, 400, 'bad_request'],
    ['pid with exponent', 'GET', 'PROC/1e2', undefined, 400, 'bad_request'],
    ['pid too large', 'GET', 'PROC/99999999999', undefined, 400, 'bad_request'],
    ['kill unknown pid', 'DELETE', 'PROC/999', undefined, 404, 'not_found'],
    ['kill with a bad signal', 'DELETE', 'PROC/101?signal=HUP', undefined, 400, 'bad_request'],
    ['kill with a bad grace', 'DELETE', 'PROC/101?grace=-1', undefined, 400, 'bad_request'],
    ['unknown query parameter', 'DELETE', 'PROC/101?sigal=KILL', undefined, 400, 'bad_request'],
    ['signal not known', 'POST', 'PROC/101/signal', { signal: { name: 'SEGV' } }, 400, 'bad_request'],
    ['exit code out of range', 'POST', 'PROC/101/exit', { exit: { code: 256 } }, 400, 'bad_request'],
    ['wait timeout too long', 'GET', 'PROC/100/wait?timeout=301', undefined, 400, 'bad_request'],
    ['wait pid not a number', 'GET', 'PROC/100/wait?pid=x', undefined, 400, 'bad_request'],
    ['status filter unknown', 'GET', 'PROC?status=RUNNING', undefined, 400, 'bad_request'],
    ['unknown path', 'GET', '/v1/nothing', undefined, 404, 'not_found'],
    ['wrong method', 'PATCH', '/v1/groups', undefined, 405, 'method_not_allowed'],
  ];

  for (const [name, method, rawPath, body, status, code] of cases) {
    it(`${name}: ${status}`, async () => {
      const path = rawPath.replace(/^PROC/, `/v1/groups/${gid}/processes`);
      const res = await k.call(method, path, body);
      expect(res.status).toBe(status);
      expect(res.body.error).toEqual({ code: code ?? expect.any(String), message: expect.any(String) });
      expect(res.body.error.message.length).toBeGreaterThan(5);
    });
  }

  it('a body over 1 MiB: 413', async () => {
    const big = JSON.stringify({ group: { name: 'x', description: 'y'.repeat(1024 * 1024) } });
    const res = await k.call('POST', '/v1/groups', big);
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('payload_too_large');
  });

  it('a body over 1 MiB sent chunked without a length: 413', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${k.url}/v1/groups`, { method: 'POST', headers: { authorization: `Bearer ${k.adminToken}`, 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      const chunk = Buffer.alloc(64 * 1024, 'a');
      for (let i = 0; i < 20; i++) req.write(chunk);
      req.end();
    });
    expect(status).toBe(413);
  });

  it('a half-sent request does not hang the kernel', async () => {
    const { port } = new URL(k.url);
    const sock = connect(Number(port), '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.write('POST /v1/groups HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"gr');
    // Meanwhile the kernel keeps answering others.
    expect((await k.call('GET', '/healthz')).status).toBe(200);
    sock.destroy();
  });

  it('bad WebSocket frames get error replies and the connection stays usable', async () => {
    const ws = new WebSocket(k.url.replace('http', 'ws') + '/v1/ws', { headers: { authorization: `Bearer ${k.adminToken}` } });
    await new Promise((r) => ws.once('open', r));
    const replies: any[] = [];
    const sent = ['not json', '[1]', JSON.stringify({ op: 'hello' }), JSON.stringify({ id: 1, op: 'nope' }), JSON.stringify({ id: 2, op: 'list', gid }), JSON.stringify({ id: 3, op: 'hello' }), JSON.stringify({ id: 4, op: 'kill', gid, pid: -1 }), JSON.stringify({ id: 5, op: 'list', gid, extra: 1 }), JSON.stringify({ id: 6, op: 'list', gid }), JSON.stringify({ id: 7, op: 'fork', gid, ppid: 100, userdata: '!!notbase64' })];
    const all = new Promise<void>((resolve) =>
      ws.on('message', (d) => {
        replies.push(JSON.parse(d.toString()));
        if (replies.length === sent.length) resolve();
      }),
    );
    for (const s of sent) ws.send(s);
    await all;
    expect(replies.slice(0, 3).map((r) => r.error.code)).toEqual(['invalid_json', 'bad_request', 'bad_request']);
    const byId = (id: number) => replies.find((r) => r.id === id);
    expect(byId(1).error.code).toBe('bad_request');
    expect(byId(2).error.message).toMatch(/hello/);
    expect(byId(3).ok).toBe(true);
    expect(byId(4).error.code).toBe('bad_request');
    expect(byId(5).error.code).toBe('bad_request');
    expect(byId(6).result.processes.length).toBe(3);
    expect(byId(7).error).toMatchObject({ code: 'bad_request', message: expect.stringMatching(/userdata/) });
    ws.close();
  });

  it('nothing stored changed', async () => {
    expect(await state()).toBe(snapshot);
  });
});
