import type { Logger } from '../common/log.js';
import type { ComputeDriver } from '../compute/driver.js';
import type { ProcessStore } from '../store/store.js';
import type { Booter } from './boot.js';

/**
 * Several kernels on one store: each hears of its own VMs' ends from its compute driver, and a
 * kernel that dies takes those ears with it. Its VMs may still end on their own (an app crashes;
 * a sim VM that was booting cannot read its metadata any more), and nobody would record it: the
 * process would stay live for ever, and its parent would wait for ever. So the leader hands the
 * VMs of every live process to its own driver (see ComputeDriver.adopt) and acts on what it
 * hears as on a change of its own VMs. While their kernel lives both hear of an end; the second
 * finds the process ended already.
 */
export class Adoption {
  /** VMs handed to the driver already: each is looked up once, then watched. */
  private readonly handed = new Set<string>();
  private running: Promise<void> | null = null;
  private last = 0;

  constructor(
    private readonly deps: {
      processes: ProcessStore;
      compute: ComputeDriver;
      booter: Booter;
      log: Logger;
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
    this.last = 0;
  }

  private async adoptOnce(): Promise<void> {
    const { compute, booter, processes, log } = this.deps;
    if (!compute.adopt) return;
    const live = new Set<string>();
    for (const p of await processes.listLive()) if (p.compute_id) live.add(p.compute_id);
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
}
