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
 * Every OS process of a sim VM: the ones whose environment holds the VM's marker. It is inherited
 * by all descendants, also those that started a new session or were reparented to init.
 */
export function findVmProcesses(id: string): number[] {
  const marker = `RACK_SIM_VM=${id}`;
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^[0-9]+$/.test(e)) continue;
    try {
      const env = readFileSync(`/proc/${e}/environ`, 'latin1');
      if (env.split('\0').includes(marker) && processStartTime(Number(e)) !== null) out.push(Number(e));
    } catch {
      // ended meanwhile, or not ours to read
    }
  }
  return out;
}

/**
 * Kills the whole VM: stop everything first so nothing can fork while we look, then SIGKILL,
 * and repeat until no process with the marker is left (bounded, in case of a fork storm).
 */
export async function killVmProcesses(id: string): Promise<void> {
  for (let round = 0; round < 50; round++) {
    const pids = findVmProcesses(id);
    if (pids.length === 0) return;
    for (const pid of pids) signal(pid, 'SIGSTOP');
    for (const pid of pids) signal(pid, 'SIGKILL');
    // Let the kernel reap them before we look again.
    await new Promise((r) => setTimeout(r, round === 0 ? 5 : 20));
  }
  throw new Error(`processes of VM ${id} survive SIGKILL`);
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}
