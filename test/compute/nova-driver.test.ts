import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, silentLogger } from '../../src/common/log.js';
import { cloudConfigs, credentialsOf } from '../../src/protocol/user-data.js';
import { NovaDriver } from '../../src/compute/nova/nova-driver.js';
import { loadCloudConfig } from '../../src/openstack/cloud-config.js';
import { KeystoneSession } from '../../src/openstack/keystone.js';
import { FakeOpenStack } from '../support/fake-openstack.js';
import { startTestKernel, untilProcess } from '../support/kernel.js';

/** The kernel with the nova driver against a fake Keystone + Nova over HTTP (the real ones: test/openstack/). */
describe('nova compute driver in a kernel (fake Keystone + Nova over HTTP)', () => {
  const os = new FakeOpenStack();
  const saved = { ...process.env };
  const driver = (): NovaDriver =>
    new NovaDriver({ session: new KeystoneSession(loadCloudConfig({ env: os.env() })), kernelId: '3a0c6c43-3bd5-4b39-a8f0-2f7c1b8b1a11', networks: 'none', pollMs: 100, log: silentLogger() });

  beforeAll(async () => {
    await os.start();
  });
  afterAll(async () => {
    process.env = saved;
    await os.stop();
  });

  it('boots servers with rack_* metadata, the kernel tag and user_data; BUILD turns ACTIVE when Nova says so; console; kill deletes', async () => {
    let logs = '';
    const sink = new Writable({ write: (c, _e, cb) => ((logs += c), cb()) });
    const k = await startTestKernel({ compute: driver(), log: createLogger({ name: 't', level: 'debug', pretty: false, destination: sink }) });
    try {
      const gid = (await k.call('POST', '/v1/groups', { group: { name: 'n', template: 'image-uuid', flavor: 'm1.small' } })).body.group.gid;
      const r = await k.call('POST', `/v1/groups/${gid}/processes`, { process: { args: { color: 'red' }, userdata: Buffer.from('#cloud-config\n{}\n').toString('base64') } });
      const pid = r.body.processes[0].pid;
      const building = await untilProcess(k, gid, pid, (x) => x.status === 'BUILD' && x.compute_id !== null);
      const srv = os.servers.get(building.compute_id!)!;
      expect(srv).toMatchObject({ imageRef: 'image-uuid', flavorRef: 'm1.small', name: `rack-${gid.slice(0, 8)}-100`, networks: 'none' });
      expect(srv.metadata).toMatchObject({ rack_gid: gid, rack_pid: '100', rack_ppid: '', color: 'red', rack_url: k.url });
      expect(srv.tags).toEqual(['rack-kernel-3a0c6c43-3bd5-4b39-a8f0-2f7c1b8b1a11', expect.stringMatching(/^rack-boot-[0-9a-f-]{36}$/)]);
      // The process token is in user_data (admins only), beside the user's own; never in metadata.
      const userData = Buffer.from(srv.user_data!, 'base64').toString();
      const self = await k.call('GET', '/v1/self', undefined, credentialsOf(userData)!.token);
      expect(self.body.process).toMatchObject({ gid, pid: 100 });
      expect(cloudConfigs(userData)).toContain('#cloud-config\n{}\n');
      expect(JSON.stringify(srv.metadata)).not.toContain('rkp_');

      // Real Nova answers BUILD after the POST and ACTIVE seconds later: the poll sees it.
      os.set(srv.id, 'ACTIVE');
      await untilProcess(k, gid, pid, (x) => x.status === 'ACTIVE');

      const con = await k.call('GET', `/v1/groups/${gid}/processes/100/console?lines=2`);
      expect(con.body.console.output).toBe(`cloud-init done\ndckinit: app of ${srv.name} running\n`);

      // An expired token is renewed transparently.
      const authsBefore = os.auths;
      os.expireNext = true;
      expect((await k.call('GET', `/v1/groups/${gid}/processes/100/console?lines=1`)).status).toBe(200);
      expect(os.auths).toBe(authsBefore + 1);

      await k.call('DELETE', `/v1/groups/${gid}/processes/100?signal=KILL`);
      await untilProcess(k, gid, 100, (x) => x.status === 'KILLED');
      expect(os.live()).toHaveLength(0);

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

  it('a server that fails at build ends its process in ERROR with Nova\'s fault; one deleted behind RACK\'s back too', async () => {
    const k = await startTestKernel({ compute: driver() });
    try {
      const gid = (await k.call('POST', '/v1/groups', { group: { name: 'e', template: 'image-uuid', flavor: 'm1.small' } })).body.group.gid;
      const r = await k.call('POST', `/v1/groups/${gid}/processes`, { process: { count: 2 } });
      const [a, b] = r.body.processes.map((p: { pid: number }) => p.pid);
      const pa = await untilProcess(k, gid, a, (x) => x.compute_id !== null);
      const pb = await untilProcess(k, gid, b, (x) => x.compute_id !== null);
      os.set(pa.compute_id!, 'ERROR', 'No valid host was found. There are not enough hosts available.');
      expect((await untilProcess(k, gid, a, (x) => x.status === 'ERROR')).error).toMatch(/No valid host was found/);
      os.set(pb.compute_id!, 'ACTIVE');
      await untilProcess(k, gid, b, (x) => x.status === 'ACTIVE');
      os.set(pb.compute_id!, 'DELETED');
      expect((await untilProcess(k, gid, b, (x) => x.status === 'ERROR')).error).toMatch(/stopped without its app reporting an exit/);
    } finally {
      await k.cleanup();
    }
  });

  it('refuses to start without OpenStack credentials, naming what is missing', async () => {
    for (const key of Object.keys(process.env)) if (key.startsWith('OS_')) delete process.env[key];
    await expect(startTestKernel({ driver: 'nova' })).rejects.toThrow(/OS_CLOUD .*or OS_AUTH_URL/);
    Object.assign(process.env, os.env(), { OS_PASSWORD: '' });
    await expect(startTestKernel({ driver: 'nova' })).rejects.toThrow(/OS_PASSWORD is not set/);
    Object.assign(process.env, os.env(), { RACK_NOVA_NETWORKS: 'auto' });
    await expect(startTestKernel({ driver: 'nova' })).rejects.toThrow(/no network service in its catalog.*RACK_NOVA_NETWORKS=none/);
  });
});
