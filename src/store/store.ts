/**
 * The kernel's durable state, behind an interface so that a distributed engine can replace the
 * embedded SQLite store. Each part is a small interface of its own; an engine implements them all.
 * Methods are async even where SQLite is synchronous, because a networked engine is not.
 */
import type { Group, Process, ProcessStatus } from '../protocol/process.js';

export type NewProcess = Omit<Process, 'pid' | 'created_at' | 'updated_at' | 'ended_at'>;

export type ProcessPatch = Partial<
  Pick<
    Process,
    'status' | 'app_state' | 'app_status' | 'exit_code' | 'signal' | 'error' | 'compute_id' | 'ended_at'
  >
>;

export interface ProcessFilter {
  ppid?: number | null;
  status?: readonly ProcessStatus[];
}

export interface GroupStore {
  create(group: Group): Promise<void>;
  get(gid: string): Promise<Group | null>;
  list(): Promise<Group[]>;
  /** Removes the group with its processes, tokens and everything else stored under it. */
  delete(gid: string): Promise<void>;
}

export interface ProcessStore {
  /**
   * Allocates the next PIDs of the group (increasing, never reused) and inserts the processes,
   * atomically: either all are stored or none.
   */
  insert(gid: string, rows: readonly NewProcess[]): Promise<Process[]>;
  get(gid: string, pid: number): Promise<Process | null>;
  list(gid: string, filter?: ProcessFilter): Promise<Process[]>;
  /** Every process of every group that is not terminal (for reconciliation at start). */
  listLive(): Promise<Process[]>;
  /** Applies the patch; `updated_at` is set by the store. Returns the new row (null if unknown). */
  update(gid: string, pid: number, patch: ProcessPatch): Promise<Process | null>;
  /**
   * Applies the patch only if the process is still live (BUILD or ACTIVE): a terminal state is
   * final, and so a transition into one happens at most once. Returns null when not applied.
   */
  updateLive(gid: string, pid: number, patch: ProcessPatch): Promise<Process | null>;
  /** wait(any): the oldest ended child of ppid not yet reaped, marked reaped in the same step. */
  reapAny(gid: string, ppid: number): Promise<Process | null>;
  markReaped(gid: string, pid: number): Promise<void>;
  /** The process (any status) whose VM has this compute id, if any. */
  byComputeId(computeId: string): Promise<Process | null>;
}

export interface TokenOwner {
  gid: string;
  pid: number;
}

export interface TokenStore {
  /** Stores a token's hash (never the token) for a process. */
  put(hash: string, owner: TokenOwner): Promise<void>;
  owner(hash: string): Promise<TokenOwner | null>;
}

export interface Store {
  readonly groups: GroupStore;
  readonly processes: ProcessStore;
  readonly tokens: TokenStore;
  close(): Promise<void>;
}
