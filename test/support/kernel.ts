import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { inject } from 'vitest';
import { ADMIN } from '../../src/auth/auth.js';
import { silentLogger } from '../../src/common/log.js';
import { until } from '../../src/common/until.js';
import { startKernel, type KernelConfig, type RunningKernel } from '../../src/server/start.js';
import { RedisStore } from '../../src/store/redis/redis-store.js';
import type { Process } from '../../src/protocol/process.js';
import { credentialsOf, type Credentials } from '../../src/protocol/user-data.js';

export const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'templates');

export interface TestKernel extends RunningKernel {
  /** A REST call; answers status and parsed body, never throws on 4xx. */
  call(method: string, path: string, body?: unknown, token?: string, headers?: Record<string, string>): Promise<{ status: number; body: any }>;
  /** Reads a process's app token where its VM gets it: the sim VM's user_data on disk. */
  tokenOf(p: Process): string;
  /** The same for the token of the process's guest agent. */
  agentTokenOf(p: Process): string;
  cleanup(): Promise<void>;
}

export async function startTestKernel(cfg: Partial<KernelConfig> = {}, dataDir?: string): Promise<TestKernel> {
  const dir = dataDir ?? mkdtempSync(join(tmpdir(), 'rack-test-'));
  // Under `npm run test:redis` the kernel suites it runs keep their state in its redis-server
  // (a key prefix per data dir: a kernel started again on it finds its state); under `npm test`
  // nothing is provided, and the store is SQLite.
  const redisUrl = inject('redisUrl');
  const store = cfg.store ?? (redisUrl ? await RedisStore.open(redisUrl, `kernel-${basename(dir)}`) : undefined);
  const k = await startKernel({
    listen: '127.0.0.1:0',
    dataDir: dir,
    templates: [FIXTURES],
    adminToken: 'test-admin-token-0123456789',
    log: silentLogger(),
    ...cfg,
    store,
  });
  const call: TestKernel['call'] = async (method, path, body, token = k.adminToken, headers = {}) => {
    const res = await fetch(k.url + path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      /* keep text */
    }
    return { status: res.status, body: parsed };
  };
  // Cached: a destroyed VM's user_data is gone from disk, and tests still check its tokens are unused.
  const tokens = new Map<string, Credentials>();
  const credentials = (p: Process): Credentials => {
    const key = `${p.gid}/${p.pid}`;
    if (!tokens.has(key)) {
      const vm = JSON.parse(readFileSync(join(dir, 'vms', p.compute_id!, 'vm.json'), 'utf8'));
      tokens.set(key, credentialsOf(vm.userData)!);
    }
    return tokens.get(key)!;
  };
  const tokenOf = (p: Process): string => credentials(p).token;
  const agentTokenOf = (p: Process): string => credentials(p).agent_token;
  return {
    ...k,
    call,
    tokenOf,
    agentTokenOf,
    // Ends every group (VMs outlive their kernel by design), then checks that no OS process of
    // any VM this kernel booted is left: a test that leaks VMs fails here.
    cleanup: async () => {
      const vms = new Set<string>();
      for (const g of await k.kernel.listGroups(ADMIN)) {
        for (const p of await k.kernel.listProcesses(g.gid)) if (p.compute_id) vms.add(p.compute_id);
        await k.kernel.deleteGroup(g.gid).catch(() => {});
      }
      await k.close();
      if (!dataDir) rmSync(dir, { recursive: true, force: true });
      const left = [...vms].flatMap((id) => osProcessesOfVm(id));
      for (const pid of left) process.kill(pid, 'SIGKILL');
      if (left.length > 0) throw new Error(`${left.length} OS processes of sim VMs were left running after the test`);
    },
  };
}

/** Processes of the sim VM `id` still in the OS process table (by the marker every VM process inherits). */
export function osProcessesOfVm(id: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSafe('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue;
    try {
      const env = readFileSync(`/proc/${entry}/environ`, 'latin1');
      if (env.split('\0').includes(`RACK_SIM_VM=${id}`)) out.push(Number(entry));
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Resolves with the first state of the process that satisfies `pred` (checked now, then on each event). */
export function untilProcess(k: RunningKernel, gid: string, pid: number, pred: (p: Process) => boolean, ms = 30_000): Promise<Process> {
  return until(
    k.kernel.events,
    'process',
    (p: Process) => p.gid === gid && p.pid === pid,
    async () => {
      const p = await k.kernel.getProcess(gid, pid).catch(() => null);
      return p && pred(p) ? p : null;
    },
    Date.now() + ms,
    { timeoutMessage: `process ${pid} did not reach the expected state in ${ms} ms` },
  );
}
