import type { Process } from '../protocol/process.js';

export interface TreeOptions {
  /** Text shown after the PID and name of each process. */
  label?: (p: Process) => string;
}

/** Draws processes as a PPID tree, like `ps --forest` / `pstree`. Orphans are drawn as roots. */
export function drawTree(processes: readonly Process[], opts: TreeOptions = {}): string {
  const label =
    opts.label ??
    ((p: Process) =>
      `${p.status}${p.app_state !== 'pending' ? ` app:${p.app_state}` : ''}${p.exit_code !== null ? ` exit:${p.exit_code}` : ''}${p.signal ? ` sig:${p.signal}` : ''}${p.app_status ? `  "${shorten(p.app_status)}"` : ''}`);
  const byPid = new Map(processes.map((p) => [p.pid, p]));
  const children = new Map<number, Process[]>();
  const roots: Process[] = [];
  for (const p of [...processes].sort((a, b) => a.pid - b.pid)) {
    if (p.ppid !== null && byPid.has(p.ppid)) {
      const list = children.get(p.ppid) ?? [];
      list.push(p);
      children.set(p.ppid, list);
    } else roots.push(p);
  }
  const lines: string[] = [];
  const walk = (p: Process, prefix: string, last: boolean, root: boolean): void => {
    const branch = root ? '' : last ? '└─ ' : '├─ ';
    lines.push(`${prefix}${branch}${p.pid} ${p.name}  ${label(p)}`);
    const kids = children.get(p.pid) ?? [];
    const next = root ? prefix : prefix + (last ? '   ' : '│  ');
    kids.forEach((k, i) => walk(k, next, i === kids.length - 1, false));
  };
  roots.forEach((r) => walk(r, '', true, true));
  return lines.join('\n');
}

/** An app's free-text status on one short line. */
export function shorten(text: string, max = 40): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length > max ? `${one.slice(0, max - 1).trimEnd()}…` : one;
}
