import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN } from '../../src/auth/auth.js';
import { connect } from '../../src/libdck/index.js';
import type { Process } from '../../src/protocol/process.js';
import { credentialsOf } from '../../src/protocol/user-data.js';
import { startTestKernel, untilProcess, type TestKernel } from '../support/kernel.js';

/** A self-signed certificate for 127.0.0.1 and its key (openssl, as an operator would make one). */
function selfSigned(dir: string, name: string): { cert: string; key: string; certFile: string } {
  const certFile = join(dir, `${name}.pem`);
  const keyFile = join(dir, `${name}.key`);
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', `/CN=${name}`, '-addext', 'subjectAltName=IP:127.0.0.1'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl: ${r.stderr}`);
  return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8'), certFile };
}

/** The rack CLI as its own process (asynchronously: the kernel under test runs in this one). */
const rack = (args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string; err: string }> =>
  new Promise((resolve) => {
    execFile(process.execPath, ['dist/cli/main.js', ...args], { encoding: 'utf8', env: { ...process.env, RACK_CA: '', ...env } }, (err, out, errOut) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out, err: errOut });
    });
  });

describe('TLS: rack kernel --tls-cert/--tls-key', () => {
  let dir: string;
  let k: TestKernel;
  let tls: ReturnType<typeof selfSigned>;
  let other: ReturnType<typeof selfSigned>;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rack-tls-'));
    tls = selfSigned(dir, 'kernel');
    other = selfSigned(dir, 'someone-else');
    k = await startTestKernel({ tls: { cert: tls.cert, key: tls.key } });
  });
  afterAll(async () => {
    await k.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves https and wss; each VM gets the CA with its credentials, and its agent and libdck app trust it', async () => {
    expect(k.url).toMatch(/^https:\/\/127\.0\.0\.1:/);
    const { gid } = await k.kernel.createGroup({ name: 'tls', template: 'idle' });
    const [root] = await k.kernel.fork(ADMIN, gid, {});
    const [p] = await k.kernel.fork(ADMIN, gid, { ppid: root!.pid, template: 'counter', args: { times: '50' } });
    await untilProcess(k, gid, p!.pid, (x) => x.compute_id !== null);
    const vm = JSON.parse(readFileSync(join(k.dataDir, 'vms', (await k.kernel.getProcess(gid, p!.pid)).compute_id!, 'vm.json'), 'utf8'));
    expect(credentialsOf(vm.userData)!.ca!.trim()).toBe(tls.cert.trim());
    // The app ran to its end over wss (the agent reported it over wss too): exit 0, every increment there.
    const ended = await untilProcess(k, gid, p!.pid, (x) => x.status === 'EXITED', 60_000);
    expect(ended.exit_code).toBe(0);
    expect((await k.services.shm.get(gid, 'counter')).value).toBe(50);
  }, 90_000);

  it('libdck.sh (curl) trusts the CA dckinit hands the app in RACK_CA', async () => {
    const { gid } = await k.kernel.createGroup({ name: 'tls-shell', template: 'shell-sum', args: { children: '2' } });
    const [root] = await k.kernel.fork(ADMIN, gid, {});
    const ended: Process = await untilProcess(k, gid, root!.pid, (x) => x.status === 'EXITED' || x.status === 'ERROR' || x.status === 'KILLED', 90_000);
    expect(ended.exit_code).toBe(0);
    expect((await k.services.shm.get(gid, 'sum')).value).toBe(1 + 4);
  }, 120_000);

  it('the CLI verifies the kernel: with --ca or RACK_CA it works; without, or with another CA, one line and exit 1', async () => {
    const base = ['group', 'ls', '--url', k.url, '--token', k.adminToken];
    expect(await rack([...base, '--ca', tls.certFile])).toMatchObject({ code: 0, err: '' });
    expect((await rack(base, { RACK_CA: tls.certFile })).code).toBe(0);
    for (const r of [await rack(base), await rack([...base, '--ca', other.certFile])]) {
      expect(r.code).toBe(1);
      expect(r.err.trim().split('\n')).toHaveLength(1);
      expect(r.err).toMatch(/certificate/i);
    }
    const missing = await rack([...base, '--ca', join(dir, 'nope.pem')]);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/--ca: cannot read/);
  });

  it('libdck refuses a kernel its CA does not vouch for', async () => {
    const { gid } = await k.kernel.createGroup({ name: 'tls-idle', template: 'idle' });
    const [p] = await k.kernel.fork(ADMIN, gid, {});
    await untilProcess(k, gid, p!.pid, (x) => x.compute_id !== null);
    const token = k.tokenOf((await k.kernel.getProcess(gid, p!.pid))!);
    await expect(connect({ url: k.url, token, ca: other.cert })).rejects.toThrow(/certificate/i);
    await expect(connect({ url: k.url, token, ca: undefined })).rejects.toThrow(/certificate/i);
    const app = await connect({ url: k.url, token, ca: tls.cert });
    expect(app.pid).toBe(p!.pid);
    await app.files.put('hello.txt', 'over https');
    expect((await app.files.stat('hello.txt')).size).toBe(10);
    app.close();
  }, 60_000);

  it('rack kernel refuses a key without a certificate, and a file that is not PEM, with one line', async () => {
    const a = await rack(['kernel', '--tls-key', join(dir, 'kernel.key')]);
    expect(a.code).toBe(2);
    expect(a.err).toMatch(/--tls-cert and --tls-key go together/);
    const b = await rack(['kernel', '--tls-cert', join(dir, 'kernel.key'), '--tls-key', join(dir, 'kernel.key')]);
    expect(b.code).toBe(2);
    expect(b.err).toMatch(/not a PEM certificate/);
  });
});
