import { readdirSync, readFileSync } from 'node:fs';

/** The start time of an OS process (clock ticks since boot, /proc/PID/stat field 22), or null. */
export function processStartTime(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || fields[0] === 'X') return null;
    return Number(fields[19]);
  } catch {
    return null;
  }
}

/**
 * The OS processes of sim VMs, by VM: the ones whose environment holds a VM's marker. It is
 * inherited by all descendants, also those that started a new session or were reparented to
 * init. One pass over /proc serves any number of VMs.
 */
const MARKER = 'RACK_SIM_VM=';

export function findVmsProcesses(ids: ReadonlySet<string>): Map<string, number[]> {
  const out = new Map<string, number[]>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^[0-9]+$/.test(e)) continue;
    let env: string;
    try {
      env = readFileSync(`/proc/${e}/environ`, 'latin1');
    } catch {
      continue; // ended meanwhile, or not ours to read
    }
    const at = env.startsWith(MARKER) ? 0 : env.indexOf(`\0${MARKER}`) + 1;
    if (at <= 0 && !env.startsWith(MARKER)) continue;
    const end = env.indexOf('\0', at);
    const id = env.slice(at + MARKER.length, end < 0 ? undefined : end);
    if (!ids.has(id) || processStartTime(Number(e)) === null) continue;
    const list = out.get(id) ?? [];
    list.push(Number(e));
    out.set(id, list);
  }
  return out;
}

/** Every OS process of one sim VM. */
export function findVmProcesses(id: string): number[] {
  return findVmsProcesses(new Set([id])).get(id) ?? [];
}

/**
 * Kills whole VMs: stop everything first so nothing can fork while we look, then SIGKILL, and
 * repeat until no process of theirs is left (bounded, in case of a fork storm). One look at
 * /proc a round, however many VMs: destroying a thousand is not a thousand looks.
 */
export async function killVmsProcesses(ids: ReadonlySet<string>): Promise<void> {
  for (let round = 0; round < 50; round++) {
    const found = [...findVmsProcesses(ids).values()].flat();
    if (found.length === 0) return;
    for (const pid of found) signal(pid, 'SIGSTOP');
    for (const pid of found) signal(pid, 'SIGKILL');
    // Let the kernel reap them before we look again.
    await new Promise((r) => setTimeout(r, round === 0 ? 5 : 20));
  }
  throw new Error(`processes of VMs ${[...ids].join(', ').slice(0, 200)} survive SIGKILL`);
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}
