import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeystoneSession } from '../../src/openstack/keystone.js';
import { watchGroup } from '../support/watch.js';
import { admin, fixture, kernelTag, nova, rack, serversOf, session, startKernel, untilServersGone, type KernelProcess } from './support/fixture.js';

/** The kernel killed with -9 and started again on the same data: it reconciles with Nova. */
describe('kernel kill -9 and restart against a real Nova', () => {
  const fx = fixture();
  let k: KernelProcess;
  let os: KeystoneSession;

  beforeAll(async () => {
    os = session('rack');
    k = await startKernel();
  });
  afterAll(async () => {
    try {
      for (const g of (await admin(k, 'GET', '/v1/groups')).body.groups) await admin(k, 'DELETE', `/v1/groups/${g.gid}`);
      await untilServersGone(os, (await serversOf(os, kernelTag(k))).map((s) => s.id));
    } finally {
      await k.stop();
      await os.close();
    }
  });

  it('a server deleted while the kernel was down makes its process ERROR; an unknown server of the kernel is destroyed; watching goes on', async () => {
    const gid = JSON.parse((await rack(['group', 'create', 'restart', '--template', fx.image, '--flavor', fx.flavor, '--json'], k.env)).stdout).gid;
    const w = await watchGroup(k.url, k.env.RACK_TOKEN!, gid);
    for (let i = 0; i < 3; i++) expect((await rack(['fork', '--gid', gid], k.env)).code).toBe(0);
    await w.until((all) => all.size === 3 && [...all.values()].every((p) => p.status === 'ACTIVE'), 240_000);
    w.close();
    const before = (await admin(k, 'GET', `/v1/groups/${gid}/processes`)).body.processes;
    const [lost, kept, later] = before;

    await k.stop('SIGKILL');
    expect((await nova(os, 'DELETE', `/servers/${lost.compute_id}`)).status).toBe(204);
    // A server with the kernel's tag that no process knows (as a boot the kill cut short would leave)
    const orphan = await nova(os, 'POST', '/servers', { server: { name: 'rack-orphan', imageRef: fx.image, flavorRef: fx.flavor, networks: 'none', tags: [kernelTag(k)] } });
    expect(orphan.status).toBe(202);
    await untilServersGone(os, [lost.compute_id]);

    k = await startKernel({ dataDir: k.dataDir, port: Number(new URL(k.url).port) });
    const after = async (pid: number) => (await admin(k, 'GET', `/v1/groups/${gid}/processes/${pid}`)).body.process;
    expect(await after(lost.pid)).toMatchObject({ status: 'ERROR', error: expect.stringMatching(/lost while the kernel was down/) });
    expect(await after(kept.pid)).toMatchObject({ status: 'ACTIVE' });
    await untilServersGone(os, [orphan.body.server.id]);

    // The restarted kernel watches its servers again.
    const w2 = await watchGroup(k.url, k.env.RACK_TOKEN!, gid);
    try {
      expect((await nova(os, 'DELETE', `/servers/${later.compute_id}`)).status).toBe(204);
      await w2.until((all) => all.get(later.pid)?.status === 'ERROR', 120_000);
      expect(await after(kept.pid)).toMatchObject({ status: 'ACTIVE' });
    } finally {
      w2.close();
    }
  });
});
