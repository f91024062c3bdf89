import type { Process } from '../protocol/process.js';
import type { GroupUsage, QueuedFork, Usage } from '../protocol/resources.js';
import type { RestClient } from './client.js';
import { formatBytes } from './format.js';
import { drawTree, shorten } from './tree.js';

/** A process as `rack ps` shows it: with its app's latest usage sample (null: none yet). */
export type PsProcess = Process & { usage: Usage | null };

/** What `rack ps` gathered: the groups in order, their processes, and the fork queues (by group, then PID). */
export interface PsView {
  gids: readonly string[];
  processes: readonly PsProcess[];
  queue: ReadonlyMap<string, ReadonlyMap<number, QueuedFork>>;
}

export const PS_HEADER = 'PID    PPID   STATUS  APP      EXIT    CPU%    RSS NAME  "APP STATUS"';
const NO_USAGE = `${'-'.padStart(6)} ${'-'.padStart(6)}`;
const QUEUE_PAD = ' '.repeat(7);

/** CPU% and RSS of the app (its latest sample); a queued process shows its place in the queue. */
function usageCols(u: Usage | null, q: QueuedFork | undefined): string {
  if (q) return `#${q.position}`.padStart(6) + QUEUE_PAD;
  if (!u) return NO_USAGE;
  return `${u.app_cpu_pct.toFixed(1).padStart(6)} ${formatBytes(u.app_rss).padStart(6)}`;
}

export function processLine(p: PsProcess, q?: QueuedFork): string {
  return `${String(p.pid).padEnd(6)} ${String(p.ppid ?? '-').padEnd(6)} ${p.status.padEnd(7)} ${p.app_state.padEnd(8)} ${String(p.exit_code ?? p.signal ?? '').padEnd(5)} ${usageCols(p.usage, q)} ${p.name}${p.app_status ? `  "${shorten(p.app_status)}"` : ''}`;
}

const treeLabel = (p: PsProcess): string =>
  `${p.status} app:${p.app_state}${p.usage ? ` cpu:${p.usage.app_cpu_pct.toFixed(1)}% rss:${formatBytes(p.usage.app_rss)}` : ''}${p.exit_code !== null ? ` exit:${p.exit_code}` : ''}${p.app_status ? `  "${shorten(p.app_status)}"` : ''}`;

/** The queue's line under the listing: each queued fork, its place and the pool it waits for. */
function queueFoot(view: PsView): string[] {
  const queued: QueuedFork[] = [];
  for (const gid of view.gids) for (const f of view.queue.get(gid)?.values() ?? []) queued.push(f);
  if (queued.length === 0) return [];
  return [`queue: ${queued.map((f) => `${f.pid} #${f.position} (priority ${f.priority}, waits for the ${f.waiting_for === 'group' ? "group's" : 'kernel-wide'} pool)`).join(', ')}`];
}

/** `rack ps` as text: one line per process, or (tree) each group's PPID tree; the queue below. */
export function psText(view: PsView, tree: boolean): string {
  const lines: string[] = [];
  if (tree) {
    const byGid = new Map<string, PsProcess[]>(view.gids.map((gid) => [gid, []]));
    for (const p of view.processes) byGid.get(p.gid)?.push(p);
    for (const gid of view.gids) lines.push(`group ${gid}\n${drawTree(byGid.get(gid)!, { label: treeLabel })}`);
  } else {
    lines.push(PS_HEADER);
    for (const p of view.processes) lines.push(processLine(p, view.queue.get(p.gid)?.get(p.pid)));
  }
  lines.push(...queueFoot(view));
  return lines.join('\n');
}

/** Groups asked at once: their three calls each overlap, and a kernel with many groups is not asked one group at a time. */
const GROUPS_IN_FLIGHT = 4;

/** Each group's processes (with `query`, e.g. `?ppid=N`), their latest usage and the fork queue, in the order of `gids`. */
export async function gatherPs(c: RestClient, gids: readonly string[], query = ''): Promise<Pick<PsView, 'processes' | 'queue'>> {
  const one = async (gid: string): Promise<{ processes: PsProcess[]; queue: QueuedFork[] }> => {
    const g = `/v1/groups/${encodeURIComponent(gid)}`;
    const [list, usage, pool] = await Promise.all([
      c.call<{ processes: Process[] }>('GET', `${g}/processes${query}`),
      c.call<{ usage: GroupUsage }>('GET', `${g}/usage`),
      c.call<{ pool: { queue: QueuedFork[] } }>('GET', `${g}/pool`),
    ]);
    const latest = new Map<number, Usage | null>();
    for (const u of usage.usage.processes) latest.set(u.pid, u.latest);
    // Each process gets its usage in place: copying 10,000 objects cost more than listing them.
    const processes = list.processes as PsProcess[];
    for (const p of processes) p.usage = latest.get(p.pid) ?? null;
    return { processes, queue: pool.pool.queue };
  };
  const results: Array<Awaited<ReturnType<typeof one>>> = new Array(gids.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < gids.length) {
      const i = next++;
      results[i] = await one(gids[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(GROUPS_IN_FLIGHT, gids.length) }, worker));
  const processes: PsProcess[] = [];
  const queue = new Map<string, Map<number, QueuedFork>>();
  results.forEach((r, i) => {
    for (const p of r.processes) processes.push(p);
    if (r.queue.length > 0) queue.set(gids[i]!, new Map(r.queue.map((f) => [f.pid, f])));
  });
  return { processes, queue };
}
