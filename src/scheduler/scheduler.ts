import { EventEmitter } from 'node:events';
import { RackError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { ComputeDriver } from '../compute/driver.js';
import type { Capacity, PoolView, QueuedFork, ResourceName, Resources } from '../protocol/resources.js';
import type { ScheduleEntry, ScheduleStore } from '../store/store.js';
import { FlavorSizes } from './flavors.js';
import { add, describe, describeShort, poolView, shortOf, tightest, vmOf, zero } from './pool.js';

export interface SchedulerOptions {
  store: ScheduleStore;
  compute: Pick<ComputeDriver, 'flavor' | 'limits'>;
  log: Logger;
  /** The kernel-wide pool's bounds as the operator sets them (none: only the project's limits). */
  capacity?: Capacity;
  /** How often the compute service's project limits are read again. */
  limitsEveryMs?: number;
}

export interface ForkPlacement {
  priority: number;
  /** Epoch ms when a queued process gives up waiting; null waits as long as it takes. */
  deadline: number | null;
  /** The fork's own raw user_data (a queued VM boots with it later). */
  userdata: string | null;
}

/** Capacity reserved for a fork before its processes exist: `now` of them boot at once. */
export interface Hold {
  readonly gid: string;
  readonly size: Resources;
  readonly now: number;
  /** Where the reservation sits in the holdings until the processes exist. */
  readonly keys: readonly string[];
}

/** `elsewhere`: learnt from the store (another kernel's fork), dropped when the store no longer has it. */
type Entry = ScheduleEntry & { size: Resources; elsewhere?: boolean };
type Holding = { gid: string; size: Resources; elsewhere?: boolean };

const key = (gid: string, pid: number): string => `${gid}/${pid}`;

/** Queue order: higher priority first, then fork order. */
const before = (a: Entry, b: Entry): number => b.priority - a.priority || a.seq - b.seq;

/**
 * The Resource Scheduler: the kernel-wide pool and each group's own pool, in instances, vCPUs and
 * RAM (from flavors), and the queue of forks that do not fit yet. The accounting is in memory so
 * that a fork's check and its reservation are one step; every entry is also in the store, so a
 * restarted kernel has the same queue and the same holdings. Events: 'freed' (capacity may
 * allow a queued fork to boot now), 'expired' (queued entries whose deadline passed).
 */
export class Scheduler extends EventEmitter<{ freed: []; expired: [Array<{ gid: string; pid: number }>] }> {
  private readonly sizes: FlavorSizes;
  /** Processes whose VM is booting or booted, and holds of forks not yet recorded. */
  private readonly holding = new Map<string, Holding>();
  private queue: Entry[] = [];
  private groups = new Map<string, Capacity>();
  /** The project's limits less what others use in it (Nova); null when the driver has none. */
  private project: Capacity | null = null;
  private projectRaw: Awaited<ReturnType<NonNullable<ComputeDriver['limits']>>> = null;
  private holds = 0;
  private timer: NodeJS.Timeout | null = null;
  private refresher: NodeJS.Timeout | null = null;

  constructor(private readonly opts: SchedulerOptions) {
    super();
    this.sizes = new FlavorSizes(opts.compute);
  }

  /** After a (re)start: the stored queue and holdings of processes still live; pools; limits. */
  async load(isLive: (gid: string, pid: number) => Promise<boolean>): Promise<void> {
    for (const e of await this.opts.store.list()) {
      if (!(await isLive(e.gid, e.pid))) {
        await this.opts.store.delete(e.gid, e.pid);
        continue;
      }
      const entry: Entry = { ...e, size: vmOf(e) };
      if (e.queued) this.queue.push(entry);
      else this.holding.set(key(e.gid, e.pid), { gid: e.gid, size: entry.size });
    }
    this.queue.sort(before);
    for (const p of await this.opts.store.pools()) this.groups.set(p.gid, p.capacity);
    await this.refreshLimits();
    if (this.opts.compute.limits) {
      this.refresher = setInterval(() => void this.refreshLimits(), this.opts.limitsEveryMs ?? 60_000);
      this.refresher.unref();
    }
    this.arm();
    if (this.queue.length > 0) this.opts.log.info({ queued: this.queue.length }, 'fork queue restored');
  }

  /**
   * Other kernels on the store fork too, and the pools are the store's, not one kernel's: what
   * they hold and queue counts here as well, their pool settings apply here, and a fork queued
   * by a kernel that died boots here when it fits (the boot claim makes one kernel boot it).
   * Adds what the store has that this kernel does not know; drops what it learnt so that the
   * store no longer has (ended elsewhere, whether this kernel heard of it or not).
   */
  async sync(): Promise<void> {
    const stored = await this.opts.store.list();
    const seen = new Set<string>();
    let changed = false;
    for (const e of stored) {
      const k = key(e.gid, e.pid);
      seen.add(k);
      const i = this.queue.findIndex((q) => q.gid === e.gid && q.pid === e.pid);
      if (i >= 0 && !e.queued) {
        // Taken out of the queue elsewhere: it holds its share now.
        const [q] = this.queue.splice(i, 1);
        this.holding.set(k, { gid: e.gid, size: q!.size, elsewhere: true });
        changed = true;
        continue;
      }
      if (i >= 0 || this.holding.has(k)) continue;
      const size = vmOf(e);
      if (e.queued) this.queue.push({ ...e, size, elsewhere: true });
      else this.holding.set(k, { gid: e.gid, size, elsewhere: true });
      changed = true;
    }
    for (const [k, h] of this.holding) if (h.elsewhere && !seen.has(k) && this.holding.delete(k)) changed = true;
    const kept = this.queue.filter((e) => !e.elsewhere || seen.has(key(e.gid, e.pid)));
    if (kept.length !== this.queue.length) changed = true;
    this.queue = kept.sort(before);
    this.groups = new Map((await this.opts.store.pools()).map((p) => [p.gid, p.capacity]));
    this.arm();
    // Capacity freed, or a fork this kernel did not know waits: the queue looks again.
    if (changed) this.emit('freed');
  }

  /** What one VM of this template and flavor takes (a flavor the service lacks is bad_request). */
  size(template: string, flavor: string | null): Promise<Resources> {
    return this.sizes.of(template, flavor);
  }

  /**
   * Reserves capacity for up to `count` VMs of `size` at once, in one synchronous step: as many
   * as fit, unless queued forks are ahead of them (same or higher priority, waiting for the
   * same pool). With `noQueue` it is all of them or no_capacity.
   */
  reserve(gid: string, size: Resources, count: number, priority: number, noQueue: boolean): Hold {
    const never = this.neverFits(size);
    if (never) throw never;
    let now = 0;
    let why = '';
    const ahead = this.queue.filter((e) => e.priority >= priority && (e.gid === gid || this.waitingFor(e) === 'kernel')).length;
    if (ahead > 0) why = `${ahead} queued fork${ahead === 1 ? ' is' : 's are'} ahead`;
    else {
      const g = tightest(this.groups.get(gid));
      const k = this.kernelBounds();
      let gUsed = this.used(gid);
      let kUsed = this.used(null);
      for (; now < count; now++) {
        const gShort = shortOf(g, gUsed, size);
        const kShort = shortOf(k, kUsed, size);
        if (gShort || kShort) {
          why = gShort ? describeShort("the group's pool", gShort, g, gUsed) : describeShort('the kernel-wide pool', kShort!, k, kUsed);
          break;
        }
        gUsed = add(gUsed, size);
        kUsed = add(kUsed, size);
      }
    }
    if (noQueue && now < count) {
      throw new RackError('no_capacity', `no capacity for ${count} × (${describe(size)}): ${why}`);
    }
    const keys = Array.from({ length: now }, () => `hold:${++this.holds}`);
    for (const k of keys) this.holding.set(k, { gid, size });
    return { gid, size, now, keys };
  }

  /** A fork's processes exist: the first `hold.now` hold what was reserved, the others queue. */
  async record(hold: Hold, pids: readonly number[], place: ForkPlacement): Promise<void> {
    this.cancel(hold);
    const entries = await this.opts.store.add(
      pids.map((pid, i) => {
        const queued = i >= hold.now;
        return { gid: hold.gid, pid, vcpus: hold.size.vcpus, ram_mb: hold.size.ram_mb, queued, priority: place.priority, deadline: queued ? place.deadline : null, userdata: queued ? place.userdata : null };
      }),
    );
    for (const e of entries) {
      // sync() may have learnt it from the store already, while it was being added.
      if (e.queued) {
        if (!this.isQueued(e.gid, e.pid)) this.queue.push({ ...e, size: hold.size });
      }
      else this.holding.set(key(e.gid, e.pid), { gid: e.gid, size: hold.size });
    }
    this.queue.sort(before);
    this.arm();
  }

  /** Gives back a hold whose fork did not happen. */
  cancel(hold: Hold): void {
    for (const k of hold.keys) this.holding.delete(k);
  }

  isQueued(gid: string, pid: number): boolean {
    return this.queue.some((e) => e.gid === gid && e.pid === pid);
  }

  /** Takes a process out of the queue (it is being killed); true if it was queued. */
  unqueue(gid: string, pid: number): boolean {
    const i = this.queue.findIndex((e) => e.gid === gid && e.pid === pid);
    if (i < 0) return false;
    this.queue.splice(i, 1);
    this.arm();
    return true;
  }

  /** The process ended: what it held is free again, and it leaves the queue if it was in it. */
  async release(gid: string, pid: number): Promise<void> {
    const held = this.holding.delete(key(gid, pid));
    const queued = this.unqueue(gid, pid);
    await this.opts.store.delete(gid, pid);
    if (held || queued) this.emit('freed');
  }

  /**
   * The first queued process that may boot now, moved from the queue to the holdings; null when
   * none. Order holds per pool: a fork waiting for its group's pool does not hold back other
   * groups, one waiting for the kernel-wide pool holds back everything after it.
   */
  async next(): Promise<{ gid: string; pid: number; userdata: string | null } | null> {
    const blocked = new Set<string>();
    for (const e of this.queue) {
      if (blocked.has(e.gid)) continue;
      const waiting = this.waitingFor(e);
      if (waiting === 'kernel') return null;
      if (waiting === 'group') {
        blocked.add(e.gid);
        continue;
      }
      this.queue.splice(this.queue.indexOf(e), 1);
      this.holding.set(key(e.gid, e.pid), { gid: e.gid, size: e.size });
      this.arm();
      await this.opts.store.dequeued(e.gid, e.pid);
      return { gid: e.gid, pid: e.pid, userdata: e.userdata };
    }
    return null;
  }

  /** Sets (or with null removes) a group's own pool bounds. */
  async setPool(gid: string, capacity: Capacity | null): Promise<void> {
    await this.opts.store.setPool(gid, capacity);
    if (capacity) this.groups.set(gid, capacity);
    else this.groups.delete(gid);
    this.opts.log.info({ gid, ...capacity }, 'group pool set');
    this.emit('freed');
  }

  forgetGroup(gid: string): void {
    this.groups.delete(gid);
    this.queue = this.queue.filter((e) => e.gid !== gid);
    for (const [k, h] of this.holding) if (h.gid === gid) this.holding.delete(k);
  }

  /** The kernel-wide pool, the group's pool, and the group's queued forks in the order they will boot. */
  view(gid: string): { kernel: PoolView; group: PoolView; queue: QueuedFork[] } {
    const mine = this.queue.filter((e) => e.gid === gid);
    return {
      kernel: poolView(this.kernelBounds(), this.used(null), this.queue.length),
      group: poolView(tightest(this.groups.get(gid)), this.used(gid), mine.length),
      queue: mine.map((e, i) => ({
        gid,
        pid: e.pid,
        position: i + 1,
        priority: e.priority,
        deadline: e.deadline === null ? null : new Date(e.deadline).toISOString(),
        size: e.size,
        waiting_for: this.waitingFor(e) === 'group' ? 'group' : 'kernel',
      })),
    };
  }

  /** Queue lengths by group (for metrics). */
  queuedByGroup(): Map<string, number> {
    const out = new Map<string, number>();
    for (const e of this.queue) out.set(e.gid, (out.get(e.gid) ?? 0) + 1);
    return out;
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.refresher) clearInterval(this.refresher);
    this.timer = this.refresher = null;
  }

  // ---- accounting ---------------------------------------------------------------------------

  private used(gid: string | null): Resources {
    let u = zero();
    for (const h of this.holding.values()) if (gid === null || h.gid === gid) u = add(u, h.size);
    return u;
  }

  /**
   * A VM bigger than the compute project's quota itself (Nova's maximum, whatever else runs
   * there) can never boot: refused now with quota_exceeded, as Nova would, not queued for ever.
   * A fork past an operator's pool bound still queues: the operator may raise it (pool.set).
   */
  private neverFits(size: Resources): RackError | null {
    const quota = this.projectRaw ? tightest(this.projectRaw.max) : null;
    const r = quota ? shortOf(quota, zero(), size) : null;
    return r ? new RackError('quota_exceeded', `no VM of ${describe(size)} can ever boot here: ${describeShort("the compute project's quota", r, quota!, zero())}`) : null;
  }

  private kernelBounds(): Record<ResourceName, number | null> {
    return tightest(this.opts.capacity, this.project);
  }

  /** What a queued entry waits for: null when it would fit now. */
  private waitingFor(e: Entry): 'group' | 'kernel' | null {
    if (shortOf(tightest(this.groups.get(e.gid)), this.used(e.gid), e.size)) return 'group';
    if (shortOf(this.kernelBounds(), this.used(null), e.size)) return 'kernel';
    return null;
  }

  /**
   * The project's limits less what its other servers use: Nova counts every server of the
   * project, this kernel's included, so what this kernel holds is added back.
   */
  private async refreshLimits(): Promise<void> {
    if (!this.opts.compute.limits) return;
    try {
      this.projectRaw = await this.opts.compute.limits();
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, 'cannot read the project limits; keeping the last ones');
      return;
    }
    const l = this.projectRaw;
    if (!l) {
      this.project = null;
      return;
    }
    const mine = this.used(null);
    const bound = (max: number | null, used: number, ours: number): number | null => (max === null ? null : Math.max(0, max - Math.max(0, used - ours)));
    this.project = {
      instances: bound(l.max.instances, l.used.instances, mine.instances),
      vcpus: bound(l.max.vcpus, l.used.vcpus, mine.vcpus),
      ram_mb: bound(l.max.ram_mb, l.used.ram_mb, mine.ram_mb),
    };
    this.emit('freed');
  }

  /** One timer for the nearest deadline of the queue. */
  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const deadlines = this.queue.map((e) => e.deadline).filter((d): d is number => d !== null);
    if (deadlines.length === 0) return;
    const at = Math.min(...deadlines);
    this.timer = setTimeout(() => this.expire(), Math.max(0, Math.min(at - Date.now(), 2 ** 31 - 1)));
    this.timer.unref();
  }

  private expire(): void {
    const now = Date.now();
    const gone = this.queue.filter((e) => e.deadline !== null && e.deadline <= now);
    this.queue = this.queue.filter((e) => !gone.includes(e));
    this.arm();
    if (gone.length > 0) this.emit('expired', gone.map((e) => ({ gid: e.gid, pid: e.pid })));
  }
}
