import { isRackError, RackError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { ComputeDriver, VmChange } from '../compute/driver.js';
import { META } from '../protocol/metadata.js';
import { composeUserData } from '../protocol/user-data.js';
import { isTerminal, type Process } from '../protocol/process.js';
import type { ProcessStore } from '../store/store.js';
import type { ProcessTokens } from '../auth/auth.js';
import type { ProcessTable } from './process-table.js';

export interface BootOptions {
  compute: ComputeDriver;
  table: ProcessTable;
  processes: ProcessStore;
  log: Logger;
  /** The kernel's URL as a VM reaches it (rack_url in the metadata); known once listening. */
  url: () => string;
  /** VMs asked of the compute service at once. */
  concurrency: number;
  /** The CA (PEM) VMs trust for an https kernel: it goes with each VM's credentials. */
  ca?: string;
  /**
   * Set when other kernels share the store: whether a kill covers the process. Another kernel
   * that kills a process destroys its VM, which this kernel's driver may see end first.
   */
  killing?: (p: Process) => Promise<boolean>;
}

/**
 * Booting: a fork's VMs are asked of the compute service (a bounded number at a time) and the
 * fork is answered once the service has accepted every one; then the driver reports how each
 * build ends (ACTIVE, or ERROR with its fault) and whether a VM dies on its own.
 */
export class Booter {
  private slots: number;
  private readonly waiting: Array<() => void> = [];
  private closed = false;

  constructor(private readonly opts: BootOptions) {
    this.slots = opts.concurrency;
  }

  /**
   * Boots a VM for each new process. All or nothing: when the compute service refuses one (a
   * quota, an unknown image), the VMs already accepted are destroyed and the refusal is thrown.
   * A process killed while its VM was being asked for gets its VM destroyed here.
   */
  async bootAll(created: readonly Process[], tokens: readonly ProcessTokens[], userData: string | null): Promise<void> {
    const results = await Promise.allSettled(created.map((p, i) => this.bootOne(p, tokens[i]!, userData)));
    const refused = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (!refused) return;
    await Promise.all(
      results.map((r) => (r.status === 'fulfilled' && r.value ? this.opts.compute.destroy(r.value).catch(() => {}) : undefined)),
    );
    const err = refused.reason as unknown;
    throw isRackError(err) ? err : new RackError('compute_error', `the compute service refused the VM: ${(err as Error)?.message ?? String(err)}`);
  }

  /** Resolves with the VM's id, or null when there is no VM to speak of (killed meanwhile, or closing). */
  private async bootOne(p: Process, tokens: ProcessTokens, userData: string | null): Promise<string | null> {
    await this.acquire();
    try {
      if (this.closed) return null;
      const meta: Record<string, string> = {
        ...p.args,
        [META.gid]: p.gid,
        [META.pid]: String(p.pid),
        [META.ppid]: p.ppid === null ? '' : String(p.ppid),
        [META.url]: this.opts.url(),
      };
      const id = await this.opts.compute.boot({
        gid: p.gid,
        pid: p.pid,
        name: `rack-${p.gid.slice(0, 8)}-${p.pid}`,
        template: p.template!,
        flavor: p.flavor,
        meta,
        // The tokens in user_data: Nova shows it to admins only (metadata: to the whole project).
        userData: composeUserData(userData, { token: tokens.app, agent_token: tokens.agent, ...(this.opts.ca ? { ca: this.opts.ca } : {}) }),
      });
      const state = await this.opts.compute.state(id).catch(() => 'BUILD' as const);
      const booted = await this.opts.table.changeLive(p.gid, p.pid, { compute_id: id, status: state === 'ACTIVE' ? 'ACTIVE' : 'BUILD' });
      if (!booted) {
        // Killed while booting: the VM must not outlive its process.
        await this.opts.compute.destroy(id);
        await this.opts.processes.update(p.gid, p.pid, { compute_id: id });
        return null;
      }
      this.opts.log.info({ gid: p.gid, pid: p.pid, vm: id }, 'booted');
      return id;
    } catch (err) {
      this.opts.log.warn({ gid: p.gid, pid: p.pid, err: (err as Error).message }, 'boot refused');
      throw err;
    } finally {
      this.release();
    }
  }

  /**
   * What the compute driver learned by itself about a VM: a build finished (BUILD -> ACTIVE), or
   * the VM failed or stopped. A live process then ends in ERROR; either way the VM is destroyed
   * (a failed or stopped server is not left behind) and is gone.
   */
  async vmChanged(c: VmChange): Promise<void> {
    const p = await this.opts.processes.byComputeId(c.id);
    if (!p) return;
    if (c.state === 'ACTIVE') {
      if (p.status === 'BUILD') await this.opts.table.changeLive(p.gid, p.pid, { status: 'ACTIVE' });
      return;
    }
    if (!isTerminal(p.status)) {
      // The kill ends the process, and its VM, itself.
      if (await this.opts.killing?.(p)) return;
      this.opts.log.warn({ gid: p.gid, pid: p.pid, vm: c.id, state: c.state, fault: c.fault }, c.state === 'ERROR' ? 'VM failed' : 'VM gone');
      const error = c.state === 'ERROR' ? `the VM failed: ${c.fault ?? 'the compute service gave no reason'}` : 'the VM stopped without its app reporting an exit';
      await this.opts.table.end(p.gid, p.pid, { status: 'ERROR', error });
    }
    await this.opts.compute.destroy(c.id).catch((err: Error) => this.opts.log.warn({ vm: c.id, err: err.message }, 'cannot destroy a failed VM'));
    await this.opts.table.vmGone(p);
  }

  private acquire(): Promise<void> {
    if (this.slots > 0) {
      this.slots--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.slots++;
  }

  /** Boots not yet started are dropped; the VMs of those under way are kept. */
  close(): void {
    this.closed = true;
    for (const wake of this.waiting.splice(0)) wake();
  }
}
