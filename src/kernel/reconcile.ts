import type { Logger } from '../common/log.js';
import type { ComputeDriver } from '../compute/driver.js';
import type { ProcessStore } from '../store/store.js';
import type { ProcessTable } from './process-table.js';

/**
 * After a (re)start the process table and the compute service are made to agree: processes
 * whose VM died meanwhile become ERROR, builds that finished become ACTIVE, and VMs that no
 * process knows are destroyed.
 *
 * `takeover`: the kernel that did this for several kernels on one store died, and this one,
 * serving requests already, takes its place. Its own boots may be under way: a process without
 * a VM yet is left alone, and so are VMs no process knows yet (orphans go at a start only).
 */
export async function reconcile(deps: {
  processes: ProcessStore;
  table: ProcessTable;
  compute: ComputeDriver;
  log: Logger;
  takeover?: boolean;
}): Promise<{ lost: number; orphans: number }> {
  const { processes, table, compute, log } = deps;
  let lost = 0;
  let orphans = 0;
  for (const p of await processes.listLive()) {
    // A queued process has no VM yet: it stays in the queue (the scheduler restores it).
    if (p.status === 'QUEUED' || (deps.takeover && !p.compute_id)) continue;
    const state = p.compute_id ? await compute.state(p.compute_id) : 'GONE';
    if (state === 'GONE' || state === 'ERROR') {
      lost++;
      await table.end(p.gid, p.pid, {
        status: 'ERROR',
        error: p.compute_id ? 'the VM was lost while the kernel was down' : 'boot was interrupted by a kernel restart',
      });
      await table.vmGone(p);
    } else if (state === 'ACTIVE' && p.status === 'BUILD') {
      await table.changeLive(p.gid, p.pid, { status: 'ACTIVE' });
    }
  }
  for (const vm of deps.takeover ? [] : await compute.list()) {
    if (await processes.byComputeId(vm.id)) continue;
    orphans++;
    log.warn({ vm: vm.id }, 'destroying a VM that no process knows');
    await compute.destroy(vm.id);
  }
  return { lost, orphans };
}
