import type { Process } from '../protocol/process.js';

/** What a tree draws of a process. */
export type TreeProcess = Pick<Process, 'pid' | 'ppid' | 'name' | 'status' | 'app_state' | 'exit_code' | 'signal' | 'app_status'>;

export interface TreeOptions<P extends TreeProcess = Process> {
  /** Text shown after the PID and name of each process. */
  label?: (p: P) => string;
}

const defaultLabel = (p: TreeProcess): string =>
  `${p.status}${p.app_state !== 'pending' ? ` app:${p.app_state}` : ''}${p.exit_code !== null ? ` exit:${p.exit_code}` : ''}${p.signal ? ` sig:${p.signal}` : ''}${p.app_status ? `  "${shorten(p.app_status)}"` : ''}`;

/**
 * Draws processes as a PPID tree, like `ps --forest` / `pstree`. Orphans are drawn as roots.
 * The walk keeps its own stack, so a chain of any depth draws (recursion ran out of stack at a
 * few thousand generations).
 */
export function drawTree<P extends TreeProcess>(processes: readonly P[], opts: TreeOptions<P> = {}): string {
  const label = (opts.label ?? defaultLabel) as (p: P) => string;
  // The kernel lists by PID already; sort only when the input is not in order.
  let sorted = true;
  for (let i = 1; i < processes.length && sorted; i++) sorted = processes[i - 1]!.pid <= processes[i]!.pid;
  const ordered = sorted ? processes : [...processes].sort((a, b) => a.pid - b.pid);
  const byPid = new Set<number>();
  for (const p of ordered) byPid.add(p.pid);
  const children = new Map<number, P[]>();
  const roots: P[] = [];
  for (const p of ordered) {
    if (p.ppid !== null && byPid.has(p.ppid)) {
      const list = children.get(p.ppid);
      if (list) list.push(p);
      else children.set(p.ppid, [p]);
    } else roots.push(p);
  }
  const lines: string[] = [];
  // Depth first, children in PID order: the stack holds what is left to draw, last pushed first.
  const stack: Array<{ p: P; prefix: string; last: boolean; root: boolean }> = [];
  for (let i = roots.length - 1; i >= 0; i--) stack.push({ p: roots[i]!, prefix: '', last: true, root: true });
  while (stack.length > 0) {
    const { p, prefix, last, root } = stack.pop()!;
    lines.push(`${prefix}${root ? '' : last ? '└─ ' : '├─ '}${p.pid} ${p.name}  ${label(p)}`);
    const kids = children.get(p.pid);
    if (!kids) continue;
    const next = root ? prefix : prefix + (last ? '   ' : '│  ');
    for (let i = kids.length - 1; i >= 0; i--) stack.push({ p: kids[i]!, prefix: next, last: i === kids.length - 1, root: false });
  }
  return lines.join('\n');
}

/** An app's free-text status on one short line. */
export function shorten(text: string, max = 40): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length > max ? `${one.slice(0, max - 1).trimEnd()}…` : one;
}
