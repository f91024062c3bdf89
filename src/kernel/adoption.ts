import { aliveLease, bootLease, type Leases } from '../bus/bus.js';
import type { Logger } from '../common/log.js';
import type { ComputeDriver } from '../compute/driver.js';
import type { Process } from '../protocol/process.js';
import type { ProcessStore } from '../store/store.js';
import type { Booter } from './boot.js';
import type { ProcessTable } from './process-table.js';

/**
 * A process without a VM seen without a boot claim for this long was claimed by nobody: the
 * kernel that recorded it died before it could (a live one claims within milliseconds). Timed
 * on the leader's own clock, which another machine's may not match.
 */
const UNCLAIMED_MS = 10_000;

/**
 * Several kernels on one store: each hears of its own VMs' ends from its compute driver, and a
 * kernel that dies takes those ears with it. Its VMs may still end on their own (an app crashes;
 * a sim VM that was booting cannot read its metadata any more), and nobody would record it: the
 * process would stay live for ever, and its parent would wait for ever. So the leader hands the
 * VMs of every live process to its own driver (see ComputeDriver.adopt) and acts on what it
 * hears as on a change of its own VMs. While their kernel lives both hear of an end; the second
 * finds the process ended already.
 *
 * A process whose kernel died before the compute service gave it a VM has nothing to watch: its
 * boot claim (taken by the forking kernel, or by the one the queue boots it on) names a kernel
 * whose own lease has lapsed. It ends in ERROR, as at a restart.
 */
export class Adoption {
  /** VMs handed to the driver already: each is looked up once, then watched. */
  private readonly handed = new Set<string>();
  /** `gid/pid` of processes without a VM nor a boot claim, with when this kernel first saw them so. */
  private readonly unclaimed = new Map<string, number>();
  private running: Promise<void> | null = null;
  private last = 0;

  constructor(
    private readonly deps: {
      processes: ProcessStore;
      table: ProcessTable;
      compute: ComputeDriver;
      booter: Booter;
      leases: Leases & { readonly id: string };
      log: Logger;
      /** The clock (tests move it). */
      now?: () => number;
    },
  ) {}

  /** Hands the VMs of the live processes not handed yet to the driver; one look at a time, at most one every `everyMs`. */
  adoptLive(everyMs = 0): Promise<void> {
    if (this.running || Date.now() - this.last < everyMs) return this.running ?? Promise.resolve();
    this.last = Date.now();
    return (this.running = this.adoptOnce().finally(() => (this.running = null)));
  }

  /** This kernel is no longer the leader: a new term hands every VM again (the driver skips the ones it watches). */
  reset(): void {
    this.handed.clear();
    this.unclaimed.clear();
    this.last = 0;
  }

  private async adoptOnce(): Promise<void> {
    const { compute, booter, processes, log } = this.deps;
    const live = new Set<string>();
    const unbooted: Process[] = [];
    for (const p of await processes.listLive()) {
      if (p.compute_id) live.add(p.compute_id);
      else if (p.status === 'BUILD') unbooted.push(p);
    }
    const keys = new Set(unbooted.map((p) => `${p.gid}/${p.pid}`));
    for (const k of this.unclaimed.keys()) if (!keys.has(k)) this.unclaimed.delete(k);
    for (const p of unbooted) await this.endIfOrphaned(p);
    if (!compute.adopt) return;
    // The set stays the size of the live VMs.
    for (const id of this.handed) if (!live.has(id)) this.handed.delete(id);
    const fresh = [...live].filter((id) => !this.handed.has(id));
    if (fresh.length === 0) return;
    let states;
    try {
      states = await compute.adopt(fresh);
    } catch (err) {
      log.warn({ err: (err as Error).message, vms: fresh.length }, 'cannot look up the VMs of other kernels; trying again');
      return;
    }
    for (const [id, state] of states) {
      this.handed.add(id);
      // What the booting kernel would have heard: a build that finished, or a VM that ended.
      if (state !== 'BUILD') await booter.vmChanged({ id, state });
    }
  }

  /** Ends a process without a VM whose booting kernel is gone. */
  private async endIfOrphaned(p: Process): Promise<void> {
    const { leases, table, log } = this.deps;
    const holder = await leases.holder(bootLease(p.gid, p.pid));
    if (holder === leases.id) return;
    if (holder === null) {
      const now = (this.deps.now ?? Date.now)();
      const key = `${p.gid}/${p.pid}`;
      const since = this.unclaimed.get(key) ?? now;
      this.unclaimed.set(key, since);
      if (now - since < UNCLAIMED_MS) return;
    } else if ((await leases.holder(aliveLease(holder))) !== null) return;
    log.warn({ gid: p.gid, pid: p.pid, kernel: holder }, 'the kernel booting a process died before it had a VM');
    if (await table.end(p.gid, p.pid, { status: 'ERROR', error: 'its kernel died before the VM was booted' })) await table.vmGone(p);
  }
}
