import { spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { RackError } from '../../common/errors.js';
import { processStartTime } from '../sim/os-processes.js';

/** systemd's poweroff request (SIGRTMIN+4; glibc's SIGRTMIN is 34). */
const SIGRTMIN_4 = 38;

export interface MachineSpec {
  /** Machine name (the guest's first hostname until cloud-init sets its own). */
  name: string;
  rootfs: string;
  netns: string;
  /** host file -> guest path, read-only. */
  binds: Array<[string, string]>;
  console: string;
}

/** An OS process, told apart from a later one with the same PID by its start time. */
export interface OsProcess {
  pid: number;
  startTime: number;
}

export function alive(p: OsProcess | null | undefined): boolean {
  if (!p) return false;
  const st = processStartTime(p.pid);
  return st !== null && (p.startTime === 0 || st === p.startTime);
}

/**
 * Boots a machine: `systemd-nspawn -b` on a read-only image with a tmpfs overlay (every boot
 * starts from the image, like a new VM), in the VM's network namespace. systemd is not PID 1 on
 * every host, so the machine is not registered with machined (--register=no --keep-unit); this
 * process keeps track of it instead. Its console (the guest's /dev/console) is appended to
 * `spec.console`. Detached: a machine outlives a kernel that is killed.
 */
export function startMachine(spec: MachineSpec): Promise<{ nspawn: OsProcess; exited: Promise<void> }> {
  const args = [
    '--boot',
    `--directory=${spec.rootfs}`,
    '--volatile=overlay',
    `--machine=${spec.name}`,
    '--register=no',
    '--keep-unit',
    `--network-namespace-path=/run/netns/${spec.netns}`,
    '--resolv-conf=off',
    '--timezone=off',
    '--link-journal=no',
    '--console=read-only',
    // nspawn has no DMI: cloud-init's ds-identify reads this from PID 1's environment instead.
    '--setenv=product_name=OpenStack Nova',
    '--setenv=SYSTEMD_COLORS=0',
    ...spec.binds.map(([from, to]) => `--bind-ro=${from}:${to}`),
  ];
  const out = openSync(spec.console, 'a');
  let child;
  try {
    child = spawn('systemd-nspawn', args, { detached: true, stdio: ['ignore', out, out] });
  } finally {
    closeSync(out);
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    child.once('spawn', () => {
      child.unref();
      resolve({ nspawn: { pid: child.pid!, startTime: processStartTime(child.pid!) ?? 0 }, exited });
    });
    child.once('error', (err) => reject(new RackError('compute_error', `cannot start systemd-nspawn: ${err.message}`)));
  });
}

function status(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return '';
  }
}

/**
 * The machine's leader: the guest's PID 1 (systemd), a child of nspawn, which is PID 1 in a
 * PID namespace of its own. Null until nspawn has started it.
 */
export function findLeader(nspawn: OsProcess): OsProcess | null {
  if (!alive(nspawn)) return null;
  for (const e of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(e)) continue;
    const st = status(Number(e));
    if (new RegExp(`^PPid:\\s+${nspawn.pid}$`, 'm').test(st) && /^NSpid:\s+\d+\s+1$/m.test(st)) {
      return { pid: Number(e), startTime: processStartTime(Number(e)) ?? 0 };
    }
  }
  return null;
}

/** Waits for the leader to appear (nspawn sets up mounts first). */
export async function waitLeader(nspawn: OsProcess, ms: number): Promise<OsProcess> {
  const deadline = Date.now() + ms;
  for (;;) {
    const leader = findLeader(nspawn);
    if (leader) return leader;
    if (!alive(nspawn)) throw new RackError('compute_error', 'systemd-nspawn ended before the guest started (see the console)');
    if (Date.now() > deadline) throw new RackError('compute_error', `the guest did not start within ${ms} ms`);
    await sleep(100);
  }
}

/** The PID namespace of a process (`pid:[4026532...]`), or null once it is gone. */
export function pidNamespace(pid: number): string | null {
  try {
    return readlinkSync(`/proc/${pid}/ns/pid`);
  } catch {
    return null;
  }
}

/** Every host PID still in PID namespace `ns` (nothing, once the machine is down). */
export function processesIn(ns: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (/^[0-9]+$/.test(e) && pidNamespace(Number(e)) === ns) out.push(Number(e));
  }
  return out;
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
  return true;
}

/**
 * Stops a machine and everything in it: a poweroff request to its systemd, `graceMs` for it,
 * then SIGKILL to the leader, which ends every process of the guest's PID namespace at once (a
 * SIGKILL to nspawn alone would orphan the guest's systemd); nspawn then exits and its mounts go
 * with its mount namespace.
 */
export async function stopMachine(nspawn: OsProcess, leader: OsProcess | null, graceMs: number): Promise<void> {
  const l = leader ?? findLeader(nspawn);
  if (l && alive(l)) {
    try {
      process.kill(l.pid, SIGRTMIN_4);
    } catch {
      // gone meanwhile
    }
    if (!(await until(() => !alive(l), graceMs))) {
      try {
        process.kill(l.pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  }
  if (!(await until(() => !alive(nspawn), 10_000)) && alive(nspawn)) {
    process.kill(nspawn.pid, 'SIGKILL');
    await until(() => !alive(nspawn), 5_000);
  }
}
