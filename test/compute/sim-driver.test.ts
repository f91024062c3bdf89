import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BootRequest } from '../../src/compute/driver.js';
import { findVmProcesses } from '../../src/compute/sim/os-processes.js';
import { SimDriver } from '../../src/compute/sim/sim-driver.js';
import { FIXTURES } from '../support/kernel.js';

const hasCloudInit = spawnSync('/usr/bin/python3', ['-c', 'import cloudinit.sources.helpers.openstack'], { stdio: 'ignore' }).status === 0;

function request(pid: number, template: string, meta: Record<string, string> = {}, userData: string | null = null): BootRequest {
  return {
    gid: 'g-test',
    pid,
    name: `rack-test-${pid}`,
    template,
    flavor: null,
    meta: { rack_gid: 'g-test', rack_pid: String(pid), rack_ppid: pid === 100 ? '' : '100', rack_url: 'http://127.0.0.1:1', ...meta },
    userData,
  };
}

/** Resolves when `file` exists in the VM's disk (the VM writes it when it is done). */
function fileAppears(path: string, ms = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + ms;
    const check = (): void => {
      if (existsSync(path)) return resolve();
      if (Date.now() > deadline) return reject(new Error(`${path} did not appear`));
      setTimeout(check, 20); // another OS process writes it: nothing to subscribe to
    };
    check();
  });
}

describe('sim compute driver', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'rack-sim-'));
  const templates = mkdtempSync(join(tmpdir(), 'rack-tpl-'));
  let driver: SimDriver;

  beforeAll(async () => {
    mkdirSync(join(templates, 'quick'));
    writeFileSync(join(templates, 'quick', 'image.yaml'), 'init: ["/bin/sh", "-c", "exit 3"]\n');
    driver = new SimDriver({ dataDir, templates: [FIXTURES, templates] });
    await driver.start();
  });
  afterAll(async () => {
    await driver.close();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(templates, { recursive: true, force: true });
  });

  it('serves each VM its own Nova metadata, and nothing of others', async () => {
    const a = await driver.boot(request(100, 'metadata-reader', { color: 'blue' }, '#cloud-config\n{}\n'));
    const b = await driver.boot(request(101, 'metadata-reader'));
    const diskA = join(dataDir, 'vms', a, 'disk');
    await fileAppears(join(diskA, 'done'));
    const meta = JSON.parse(readFileSync(join(diskA, 'meta_data.json'), 'utf8'));
    expect(meta).toMatchObject({ uuid: a, name: 'rack-test-100', hostname: 'rack-test-100', launch_index: 0, availability_zone: 'sim' });
    expect(meta.meta).toMatchObject({ rack_gid: 'g-test', rack_pid: '100', rack_ppid: '', color: 'blue' });
    expect(readFileSync(join(diskA, 'user_data'), 'utf8')).toBe('#cloud-config\n{}\n');
    // B's URL differs only in its secret; A's secret is nowhere in B's environment.
    const vmA = JSON.parse(readFileSync(join(dataDir, 'vms', a, 'vm.json'), 'utf8'));
    const vmB = JSON.parse(readFileSync(join(dataDir, 'vms', b, 'vm.json'), 'utf8'));
    expect(vmA.secret).not.toBe(vmB.secret);
    const port = readFileSync(join(dataDir, 'vms', 'metadata.port'), 'utf8');
    const guess = await fetch(`http://127.0.0.1:${port}/${'0'.repeat(32)}/openstack/latest/meta_data.json`);
    expect(guess.status).toBe(404);
    const versions = await (await fetch(`http://127.0.0.1:${port}/${vmA.secret}/openstack`)).text();
    expect(versions.split('\n')).toContain('2018-08-27');
    expect((await fetch(`http://127.0.0.1:${port}/${vmA.secret}/openstack/2013-04-04/meta_data.json`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${port}/${vmA.secret}/openstack/latest/meta_data.json`, { method: 'POST' })).status).toBe(405);
    await driver.destroy(a);
    await driver.destroy(b);
  });

  it.skipIf(!hasCloudInit)("is read by cloud-init's own OpenStack metadata reader", async () => {
    const id = await driver.boot(request(102, 'idle', { extra: 'x' }, 'hello'));
    const rec = JSON.parse(readFileSync(join(dataDir, 'vms', id, 'vm.json'), 'utf8'));
    const port = readFileSync(join(dataDir, 'vms', 'metadata.port'), 'utf8');
    const base = `http://127.0.0.1:${port}/${rec.secret}`;
    const script = [
      'import json, sys',
      'from cloudinit.sources.helpers import openstack',
      'r = openstack.MetadataReader(sys.argv[1])',
      'd = r.read_v2()',
      'print(json.dumps({"meta": d["metadata"]["meta"], "uuid": d["metadata"]["uuid"], "userdata": d["userdata"].decode() if isinstance(d["userdata"], bytes) else d["userdata"]}))',
    ].join('\n');
    // Asynchronously: the metadata server answering it lives in this very process.
    const { stdout: out } = await promisify(execFile)('/usr/bin/python3', ['-c', script, base], { encoding: 'utf8' });
    const read = JSON.parse(out);
    expect(read.uuid).toBe(id);
    expect(read.meta).toMatchObject({ rack_pid: '102', rack_ppid: '100', rack_gid: 'g-test', extra: 'x' });
    expect(read.userdata).toBe('hello');
    await driver.destroy(id);
  });

  it('destroy kills every process of the VM, also ones that left its session', async () => {
    const id = await driver.boot(request(103, 'idle'));
    // The idle image starts `setsid sleep` beside its own sleep: wait until both exist.
    for (let i = 0; i < 200 && findVmProcesses(id).length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(findVmProcesses(id).length).toBeGreaterThanOrEqual(2);
    expect(await driver.state(id)).toBe('ACTIVE');
    await driver.destroy(id);
    expect(findVmProcesses(id)).toEqual([]);
    expect(await driver.state(id)).toBe('GONE');
    await driver.destroy(id); // idempotent
  });

  it('tells when a VM stops on its own', async () => {
    const gone = new Promise<string>((resolve) => driver.onChange((c) => c.state === 'GONE' && resolve(c.id)));
    const id = await driver.boot(request(104, 'quick'));
    expect(await gone).toBe(id);
    expect(await driver.state(id)).toBe('GONE');
    await driver.destroy(id);
  });

  it('a restarted driver adopts running VMs and can destroy them', async () => {
    const id = await driver.boot(request(105, 'idle'));
    const again = new SimDriver({ dataDir, templates: [FIXTURES] });
    await again.start();
    expect((await again.list()).find((v) => v.id === id)?.state).toBe('ACTIVE');
    await again.destroy(id);
    expect(findVmProcesses(id)).toEqual([]);
    await again.close();
  });

  it('refuses unknown templates and unsafe names with a clear error', async () => {
    await expect(driver.boot(request(106, 'no-such-template'))).rejects.toThrow(/no template "no-such-template"/);
    for (const name of ['../etc', '/etc', '/tmp/image']) await expect(driver.boot(request(107, name))).rejects.toThrow(/not a template name .*never a path/);
  });
});
