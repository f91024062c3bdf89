import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeystoneSession } from '../../src/openstack/keystone.js';
import { watchGroup } from '../support/watch.js';
import { admin, fixture, kernelTag, rack, serversOf, session, startKernel, untilServersGone, type KernelProcess } from './support/fixture.js';

/** What Nova refuses, as RACK users see it. */
describe('boot failures on a real Nova', () => {
  const fx = fixture();
  let k: KernelProcess;
  let quota: KernelProcess;
  let os: KeystoneSession;

  beforeAll(async () => {
    os = session('rack');
    k = await startKernel();
    // the rack user in project rack-quota, whose instance quota is 0
    quota = await startKernel({ cloud: 'rack-quota' });
  });
  afterAll(async () => {
    try {
      for (const kk of [k, quota]) for (const g of (await admin(kk, 'GET', '/v1/groups')).body.groups) await admin(kk, 'DELETE', `/v1/groups/${g.gid}`);
      await untilServersGone(os, (await serversOf(os, kernelTag(k))).map((s) => s.id));
    } finally {
      await k.stop();
      await quota.stop();
      await os.close();
    }
  });

  it('a server that goes ERROR at build (no valid host) ends its process in ERROR with Nova\'s fault message', async () => {
    const gid = JSON.parse((await rack(['group', 'create', 'huge', '--template', fx.image, '--flavor', fx.hugeFlavor, '--json'], k.env)).stdout).gid;
    const w = await watchGroup(k.url, k.env.RACK_TOKEN!, gid);
    try {
      const r = await rack(['fork', '--gid', gid, '--json'], k.env);
      expect(r.code, r.stderr).toBe(0);
      await w.until((all) => all.get(100)?.status === 'ERROR', 180_000);
      expect((await admin(k, 'GET', `/v1/groups/${gid}/processes/100`)).body.process.error).toMatch(/No valid host was found/);
    } finally {
      w.close();
    }
  });

  // Needs the kernel to await the driver's POST at fork and roll the fork back when it throws
  // (the lead's change to src/kernel); until then the fork succeeds and its process ends in ERROR.
  it('a quota refusal fails the fork with Nova\'s message and leaves no process', async () => {
    const gid = JSON.parse((await rack(['group', 'create', 'quota', '--template', fx.image, '--flavor', fx.flavor, '--json'], quota.env)).stdout).gid;
    const r = await rack(['fork', '--gid', gid], quota.env);
    expect(r.code).toBe(1);
    // The kernel knows the project's limits (Nova's /limits) and refuses first; Nova's own refusal says the same.
    expect(r.stderr).toMatch(/(compute project's quota has 0 of 0 instances free|Quota exceeded for instances).*\(quota_exceeded\)/);
    expect((await admin(quota, 'GET', `/v1/groups/${gid}/processes`)).body.processes).toEqual([]);
  });
});
