import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCloudConfig } from './cloud-config.js';
import { KeystoneSession } from './keystone.js';

const TLS = join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'tls');

/** Keystone over HTTPS with a certificate of its own CA: what OS_CACERT is for. */
describe('Keystone session over TLS', () => {
  let server: Server;
  let url = '';
  const seen: Array<{ body: any }> = [];

  beforeAll(async () => {
    server = createServer({ cert: readFileSync(join(TLS, 'cert.pem')), key: readFileSync(join(TLS, 'key.pem')) }, (req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        if (req.url === '/v3/auth/tokens') {
          seen.push({ body: JSON.parse(body) });
          res.writeHead(201, { 'content-type': 'application/json', 'x-subject-token': 'tok-1' });
          const catalog = [{ type: 'object-store', endpoints: [{ interface: 'internal', region_id: 'R2', url: `${url}/swift/v1/AUTH_p1/` }, { interface: 'public', region_id: 'R2', url: 'http://wrong' }] }];
          res.end(JSON.stringify({ token: { expires_at: new Date(Date.now() + 3600_000).toISOString(), project: { id: 'p1' }, catalog } }));
        } else {
          res.writeHead(204, { 'x-seen-token': String(req.headers['x-auth-token']) });
          res.end();
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const env = (extra: Record<string, string> = {}) => ({ OS_AUTH_URL: url, OS_USER_ID: 'u1', OS_PASSWORD: 'pw', OS_PROJECT_ID: 'p1', OS_INTERFACE: 'internal', OS_REGION_NAME: 'R2', ...extra });

  it('verifies the server with OS_CACERT; finds the endpoint of its region and interface; scopes by ids', async () => {
    const s = new KeystoneSession(loadCloudConfig({ env: env({ OS_CACERT: join(TLS, 'cert.pem') }) }));
    try {
      expect(await s.endpoint('object-store')).toBe(`${url}/swift/v1/AUTH_p1`);
      expect(await s.projectId()).toBe('p1');
      const res = await s.request('object-store', { method: 'HEAD', path: '' });
      await res.body.dump();
      expect(res.headers['x-seen-token']).toBe('tok-1');
      expect(seen.at(-1)!.body.auth).toEqual({ identity: { methods: ['password'], password: { user: { id: 'u1', password: 'pw' } } }, scope: { project: { id: 'p1' } } });
      await expect(s.endpoint('compute')).rejects.toThrow(/no internal compute endpoint in region R2 in the Keystone catalog of the OS_\* environment/);
    } finally {
      await s.close();
    }
  });

  it('refuses a server its CA bundle does not vouch for', async () => {
    const s = new KeystoneSession(loadCloudConfig({ env: env() }));
    try {
      await expect(s.getToken()).rejects.toThrow(/Keystone at https:\/\/127\.0\.0\.1:\d+\/v3\/auth\/tokens cannot be reached: .*(self-signed|certificate)/);
    } finally {
      await s.close();
    }
  });
});
