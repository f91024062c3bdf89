/** The process model, as every part of RACK sees it (kernel, API, libdck, CLI, dckinit). */

/** QUEUED: forked, waiting in the Resource Scheduler's queue for capacity (no VM yet). */
export const PROCESS_STATUSES = ['QUEUED', 'BUILD', 'ACTIVE', 'EXITED', 'KILLED', 'ERROR'] as const;
export type ProcessStatus = (typeof PROCESS_STATUSES)[number];

/** The statuses of a process that has not ended. */
export const LIVE_STATUSES = ['QUEUED', 'BUILD', 'ACTIVE'] as const;

/**
 * What the guest agent reports about the app it supervises. `running`: started; `ready`: the app
 * said READY=1 on its NOTIFY_SOCKET (an app whose template does not use readiness is ready once
 * it has started, as a systemd Type=simple service is).
 */
export const APP_STATES = ['pending', 'starting', 'running', 'ready', 'exited'] as const;
export type AppState = (typeof APP_STATES)[number];

/** Has the app started (running, or ready already)? */
export function appStarted(state: AppState): boolean {
  return state === 'running' || state === 'ready';
}

/** Signals a process can be sent. TERM and KILL also end processes through kill(). */
export const SIGNALS = ['TERM', 'KILL', 'INT', 'HUP', 'USR1', 'USR2', 'STOP', 'CONT'] as const;
export type SignalName = (typeof SIGNALS)[number];

/** The signal table: Linux numbers (a shell reports a child killed by N as 128 + N) and Node's names. */
export const SIGNAL_TABLE: Readonly<Record<SignalName, { number: number; node: NodeJS.Signals }>> = {
  HUP: { number: 1, node: 'SIGHUP' },
  INT: { number: 2, node: 'SIGINT' },
  KILL: { number: 9, node: 'SIGKILL' },
  USR1: { number: 10, node: 'SIGUSR1' },
  USR2: { number: 12, node: 'SIGUSR2' },
  TERM: { number: 15, node: 'SIGTERM' },
  CONT: { number: 18, node: 'SIGCONT' },
  STOP: { number: 19, node: 'SIGSTOP' },
};

/** The first PID of a group: the seed's slides show the first VM as PID=100. */
export const FIRST_PID = 100;

export type Args = Record<string, string>;

/**
 * What a group may hold: set when it is created (each one the operator's default unless given).
 * Past one, the call is refused with quota_exceeded and nothing of it is done.
 */
export interface Quotas {
  /** Live processes (QUEUED, BUILD or ACTIVE) at once: a queued fork counts, so the queue is bounded too. */
  processes: number;
  /** Forks over the group's whole life (PIDs handed out). */
  forks: number;
  /** Bytes of shared memory (keys and values). */
  shm_bytes: number;
  /** Bytes of files. */
  file_bytes: number;
  /** Messages, and bytes, waiting in one process's mailbox (past them: mailbox_full). */
  mailbox_messages: number;
  mailbox_bytes: number;
  /** Pipes and FIFOs open at once (each buffers up to 1 MiB in the kernel). */
  pipes: number;
}

export const DEFAULT_QUOTAS: Quotas = {
  processes: 1000,
  forks: 100_000,
  shm_bytes: 256 * 1024 * 1024,
  file_bytes: 64 * 1024 * 1024 * 1024,
  mailbox_messages: 10_000,
  mailbox_bytes: 64 * 1024 * 1024,
  pipes: 256,
};

export const QUOTA_NAMES = Object.keys(DEFAULT_QUOTAS) as Array<keyof Quotas>;

export interface Group {
  gid: string;
  name: string;
  description: string;
  /** Defaults for processes of this group (a root process takes them when it gives none). */
  template: string | null;
  flavor: string | null;
  args: Args;
  quotas: Quotas;
  created_at: string;
}

/** A process's fields, in the order an answer writes them. */
export const PROCESS_FIELDS = ['gid', 'pid', 'ppid', 'name', 'template', 'flavor', 'args', 'status', 'app_state', 'app_status', 'exit_code', 'signal', 'error', 'compute_id', 'created_at', 'updated_at', 'ended_at'] as const;
export type ProcessField = (typeof PROCESS_FIELDS)[number];

export interface Process {
  gid: string;
  pid: number;
  /** null for a root process. */
  ppid: number | null;
  name: string;
  template: string | null;
  flavor: string | null;
  args: Args;
  status: ProcessStatus;
  app_state: AppState;
  /** Free text the app reports (PUT). */
  app_status: string;
  exit_code: number | null;
  /** The signal that killed it (KILLED), or null. */
  signal: SignalName | null;
  /** Why it is in ERROR, or null. */
  error: string | null;
  /** The compute driver's handle for the VM (a Nova server id, a sim VM id). */
  compute_id: string | null;
  created_at: string;
  updated_at: string;
  ended_at: string | null;
}

export function isTerminal(status: ProcessStatus): boolean {
  return status === 'EXITED' || status === 'KILLED' || status === 'ERROR';
}

/** How a child ended, as wait() reports it. */
export interface WaitResult {
  gid: string;
  pid: number;
  ppid: number | null;
  status: 'exited' | 'killed' | 'error';
  code: number | null;
  signal: SignalName | null;
  error: string | null;
}

export function waitResultOf(p: Process): WaitResult | null {
  if (!isTerminal(p.status)) return null;
  return {
    gid: p.gid,
    pid: p.pid,
    ppid: p.ppid,
    status: p.status === 'EXITED' ? 'exited' : p.status === 'KILLED' ? 'killed' : 'error',
    code: p.exit_code,
    signal: p.signal,
    error: p.error,
  };
}
