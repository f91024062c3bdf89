// Helpers of the guest suite: a kernel with the nspawn driver that can be taken down and brought
// back on the same port and data dir, the `rack` CLI against it, commands inside a guest, and the
// checks that nothing of a machine is left on the host.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { ADMIN } from '../../src/auth/auth.js';
import { silentLogger } from '../../src/common/log.js';
import { until } from '../../src/common/until.js';
import { processesIn, readVm, type NspawnVm } from '../../src/compute/nspawn/index.js';
import { alive, stopMachine } from '../../src/compute/nspawn/machine.js';
import type { AgentPresence } from '../../src/kernel/events.js';
import { isTerminal, type Process } from '../../src/protocol/process.js';
import { startKernel, type RunningKernel } from '../../src/server/start.js';

const run = promisify(execFile);
export const IMAGES = process.env.RACK_IMAGES || '/var/lib/rack/images';
export const MIRROR = process.env.RACK_TEST_MIRROR || '/var/cache/rack/test-mirror';
const TOKEN = 'guest-suite-admin-token-0123456789';

export class GuestKernel {
  private constructor(
    public k: RunningKernel,
    readonly dataDir: string,
    private readonly port: number,
  ) {}

  static async start(): Promise<GuestKernel> {
    const dataDir = mkdtempSync(join(tmpdir(), 'rack-guest-'));
    process.env.RACK_NSPAWN_MIRROR = MIRROR;
    const k = await GuestKernel.boot(dataDir, 0);
    return new GuestKernel(k, dataDir, Number(new URL(k.url).port));
  }

  private static boot(dataDir: string, port: number): Promise<RunningKernel> {
    return startKernel({ listen: `127.0.0.1:${port}`, dataDir, driver: 'nspawn', templates: [IMAGES], adminToken: TOKEN, log: silentLogger() });
  }

  get kernel(): RunningKernel['kernel'] {
    return this.k.kernel;
  }

  /** The kernel goes away for `ms` (its API, relay and metadata service with it), then comes back. */
  async outage(ms: number): Promise<void> {
    await this.k.close();
    await sleep(ms);
    this.k = await GuestKernel.boot(this.dataDir, this.port);
  }

  /** `rack ARGS...` as an operator runs it. */
  async rack(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const r = await run(process.execPath, ['dist/cli/main.js', ...args], { env: { ...process.env, RACK_URL: this.k.url, RACK_TOKEN: TOKEN } });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  }

  async ps(gid: string): Promise<Process[]> {
    const r = await this.rack('ps', '--gid', gid, '--json');
    if (r.code !== 0) throw new Error(`rack ps: ${r.stderr}`);
    return JSON.parse(r.stdout) as Process[];
  }

  /** Resolves with the process once `ok` holds for it (checked now and on every change); fails after `ms`. */
  until(gid: string, pid: number, ok: (p: Process) => boolean, ms: number, what: string): Promise<Process> {
    const kernel = this.kernel;
    return until(
      kernel.events,
      'process',
      (p: Process) => p.gid === gid && p.pid === pid,
      async () => {
        const p = await kernel.getProcess(gid, pid);
        return ok(p) ? p : null;
      },
      Date.now() + ms,
      { timeoutMessage: `process ${pid}: not ${what} within ${ms / 1000} s` },
    );
  }

  ended(gid: string, pid: number, ms: number): Promise<Process> {
    return this.until(gid, pid, (p) => isTerminal(p.status), ms, 'ended');
  }

  /** Resolves once the process's guest agent is connected; fails after `ms`. */
  agentConnected(gid: string, pid: number, ms: number): Promise<true> {
    const kernel = this.kernel;
    return until(
      kernel.events,
      'agent',
      (e: AgentPresence) => e.gid === gid && e.pid === pid,
      () => (kernel.agentConnected(gid, pid) ? true : null),
      Date.now() + ms,
      { timeoutMessage: `the agent of process ${pid} did not connect within ${ms / 1000} s` },
    );
  }

