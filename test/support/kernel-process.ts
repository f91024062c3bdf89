import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { inject } from 'vitest';
import type { Process } from '../../src/protocol/process.js';
import { credentialsOf, type Credentials } from '../../src/protocol/user-data.js';
import { FIXTURES } from './kernel.js';

export const ADMIN_TOKEN = 'process-admin-token-0123456789';

export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Under `npm run test:redis`: each data dir's Redis database (1-15; the store tests use 0), the same across restarts. */
const databases = new Map<string, number>();

function storeArgs(dataDir: string): string[] {
  const redisUrl = inject('redisUrl');
  if (!redisUrl) return [];
  if (!databases.has(dataDir)) databases.set(dataDir, (databases.size % 15) + 1);
  return ['--store', `${redisUrl}/${databases.get(dataDir)}`];
}

/** `rack kernel` as its own OS process (for kill -9 and for measuring its memory); resolves once it listens. */
export function startKernelProcess(port: number, dataDir: string, extra: readonly string[] = []): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['dist/cli/main.js', 'kernel', '--listen', `127.0.0.1:${port}`, '--data', dataDir, '--templates', FIXTURES, ...storeArgs(dataDir), ...extra], {
    env: { ...process.env, RACK_ADMIN_TOKEN: ADMIN_TOKEN, RACK_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('RACK kernel at')) resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`kernel exited early (${code})`)));
  });
}

export async function stopKernelProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await exited;
}

/** Resident memory of an OS process, in bytes. */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

export function adminCall(url: string) {
  return async (method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> => {
    const res = await fetch(url + path, {
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
}

export interface KernelOnStore {
  child: ChildProcess;
  url: string;
  dataDir: string;
}

/**
 * `rack kernel --store STORE --listen 127.0.0.1:0` as its own OS process, one of several on one
 * store (each with its own data dir); resolves once it listens, with the URL it says it is at.
 */
export function startKernelOn(store: string, dataDir: string, extra: readonly string[] = []): Promise<KernelOnStore> {
  const child = spawn(process.execPath, ['dist/cli/main.js', 'kernel', '--listen', '127.0.0.1:0', '--data', dataDir, '--templates', FIXTURES, '--store', store, ...extra], {
    env: { ...process.env, RACK_ADMIN_TOKEN: ADMIN_TOKEN, RACK_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /RACK kernel at (\S+)/.exec(out);
      if (m) resolve({ child, url: m[1]!, dataDir });
    });
    child.once('exit', (code) => reject(new Error(`kernel exited early (${code})`)));
  });
}

/** A process's tokens, where its VM gets them: the user_data the booting kernel's sim driver wrote. */
export function credentialsOfVm(k: KernelOnStore, p: Process): Credentials {
  const vm = JSON.parse(readFileSync(join(k.dataDir, 'vms', p.compute_id!, 'vm.json'), 'utf8'));
  return credentialsOf(vm.userData)!;
}
