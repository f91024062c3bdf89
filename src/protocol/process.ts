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

export interface Group {
  gid: string;
  name: string;
  description: string;
  /** Defaults for processes of this group (a root process takes them when it gives none). */
  template: string | null;
  flavor: string | null;
  args: Args;
  created_at: string;
}

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
