import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeystoneSession } from '../../src/openstack/keystone.js';
import { watchGroup } from '../support/watch.js';
import { admin, fixture, kernelTag, rack, serversOf, session, startKernel, untilServersGone, type KernelProcess } from './support/fixture.js';
import { startMetadataProxy } from './support/metadata-proxy.mjs';

const run = promisify(execFile);
/** Tokens start with rkp_ (the app's), rkg_ (the guest agent's) or rka_ (admin) (src/auth/auth.ts). */
const SECRET = /rk[pga]_|rack_token|agent_token/;

/**
 * Whatever lets a VM act as its process must not be readable through the compute API by the
 * other members of the project: rack-peer is a plain member (not admin) of the project RACK
 * boots its servers in. Its guest still gets it, from the metadata service.
 */
describe('a RACK server as another member of the project sees it', () => {
  const fx = fixture();
  let k: KernelProcess;
  let os: KeystoneSession;
  let peer: KeystoneSession;
  let serverId: string;

  beforeAll(async () => {
    os = session('rack');
    peer = session('rack-peer');
    k = await startKernel();
    const gid = JSON.parse((await rack(['group', 'create', 'exposure', '--template', fx.image, '--flavor', fx.flavor, '--json'], k.env)).stdout).gid;
    const w = await watchGroup(k.url, k.env.RACK_TOKEN!, gid);
    expect((await rack(['fork', '--gid', gid], k.env)).code).toBe(0);
    await w.until((all) => all.get(100)?.status === 'ACTIVE', 180_000);
    w.close();
    serverId = (await admin(k, 'GET', `/v1/groups/${gid}/processes/100`)).body.process.compute_id;
  });
  afterAll(async () => {
    try {
      for (const g of (await admin(k, 'GET', '/v1/groups')).body.groups) await admin(k, 'DELETE', `/v1/groups/${g.gid}`);
      await untilServersGone(os, (await serversOf(os, kernelTag(k))).map((s) => s.id));
    } finally {
      await k.stop();
      await os.close();
      await peer.close();
    }
  });

  it('the compute API shows it nothing that authenticates as the process', async () => {
    // Nova's newest microversion of this release (Zed: 2.93) shows the most.
    for (const path of [`/servers/${serverId}`, `/servers/${serverId}/metadata`, '/servers/detail']) {
      const res = await peer.request('compute', { method: 'GET', path, headers: { accept: 'application/json', 'openstack-api-version': 'compute 2.93' } });
      const text = await res.body.text();
      expect(res.status, path).toBe(200);
      expect(text, path).toContain(path.endsWith('/metadata') ? 'rack_gid' : serverId.slice(0, 8)); // the peer does see the server...
      expect(text, path).not.toMatch(SECRET); // ...but not the process's secret
    }
  });

  it('nor does `openstack server show`', async () => {
    const { stdout } = await run('/usr/bin/openstack', ['--os-cloud', 'rack-peer', 'server', 'show', serverId, '-f', 'json'], { env: { ...process.env, OS_CLIENT_CONFIG_FILE: fx.cloudsFile }, timeout: 120_000 });
    expect(JSON.parse(stdout).id).toBe(serverId);
    expect(stdout).not.toMatch(SECRET);
  });

  it('its guest gets the token from the metadata service', async () => {
    const server = (await (await os.request('compute', { method: 'GET', path: `/servers/${serverId}`, headers: { accept: 'application/json' } })).body.json()) as { server: { tenant_id: string } };
    const proxy = await startMetadataProxy({ instance: serverId, tenant: server.server.tenant_id, secret: fx.metadataSecret });
    try {
      const [meta, userData] = await Promise.all(['meta_data.json', 'user_data'].map(async (f) => (await fetch(`${proxy.url}/openstack/latest/${f}`)).text()));
      expect(meta + userData).toMatch(/rkp_[A-Za-z0-9_-]{16,}/);
      expect(meta + userData).toMatch(/rkg_[A-Za-z0-9_-]{16,}/);
    } finally {
      await proxy.close();
    }
  });
});
