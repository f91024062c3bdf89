import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ADMIN } from '../auth/auth.js';
import { silentLogger, type Logger } from '../common/log.js';
import { until } from '../common/until.js';
import { processesIn, readVm } from '../compute/nspawn/index.js';
import { findVmsProcesses } from '../compute/sim/os-processes.js';
import { consolePath } from '../compute/sim/sim-driver.js';
import { startKernel, type RunningKernel } from '../server/start.js';
import { isTerminal, LIVE_STATUSES, type Process } from '../protocol/process.js';
import { ConsoleFollower, type AppLine } from './console-follower.js';
import { KernelProcess } from './kernel-process.js';
import { freeLoopbackPort, startPrivateRedis, type PrivateRedis } from './redis-server.js';
import type { Lifetime } from './render.js';

const CONSOLE_LAG_MS = 1500;

export interface SimOptions {
  /** Directories holding VM templates (sim), or image stores (nspawn; empty: the default one). */
  templates: string[];
  /** sim (default): VMs are local process trees; nspawn: real systemd guests (root only). */
  driver?: 'sim' | 'nspawn';
  log?: Logger;
  /** Keep the data dir after shutdown (for --keep). */
  keepData?: boolean;
  /** Called with each line an app prints in any VM (read from the VM consoles). */
  onAppLine?: (line: AppLine) => void;
  /**
   * Where the kernels keep their state: `sqlite` (the default: DATA/rack.db), `redis` (a private
   * redis-server started for the sim), or a redis:// or redis+cluster:// URL.
   */
  store?: string;
  /**
   * Kernels on that store (default 1; more need Redis). The first runs in this process; the
   * others are `rack kernel` processes, and every VM is given every kernel's URL.
   */
  kernels?: number;
}

/** The kernels beyond the first: their processes, data dirs, and the store and files they share with it. */
interface Others {
  processes: KernelProcess[];
  dataDirs: string[];
  filesDir: string | null;
  redis: PrivateRedis | null;
}

/**
 * RACK on one machine: a kernel with the sim driver on a free loopback port and a fresh data dir,
 * plus what a demo needs around it: every VM's lifetime, and a clean shutdown that proves no
 * process is left behind.
 */
export class Sim {
  readonly lifetimes = new Map<string, Lifetime & { gid: string; compute: string | null; status: string }>();
  private readonly computeIds = new Set<string>();
  /** nspawn machines: what would be left of each (its PID namespace, its network namespace). */
  private readonly machines = new Map<string, { pidns: string | null; netns: string }>();
  private readonly ending = new Map<string, Promise<void>>();
  private readonly consoles: ConsoleFollower | null;

  private constructor(
    readonly kernel: RunningKernel,
    private readonly opts: SimOptions,
    private readonly others: Others,
  ) {
    this.consoles = opts.onAppLine ? new ConsoleFollower(opts.onAppLine) : null;
    kernel.kernel.events.on('process', (p: Process) => this.track(p));
  }

