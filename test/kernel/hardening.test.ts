import { existsSync, mkdtempSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Process } from '../../src/protocol/process.js';
import { startTestKernel, untilProcess, type TestKernel } from '../support/kernel.js';
import { RawClient } from '../support/ws-client.js';

/** What an attacker or a careless client tried, and what must hold. */
describe('hardening', () => {
  let k: TestKernel;
  let gid: string;
  let root: Process;

  const raw = (request: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const sock = connect(Number(new URL(k.url).port), '127.0.0.1');
      let out = '';
      sock.on('data', (d) => (out += d));
      sock.on('end', () => resolve(out));
      sock.on('close', () => resolve(out));
      sock.on('error', reject);
      sock.write(request);
    });

  beforeAll(async () => {
    k = await startTestKernel();
    gid = (await k.call('POST', '/v1/groups', { group: { name: 'hard', template: 'idle' } })).body.group.gid;
    const r = await k.call('POST', `/v1/groups/${gid}/processes`, { process: {} });
    root = await untilProcess(k, gid, r.body.processes[0].pid, (p) => p.compute_id !== null);
  });
  afterAll(() => k.cleanup());

  it('a template is a name the operator registered, never a path: a file of the group cannot become a VM image', async () => {
    const marker = join(mkdtempSync(join(tmpdir(), 'rack-pwn-')), 'ran');
    const image = Buffer.from(`init: ["/bin/sh", "-c", "touch ${marker}"]\n`);
    expect((await k.call('PUT', `/v1/groups/${gid}/files/t/image.yaml`, image.toString(), k.tokenOf(root))).status).toBe(201);
    for (const template of [join(k.dataDir, 'files', gid, 'f', 't'), '../files/x', '/etc']) {
      const res = await k.call('POST', `/v1/groups/${gid}/processes`, { process: { template } }, k.tokenOf(root));
      expect(res.status, template).toBe(400);
      expect(res.body.error.message).toMatch(/template name/);
    }
    expect((await k.call('GET', `/v1/groups/${gid}/processes?ppid=${root.pid}`)).body.processes).toEqual([]);
    expect(existsSync(marker)).toBe(false);
  });

  it("a process's token ends with it: 401 everywhere, and its open WebSocket is closed", async () => {
    const [kid] = (await k.call('POST', `/v1/groups/${gid}/processes`, { process: {} }, k.tokenOf(root))).body.processes as Process[];
    const booted = await untilProcess(k, gid, kid!.pid, (p) => p.compute_id !== null);
    const t = k.tokenOf(booted);
    const ws = await RawClient.connect(k.url, t);
    const closed = new Promise<void>((resolve) => ws.ws.once('close', () => resolve()));
    expect((await k.call('GET', '/v1/self', undefined, t)).status).toBe(200);
    await k.call('DELETE', `/v1/groups/${gid}/processes/${kid!.pid}?signal=KILL`);
    await untilProcess(k, gid, kid!.pid, (p) => p.status === 'KILLED');
    await closed;
    for (const [method, path, body] of [
      ['GET', '/v1/self', undefined],
      ['PUT', `/v1/groups/${gid}/shm/x`, { value: 1 }],
      ['GET', `/v1/groups/${gid}/files`, undefined],
      ['POST', `/v1/groups/${gid}/processes/${root.pid}/messages`, { message: { data: 1 } }],
    ] as const) {
      const res = await k.call(method, path, body, t);
      expect(res.status, `${method} ${path}`).toBe(401);
    }
    await expect(RawClient.connect(k.url, t)).rejects.toThrow(/401/);
  });

  it("an agent's token keeps only its channel, for its own process", async () => {
    const a = k.agentTokenOf(root);
    expect((await k.call('GET', `/v1/groups/${gid}/processes`, undefined, a)).status).toBe(403);
    expect((await k.call('PUT', `/v1/groups/${gid}/shm/x`, { value: 1 }, a)).status).toBe(403);
    await expect(RawClient.connect(k.url, a, 'app')).rejects.toThrow(/does not match the token/);
    await expect(RawClient.connect(k.url, k.tokenOf(root), 'agent')).rejects.toThrow(/does not match the token/);
    const agent = await RawClient.connect(k.url, a, 'agent');
    expect((await agent.call('kill', { pid: 99_999 })).error.code).toBe('forbidden');
    expect((await agent.call('heartbeat')).ok).toBe(true);
    await agent.close();
  });

  it('a JSON body that is not UTF-8 is refused, and nothing is stored', async () => {
    const body = Buffer.concat([Buffer.from('{"value": "'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
    const res = await fetch(`${k.url}/v1/groups/${gid}/shm/utf`, { method: 'PUT', headers: { authorization: `Bearer ${k.adminToken}`, 'content-type': 'application/json' }, body });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: 'invalid_json', message: expect.stringMatching(/UTF-8/) });
    expect((await k.call('GET', `/v1/groups/${gid}/shm/utf`)).body.value).toBeNull();
  });

  it('a file name over 255 bytes is a 400, on every method', async () => {
    const long = `dir/${'x'.repeat(256)}`;
    for (const method of ['PUT', 'GET', 'HEAD', 'DELETE']) {
      const res = await fetch(`${k.url}/v1/groups/${gid}/files/${long}`, { method, headers: { authorization: `Bearer ${k.adminToken}` }, body: method === 'PUT' ? 'x' : undefined });
      expect(res.status, method).toBe(400);
    }
  });

  it('backslash dot-segments do not reach another group', async () => {
    const other = (await k.call('POST', '/v1/groups', { group: { name: 'other', template: 'idle' } })).body.group.gid;
    await k.call('PUT', `/v1/groups/${other}/files/secret`, 'secret');
    const answer = await raw(`GET /v1/groups/${gid}/files/..\\..\\${other}/files/secret HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${k.adminToken}\r\nConnection: close\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 400/);
    expect(answer).not.toContain('secret\r\n');
  });

  it('CONNECT gets a 405 with a reason; POST .../pipes with a body is refused', async () => {
    const answer = await raw(`CONNECT /v1/groups HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 405/);
    expect(answer).toMatch(/CONNECT is not allowed/);
    const res = await k.call('POST', `/v1/groups/${gid}/pipes`, '{"oops": ', k.adminToken);
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(/takes no body/);
  });

  it('WebSocket: a frame that is not UTF-8 closes the connection (1007), the kernel stays up', async () => {
    const ws = new WebSocket(k.url.replace('http', 'ws') + '/v1/ws', { headers: { authorization: `Bearer ${k.adminToken}` } });
    await new Promise((r) => ws.once('open', r));
    const code = new Promise<number>((resolve) => ws.once('close', (c) => resolve(c)));
    // A text frame whose bytes are not UTF-8 (the client sends bytes as they are).
    ws.send(Buffer.from([0xff, 0xfe]), { binary: false });
    expect(await code).toBe(1007);
    expect((await k.call('GET', '/healthz')).status).toBe(200);
  });
});
