import { RackError } from '../common/errors.js';
import type { Process } from '../protocol/process.js';
import type { ProcessStore } from '../store/store.js';
import type { Principal } from './auth.js';

/**
 * Who may do what. An operator (admin) may do anything; a process acts only inside its own group,
 * forks only children of itself, kills or signals only itself or its descendants, waits only for
 * its own children, and reports only about itself.
 */

export function requireAdmin(who: Principal, what: string): void {
  if (who.kind !== 'admin') throw new RackError('forbidden', `${what} needs the admin token`);
}

export function requireGroup(who: Principal, gid: string): void {
  if (who.kind === 'process' && who.gid !== gid) {
    throw new RackError('forbidden', `process ${who.pid} of group ${who.gid} may not act in group ${gid}`);
  }
}

export function requireSelf(who: Principal, gid: string, pid: number, what: string): void {
  requireGroup(who, gid);
  if (who.kind === 'process' && who.pid !== pid) {
    throw new RackError('forbidden', `process ${who.pid} may ${what} only for itself, not for process ${pid}`);
  }
}

/** Is `ancestor` the same as `pid` or one of its ancestors? Walks the PPID chain. */
export async function isSelfOrAncestor(
  processes: ProcessStore,
  gid: string,
  ancestor: number,
  target: Process,
): Promise<boolean> {
  let cur: Process | null = target;
  // The chain is finite (PPIDs are always smaller than PIDs), the bound guards bad data.
  for (let hops = 0; cur && hops < 100_000; hops++) {
    if (cur.pid === ancestor) return true;
    if (cur.ppid === null) return false;
    cur = await processes.get(gid, cur.ppid);
  }
  return false;
}

export async function requireSelfOrAncestor(
  who: Principal,
  processes: ProcessStore,
  target: Process,
  what: string,
): Promise<void> {
  requireGroup(who, target.gid);
  if (who.kind === 'admin') return;
  if (!(await isSelfOrAncestor(processes, target.gid, who.pid, target))) {
    throw new RackError('forbidden', `process ${who.pid} may ${what} only itself or its descendants, not process ${target.pid}`);
  }
}
