import { isRackError } from '../common/errors.js';
import type { Process, ProcessField } from '../protocol/process.js';
import type { GroupUsage, QueuedFork, Usage } from '../protocol/resources.js';
import type { RestClient } from './client.js';
import { formatBytes } from './format.js';
import { drawTree, shorten } from './tree.js';

/**
 * The fields of a process the table and the tree show. Asking the kernel for only these halves
 * what it sends and what `rack ps` parses (10,000 processes: 1.7 MB of JSON instead of 3.5 MB).
 */
export const PS_FIELDS = ['gid', 'pid', 'ppid', 'name', 'status', 'app_state', 'app_status', 'exit_code', 'signal'] as const satisfies readonly ProcessField[];

/** A process as `rack ps` shows it (every field for --json): with its app's latest usage sample (null: none yet). */
export type PsProcess = Pick<Process, (typeof PS_FIELDS)[number]> & Partial<Process> & { usage: Usage | null };

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

/**
 * Each group's processes (`query`: e.g. `ppid=N`; `fields`: only these of each process), their
 * latest usage and the fork queue, in the order of `gids`.
 */
export async function gatherPs(c: RestClient, gids: readonly string[], query = '', fields?: readonly ProcessField[]): Promise<Pick<PsView, 'processes' | 'queue'>> {
  const list = async (g: string): Promise<{ processes: PsProcess[] }> => {
    const params = [query, fields ? `fields=${fields.join(',')}` : ''].filter(Boolean).join('&');
    try {
      return await c.call('GET', `${g}/processes${params ? `?${params}` : ''}`);
    } catch (err) {
      // A kernel from before `fields` refuses it as an unknown query parameter: it is asked for all of them.
      if (!fields || !isRackError(err) || err.code !== 'bad_request') throw err;
      return c.call('GET', `${g}/processes${query ? `?${query}` : ''}`);
    }
  };
  const one = async (gid: string): Promise<{ processes: PsProcess[]; queue: QueuedFork[] }> => {
    const g = `/v1/groups/${encodeURIComponent(gid)}`;
    const [listed, usage, pool] = await Promise.all([
      list(g),
      c.call<{ usage: GroupUsage }>('GET', `${g}/usage`),
      c.call<{ pool: { queue: QueuedFork[] } }>('GET', `${g}/pool`),
    ]);
    const latest = new Map<number, Usage | null>();
    for (const u of usage.usage.processes) latest.set(u.pid, u.latest);
    // Each process gets its usage in place: copying 10,000 objects cost more than listing them.
    const processes = listed.processes;
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
