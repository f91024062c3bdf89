import type { ProcessTokens } from '../auth/auth.js';
import type { Logger } from '../common/log.js';
import type { Scheduler } from '../scheduler/scheduler.js';
import type { GroupStore } from '../store/store.js';
import type { Booter } from './boot.js';
import type { ProcessTable } from './process-table.js';

/**
 * The fork queue's mechanism in the kernel: when the Resource Scheduler says capacity may have
 * freed up, the queued processes that fit now boot (QUEUED -> BUILD, a token, a VM), one at a
 * time in queue order; those whose timeout passes end in ERROR; a queued process that is killed
 * just leaves the queue (see Killer).
 */
export class ForkQueue {
  private draining: Promise<void> | null = null;
  private again = false;
  private closed = false;

  constructor(
    private readonly deps: {
      scheduler: Scheduler;
      table: ProcessTable;
      booter: Booter;
      groups: GroupStore;
      tokens: { issue(gid: string, pid: number): Promise<ProcessTokens> };
      log: Logger;
      track: (work: Promise<unknown>) => void;
      /** Whether this kernel boots the queued fork: with other kernels on the store, one of them does. */
      claim: (gid: string, pid: number) => Promise<boolean>;
    },
  ) {
    deps.scheduler.on('freed', () => this.drain());
    deps.scheduler.on('expired', (gone) => {
      for (const { gid, pid } of gone) {
        deps.log.info({ gid, pid }, 'queued fork timed out');
        deps.track(deps.table.end(gid, pid, { status: 'ERROR', error: 'no_capacity: the fork waited in the queue until its timeout and no capacity freed up' }));
      }
    });
  }

  /** Boots what fits now; calls made while a drain runs make it look once more when done. */
  drain(): void {
    if (this.closed) return;
    if (this.draining) {
      this.again = true;
      return;
    }
    this.draining = (async () => {
      do {
        this.again = false;
        for (let next = await this.deps.scheduler.next(); next && !this.closed; next = await this.deps.scheduler.next()) {
          // Each boots on its own: a slow compute service does not hold the next one back.
          this.deps.track(this.start(next.gid, next.pid, next.userdata));
        }
      } while (this.again && !this.closed);
    })().finally(() => (this.draining = null));
    this.deps.track(this.draining);
  }

  private async start(gid: string, pid: number, userdata: string | null): Promise<void> {
    const { table, booter, scheduler, tokens, groups, log, claim } = this.deps;
    if (!(await claim(gid, pid))) return;
    const p = await table.changeLive(gid, pid, { status: 'BUILD' });
    if (!p) {
      // Ended while it was being taken out of the queue (a kill): nothing to boot.
      await scheduler.release(gid, pid);
      return;
    }
    log.info({ gid, pid }, 'queued fork boots');
    try {
      const issued = await tokens.issue(gid, pid);
      await booter.bootAll([p], [issued], userdata ?? (await groups.userData(gid)));
    } catch (err) {
      await table.end(gid, pid, { status: 'ERROR', error: `boot refused: ${(err as Error).message}` });
    }
  }

  close(): void {
    this.closed = true;
  }
}
