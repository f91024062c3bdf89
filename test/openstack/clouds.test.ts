import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeystoneSession } from '../../src/openstack/keystone.js';
import { watchGroup } from '../support/watch.js';
import { admin, CLI, fixture, kernelTag, rack, serversOf, session, startKernel, untilServersGone, type KernelProcess } from './support/fixture.js';
import { spawnSync } from 'node:child_process';

/**
 * `rack kernel --driver nova` configured the way OpenStack users configure every client: OS_CLOUD
 * and a clouds.yaml in ~/.config/openstack, the password in secure.yaml beside it, nothing else
 * (but RACK_NOVA_NETWORKS, RACK's own setting: this cloud has no auto-allocated topology).
 */
describe('a kernel configured by OS_CLOUD and clouds.yaml alone', () => {
  const fx = fixture();
  let home: string;
  let k: KernelProcess | undefined;
  let os: KeystoneSession;
  const rackCloud = (yaml.load(readFileSync(fx.cloudsFile, 'utf8')) as { clouds: Record<string, { auth: Record<string, string> }> }).clouds.rack!;

  beforeAll(() => {
    os = session('rack');
    home = mkdtempSync(join(tmpdir(), 'rack-home-'));
    mkdirSync(join(home, '.config', 'openstack'), { recursive: true });
    mkdirSync(join(home, 'work'));
    const { password, ...auth } = rackCloud.auth;
    writeFileSync(join(home, '.config', 'openstack', 'clouds.yaml'), yaml.dump({ clouds: { mycloud: { ...rackCloud, auth } } }));
    writeFileSync(join(home, '.config', 'openstack', 'secure.yaml'), yaml.dump({ clouds: { mycloud: { auth: { password } } } }), { mode: 0o600 });
  });
  afterAll(async () => {
    try {
      if (k) {
        for (const g of (await admin(k, 'GET', '/v1/groups')).body.groups) await admin(k, 'DELETE', `/v1/groups/${g.gid}`);
        await untilServersGone(os, (await serversOf(os, kernelTag(k))).map((s) => s.id));
      }
    } finally {
      await k?.stop();
      await os.close();
      rmSync(home, { recursive: true, force: true });
    }
  });

  const env = () => ({ HOME: home, OS_CLOUD: 'mycloud', RACK_NOVA_NETWORKS: 'none' });

  it('starts, and its processes are Nova servers of that cloud', async () => {
    k = await startKernel({ env: env(), cwd: join(home, 'work') });
    const gid = JSON.parse((await rack(['group', 'create', 'clouds', '--template', fx.image, '--flavor', fx.flavor, '--json'], k.env)).stdout).gid;
    const w = await watchGroup(k.url, k.env.RACK_TOKEN!, gid);
    try {
      expect((await rack(['fork', '--gid', gid], k.env)).code).toBe(0);
      await w.until((all) => all.get(100)?.status === 'ACTIVE', 180_000);
    } finally {
      w.close();
    }
    const p = (await admin(k, 'GET', `/v1/groups/${gid}/processes/100`)).body.process;
    expect((await serversOf(os, kernelTag(k))).map((s) => s.id)).toContain(p.compute_id);
  });

  it('says which key is missing, in one line, and does not start', () => {
    writeFileSync(join(home, 'work', 'clouds.yaml'), yaml.dump({ clouds: { mycloud: { auth: { auth_url: rackCloud.auth.auth_url, username: 'rack' } } } }));
    const r = spawnSync(process.execPath, [CLI, 'kernel', '--driver', 'nova', '--listen', '127.0.0.1:0', '--data', join(home, 'data2')], {
      env: { PATH: process.env.PATH, ...env() },
      cwd: join(home, 'work'),
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status).toBe(1);
    // ./clouds.yaml comes first in the search order; secure.yaml adds the password, the project is missing
    expect(r.stderr.trim()).toMatch(/^rack: cloud "mycloud" of .*work\/clouds.yaml \(with .*secure.yaml\): auth.project_name is missing \(bad_request\)$/);
  });
});
