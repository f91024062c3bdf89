import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeystoneSession } from '../../src/openstack/keystone.js';
import { watchGroup } from '../support/watch.js';
import { admin, fixture, kernelTag, nova, rack, serversOf, session, startKernel, untilServersGone, type KernelProcess } from './support/fixture.js';
import { startMetadataProxy } from './support/metadata-proxy.mjs';

const run = promisify(execFile);

/**
 * A RACK server's metadata as a guest reads it from Nova's metadata API, through a neutron-like
 * proxy (dckinit reads it the same way in processes.test.ts, where it runs the apps).
 */
describe('Nova metadata of a RACK server', () => {
  const fx = fixture();
  let k: KernelProcess;
  let os: KeystoneSession;
  let server: { id: string; tenant_id: string };
  let gid: string;
  let proxy: { url: string; close(): Promise<void> };

  beforeAll(async () => {
    os = session('rack');
    k = await startKernel();
    gid = JSON.parse((await rack(['group', 'create', 'meta', '--template', fx.image, '--flavor', fx.flavor, '--arg', 'color=blue', '--json'], k.env)).stdout).gid;
    const w = await watchGroup(k.url, k.env.RACK_TOKEN!, gid);
    expect((await rack(['fork', '--gid', gid], k.env)).code).toBe(0);
    await w.until((all) => all.get(100)?.status === 'ACTIVE', 180_000);
    w.close();
    const id = (await admin(k, 'GET', `/v1/groups/${gid}/processes/100`)).body.process.compute_id;
    server = (await nova(os, 'GET', `/servers/${id}`)).body.server;
    proxy = await startMetadataProxy({ instance: server.id, tenant: server.tenant_id, secret: fx.metadataSecret });
  });
  afterAll(async () => {
    try {
      await proxy?.close();
      for (const g of (await admin(k, 'GET', '/v1/groups')).body.groups) await admin(k, 'DELETE', `/v1/groups/${g.gid}`);
      await untilServersGone(os, (await serversOf(os, kernelTag(k))).map((s) => s.id));
    } finally {
      await k.stop();
      await os.close();
    }
  });

  it('cloud-init\'s OpenStack reader gets the rack_* keys', async () => {
    const py = `import json, sys
from cloudinit.sources.helpers import openstack
r = openstack.MetadataReader(sys.argv[1]).read_v2()
print(json.dumps({'uuid': r['metadata']['uuid'], 'meta': r['metadata'].get('meta', {})}))`;
    const { stdout } = await run('/usr/bin/python3', ['-c', py, proxy.url], { timeout: 120_000 });
    const got = JSON.parse(stdout);
    expect(got.uuid).toBe(server.id);
    expect(got.meta).toMatchObject({ rack_gid: gid, rack_pid: '100', rack_ppid: '', rack_url: k.url, color: 'blue' });
  });

  it('Nova answers only requests signed with the shared secret', async () => {
    const ask = (signature: string) =>
      fetch('http://127.0.0.1:8775/openstack/latest/meta_data.json', { headers: { 'x-instance-id': server.id, 'x-tenant-id': server.tenant_id, 'x-instance-id-signature': signature } });
    expect((await ask(createHmac('sha256', 'not-the-secret').update(server.id).digest('hex'))).status).toBe(403);
    expect((await ask(createHmac('sha256', fx.metadataSecret).update(server.id).digest('hex'))).status).toBe(200);
  });
});
