// The nspawn driver's parts that need no guest (test/guest boots real ones): image names, guest
// addresses, metadata by source address as Nova serves it, the kernel relay, and the one-line
// refusal without root or systemd-nspawn.
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { MetadataServer } from '../../src/compute/metadata/metadata-server.js';
import { resolveImage } from '../../src/compute/nspawn/images.js';
import { GuestNetwork } from '../../src/compute/nspawn/network.js';
import { KernelRelay } from '../../src/compute/nspawn/relay.js';

const run = promisify(execFile);
const work = mkdtempSync(join(tmpdir(), 'nspawn-parts-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('images', () => {
  const store = join(work, 'images');
  mkdirSync(join(store, 'hello', 'rootfs'), { recursive: true });
  writeFileSync(join(store, 'hello', 'image.json'), '{}');
  mkdirSync(join(store, 'half-built', 'rootfs'), { recursive: true });

  it('a template names an image the operator registered', () => {
    expect(resolveImage([store], 'hello')).toBe(join(store, 'hello', 'rootfs'));
  });

  it('never a host path, nor an image that was not finished', () => {
    for (const t of ['/etc', '../hello', 'hello/rootfs', '.']) expect(() => resolveImage([store], t)).toThrow(/is not an image name/);
    expect(() => resolveImage([store], 'half-built')).toThrow(/no image "half-built"/);
    expect(() => resolveImage([store], 'nope')).toThrow(/build one with scripts\/guest-image\.sh/);
  });
});

describe('guest addresses', () => {
  it('the lowest free one, the gateway never', () => {
    expect(GuestNetwork.allocate([])).toBe('10.213.0.2');
    expect(GuestNetwork.allocate(['10.213.0.2', '10.213.0.4'])).toBe('10.213.0.3');
    const used = Array.from({ length: 254 }, (_, i) => `10.213.0.${i + 2}`);
    expect(GuestNetwork.allocate(used)).toBe('10.213.1.0');
  });
});

describe('metadata by source address', () => {
  it("a VM registered with its address reads its own metadata at Nova's plain paths; others get 404", async () => {
    const md = new MetadataServer();
    const port = await md.listen(0);
    try {
      const secret = MetadataServer.newSecret();
      md.register({ secret, uuid: 'u-1', name: 'vm-1', meta: { rack_pid: '100' }, userData: '#cloud-config\n', address: '127.0.0.1' });
      const meta = await fetch(`http://127.0.0.1:${port}/openstack/latest/meta_data.json`).then((r) => r.json());
      expect(meta).toMatchObject({ uuid: 'u-1', hostname: 'vm-1', meta: { rack_pid: '100' } });
      expect(await fetch(`http://127.0.0.1:${port}/openstack/latest/user_data`).then((r) => r.text())).toBe('#cloud-config\n');
      md.unregister(secret);
      expect((await fetch(`http://127.0.0.1:${port}/openstack/latest/meta_data.json`)).status).toBe(404);
    } finally {
      await md.close();
    }
  });
});

describe('the kernel relay', () => {
  it('carries a connection both ways to the kernel, and close() ends the ones open', async () => {
    const kernel = createServer((s) => s.pipe(s));
    await new Promise<void>((r) => kernel.listen(0, '127.0.0.1', () => r()));
    const listener = createServer();
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', () => r()));
    const relay = new KernelRelay(listener, { host: '127.0.0.1', port: (kernel.address() as AddressInfo).port });
    const c = connect((listener.address() as AddressInfo).port, '127.0.0.1');
    c.write('ping');
    const echoed = await new Promise<string>((r) => c.once('data', (d) => r(String(d))));
    expect(echoed).toBe('ping');
    const closed = new Promise((r) => c.once('close', r));
    await relay.close();
    await closed;
    kernel.close();
  });
});

describe('rack kernel --driver nspawn on a host that cannot run it', () => {
  const kernel = (data: string, env: Record<string, string>, prefix: string[] = []) =>
    run(prefix[0] ?? process.execPath, [...prefix.slice(1), ...(prefix.length ? [process.execPath] : []), 'dist/cli/main.js', 'kernel', '--driver', 'nspawn', '--listen', '127.0.0.1:0', '--data', data], {
      env: { ...process.env, RACK_LOG_LEVEL: 'silent', ...env },
    }).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
    );

  it.skipIf(process.getuid?.() !== 0)('without systemd-nspawn: one line saying so, exit 1', async () => {
    const bin = join(work, 'bin');
    mkdirSync(bin, { recursive: true });
    const r = await kernel(join(work, 'data-no-nspawn'), { PATH: bin });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('rack: the nspawn driver needs systemd-nspawn, which is not installed (apt-get install systemd-container) (compute_error)\n');
  });

  it.skipIf(process.getuid?.() !== 0)('without root: one line saying so, exit 1', async () => {
    const data = join(work, 'data-no-root');
    mkdirSync(data, { recursive: true });
    chmodSync(work, 0o755);
    chmodSync(data, 0o777);
    const r = await kernel(data, {}, ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^rack: the nspawn driver needs root \(it makes network namespaces and boots systemd-nspawn machines\) \(compute_error\)\n$/);
  });
});
