import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/log.js';
import { cloudConfigs, credentialsOf } from '../../src/protocol/user-data.js';
import { startTestKernel, untilProcess } from '../support/kernel.js';

/** A small stand-in for Keystone v3 and Nova: enough of their APIs to drive the nova driver for real over HTTP. */
class FakeOpenStack {
  server!: Server;
  url = '';
  servers = new Map<string, { id: string; name: string; status: string; metadata: Record<string, string>; user_data?: string; flavorRef: string; imageRef: string }>();
  auths = 0;
  tokens = new Set<string>();
  expireNext = false;
  private n = 0;

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  private async handle(req: IncomingMessage, res: import('node:http').ServerResponse): Promise<void> {
    let body = '';
    for await (const c of req) body += c;
    const send = (status: number, data?: unknown, headers: Record<string, string> = {}): void => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(data === undefined ? '' : JSON.stringify(data));
    };
    if (req.url === '/identity/v3/auth/tokens' && req.method === 'POST') {
      const auth = JSON.parse(body).auth;
      if (auth.identity.password?.user.password !== 'secret-password') return send(401, { error: { message: 'bad' } });
      const token = `tok-${++this.auths}`;
      this.tokens.add(token);
      return send(201, { token: { expires_at: new Date(Date.now() + 3600_000).toISOString(), catalog: [{ type: 'compute', endpoints: [{ interface: 'public', region: 'RegionOne', url: `${this.url}/compute/v2.1` }] }] } }, { 'x-subject-token': token });
    }
    const token = req.headers['x-auth-token'] as string;
    if (!this.tokens.has(token) || this.expireNext) {
      this.expireNext = false;
      this.tokens.delete(token);
      return send(401, { error: { message: 'expired' } });
    }
    const m = /^\/compute\/v2\.1\/servers(?:\/([^/?]+))?/.exec(req.url ?? '');
    if (!m) return send(404);
    if (req.method === 'POST' && !m[1]) {
      const s = JSON.parse(body).server;
      const id = `srv-${++this.n}`;
      this.servers.set(id, { id, status: 'ACTIVE', ...s });
      return send(202, { server: { id } });
    }
    if (m[1] === 'detail') return send(200, { servers: [...this.servers.values()] });
    const s = this.servers.get(m[1] ?? '');
    if (!s) return send(404, { itemNotFound: { message: 'no such server' } });
    if (req.method === 'GET') return send(200, { server: s });
    if (req.method === 'POST' && /\/action$/.test(req.url ?? '')) {
      const length = JSON.parse(body)['os-getConsoleOutput']?.length as number;
      const lines = ['boot', 'cloud-init done', `dckinit: app of ${s.name} running`];
      return send(200, { output: lines.slice(-length).join('\n') + '\n' });
    }
    if (req.method === 'DELETE') {
      this.servers.delete(s.id);
      return send(204);
    }
    send(405);
  }
}

describe('nova compute driver (against a fake Keystone + Nova over HTTP)', () => {
  const os = new FakeOpenStack();
  let logs = '';
  const saved = { ...process.env };

  beforeAll(async () => {
    await os.start();
    Object.assign(process.env, {
      OS_AUTH_URL: `${os.url}/identity`,
      OS_USERNAME: 'rack',
      OS_PASSWORD: 'secret-password',
      OS_PROJECT_NAME: 'demo',
      OS_REGION_NAME: 'RegionOne',
    });
  });
  afterAll(() => {
    process.env = saved;
    os.server.close();
  });

  it('boots, shows and deletes servers for processes, with rack_* metadata and user_data', async () => {
    const sink = new Writable({ write: (c, _e, cb) => ((logs += c), cb()) });
    const k = await startTestKernel({ driver: 'nova', log: createLogger({ name: 't', level: 'debug', pretty: false, destination: sink }) });
    try {
      const gid = (await k.call('POST', '/v1/groups', { group: { name: 'n', template: 'image-uuid', flavor: 'm1.small' } })).body.group.gid;
      const r = await k.call('POST', `/v1/groups/${gid}/processes`, { process: { args: { color: 'red' }, userdata: Buffer.from('#cloud-config\n{}\n').toString('base64') } });
      const p = await untilProcess(k, gid, r.body.processes[0].pid, (x) => x.status === 'ACTIVE');
      const srv = os.servers.get(p.compute_id!)!;
      expect(srv).toMatchObject({ imageRef: 'image-uuid', flavorRef: 'm1.small', name: `rack-${gid.slice(0, 8)}-100` });
      expect(srv.metadata).toMatchObject({ rack_gid: gid, rack_pid: '100', rack_ppid: '', color: 'red', rack_url: k.url });
      expect(srv.metadata.rack_kernel).toMatch(/^[0-9a-f-]{36}$/);
      // The process token is in user_data (admins only), beside the user's own; never in metadata.
      const userData = Buffer.from(srv.user_data!, 'base64').toString();
      const self = await k.call('GET', '/v1/self', undefined, credentialsOf(userData)!.token);
      expect(self.body.process).toMatchObject({ gid, pid: 100 });
      expect(cloudConfigs(userData)).toContain('#cloud-config\n{}\n');
      expect(JSON.stringify(srv.metadata)).not.toContain('rkp_');

      // The console comes from os-getConsoleOutput.
      const con = await k.call('GET', `/v1/groups/${gid}/processes/100/console?lines=2`);
      expect(con.body.console.output).toBe(`cloud-init done\ndckinit: app of ${srv.name} running\n`);

      // An expired token is renewed transparently.
      os.expireNext = true;
      const c = await k.call('POST', `/v1/groups/${gid}/processes`, { process: { ppid: 100 } });
      await untilProcess(k, gid, c.body.processes[0].pid, (x) => x.status === 'ACTIVE');
      expect(os.auths).toBe(2);

      await k.call('DELETE', `/v1/groups/${gid}/processes/100?signal=KILL`);
      await untilProcess(k, gid, 100, (x) => x.status === 'KILLED');
      expect(os.servers.size).toBe(0);

      // A flavor is required by Nova: a fork without one fails with the reason, and leaves no process.
      const g2 = (await k.call('POST', '/v1/groups', { group: { name: 'noflavor', template: 'image-uuid' } })).body.group.gid;
      const e = await k.call('POST', `/v1/groups/${g2}/processes`, { process: {} });
      expect(e.status).toBe(400);
      expect(e.body.error.message).toMatch(/needs a flavor/);
      expect((await k.call('GET', `/v1/groups/${g2}/processes`)).body.processes).toEqual([]);
    } finally {
      await k.cleanup();
    }
    expect(logs).not.toContain('secret-password');
    expect(logs).not.toMatch(/tok-\d/);
  });

  it('refuses to start without OpenStack credentials, saying which', async () => {
    delete process.env.OS_AUTH_URL;
    await expect(startTestKernel({ driver: 'nova' })).rejects.toThrow(/needs OS_AUTH_URL/);
    process.env.OS_AUTH_URL = `${os.url}/identity`;
  });
});
