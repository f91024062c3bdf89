import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { RackError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { ComputeDriver, VmChange } from '../compute/driver.js';
import type { SignalEvent } from '../protocol/channel.js';
import { META } from '../protocol/metadata.js';
import {
  isTerminal,
  waitResultOf,
  type AppState,
  type Args,
  type Group,
  type Process,
  type SignalName,
  type WaitResult,
} from '../protocol/process.js';
import type { NewProcess, Store } from '../store/store.js';
import type { Authenticator, Principal } from '../auth/auth.js';
import { requireAdmin, requireGroup, requireSelf, requireSelfOrAncestor } from '../auth/policy.js';

export interface KernelOptions {
  store: Store;
  compute: ComputeDriver;
  auth: Authenticator;
  log: Logger;
  /** The kernel's URL as a VM reaches it (goes into each VM's metadata as rack_url); known once listening. */
  url: () => string;
  forkLimit?: number;
  defaultGraceMs?: number;
  bootConcurrency?: number;
}

export interface GroupInput {
  name: string;
  description?: string;
  template?: string;
  flavor?: string;
  args?: Args;
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
}

export interface KillOptions {
  signal?: 'TERM' | 'KILL';
  graceMs?: number;
}

/** A live channel to one process's guest agent (a WebSocket, in the API layer). */
export interface AgentLink {
  send(event: SignalEvent): void;
}

const LIVE = ['BUILD', 'ACTIVE'] as const;

/**
 * The process table and its operations: fork, kill, wait, exit, signal. It owns every state
 * transition and announces each one as a 'process' event; the API layers only translate.
 */
export class Kernel extends EventEmitter {
  readonly store: Store;
  readonly compute: ComputeDriver;
  readonly auth: Authenticator;
  readonly forkLimit: number;
  readonly defaultGraceMs: number;
  private readonly log: Logger;
  private readonly url: () => string;
  private readonly agents = new Map<string, AgentLink>();

  /** Is the guest agent of this process connected right now? */
  agentConnected(gid: string, pid: number): boolean {
    return this.agents.has(`${gid}/${pid}`);
  }

  /** Agents whose queued signals are being sent: newer signals wait for them. */
  private readonly flushing = new Map<string, Promise<void>>();
  private readonly background = new Set<Promise<unknown>>();
  private bootSlots: number;
  private readonly bootQueue: Array<() => void> = [];
  private closed = false;

  constructor(opts: KernelOptions) {
    super();
    this.setMaxListeners(0);
    this.store = opts.store;
    this.compute = opts.compute;
    this.auth = opts.auth;
    this.log = opts.log;
    this.url = opts.url;
    this.forkLimit = opts.forkLimit ?? 1000;
    this.defaultGraceMs = opts.defaultGraceMs ?? 10_000;
    this.bootSlots = opts.bootConcurrency ?? 16;
    this.compute.onChange((c) => this.track(this.vmChanged(c)));
  }

  // ---- groups -------------------------------------------------------------------------------

  async createGroup(who: Principal, input: GroupInput): Promise<Group> {
    requireAdmin(who, 'creating a group');
    const group: Group = {
      gid: randomUUID(),
      name: input.name,
      description: input.description ?? '',
      template: input.template ?? null,
      flavor: input.flavor ?? null,
      args: input.args ?? {},
      created_at: new Date().toISOString(),
    };
    await this.store.groups.create(group);
    this.log.info({ gid: group.gid, group: group.name }, 'group created');
    return group;
  }

  async listGroups(who: Principal): Promise<Group[]> {
    const all = await this.store.groups.list();
    return who.kind === 'admin' ? all : all.filter((g) => g.gid === who.gid);
  }

  async getGroup(who: Principal, gid: string): Promise<Group> {
    requireGroup(who, gid);
    const g = await this.store.groups.get(gid);
    if (!g) throw new RackError('not_found', `no group ${gid}`);
    return g;
  }

  /** Kills every process of the group (KILL, deepest first), then forgets the group. */
  async deleteGroup(who: Principal, gid: string): Promise<void> {
    requireAdmin(who, 'deleting a group');
    await this.getGroup(who, gid);
    const roots = await this.store.processes.list(gid, { ppid: null });
    for (const root of roots) await this.terminate(gid, root.pid, { signal: 'KILL' });
    await this.store.groups.delete(gid);
    this.auth.forget(gid);
    this.emit('group-deleted', gid);
    this.log.info({ gid }, 'group deleted');
  }

  // ---- processes ----------------------------------------------------------------------------

  async listProcesses(who: Principal, gid: string, filter: { ppid?: number | null; status?: string[] } = {}): Promise<Process[]> {
    await this.getGroup(who, gid);
    return this.store.processes.list(gid, filter as never);
  }

  async getProcess(who: Principal, gid: string, pid: number): Promise<Process> {
    requireGroup(who, gid);
    const p = await this.store.processes.get(gid, pid);
    if (!p) {
      await this.getGroup(who, gid);
      throw new RackError('not_found', `no process ${pid} in group ${gid}`);
    }
    return p;
  }

  /**
   * Creates `count` children of `ppid` (or a root process, for an operator) and starts booting
   * their VMs; answers at once with the new processes in BUILD.
   */
  async fork(who: Principal, gid: string, input: ForkInput): Promise<Process[]> {
    const group = await this.getGroup(who, gid);
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
    if (!template) {
      throw new RackError('bad_request', 'no template: give "template" here or when creating the group');
    }
    const row: NewProcess = {
      gid,
      ppid,
      name: input.name ?? (parent ? `${parent.name}-child` : group.name),
      template,
      flavor: input.flavor ?? parent?.flavor ?? group.flavor,
      args: { ...(parent ? parent.args : group.args), ...(input.args ?? {}) },
      status: 'BUILD',
      app_state: 'pending',
      app_status: '',
      exit_code: null,
      signal: null,
      error: null,
      compute_id: null,
    };
    const created = await this.store.processes.insert(gid, Array.from({ length: count }, () => row));
    const tokens = await Promise.all(created.map((p) => this.auth.issue(gid, p.pid)));
    for (const [i, p] of created.entries()) {
      this.log.info({ gid, pid: p.pid, ppid: p.ppid, template }, 'fork');
      this.emit('process', p);
      this.track(this.boot(p, tokens[i]!, input.userdata ?? null));
    }
    return created;
  }

  private async boot(p: Process, token: string, userData: string | null): Promise<void> {
    await this.acquireBootSlot();
    try {
      if (this.closed) return;
      const meta: Record<string, string> = {
        ...p.args,
        [META.gid]: p.gid,
        [META.pid]: String(p.pid),
        [META.ppid]: p.ppid === null ? '' : String(p.ppid),
        [META.url]: this.url(),
        [META.token]: token,
      };
      const id = await this.compute.boot({
        gid: p.gid,
        pid: p.pid,
        name: `rack-${p.gid.slice(0, 8)}-${p.pid}`,
        template: p.template!,
        flavor: p.flavor,
        meta,
        userData,
      });
      const state = await this.compute.state(id);
      const booted = await this.changeLive(p.gid, p.pid, { compute_id: id, status: state === 'ACTIVE' ? 'ACTIVE' : 'BUILD' });
      if (!booted) {
        // Killed while booting: the VM must not outlive its process.
        await this.compute.destroy(id);
        await this.store.processes.update(p.gid, p.pid, { compute_id: id });
        return;
      }
      this.log.info({ gid: p.gid, pid: p.pid, vm: id }, 'booted');
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.log.warn({ gid: p.gid, pid: p.pid, err: message }, 'boot failed');
      await this.end(p.gid, p.pid, { status: 'ERROR', error: `boot failed: ${message}` });
    } finally {
      this.releaseBootSlot();
    }
  }

  private acquireBootSlot(): Promise<void> {
    if (this.bootSlots > 0) {
      this.bootSlots--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.bootQueue.push(resolve));
  }

  private releaseBootSlot(): void {
    const next = this.bootQueue.shift();
    if (next) next();
    else this.bootSlots++;
  }

  /** Sets the free-text status an app reports about itself. */
  async setAppStatus(who: Principal, gid: string, pid: number, appStatus: string): Promise<Process> {
    requireSelf(who, gid, pid, 'update');
    await this.getProcess(who, gid, pid);
    return (await this.change(gid, pid, { app_status: appStatus }))!;
  }

  /** The guest agent reports its app's state; `exited` ends the process with the app's status. */
  async reportAppState(
    who: Principal,
    gid: string,
    pid: number,
    state: AppState,
    exit: { code?: number | null; signal?: string | null } = {},
  ): Promise<Process> {
    requireSelf(who, gid, pid, 'report for');
    const p = await this.getProcess(who, gid, pid);
    if (state !== 'exited') {
      return (await this.changeLive(gid, pid, { app_state: state, status: 'ACTIVE' })) ?? p;
    }
    return this.exit(who, gid, pid, exit.code ?? null, exit.signal ?? null);
  }

  /** The app ended: with an exit code (EXITED) or by a signal (KILLED). Idempotent. */
  async exit(who: Principal, gid: string, pid: number, code: number | null, signal: string | null = null): Promise<Process> {
    requireSelf(who, gid, pid, 'exit');
    const p = await this.getProcess(who, gid, pid);
    if (isTerminal(p.status)) return p;
    const bySignal = code === null && signal !== null;
    this.log.info({ gid, pid, code, signal }, 'exit');
    const ended = await this.end(gid, pid, {
      status: bySignal ? 'KILLED' : 'EXITED',
      exit_code: bySignal ? null : (code ?? 0),
      signal: bySignal ? (signal as SignalName) : null,
      app_state: 'exited',
    });
    return ended ?? (await this.getProcess(who, gid, pid));
  }

  /** Delivers a signal to the app of one process (no cascade, no destroy). */
  async signal(who: Principal, gid: string, pid: number, name: Exclude<SignalName, 'KILL'>): Promise<void> {
    const target = await this.getProcess(who, gid, pid);
    await requireSelfOrAncestor(who, this.store.processes, target, 'signal');
    if (isTerminal(target.status)) throw new RackError('conflict', `process ${pid} has ended (${target.status})`);
    await this.sendToAgent(gid, pid, { event: 'signal', signal: name });
    this.log.info({ gid, pid, signal: name }, 'signal');
  }

  /** The tail of a process's VM console (its agent's log and its app's output); '' when there is no VM. */
  async console(who: Principal, gid: string, pid: number, lines: number): Promise<string> {
    const target = await this.getProcess(who, gid, pid);
    await requireSelfOrAncestor(who, this.store.processes, target, 'read the console of');
    return target.compute_id ? this.compute.consoleOutput(target.compute_id, lines) : '';
  }

  /**
   * kill(): ends the process and every descendant, deepest first. TERM asks each app to stop and
   * destroys what is left after the grace period; KILL destroys at once. Answers at once with
   * the PIDs concerned; the work continues in the background.
   */
  async kill(who: Principal, gid: string, pid: number, opts: KillOptions = {}): Promise<number[]> {
    const target = await this.getProcess(who, gid, pid);
    await requireSelfOrAncestor(who, this.store.processes, target, 'kill');
    const order = await this.subtree(gid, pid);
    this.track(this.terminate(gid, pid, opts));
    return order.map((p) => p.pid);
  }

  /** The process and its descendants, deepest first (children before their parents). */
  private async subtree(gid: string, pid: number): Promise<Process[]> {
    const all = await this.store.processes.list(gid);
    const children = new Map<number, Process[]>();
    for (const p of all) {
      if (p.ppid === null) continue;
      const list = children.get(p.ppid) ?? [];
      list.push(p);
      children.set(p.ppid, list);
    }
    const root = all.find((p) => p.pid === pid);
    if (!root) return [];
    const levels: Process[][] = [];
    let frontier = [root];
    while (frontier.length > 0) {
      levels.push(frontier);
      frontier = frontier.flatMap((p) => children.get(p.pid) ?? []);
    }
    return levels.reverse().flatMap((level) => [...level].sort((a, b) => b.pid - a.pid));
  }

  private async terminate(gid: string, pid: number, opts: KillOptions): Promise<void> {
    const signal = opts.signal ?? 'TERM';
    const graceMs = opts.graceMs ?? this.defaultGraceMs;
    // Recorded first: a kernel that dies during the grace period finishes the kill at its restart.
    await this.store.kills.put({ gid, pid, signal, deadline: Date.now() + (signal === 'TERM' ? graceMs : 0) });
    const order = await this.subtree(gid, pid);
    this.log.info({ gid, pid, signal, grace_ms: graceMs, pids: order.map((p) => p.pid) }, 'kill');
    if (signal === 'TERM') {
      const live = order.filter((p) => !isTerminal(p.status));
      for (const p of live) await this.sendToAgent(gid, p.pid, { event: 'signal', signal: 'TERM', grace_ms: graceMs });
      await this.untilEnded(gid, live.map((p) => p.pid), graceMs);
    }
    for (const p of order) {
      const current = await this.store.processes.get(gid, p.pid);
      if (!current) continue;
      if (current.compute_id) {
        try {
          await this.compute.destroy(current.compute_id);
        } catch (err) {
          this.log.warn({ gid, pid: p.pid, err: (err as Error).message }, 'destroy failed');
          await this.end(gid, p.pid, { status: 'ERROR', error: `destroy failed: ${(err as Error).message}` });
          continue;
        }
      }
      await this.end(gid, p.pid, { status: 'KILLED', signal, app_state: 'exited' });
    }
    await this.store.kills.delete(gid, pid);
  }

  /** Resolves when all the given processes are terminal, or after `ms`. */
  private untilEnded(gid: string, pids: number[], ms: number): Promise<void> {
    const waiting = new Set(pids);
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.off('process', onChange);
        resolve();
      };
      const onChange = (p: Process): void => {
        if (p.gid === gid && isTerminal(p.status)) waiting.delete(p.pid);
        if (waiting.size === 0) done();
      };
      const timer = setTimeout(done, ms);
      this.on('process', onChange);
      // Some may have ended before we started listening.
      void Promise.all(pids.map((pid) => this.store.processes.get(gid, pid))).then((rows) => {
        for (const r of rows) if (!r || isTerminal(r.status)) waiting.delete(r?.pid ?? -1);
        if (waiting.size === 0) done();
      });
    });
  }

  /**
   * wait(): how a child of `ppid` ended: the given one, or any child not yet reaped. Long-polls
   * up to `timeoutMs` (then 408); 404 no_child when there is nothing to wait for.
   */
  async wait(who: Principal, gid: string, ppid: number, opts: { pid?: number; timeoutMs: number }): Promise<WaitResult> {
    requireSelf(who, gid, ppid, 'wait for children of');
    await this.getProcess(who, gid, ppid);
    const deadline = Date.now() + opts.timeoutMs;
    if (opts.pid !== undefined) {
      const child = await this.store.processes.get(gid, opts.pid);
      if (!child || child.ppid !== ppid) throw new RackError('no_child', `process ${opts.pid} is not a child of ${ppid}`);
      const ended = await this.untilTerminal(gid, (p) => p.pid === opts.pid, deadline, async () => {
        const c = await this.store.processes.get(gid, opts.pid!);
        return c && isTerminal(c.status) ? c : null;
      });
      await this.store.processes.markReaped(gid, ended.pid);
      return waitResultOf(ended)!;
    }
    const ended = await this.untilTerminal(gid, (p) => p.ppid === ppid, deadline, async () => {
      const reaped = await this.store.processes.reapAny(gid, ppid);
      if (reaped) return reaped;
      const live = await this.store.processes.list(gid, { ppid, status: LIVE });
      if (live.length === 0) throw new RackError('no_child', `process ${ppid} has no child left to wait for`);
      return null;
    });
    return waitResultOf(ended)!;
  }

  /** Waits until the given apps report `running`; 409 if one ends first, 408 on timeout. */
  async waitRunning(who: Principal, gid: string, pids: number[], timeoutMs: number): Promise<Process[]> {
    requireGroup(who, gid);
    const deadline = Date.now() + timeoutMs;
    const out: Process[] = [];
    for (const pid of pids) {
      const p = await this.untilTerminal(gid, (e) => e.pid === pid && (e.app_state === 'running' || isTerminal(e.status)), deadline, async () => {
        const c = await this.store.processes.get(gid, pid);
        if (!c) throw new RackError('not_found', `no process ${pid} in group ${gid}`);
        return c.app_state === 'running' || isTerminal(c.status) ? c : null;
      });
      if (isTerminal(p.status)) throw new RackError('conflict', `process ${pid} ended (${p.status}) before its app ran`);
      out.push(p);
    }
    return out;
  }

  /**
   * The long-poll core: `check` answers from the store; between checks we listen for events that
   * `match`, so no change is missed between a check and the next event.
   */
  private untilTerminal(
    gid: string,
    match: (p: Process) => boolean,
    deadline: number,
    check: () => Promise<Process | null>,
  ): Promise<Process> {
    return new Promise<Process>((resolve, reject) => {
      let dirty = true;
      let running = false;
      let finished = false;
      const finish = (err: unknown, value?: Process): void => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        this.off('process', onEvent);
        if (err) reject(err);
        else resolve(value!);
      };
      const run = async (): Promise<void> => {
        if (running || finished) return;
        running = true;
        try {
          while (dirty && !finished) {
            dirty = false;
            const found = await check();
            if (found) return finish(null, found);
          }
        } catch (err) {
          finish(err);
        } finally {
          running = false;
        }
      };
      const onEvent = (p: Process): void => {
        if (p.gid !== gid || !match(p)) return;
        dirty = true;
        void run();
      };
      const timer = setTimeout(
        () => finish(new RackError('timeout', 'timed out waiting; call again to keep waiting')),
        Math.max(0, deadline - Date.now()),
      );
      this.on('process', onEvent);
      void run();
    });
  }

  // ---- guest agents -------------------------------------------------------------------------

  /** Registers the live channel to a process's agent and flushes signals queued meanwhile. */
  attachAgent(gid: string, pid: number, link: AgentLink): () => void {
    const key = `${gid}/${pid}`;
    this.agents.set(key, link);
    // Signals that waited for this agent (in the store: they survive a kernel restart), in order,
    // ahead of any sent meanwhile.
    const flush = this.store.signals.take(gid, pid).then((queued) => {
      for (const ev of queued) link.send(JSON.parse(ev) as SignalEvent);
    });
    this.flushing.set(key, flush);
    this.track(flush.finally(() => this.flushing.get(key) === flush && this.flushing.delete(key)));
    this.log.info({ gid, pid }, 'agent connected');
    this.emit('agent', { gid, pid, connected: true });
    return () => {
      if (this.agents.get(key) === link) {
        this.agents.delete(key);
        this.log.info({ gid, pid }, 'agent disconnected');
        this.emit('agent', { gid, pid, connected: false });
      }
    };
  }

  private async sendToAgent(gid: string, pid: number, event: SignalEvent): Promise<void> {
    await this.flushing.get(`${gid}/${pid}`);
    const link = this.agents.get(`${gid}/${pid}`);
    if (link) link.send(event);
    else await this.store.signals.push(gid, pid, JSON.stringify(event));
  }

  // ---- state transitions --------------------------------------------------------------------

  private async change(gid: string, pid: number, patch: Parameters<Store['processes']['update']>[2]): Promise<Process | null> {
    const p = await this.store.processes.update(gid, pid, patch);
    if (p) this.emit('process', p);
    return p;
  }

  /** A change that applies only while the process is live (never resurrects an ended one). */
  private async changeLive(gid: string, pid: number, patch: Parameters<Store['processes']['updateLive']>[2]): Promise<Process | null> {
    const p = await this.store.processes.updateLive(gid, pid, patch);
    if (p) this.emit('process', p);
    return p;
  }

  /** The one way into a terminal state: at most once per process. */
  private async end(gid: string, pid: number, patch: Parameters<Store['processes']['updateLive']>[2]): Promise<Process | null> {
    const p = await this.store.processes.updateLive(gid, pid, { ...patch, ended_at: new Date().toISOString() });
    if (p) {
      this.log.info({ gid, pid, status: p.status, code: p.exit_code, signal: p.signal }, 'process ended');
      await this.store.signals.clear(gid, pid);
      this.emit('process', p);
    }
    return p;
  }

  private async vmChanged(c: VmChange): Promise<void> {
    const p = await this.store.processes.byComputeId(c.id);
    if (!p || isTerminal(p.status)) return;
    if (c.state === 'ACTIVE') {
      if (p.status === 'BUILD') await this.changeLive(p.gid, p.pid, { status: 'ACTIVE' });
      return;
    }
    this.log.warn({ gid: p.gid, pid: p.pid, vm: c.id, state: c.state, fault: c.fault }, c.state === 'ERROR' ? 'VM failed' : 'VM gone');
    const error = c.state === 'ERROR' ? `the VM failed: ${c.fault ?? 'the compute service gave no reason'}` : 'the VM stopped without its app reporting an exit';
    await this.end(p.gid, p.pid, { status: 'ERROR', error });
  }

  /**
   * After a restart: processes whose VM died meanwhile become ERROR; VMs that no process knows
   * are destroyed.
   */
  async reconcile(): Promise<{ lost: number; orphans: number }> {
    let lost = 0;
    let orphans = 0;
    for (const p of await this.store.processes.listLive()) {
      const state = p.compute_id ? await this.compute.state(p.compute_id) : 'GONE';
      if (state === 'GONE' || state === 'ERROR') {
        lost++;
        await this.end(p.gid, p.pid, {
          status: 'ERROR',
          error: p.compute_id ? 'the VM was lost while the kernel was down' : 'boot was interrupted by a kernel restart',
        });
      } else if (state === 'ACTIVE' && p.status === 'BUILD') {
        await this.changeLive(p.gid, p.pid, { status: 'ACTIVE' });
      }
    }
    for (const vm of await this.compute.list()) {
      if (await this.store.processes.byComputeId(vm.id)) continue;
      orphans++;
      this.log.warn({ vm: vm.id }, 'destroying a VM that no process knows');
      await this.compute.destroy(vm.id);
    }
    // Kills the previous run did not finish: the rest of a TERM's grace, then destroy.
    const kills = await this.store.kills.list();
    for (const k of kills) {
      const graceMs = Math.max(0, k.deadline - Date.now());
      this.log.info({ gid: k.gid, pid: k.pid, signal: k.signal, grace_ms: graceMs }, 'resuming an unfinished kill');
      this.track(this.terminate(k.gid, k.pid, { signal: k.signal, graceMs }));
    }
    this.log.info({ lost, orphans, kills: kills.length }, 'reconciled');
    return { lost, orphans };
  }

  private track<T>(p: Promise<T>): void {
    const guarded = p.catch((err: unknown) => this.log.error({ err }, 'background task failed'));
    this.background.add(guarded);
    void guarded.finally(() => this.background.delete(guarded));
  }

  /** Stops accepting background work and waits for what is running. VMs keep running. */
  async close(): Promise<void> {
    this.closed = true;
    for (const wake of this.bootQueue.splice(0)) wake();
    await Promise.all([...this.background]);
  }
}
