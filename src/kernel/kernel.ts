import { randomUUID } from 'node:crypto';
import type { Principal, ProcessTokens } from '../auth/auth.js';
import { requireSelfOrAncestor } from '../auth/policy.js';
import { RackError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { ComputeDriver } from '../compute/driver.js';
import {
  DEFAULT_QUOTAS,
  isTerminal,
  type AppState,
  type Args,
  type Group,
  type Process,
  type ProcessField,
  type ProcessStatus,
  type Quotas,
  type SignalName,
  type WaitResult,
} from '../protocol/process.js';
import type { Capacity, PoolView, QueuedFork } from '../protocol/resources.js';
import type { JsonText } from '../protocol/json-text.js';
import { Scheduler } from '../scheduler/scheduler.js';
import { aliveLease, BOOT_LEASE_MS, bootLease, LEASE_RENEW_MS, LEASE_TTL_MS, LocalBus, RECHECK_MS, type KernelBus } from '../bus/bus.js';
import type { NewProcess, ProcessFilter, Store } from '../store/store.js';
import { Adoption } from './adoption.js';
import { Agents, type AgentLink } from './agents.js';
import { Booter } from './boot.js';
import { Hooks, KernelEvents, type ProcessHooks } from './events.js';
import { Killer, type KillOptions } from './kill.js';
import { ProcessTable } from './process-table.js';
import { ForkQueue } from './queue.js';
import { reconcile } from './reconcile.js';
import { Waits } from './wait.js';

export type { AgentLink } from './agents.js';
export type { KillOptions } from './kill.js';

export interface KernelOptions {
  store: Store;
  compute: ComputeDriver;
  /** Issues the tokens a new process and its agent act with. */
  tokens: { issue(gid: string, pid: number): Promise<ProcessTokens> };
  log: Logger;
  /** The kernel's URL as a VM reaches it (goes into each VM's metadata as rack_url); known once listening. */
  url: () => string;
  forkLimit?: number;
  defaultGraceMs?: number;
  bootConcurrency?: number;
  /** The kernel-wide resource pool's bounds (the project's limits, if the driver has any, apply too). */
  pool?: Capacity;
  /** The operator's quotas for groups created without their own. */
  quotas?: Partial<Quotas>;
  /** The CA (PEM) VMs trust for this kernel's TLS certificate; none for http. */
  ca?: string;
  /** How this kernel hears the others on the same store (src/bus); default: alone (LocalBus). */
  bus?: KernelBus;
}

export interface GroupInput {
  name: string;
  description?: string;
  template?: string;
  flavor?: string;
  args?: Args;
  quotas?: Partial<Quotas>;
  /** Raw user_data every fork of the group gets unless it gives its own. */
  userdata?: string;
}

export interface ForkInput {
  ppid?: number | null;
  name?: string;
  template?: string;
  flavor?: string;
  args?: Args;
  /** Raw user_data (already decoded from base64). */
  userdata?: string;
  count?: number;
  /** Queue order: higher boots first (default 0). */
  priority?: number;
  /** How long a queued process waits for capacity before it ends in ERROR (default: as long as it takes). */
  timeoutMs?: number;
  /** Fail with no_capacity instead of queueing. */
  noQueue?: boolean;
}

/**
 * Process Management: groups, the process table and its system calls (fork, exit, kill, wait,
 * signal). It owns every state transition; each mechanism lives in its own module (boot, kill,
 * agents, wait, reconcile) and this class puts them together. Who may call what is checked by
 * the operation table (src/api) before a call gets here; what depends on the process tree
 * (a process forks only its own children, kills only its descendants) is checked here.
 */
export class Kernel {
  readonly events = new KernelEvents();
  readonly forkLimit: number;
  readonly defaultGraceMs: number;
  /** The Resource Scheduler: pools and the fork queue. */
  readonly scheduler: Scheduler;
  private readonly store: Store;
  private readonly compute: ComputeDriver;
  private readonly log: Logger;
  private readonly hooks: Hooks;
  private readonly table: ProcessTable;
  private readonly agents: Agents;
  private readonly booter: Booter;
  private readonly killer: Killer;
  private readonly waits: Waits;
  private readonly queue: ForkQueue;
  private readonly adoption: Adoption;
  private readonly background = new Set<Promise<unknown>>();
  /**
   * Groups do not change once made: they are kept here from their first read until deleted, by
   * a kernel alone on its store (with others, a group one of them deletes is gone at once on all).
   */
  private readonly groups = new Map<string, Group>();
  private readonly defaultQuotas: Quotas;
  private readonly bus: KernelBus;
  /**
   * With other kernels on the store: leases this kernel holds (renewed while work runs under
   * them), whether it is the one doing the kernel-wide duties, and the timer that keeps or takes
   * that role.
   */
  private readonly held = new Map<string, { count: number; timer: NodeJS.Timeout }>();
  private leading = false;
  private leaderTimer: NodeJS.Timeout | null = null;
  private syncing: Promise<void> | null = null;
  private syncAgain = false;

  constructor(private readonly opts: KernelOptions) {
    this.store = opts.store;
    this.bus = opts.bus ?? new LocalBus();
    const recheckMs = this.bus.shared ? RECHECK_MS : undefined;
    this.compute = opts.compute;
    this.log = opts.log;
    this.forkLimit = opts.forkLimit ?? 1000;
    this.defaultGraceMs = opts.defaultGraceMs ?? 10_000;
    this.defaultQuotas = { ...DEFAULT_QUOTAS, ...opts.quotas };
    this.hooks = new Hooks(this.log);
    this.table = new ProcessTable(this.store.processes, this.events, this.hooks, this.log);
    this.agents = new Agents(this.store.signals, this.events, this.log, (w) => this.track(w), this.bus);
    this.booter = new Booter({
      compute: this.compute,
      table: this.table,
      processes: this.store.processes,
      log: this.log,
      url: opts.url,
      concurrency: opts.bootConcurrency ?? 16,
      ca: opts.ca,
      killing: this.bus.shared ? (p) => this.killer.covers(p) : undefined,
    });
    this.scheduler = new Scheduler({ store: this.store.schedule, compute: this.compute, log: this.log, capacity: opts.pool });
    this.queue = new ForkQueue({
      scheduler: this.scheduler,
      table: this.table,
      booter: this.booter,
      groups: this.store.groups,
      tokens: opts.tokens,
      log: this.log,
      track: (w) => this.track(w),
      // Every kernel restores the whole queue from the store: the one that takes this lease boots the fork.
      claim: async (gid, pid) => {
        if (!this.bus.shared) return true;
        if (!(await this.bus.acquire(bootLease(gid, pid), BOOT_LEASE_MS))) return false;
        // Out of the queue, holding its share: the other kernels count it so.
        this.bus.publish({ t: 'schedule' });
        return true;
      },
    });
    this.killer = new Killer({ processes: this.store.processes, kills: this.store.kills, table: this.table, agents: this.agents, compute: this.compute, events: this.events, log: this.log, queue: this.scheduler, recheckMs });
    this.waits = new Waits(this.store.processes, this.events, recheckMs);
    this.adoption = new Adoption({ processes: this.store.processes, table: this.table, compute: this.compute, booter: this.booter, leases: this.bus, log: this.log });
    this.compute.onChange((c) => this.track(this.booter.vmChanged(c)));
    // The kernel's own reaction; the other parts register theirs in src/server/start.ts.
    this.use({ name: 'queued signals', ended: (p) => this.agents.forget(p.gid, p.pid) });
    this.use({
      name: 'resource pools',
      ended: (p) => this.scheduler.release(p.gid, p.pid),
      // What this kernel holds or queues for a process another kernel ended is free again here.
      endedElsewhere: (p) => this.scheduler.release(p.gid, p.pid),
      groupDeleted: (gid) => this.scheduler.forgetGroup(gid),
      groupDeletedElsewhere: (gid) => this.scheduler.forgetGroup(gid),
    });
  }

  /** Registers reactions to forks, ends and group deletions (see ProcessHooks). */
  use(hooks: ProcessHooks): void {
    this.hooks.use(hooks);
  }

  // ---- groups -------------------------------------------------------------------------------

  async createGroup(input: GroupInput): Promise<Group> {
    const group: Group = {
      gid: randomUUID(),
      name: input.name,
      description: input.description ?? '',
      template: input.template ?? null,
      flavor: input.flavor ?? null,
      args: input.args ?? {},
      quotas: { ...this.defaultQuotas, ...input.quotas },
      created_at: new Date().toISOString(),
    };
    await this.store.groups.create(group, input.userdata ?? null);
    this.log.info({ gid: group.gid, group: group.name }, 'group created');
    return group;
  }

  async listGroups(who: Principal): Promise<Group[]> {
    const all = await this.store.groups.list();
    return who.kind === 'admin' ? all : all.filter((g) => g.gid === who.gid);
  }

  async getGroup(gid: string): Promise<Group> {
    const known = this.groups.get(gid);
    if (known) return known;
    const g = await this.store.groups.get(gid);
    if (!g) throw new RackError('not_found', `no group ${gid}`);
    if (!this.bus.shared) this.groups.set(gid, g);
    return g;
  }

  /** What the group may hold (see Quotas). */
  async quotas(gid: string): Promise<Quotas> {
    return (await this.getGroup(gid)).quotas;
  }

  /** Kills every process of the group (KILL, deepest first), then forgets the group. */
  async deleteGroup(gid: string): Promise<void> {
    await this.getGroup(gid);
    const roots = await this.store.processes.list(gid, { ppid: null });
    for (const root of roots) await this.killer.terminate(gid, root.pid, 'KILL', 0);
    await this.store.groups.delete(gid);
    this.groups.delete(gid);
    await this.hooks.run('groupDeleted', gid);
    this.events.emit('group-deleted', gid);
    this.log.info({ gid }, 'group deleted');
  }

  // ---- processes ----------------------------------------------------------------------------

  async listProcesses(gid: string, filter: ProcessFilter = {}): Promise<Process[]> {
    await this.getGroup(gid);
    return this.store.processes.list(gid, filter);
  }

  /** listProcesses as JSON text, for an answer that passes it on; `fields`: only these of each process. */
  async listProcessesText(gid: string, filter: ProcessFilter = {}, fields?: readonly ProcessField[]): Promise<JsonText> {
    await this.getGroup(gid);
    return this.store.processes.listText(gid, filter, fields);
  }

  async getProcess(gid: string, pid: number): Promise<Process> {
    const p = await this.store.processes.get(gid, pid);
    if (!p) {
      await this.getGroup(gid);
      throw new RackError('not_found', `no process ${pid} in group ${gid}`);
    }
    return p;
  }

  /** How many processes there are in each status, all groups together. */
  processCounts(): Promise<Partial<Record<ProcessStatus, number>>> {
    return this.store.processes.countByStatus();
  }

  /**
   * Creates `count` children of `ppid` (or a root process, for an operator) and boots their VMs;
   * answers once the compute service has accepted every VM (BUILD, or ACTIVE already). What the
   * resource pools cannot hold yet is QUEUED and boots when capacity frees up (or, with noQueue,
   * the fork fails with no_capacity). All or nothing: a refusal rolls the whole fork back and is
   * the answer. A fork sent again with the same request id (`rid`) boots nothing: it answers the
   * processes of the first, as they are now.
   */
  async fork(who: Principal, gid: string, input: ForkInput, rid: string | null = null): Promise<Process[]> {
    const group = await this.getGroup(gid);
    const count = input.count ?? 1;
    if (!Number.isInteger(count) || count < 1 || count > this.forkLimit) {
      throw new RackError('bad_request', `count must be an integer from 1 to ${this.forkLimit}, got ${count}`);
    }
    let ppid = input.ppid ?? null;
    if (who.kind === 'process') {
      if (ppid !== null && ppid !== who.pid) {
        throw new RackError('forbidden', `process ${who.pid} may fork only its own children, not children of ${ppid}`);
      }
      ppid = who.pid;
    }
    let parent: Process | null = null;
    if (ppid !== null) {
      parent = await this.store.processes.get(gid, ppid);
      if (!parent) throw new RackError('not_found', `no process ${ppid} in group ${gid}`);
      if (isTerminal(parent.status)) throw new RackError('conflict', `process ${ppid} has ended (${parent.status}) and cannot fork`);
    }
    const template = input.template ?? parent?.template ?? group.template;
    if (!template) throw new RackError('bad_request', 'no template: give "template" here or when creating the group');
    const flavor = input.flavor ?? parent?.flavor ?? group.flavor;
    const priority = input.priority ?? 0;
    const size = await this.scheduler.size(template, flavor);
    const hold = this.scheduler.reserve(gid, size, count, priority, input.noQueue ?? false);
    const row: NewProcess = {
      gid,
      ppid,
      name: input.name ?? (parent ? `${parent.name}-child` : group.name),
      template,
      flavor,
      args: { ...(parent ? parent.args : group.args), ...(input.args ?? {}) },
      status: 'BUILD',
      app_state: 'pending',
      app_status: '',
      exit_code: null,
      signal: null,
      error: null,
      compute_id: null,
    };
    let created: Process[];
    try {
      const made = await this.table.create(gid, Array.from({ length: count }, (_, i) => ({ ...row, status: i < hold.now ? 'BUILD' : 'QUEUED' })), group.quotas, rid);
      created = made.processes;
      if (made.replayed) {
        // Done before: what was reserved for it now goes back, and its processes are the answer.
        this.scheduler.cancel(hold);
        return Promise.all(created.map(async (p) => (await this.store.processes.get(gid, p.pid)) ?? p));
      }
    } catch (err) {
      this.scheduler.cancel(hold);
      throw err;
    }
    try {
      // Other kernels must know these boots are under way here (see Adoption): a claim each, at once.
      if (this.bus.shared) await Promise.all(created.slice(0, hold.now).map((p) => this.bus.acquire(bootLease(gid, p.pid), BOOT_LEASE_MS)));
      const deadline = input.timeoutMs === undefined ? null : Date.now() + input.timeoutMs;
      await this.scheduler.record(hold, created.map((p) => p.pid), { priority, deadline, userdata: input.userdata ?? null });
      // The other kernels count these in their pools (and queue the queued ones) once they have looked.
      if (this.bus.shared) this.bus.publish({ t: 'schedule' });
      const now = created.slice(0, hold.now);
      if (now.length < created.length) this.log.info({ gid, ppid, queued: created.length - now.length, priority }, 'fork queued for capacity');
      const tokens = await Promise.all(now.map((p) => this.opts.tokens.issue(gid, p.pid)));
      const userData = input.userdata ?? (await this.store.groups.userData(gid));
      await this.booter.bootAll(now, tokens, userData);
    } catch (err) {
      // Its queued processes leave the queue first: what the rollback frees must not boot them.
      for (const p of created) this.scheduler.unqueue(gid, p.pid);
      await this.table.rollback(created, (err as Error).message);
      throw err;
    }
    return Promise.all(created.map(async (p) => (await this.store.processes.get(gid, p.pid)) ?? p));
  }

  /** Sets the free-text status an app reports about itself. */
  async setAppStatus(gid: string, pid: number, appStatus: string): Promise<Process> {
    await this.getProcess(gid, pid);
    return (await this.table.change(gid, pid, { app_status: appStatus }))!;
  }

  /** The guest agent reports its app's state; `exited` ends the process with the app's status. */
  async reportAppState(gid: string, pid: number, state: AppState, exit: { code?: number | null; signal?: string | null } = {}): Promise<Process> {
    const p = await this.getProcess(gid, pid);
    if (state !== 'exited') return (await this.table.changeLive(gid, pid, { app_state: state, status: 'ACTIVE' })) ?? p;
    return this.exit(gid, pid, exit.code ?? null, exit.signal ?? null);
  }

  /** The app ended: with an exit code (EXITED) or by a signal (KILLED). Idempotent. */
  async exit(gid: string, pid: number, code: number | null, signal: string | null = null): Promise<Process> {
    const p = await this.getProcess(gid, pid);
    if (isTerminal(p.status)) return p;
    const bySignal = code === null && signal !== null;
    this.log.info({ gid, pid, code, signal }, 'exit');
    const ended = await this.table.end(gid, pid, {
      status: bySignal ? 'KILLED' : 'EXITED',
      exit_code: bySignal ? null : (code ?? 0),
      signal: bySignal ? (signal as SignalName) : null,
      app_state: 'exited',
    });
    return ended ?? (await this.getProcess(gid, pid));
  }

  /** Delivers a signal to the app of one process (no cascade, no destroy). */
  async signal(who: Principal, gid: string, pid: number, name: Exclude<SignalName, 'KILL'>): Promise<void> {
    const target = await this.getProcess(gid, pid);
    await requireSelfOrAncestor(who, this.store.processes, target, 'signal');
    if (isTerminal(target.status)) throw new RackError('conflict', `process ${pid} has ended (${target.status})`);
    await this.agents.send(gid, pid, { event: 'signal', signal: name });
    this.log.info({ gid, pid, signal: name }, 'signal');
  }

  /** The tail of a process's VM console (its agent's log and its app's output); '' when there is no VM. */
  async console(who: Principal, gid: string, pid: number, lines: number): Promise<string> {
    const target = await this.getProcess(gid, pid);
    await requireSelfOrAncestor(who, this.store.processes, target, 'read the console of');
    return target.compute_id ? this.compute.consoleOutput(target.compute_id, lines) : '';
  }

  /**
   * kill(): ends the process and every descendant, deepest first (see Killer). Answers at once
   * with the PIDs concerned; the work continues in the background.
   */
  async kill(who: Principal, gid: string, pid: number, opts: KillOptions = {}): Promise<number[]> {
    const target = await this.getProcess(gid, pid);
    await requireSelfOrAncestor(who, this.store.processes, target, 'kill');
    const order = await this.killer.subtree(gid, pid);
    const [signal, graceMs] = [opts.signal ?? 'TERM', opts.graceMs ?? this.defaultGraceMs];
    // Stored before the answer (terminate stores it again, for its other callers): a kernel killed
    // right after answering finishes the kill when it restarts, on a store whose writes take a
    // round trip too.
    await this.killer.record(gid, pid, signal, graceMs);
    this.track(this.runKill(gid, pid, signal, graceMs));
    return order.map((p) => p.pid);
  }

  /** wait(): how a child of `ppid` ended (see Waits); long-polls up to `timeoutMs`. */
  async wait(gid: string, ppid: number, opts: { pid?: number; timeoutMs: number; rid?: string | null }): Promise<WaitResult> {
    await this.getProcess(gid, ppid);
    return this.waits.child(gid, ppid, opts.pid, Date.now() + opts.timeoutMs, opts.rid ?? null);
  }

  /** Waits until the given apps report `running` (or `ready`: with ready, until they are ready); 409 if one ends first, 408 on timeout. */
  async waitRunning(gid: string, pids: readonly number[], timeoutMs: number, ready = false): Promise<Process[]> {
    return this.waits.running(gid, pids, Date.now() + timeoutMs, ready);
  }

  // ---- resource pools -----------------------------------------------------------------------

  /** The kernel-wide pool, the group's pool and its queued forks. */
  async pool(gid: string): Promise<{ kernel: PoolView; group: PoolView; queue: QueuedFork[] }> {
    await this.getGroup(gid);
    return this.scheduler.view(gid);
  }

  /** Sets a group's own pool (null: none); queued forks that fit now boot. */
  async setPool(gid: string, capacity: Capacity | null): Promise<void> {
    await this.getGroup(gid);
    await this.scheduler.setPool(gid, capacity);
    if (this.bus.shared) this.bus.publish({ t: 'schedule' });
  }

  // ---- guest agents -------------------------------------------------------------------------

  attachAgent(gid: string, pid: number, link: AgentLink): () => void {
    return this.agents.attach(gid, pid, link);
  }

  agentConnected(gid: string, pid: number): boolean {
    return this.agents.connected(gid, pid);
  }

  // ---- other kernels on the same store (src/bus) ----------------------------------------------

  /** Another kernel changed a process: what is kept here for an ended one goes, then observers here hear of it. */
  async changedElsewhere(p: Process): Promise<void> {
    if (isTerminal(p.status)) await this.hooks.run('endedElsewhere', p);
    this.events.emit('process', p, true);
  }

  /** Another kernel recorded a fork or set a pool: the pools and the queue here look at the store. */
  scheduleChangedElsewhere(): void {
    this.syncPools();
  }

  /** Brings the pools and the queue in line with the store (Scheduler.sync); one at a time, once more if asked meanwhile. */
  private syncPools(): void {
    if (this.syncing) {
      this.syncAgain = true;
      return;
    }
    this.syncing = (async () => {
      do {
        this.syncAgain = false;
        await this.scheduler.sync();
      } while (this.syncAgain);
    })().finally(() => (this.syncing = null));
    this.track(this.syncing);
  }

  /** Another kernel deleted a group (with its processes, each announced as it ended). */
  async groupDeletedElsewhere(gid: string): Promise<void> {
    await this.hooks.run('groupDeletedElsewhere', gid);
    this.events.emit('group-deleted', gid, true);
  }

  /** Another kernel queued signals for a process: its agent gets them if it is connected here. */
  signalsQueuedElsewhere(gid: string, pid: number): void {
    this.agents.queuedElsewhere(gid, pid);
  }

  /** The periodic look at the store, for what a lost publication would have said. */
  recheck(): void {
    this.agents.recheck();
    this.syncPools();
  }

  /** Another kernel recorded a kill whose lease this kernel holds (it runs a kill of the same process): it runs this one too. */
  async killRecordedElsewhere(gid: string, pid: number): Promise<void> {
    if (!this.held.has(killLease(gid, pid))) return;
    const k = (await this.killer.unfinished()).find((u) => u.gid === gid && u.pid === pid);
    if (k) this.track(this.runKill(gid, pid, k.signal, k.graceMs));
  }

  /**
   * Runs a kill under its lease, so that one kernel runs it; when another kernel holds the lease
   * (it runs a kill of the same process), that kernel is told to run this one.
   */
  private async runKill(gid: string, pid: number, signal: 'TERM' | 'KILL', graceMs: number): Promise<void> {
    const ran = await this.underLease(killLease(gid, pid), () => this.killer.terminate(gid, pid, signal, graceMs));
    if (!ran) this.bus.publish({ t: 'kill', gid, pid });
  }

  /** Runs `work` holding the lease `name`, renewed while it runs; false, and nothing run, when another kernel holds it. */
  private async underLease(name: string, work: () => Promise<void>): Promise<boolean> {
    if (!this.bus.shared) {
      await work();
      return true;
    }
    let h = this.held.get(name);
    if (!h) {
      if (!(await this.bus.acquire(name, LEASE_TTL_MS))) return false;
      // Another call of this kernel may have taken it meanwhile.
      h = this.held.get(name);
      if (!h) {
        const timer = setInterval(() => void this.bus.acquire(name, LEASE_TTL_MS).catch((err: Error) => this.log.warn({ lease: name, err: err.message }, 'cannot renew a lease')), LEASE_RENEW_MS);
        timer.unref();
        h = { count: 0, timer };
        this.held.set(name, h);
      }
    }
    h.count++;
    try {
      await work();
    } finally {
      if (--h.count === 0) {
        clearInterval(h.timer);
        this.held.delete(name);
        await this.bus.release(name).catch(() => {});
      }
    }
    return true;
  }

  /**
   * The kernel-wide duties (reconcile with the compute service, unfinished kills, watching the
   * VMs of kernels that died) are one kernel's: the holder of the `leader` lease. Each turn it
   * keeps the lease, runs the kills whose kernel died (their lease lapsed) and adopts the VMs of
   * live processes (see Adoption); a kernel that takes the lease over reconciles first.
   */
  private async lead(): Promise<void> {
    await this.bus.acquire(aliveLease(this.bus.id), LEASE_TTL_MS);
    const was = this.leading;
    this.leading = await this.bus.acquire('leader', LEASE_TTL_MS);
    if (!this.leading) {
      if (was) this.adoption.reset();
      return;
    }
    if (!was) {
      this.log.info('taking over the kernel-wide duties');
      const r = await reconcile({ processes: this.store.processes, table: this.table, compute: this.compute, log: this.log, takeover: true });
      this.log.info(r, 'reconciled');
    }
    await this.resumeKills();
    await this.adoption.adoptLive(RECHECK_MS);
  }

  /** Finishes the kills nobody runs: left by a previous run, or by a kernel that died (under their leases). */
  private async resumeKills(): Promise<number> {
    const kills = (await this.killer.unfinished()).filter((k) => !this.held.has(killLease(k.gid, k.pid)));
    for (const k of kills) {
      this.track(
        this.underLease(killLease(k.gid, k.pid), () => {
          this.log.info({ gid: k.gid, pid: k.pid, signal: k.signal, grace_ms: k.graceMs }, 'resuming an unfinished kill');
          return this.killer.terminate(k.gid, k.pid, k.signal, k.graceMs);
        }),
      );
    }
    return kills.length;
  }

  // ---- start and stop -----------------------------------------------------------------------

  /**
   * After a restart: agree with the compute service, then finish the kills left unfinished. With
   * other kernels on the store, that is the leader's work (see lead); every kernel restores the
   * fork queue and pools.
   */
  async reconcile(): Promise<{ lost: number; orphans: number }> {
    await this.bus.acquire(aliveLease(this.bus.id), LEASE_TTL_MS);
    this.leading = await this.bus.acquire('leader', LEASE_TTL_MS);
    const r = this.leading ? await reconcile({ processes: this.store.processes, table: this.table, compute: this.compute, log: this.log }) : { lost: 0, orphans: 0 };
    // The queue and the holdings of the processes that are still live come back as they were.
    await this.scheduler.load(async (gid, pid) => {
      const p = await this.store.processes.get(gid, pid);
      return p !== null && !isTerminal(p.status);
    });
    for (const p of this.leading ? await this.store.processes.listLive() : []) {
      if (p.status === 'QUEUED' && !this.scheduler.isQueued(p.gid, p.pid)) await this.table.end(p.gid, p.pid, { status: 'ERROR', error: 'the fork was interrupted by a kernel restart' });
    }
    this.queue.drain();
    const kills = this.leading ? await this.resumeKills() : 0;
    this.log.info({ ...r, kills, leading: this.leading }, 'reconciled');
    if (this.bus.shared) {
      this.leaderTimer = setInterval(() => this.track(this.lead()), LEASE_RENEW_MS);
      this.leaderTimer.unref();
    }
    return r;
  }

  private track<T>(p: Promise<T>): void {
    const guarded = p.catch((err: unknown) => this.log.error({ err }, 'background task failed'));
    this.background.add(guarded);
    void guarded.finally(() => this.background.delete(guarded));
  }

  /** Stops accepting background work and waits for what is running. VMs keep running. */
  async close(): Promise<void> {
    if (this.leaderTimer) clearInterval(this.leaderTimer);
    this.booter.close();
    this.queue.close();
    this.scheduler.close();
    await Promise.all([...this.background]);
    if (this.leading) await this.bus.release('leader').catch(() => {});
    await this.bus.release(aliveLease(this.bus.id)).catch(() => {});
  }
}

/** A kill's lease: in its group's slot. */
function killLease(gid: string, pid: number): string {
  return `{${gid}}:kill:${pid}`;
}