  static async start(opts: SimOptions): Promise<Sim> {
    const kernels = opts.kernels ?? 1;
    const store = opts.store ?? 'sqlite';
    if (!Number.isInteger(kernels) || kernels < 1) throw new Error(`kernels must be a whole number from 1, got ${kernels}`);
    if (store !== 'sqlite' && store !== 'redis' && !/^redis(\+cluster)?:\/\//.test(store)) throw new Error(`the store is sqlite, redis or a redis:// URL, got "${store}"`);
    if (kernels > 1 && store === 'sqlite') throw new Error('several kernels need a store they share: give --store redis (or a redis:// URL)');
    if (kernels > 1 && opts.driver === 'nspawn') throw new Error('several kernels run with the sim driver only');
    const adminToken = `rka_${randomBytes(24).toString('base64url')}`;
    const others: Others = { processes: [], dataDirs: [], filesDir: null, redis: null };
    const undo = async (): Promise<void> => {
      await Promise.all(others.processes.map((k) => k.stop('SIGKILL')));
      await others.redis?.stop();
      for (const d of [...others.dataDirs, others.filesDir]) if (d) rmSync(d, { recursive: true, force: true });
    };
    const dataDir = mkdtempSync(join(tmpdir(), 'rack-sim-'));
    try {
      if (store === 'redis') others.redis = await startPrivateRedis();
      const storeUrl = others.redis?.url ?? (store === 'sqlite' ? null : store);
      // Every VM is given every kernel's URL, so the ports are picked before any kernel listens.
      const ports = kernels > 1 ? await Promise.all(Array.from({ length: kernels }, () => freeLoopbackPort())) : [0];
      const publicUrl = kernels > 1 ? ports.map((p) => `http://127.0.0.1:${p}`).join(',') : undefined;
      // One directory of group files for every kernel (a shared filesystem when they are machines).
      if (kernels > 1) others.filesDir = mkdtempSync(join(tmpdir(), 'rack-sim-files-'));
      const filesDir = others.filesDir ?? undefined;
      const kernel = await startKernel({ listen: `127.0.0.1:${ports[0]}`, dataDir, templates: opts.templates, driver: opts.driver, adminToken, log: opts.log ?? silentLogger(), storeUrl, publicUrl, filesDir });
      try {
        for (const port of ports.slice(1)) {
          const dir = mkdtempSync(join(tmpdir(), 'rack-sim-'));
          others.dataDirs.push(dir);
          const args = ['--listen', `127.0.0.1:${port}`, '--data', dir, '--store', storeUrl!, '--public-url', publicUrl!, '--files-dir', filesDir!, ...opts.templates.flatMap((t) => ['--templates', t])];
          others.processes.push(await KernelProcess.start({ args, adminToken, logFile: join(dir, 'kernel.log') }));
        }
      } catch (err) {
        await kernel.close();
        throw err;
      }
      return new Sim(kernel, opts, others);
    } catch (err) {
      await undo();
      rmSync(dataDir, { recursive: true, force: true });
      throw err;
    }
  }

  /** The kernels beyond the first, as OS processes (`rack kernel`), in order. */
  get otherKernels(): readonly KernelProcess[] {
    return this.others.processes;
  }

  get url(): string {
    return this.kernel.url;
  }

  get adminToken(): string {
    return this.kernel.adminToken;
  }

  private track(p: Process): void {
    const key = `${p.gid}/${p.pid}`;
    const now = Date.now();
    const t: Lifetime & { gid: string; compute: string | null; status: string } = this.lifetimes.get(key) ?? { gid: p.gid, pid: p.pid, ppid: p.ppid, label: p.name, start: now, end: null, outcome: '', compute: null, status: p.status };
    if (t.status === 'QUEUED' && p.status !== 'QUEUED' && t.booted === undefined) t.booted = now;
    t.status = p.status;
    if (p.compute_id) {
      t.compute = p.compute_id;
      this.computeIds.add(p.compute_id);
      const vm = this.machines.has(p.compute_id) ? null : readVm(this.kernel.dataDir, p.compute_id);
      if (vm) this.machines.set(p.compute_id, { pidns: vm.pidns, netns: vm.netns });
      if (!isTerminal(p.status)) this.consoles?.follow(p.compute_id, consolePath(this.kernel.dataDir, p.compute_id), p.gid, p.pid);
    }
    if (isTerminal(p.status) && p.compute_id && this.consoles) {
      const id = p.compute_id;
      if (!this.machines.has(id)) this.consoles.end(id);
      // A real guest's journald copies the app's last lines to its console a moment after the
      // agent reported the exit: read on for a little while.
      else if (!this.ending.has(id)) this.ending.set(id, sleep(CONSOLE_LAG_MS).then(() => this.consoles?.end(id)));
    }
    if (isTerminal(p.status) && t.end === null) {
      t.end = now;
      t.outcome = p.status === 'EXITED' ? `exit ${p.exit_code}` : p.status === 'KILLED' ? `killed (${p.signal})` : `error: ${p.error ?? ''}`;
    }
    this.lifetimes.set(key, t);
  }

  /** Waits until every process of the group has ended (and its last console lines are read). */
  async untilAllEnded(gid: string, ms: number): Promise<boolean> {
    const k = this.kernel.kernel;
    const ended = await until(
      k.events,
      'process',
      (p: Process) => p.gid === gid && isTerminal(p.status),
      async () => ((await k.listProcesses(gid, { status: LIVE_STATUSES })).length === 0 ? true : null),
      Date.now() + ms,
      { onTimeout: () => false },
    );
    await Promise.all(this.ending.values());
    return ended;
  }

  /** OS processes still running for any VM this sim booted. */
  leftovers(): number {
    let n = [...findVmsProcesses(this.computeIds).values()].reduce((sum, pids) => sum + pids.length, 0);
    for (const m of this.machines.values()) n += (m.pidns ? processesIn(m.pidns).length : 0) + (existsSync(`/run/netns/${m.netns}`) ? 1 : 0);
    return n;
  }

  /**
   * Ends every group: roots get TERM with `graceSeconds`, then whatever is left is destroyed;
   * stops the kernel; answers how many OS processes of sim VMs are left (0 when clean).
   */
  async shutdown(graceSeconds = 5): Promise<number> {
    const k = this.kernel.kernel;
    for (const g of await k.listGroups(ADMIN)) {
      for (const root of await k.listProcesses(g.gid, { ppid: null })) {
        await k.kill(ADMIN, g.gid, root.pid, { signal: 'TERM', graceMs: graceSeconds * 1000 }).catch(() => {});
      }
      await this.untilAllEnded(g.gid, graceSeconds * 1000 + 10_000);
      // VMs of processes that had already ended but stayed (on_exit: stay) go too.
      await k.deleteGroup(g.gid).catch(() => {});
    }
    this.consoles?.close();
    await this.kernel.close();
    await Promise.all(this.others.processes.map((k) => k.stop('SIGTERM')));
    const left = this.leftovers();
    await this.others.redis?.stop();
    if (!this.opts.keepData) for (const d of [this.kernel.dataDir, ...this.others.dataDirs, this.others.filesDir]) if (d) rmSync(d, { recursive: true, force: true });
    return left;
  }
}
