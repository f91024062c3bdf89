#!/usr/bin/env node
// What neutron's metadata agent does for a guest, for one server: forwards every request to Nova's
// metadata API with the headers that name the instance (X-Instance-ID, X-Tenant-ID) and prove it
// (X-Instance-ID-Signature: HMAC-SHA256 of the instance id with the shared secret, hex). Nova then
// answers that server's meta_data.json, user_data and so on, as a guest at 169.254.169.254 gets them.
//   node metadata-proxy.mjs --instance UUID --tenant PROJECT_ID --secret S [--port N] [--nova URL]
import { createHmac } from 'node:crypto';
import { createServer, request } from 'node:http';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

/** Starts a proxy on 127.0.0.1 (a free port unless given); resolves with its URL and a close(). */
export function startMetadataProxy({ instance, tenant, secret, nova = 'http://127.0.0.1:8775', port = 0 }) {
  const upstream = new URL(nova);
  const signature = createHmac('sha256', secret).update(instance).digest('hex');
  const server = createServer((req, res) => {
    const headers = { ...req.headers, host: upstream.host, 'x-instance-id': instance, 'x-tenant-id': tenant, 'x-instance-id-signature': signature, 'x-forwarded-for': '127.0.0.1', connection: 'close' };
    const up = request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', (err) => {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`Nova's metadata API cannot be reached: ${err.message}\n`);
    });
    req.pipe(up);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${server.address().port}`,
        close: () => new Promise((done) => { server.closeAllConnections(); server.close(() => done()); }),
      }),
    );
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values: o } = parseArgs({ options: { instance: { type: 'string' }, tenant: { type: 'string' }, secret: { type: 'string' }, port: { type: 'string', default: '0' }, nova: { type: 'string', default: 'http://127.0.0.1:8775' }, help: { type: 'boolean' } } });
  if (o.help || !o.instance || !o.tenant || !o.secret) {
    console.error('usage: metadata-proxy.mjs --instance UUID --tenant PROJECT_ID --secret S [--port N] [--nova URL]');
    process.exit(o.help ? 0 : 2);
  }
  const p = await startMetadataProxy({ instance: o.instance, tenant: o.tenant, secret: o.secret, nova: o.nova, port: Number(o.port) });
  console.log(`listening on ${p.url}`);
  process.on('SIGTERM', () => void p.close().then(() => process.exit(0)));
}