  vm(p: Process): NspawnVm {
    const vm = p.compute_id ? readVm(this.dataDir, p.compute_id) : null;
    if (!vm) throw new Error(`process ${p.pid} has no nspawn machine (compute id ${p.compute_id})`);
    return vm;
  }

  /** Ends every group, stops the kernel, and stops whatever machine is still recorded (after a failure). */
  async close(): Promise<void> {
    try {
      for (const g of await this.kernel.listGroups(ADMIN)) await this.kernel.deleteGroup(g.gid).catch(() => {});
      await this.k.close();
    } finally {
      const vmsDir = join(this.dataDir, 'vms');
      for (const id of existsSync(vmsDir) ? readdirSync(vmsDir) : []) {
        const vm = readVm(this.dataDir, id);
        if (!vm) continue;
        await stopMachine(vm.nspawn, vm.leader, 0);
        if (existsSync(`/run/netns/${vm.netns}`)) await run('ip', ['netns', 'delete', vm.netns]).catch(() => {});
      }
      const host = `rack-${readFileSync(join(this.dataDir, 'kernel-id'), 'utf8').replace(/[^0-9a-f]/g, '').slice(0, 8)}`;
      if (existsSync(`/run/netns/${host}`)) await run('ip', ['netns', 'delete', host]).catch(() => {});
      rmSync(this.dataDir, { recursive: true, force: true });
    }
  }
}

/** A command inside the guest, in all of its namespaces, as root there. */
export async function inGuest(vm: NspawnVm, cmd: string[], timeoutMs = 60_000): Promise<string> {
  const { stdout } = await run('nsenter', ['--target', String(vm.leader.pid), '--mount', '--uts', '--ipc', '--net', '--pid', '--root', '--wd', '--', ...cmd], { timeout: timeoutMs });
  return stdout;
}

/** `systemctl show UNIT` as a map. */
export async function unitProperties(vm: NspawnVm, unit: string): Promise<Record<string, string>> {
  const out = await inGuest(vm, ['systemctl', 'show', unit, '--no-pager']);
  return Object.fromEntries(out.split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

/** The messages dckinit logged (its app's lines among them), from the guest's journal. */
export async function agentJournal(vm: NspawnVm): Promise<string[]> {
  const out = await inGuest(vm, ['journalctl', '-u', 'dckinit.service', '-o', 'cat', '--no-pager']);
  return out.split('\n').flatMap((l) => {
    try {
      return [String((JSON.parse(l) as { msg?: unknown }).msg ?? '')];
    } catch {
      return [];
    }
  });
}

/** Resolves once the machine has stopped (no event tells the host: polled); fails after `ms`. */
export async function machineGone(vm: NspawnVm, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (alive(vm.nspawn) || alive(vm.leader)) {
    if (Date.now() > deadline) throw new Error(`machine ${vm.id} still runs after ${ms / 1000} s`);
    await sleep(250);
  }
}

/** What is left on the host of machines that were destroyed: processes, namespaces, mounts. */
export function leftovers(vms: NspawnVm[]): string[] {
  const out: string[] = [];
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
  for (const vm of vms) {
    if (alive(vm.nspawn)) out.push(`${vm.id}: systemd-nspawn ${vm.nspawn.pid} still runs`);
    if (alive(vm.leader)) out.push(`${vm.id}: the guest's systemd ${vm.leader.pid} still runs`);
    const procs = vm.pidns ? processesIn(vm.pidns) : [];
    if (procs.length > 0) out.push(`${vm.id}: ${procs.length} processes left in its PID namespace`);
    if (existsSync(`/run/netns/${vm.netns}`)) out.push(`${vm.id}: network namespace ${vm.netns} left`);
    if (mounts.includes(vm.netns) || mounts.includes(vm.id)) out.push(`${vm.id}: a mount is left`);
  }
  return out;
}
