import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCloudConfig } from '../../../src/openstack/cloud-config.js';
import { KeystoneSession } from '../../../src/openstack/keystone.js';
import { freePort } from '../../support/kernel-process.js';

export const ROOT = join(import.meta.dirname, '..', '..', '..');
export const CLI = join(ROOT, 'dist', 'cli', 'main.js');
export const ADMIN = 'openstack-suite-admin-token-0123456789';

/** What test/openstack/fixture/up.sh wrote into $RACK_OS_STATE/fixture.env (run.sh exports it). */
export interface Fixture {
  cloudsFile: string;
  image: string;
  flavor: string;
  hugeFlavor: string;
  metadataSecret: string;
}

export function fixture(): Fixture {
  const need = (k: string): string => {
    const v = process.env[k];
    if (!v) throw new Error(`${k} is not set: run the OpenStack suite with "npm run test:openstack" (it starts test/openstack/fixture/up.sh)`);
    return v;
  };
  const f = { cloudsFile: need('OS_CLIENT_CONFIG_FILE'), image: need('RACK_OS_IMAGE'), flavor: need('RACK_OS_FLAVOR'), hugeFlavor: need('RACK_OS_HUGE_FLAVOR'), metadataSecret: need('RACK_OS_METADATA_SECRET') };
  if (!existsSync(f.cloudsFile)) throw new Error(`${f.cloudsFile} does not exist: is the OpenStack fixture up?`);
  return f;
}

/** A Keystone session as a cloud of the fixture's clouds.yaml: rack, rack-peer, rack-quota, rack-admin. */
export function session(cloud = 'rack'): KeystoneSession {
  return new KeystoneSession(loadCloudConfig({ env: { OS_CLOUD: cloud, OS_CLIENT_CONFIG_FILE: fixture().cloudsFile } }));
}

/** A Nova call as a cloud of the fixture; JSON in, status and JSON out. */
export async function nova(s: KeystoneSession, method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await s.request('compute', {
    method,
    path,
    headers: { 'content-type': 'application/json', accept: 'application/json', 'openstack-api-version': 'compute 2.52' },
    body: body === undefined ? undefined : JSON.stringify(body),
    timeoutMs: 120_000, // as the nova driver: Nova's API is slow when the machine is busy
  });
  const text = await res.body.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** Runs the rack CLI; never throws on a non-zero exit. */
export function rack(args: string[], env: Record<string, string>, input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.stdin.end(input ?? '');
    child.once('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

export interface KernelProcess {
  url: string;
  dataDir: string;
  child: ChildProcess;
  /** Environment for the rack CLI as the admin. */
  env: Record<string, string>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * `rack kernel --driver nova` as its own OS process, configured the way a user would: OS_CLOUD
 * and the fixture's clouds.yaml (or `env` instead), RACK_NOVA_NETWORKS=none (the fixture has no
 * auto-allocated topology). Its log is DATA/kernel.log.
 */
export async function startKernel(opts: { dataDir?: string; port?: number; files?: 'swift'; env?: Record<string, string>; cloud?: string; cwd?: string } = {}): Promise<KernelProcess> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'rack-os-kernel-'));
  const port = opts.port ?? (await freePort());
  const base = opts.env ?? { OS_CLOUD: opts.cloud ?? 'rack', OS_CLIENT_CONFIG_FILE: fixture().cloudsFile, RACK_NOVA_NETWORKS: 'none' };
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...base, RACK_ADMIN_TOKEN: ADMIN, RACK_LOG_LEVEL: 'debug' };
  const log = openSync(join(dataDir, 'kernel.log'), 'a');
  const args = [CLI, 'kernel', '--driver', 'nova', '--listen', `127.0.0.1:${port}`, '--data', dataDir, ...(opts.files ? ['--files', opts.files] : [])];
  const child = spawn(process.execPath, args, { env, cwd: opts.cwd, stdio: ['ignore', 'pipe', log] });
  closeSync(log);
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('RACK kernel at')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`rack kernel exited with ${code}: ${readFileSync(join(dataDir, 'kernel.log'), 'utf8').split('\n').slice(-5).join('\n')}`)));
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    dataDir,
    child,
    env: { RACK_URL: url, RACK_TOKEN: ADMIN },
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill(signal);
      await exited;
    },
  };
}

/** An admin REST call to a kernel. */
export async function admin(k: { url: string }, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(k.url + path, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** The kernel's id (its servers' tag is rack-kernel-<id>). */
export function kernelTag(k: { dataDir: string }): string {
  return `rack-kernel-${readFileSync(join(k.dataDir, 'kernel-id'), 'utf8').trim()}`;
}

/** Servers of the rack project carrying a kernel's tag (live ones). */
export async function serversOf(s: KeystoneSession, tag: string): Promise<Array<{ id: string; name: string; status: string; metadata: Record<string, string> }>> {
  return (await nova(s, 'GET', `/servers/detail?tags=${encodeURIComponent(tag)}`)).body.servers;
}

/**
 * Resolves once Nova lists none of `ids` any more. Nova deletes asynchronously (DELETE answers at
 * once, the server goes when nova-compute is done) and sends no event a client could wait for.
 */
export async function untilServersGone(s: KeystoneSession, ids: Iterable<string | null>, ms = 120_000): Promise<void> {
  const want = new Set([...ids].filter((x): x is string => x !== null));
  const deadline = Date.now() + ms;
  for (;;) {
    const left = (await nova(s, 'GET', '/servers/detail')).body.servers.filter((x: { id: string }) => want.has(x.id));
    if (left.length === 0) return;
    if (Date.now() > deadline) throw new Error(`servers still in Nova after ${ms} ms: ${left.map((x: { id: string; status: string }) => `${x.id} ${x.status}`).join(', ')}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
