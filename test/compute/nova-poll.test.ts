import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FakeOpenStack } from '../support/fake-openstack.js';
import { loadCloudConfig } from '../../src/openstack/cloud-config.js';
import { KeystoneSession } from '../../src/openstack/keystone.js';
import type { VmChange } from '../../src/compute/driver.js';
import { NovaDriver, parseNetworks } from '../../src/compute/nova/nova-driver.js';

const POLL_MS = 100;

describe('nova driver: state from Nova at scale, refusals', () => {
  const os = new FakeOpenStack();
  let driver: NovaDriver;
  const changes: VmChange[] = [];
  const until = (pred: () => boolean, ms = 20_000): Promise<void> =>
    new Promise((resolve, reject) => {
      const t0 = Date.now();
      const check = (): void => {
        if (pred()) return resolve();
        if (Date.now() - t0 > ms) return reject(new Error('condition not met'));
        setTimeout(check, 20);
      };
      check();
    });
  const boot = (pid: number, flavor: string | null = 'f1') =>
    driver.boot({ gid: 'g', pid, name: `rack-g-${pid}`, template: 'img', flavor, meta: { rack_pid: String(pid) }, userData: null });

  beforeAll(async () => {
    await os.start();
  });
  afterAll(async () => {
    await os.stop();
  });
  beforeEach(async () => {
    await driver?.close();
    os.servers.clear();
    changes.length = 0;
    driver = new NovaDriver({ session: new KeystoneSession(loadCloudConfig({ env: os.env() })), kernelId: 'k1', networks: 'none', pollMs: POLL_MS, timeoutMs: 500 });
    driver.onChange((c) => changes.push(c));
  });

  it('adopt: another kernel watches the servers of one that died (one GET each, once), and hears of their end', async () => {
    const ids = [await boot(100), await boot(101), await boot(102)];
    os.set(ids[2]!, 'DELETED');
    const other = new NovaDriver({ session: new KeystoneSession(loadCloudConfig({ env: os.env() })), kernelId: 'k2', networks: 'none', pollMs: POLL_MS, timeoutMs: 500 });
    const heard: VmChange[] = [];
    other.onChange((c) => heard.push(c));
    try {
      os.set(ids[0]!, 'ACTIVE');
      const states = await other.adopt(ids);
      expect([...states]).toEqual([[ids[0], 'ACTIVE'], [ids[1], 'BUILD'], [ids[2], 'GONE']]);
      os.requests.length = 0;
      expect([...(await other.adopt(ids.slice(0, 2)))]).toEqual([[ids[0], 'ACTIVE'], [ids[1], 'BUILD']]);
      expect(os.requests.filter((r) => r.path.startsWith('/compute/v2.1/servers/') && !r.path.includes('detail'))).toEqual([]);
      os.set(ids[0]!, 'ERROR', 'the host died');
      os.set(ids[1]!, 'DELETED');
      await until(() => heard.length === 2);
      expect(heard).toHaveLength(2);
      expect(heard).toEqual(expect.arrayContaining([{ id: ids[0], state: 'ERROR', fault: 'the host died' }, { id: ids[1], state: 'GONE' }]));
    } finally {
      await other.close();
    }
  });

  it('200 servers cost one list request per poll, not one GET each; every change is reported once', async () => {
    os.pageSize = 1000;
    const ids: string[] = [];
    for (let i = 0; i < 200; i++) ids.push(await boot(100 + i));
    os.requests.length = 0;
    const t0 = Date.now();
    for (const id of ids.slice(0, 150)) os.set(id, 'ACTIVE');
    for (const id of ids.slice(150, 153)) os.set(id, 'ERROR', 'No valid host was found. ');
    for (const id of ids.slice(153, 155)) os.set(id, 'DELETED');
    await until(() => changes.length === 155);
    // Polls go on: two more at least, to see that nothing is reported twice.
    const seen = os.requests.length;
    await until(() => os.requests.length >= seen + 2);
    const elapsed = Date.now() - t0;

    expect(changes.filter((c) => c.state === 'ACTIVE').map((c) => c.id).sort()).toEqual(ids.slice(0, 150).sort());
    expect(changes.filter((c) => c.state === 'ERROR')).toEqual(ids.slice(150, 153).map((id) => ({ id, state: 'ERROR', fault: 'No valid host was found. ' })));
    expect(changes.filter((c) => c.state === 'GONE').map((c) => c.id).sort()).toEqual(ids.slice(153, 155).sort());
    const polls = os.requests.length;
    expect(os.requests.every((r) => r.method === 'GET' && r.path.startsWith('/compute/v2.1/servers/detail?') && r.path.includes('changes-since='))).toBe(true);
    // at most one request per poll interval (a slow answer skips a tick, never adds one)
    expect(polls).toBeLessThanOrEqual(Math.ceil(elapsed / POLL_MS) + 1);
    await until(() => os.requests.length >= polls + 1);
    expect(changes).toHaveLength(155);
  });

  it('follows listing pages; makes no request while no server is watched', async () => {
    os.pageSize = 40;
    const ids: string[] = [];
    for (let i = 0; i < 100; i++) ids.push(await boot(100 + i));
    for (const id of ids) os.set(id, 'ACTIVE');
    await until(() => changes.length === 100);
    for (const id of ids) await driver.destroy(id);
    // A poll begun before the last destroy may still arrive; after it, none.
    await new Promise((r) => setTimeout(r, POLL_MS * 5));
    const settled = os.requests.length;
    await new Promise((r) => setTimeout(r, POLL_MS * 5));
    expect(os.requests.slice(settled)).toEqual([]);
    expect(changes).toHaveLength(100); // our own deletions are not news
  });

  it('an ERROR whose fault Nova records after the state is reported with the fault', async () => {
    const id = await boot(100);
    os.set(id, 'ERROR');
    await until(() => os.requests.some((r) => r.path.includes('changes-since')));
    os.servers.get(id)!.fault = { message: 'Build of instance aborted: Failure prepping block device.', code: 500 };
    await until(() => changes.length === 1);
    expect(changes[0]).toEqual({ id, state: 'ERROR', fault: 'Build of instance aborted: Failure prepping block device.' });
  });

  it('list() and state() find this kernel\'s servers only (by tag), and watch them', async () => {
    const mine = await boot(100);
    os.create({ tags: ['rack-kernel-other'] });
    os.create({});
    expect(await driver.list()).toEqual([{ id: mine, state: 'BUILD' }]);
    expect(os.requests.at(-1)!.path).toContain('tags=rack-kernel-k1');
    expect(await driver.state('00000000-0000-4000-8000-999999999999')).toBe('GONE');
    os.set(mine, 'ACTIVE');
    await until(() => changes.length === 1);
  });

  it('quota refusals are quota_exceeded with Nova\'s message; other refusals compute_error', async () => {
    os.refuseNext = { status: 403, body: { forbidden: { code: 403, message: 'Quota exceeded for instances: Requested 1, but already used 10 of 10 instances' } } };
    await expect(boot(100)).rejects.toMatchObject({ code: 'quota_exceeded', message: expect.stringContaining('Quota exceeded for instances: Requested 1, but already used 10 of 10') });
    os.refuseNext = { status: 413, body: { overLimit: { code: 413, message: 'Quota exceeded for cores' } } };
    await expect(boot(100)).rejects.toMatchObject({ code: 'quota_exceeded' });
    os.refuseNext = { status: 403, body: { forbidden: { code: 403, message: 'Only volume-backed servers are allowed for flavors with zero disk.' } } };
    await expect(boot(100)).rejects.toMatchObject({ code: 'compute_error', message: expect.stringContaining('zero disk') });
    os.refuseNext = { status: 400, body: { badRequest: { code: 400, message: 'Invalid flavorRef provided.' } } };
    await expect(boot(100)).rejects.toMatchObject({ code: 'compute_error', message: expect.stringContaining('Invalid flavorRef') });
    await expect(boot(100, null)).rejects.toMatchObject({ code: 'bad_request', message: expect.stringContaining('needs a flavor') });
    expect(os.live()).toHaveLength(0);
  });
});

describe('a creation Nova does not answer', () => {
  it('fails the boot, and the server Nova made all the same is deleted when it shows up', async () => {
    const os = new FakeOpenStack();
    await os.start();
    const driver = new NovaDriver({ session: new KeystoneSession(loadCloudConfig({ env: os.env() })), kernelId: 'k1', networks: 'none', pollMs: POLL_MS, timeoutMs: 300 });
    const changes: VmChange[] = [];
    driver.onChange((c) => changes.push(c));
    try {
      os.stallNext = true;
      await expect(driver.boot({ gid: 'g', pid: 100, name: 'rack-g-100', template: 'img', flavor: 'f1', meta: {}, userData: null })).rejects.toMatchObject({
        code: 'unavailable',
        message: expect.stringMatching(/Nova did not answer the creation of server rack-g-100 .*it may create it still/),
      });
      expect(os.live()).toHaveLength(1);
      // another server of the same kernel, whose POST was answered, stays
      const kept = await driver.boot({ gid: 'g', pid: 101, name: 'rack-g-101', template: 'img', flavor: 'f1', meta: {}, userData: null });
      for (let i = 0; os.live().length > 1; i++) {
        if (i > 200) throw new Error('the unanswered server was not deleted');
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(os.live().map((s) => s.id)).toEqual([kept]);
      expect(changes).toEqual([]);
    } finally {
      await driver.close();
      await os.stop();
    }
  });
});

describe('RACK_NOVA_NETWORKS', () => {
  it('is auto by default, none, or network UUIDs; anything else is named', () => {
    expect(parseNetworks(undefined)).toBe('auto');
    expect(parseNetworks('none')).toBe('none');
    expect(parseNetworks(' 3fa85f64-5717-4562-b3fc-2c963f66afa6, 6ba7b810-9dad-11d1-80b4-00c04fd430c8')).toEqual([
      '3fa85f64-5717-4562-b3fc-2c963f66afa6',
      '6ba7b810-9dad-11d1-80b4-00c04fd430c8',
    ]);
    expect(() => parseNetworks('private')).toThrow(/"private" is not a UUID/);
  });
});
