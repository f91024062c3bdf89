/**
 * The kernel's durable state, behind an interface so that a distributed engine can replace the
 * embedded SQLite store. Each part is a small interface of its own; an engine implements them all.
 * Methods are async even where SQLite is synchronous, because a networked engine is not.
 */
import type { RackError } from '../common/errors.js';
import type { JsonText } from '../protocol/json-text.js';
import type { Group, Process, ProcessField, ProcessStatus, Quotas } from '../protocol/process.js';
import type { Capacity } from '../protocol/resources.js';

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
  /** `userData`: the raw user_data forks of the group get by default (never shown in a Group); `quotas` are stored with it. */
  create(group: Group, userData?: string | null): Promise<void>;
  get(gid: string): Promise<Group | null>;
  userData(gid: string): Promise<string | null>;
  list(): Promise<Group[]>;
  /** Removes the group with its processes, tokens and everything else stored under it. */
  delete(gid: string): Promise<void>;
}

export interface ProcessStore {
  /**
   * Allocates the next PIDs of the group (increasing, never reused) and inserts the processes,
   * atomically: either all are stored or none. Past the group's quota of live processes or of
   * forks in total, none is, and quota_exceeded says which.
   */
  insert(gid: string, rows: readonly NewProcess[], quotas: Pick<Quotas, 'processes' | 'forks'>, rid?: string | null): Promise<{ processes: Process[]; replayed: boolean }>;
  get(gid: string, pid: number): Promise<Process | null>;
  list(gid: string, filter?: ProcessFilter): Promise<Process[]>;
  /**
   * The same list as JSON text (an array, as JSON.stringify would write it), for answers that only
   * pass it on: a store that can write it without making an object per process does. `fields`:
   * only these of each process, in their usual order (default all).
   */
  listText(gid: string, filter?: ProcessFilter, fields?: readonly ProcessField[]): Promise<JsonText>;
  /** Every process of every group that is not terminal, QUEUED included (for reconciliation at start). */
  listLive(): Promise<Process[]>;
  /** Applies the patch; `updated_at` is set by the store. Returns the new row (null if unknown). */
  update(gid: string, pid: number, patch: ProcessPatch): Promise<Process | null>;
  /**
   * Applies the patch only if the process is still live (QUEUED, BUILD or ACTIVE): a terminal state is
   * final, and so a transition into one happens at most once. Returns null when not applied.
   */
  updateLive(gid: string, pid: number, patch: ProcessPatch): Promise<Process | null>;
  /** wait(any): the oldest ended child of ppid not yet reaped, marked reaped in the same step. */
  reapAny(gid: string, ppid: number, rid?: string | null): Promise<Process | null>;
  markReaped(gid: string, pid: number): Promise<void>;
  /** The process (any status) whose VM has this compute id, if any. */
  byComputeId(computeId: string): Promise<Process | null>;
  /** How many processes of every group are in each status (for metrics). */
  countByStatus(): Promise<Partial<Record<ProcessStatus, number>>>;
  /** Forgets processes whose fork was rolled back (their PIDs are not reused). */
  remove(gid: string, pids: readonly number[]): Promise<void>;
}

/** A process has two tokens: its app's, and its guest agent's (see src/auth/auth.ts). */
export type TokenRole = 'app' | 'agent';

export interface TokenOwner {
  gid: string;
  pid: number;
  role: TokenRole;
}

export interface TokenStore {
  /** Stores a token's hash (never the token) for a process. */
  put(hash: string, owner: TokenOwner): Promise<void>;
  owner(hash: string): Promise<TokenOwner | null>;
  /** Forgets a process's token of this role: it authenticates no more. */
  revoke(gid: string, pid: number, role: TokenRole): Promise<void>;
}

export interface StoredMessage {
  seq: number;
  from: number;
  data: Buffer;
  /** true: opaque bytes; false: UTF-8 JSON text. */
  binary: boolean;
}

export interface MailboxLimits {
  maxCount: number;
  maxBytes: number;
}

export interface MailboxStore {
  /**
   * Appends several messages from one sender in one transaction, in order; each succeeds or fails
   * on its own (its seq, or its error, in the same order). A message with the same (from, mid) as
   * one stored before is not stored again (the sender's resend after a lost reply): its first seq
   * is answered. A full mailbox refuses with mailbox_full.
   */
  appendMany(gid: string, from: number, items: ReadonlyArray<{ to: number; mid: string | null; data: Buffer; binary: boolean }>, limits: MailboxLimits): Promise<Array<number | RackError>>;
  /** Unacknowledged messages of `to` with seq > after, oldest first. */
  after(gid: string, to: number, after: number, limit: number): Promise<StoredMessage[]>;
  /** Acknowledges every message of `to` up to and including seq. */
  ack(gid: string, to: number, seq: number): Promise<void>;
  /** Drops a mailbox (its process ended). */
  clear(gid: string, to: number): Promise<void>;
}

export interface ShmValue {
  /**
   * Canonical JSON text (object keys sorted), or null when absent; as a string or as its UTF-8
   * bytes, whichever the engine reads faster (the kernel answers either without parsing it).
   */
  json: string | Buffer | null;
  version: number;
}

/**
 * Shared memory of the groups. Each group's bytes (keys and values) are counted; a write that
 * would take a group past `maxBytes` is refused with quota_exceeded and changes nothing. A write
 * given a request id (`rid`) that was done before answers as it did then, and changes nothing.
 */
export interface ShmStore {
  get(gid: string, key: string): Promise<ShmValue>;
  set(gid: string, key: string, json: string, ttlMs: number | null, maxBytes: number): Promise<number>;
  delete(gid: string, key: string): Promise<boolean>;
  incr(gid: string, key: string, by: number, maxBytes: number, rid?: string | null): Promise<number>;
  /** Sets `json` only if the current value equals `expect` (null = absent). */
  cas(gid: string, key: string, expect: string | null, json: string, maxBytes: number, rid?: string | null): Promise<{ ok: boolean; current: string | null }>;
  push(gid: string, key: string, values: readonly string[], left: boolean, maxBytes: number, rid?: string | null): Promise<number>;
  /** The bytes the group's shared memory holds. */
  usage(gid: string): Promise<number>;
  pop(gid: string, key: string, left: boolean, rid?: string | null): Promise<string | null>;
  range(gid: string, key: string, start: number, stop: number): Promise<string[]>;
  len(gid: string, key: string): Promise<number>;
  keys(gid: string, prefix: string): Promise<string[]>;
  /** Removes keys whose TTL has passed and returns them. */
  expire(now: number): Promise<Array<{ gid: string; key: string }>>;
}

/** A kill in progress: a restarted kernel finishes it (a TERM's grace ends at `deadline`). */
export interface PendingKill {
  gid: string;
  pid: number;
  signal: 'TERM' | 'KILL';
  /** Epoch milliseconds. */
  deadline: number;
}

export interface KillStore {
  put(kill: PendingKill): Promise<void>;
  delete(gid: string, pid: number): Promise<void>;
  list(): Promise<PendingKill[]>;
}

/** Signals for guest agents that are offline, kept until their next connection (in order). */
export interface SignalQueueStore {
  push(gid: string, pid: number, event: string): Promise<void>;
  /** Everything queued for the process, oldest first, removed in the same step. */
  take(gid: string, pid: number): Promise<string[]>;
  clear(gid: string, pid: number): Promise<void>;
}

/**
 * The Resource Scheduler's record of a process: what its VM takes from the pools, and, while it
 * waits in the queue, its place (priority, then fork order), its deadline and its own user_data.
 */
export interface ScheduleEntry {
  gid: string;
  pid: number;
  vcpus: number;
  ram_mb: number;
  /** Waiting for capacity (true), or holding it (its VM is booting or booted). */
  queued: boolean;
  /** Higher boots first. */
  priority: number;
  /** Fork order, given by the store (increasing). */
  seq: number;
  /** Epoch ms when a queued process gives up, or null. */
  deadline: number | null;
  /** The fork's own raw user_data (queued only: its VM boots later). */
  userdata: string | null;
}

export interface ScheduleStore {
  /** Records new entries in the given order; answers them with their seq. */
  add(entries: ReadonlyArray<Omit<ScheduleEntry, 'seq'>>): Promise<ScheduleEntry[]>;
  /** A queued process left the queue to boot: it holds its resources now. */
  dequeued(gid: string, pid: number): Promise<void>;
  delete(gid: string, pid: number): Promise<void>;
  /** Every entry, in seq order. */
  list(): Promise<ScheduleEntry[]>;
  /** A group's own pool bounds; null removes them. */
  setPool(gid: string, capacity: Capacity | null): Promise<void>;
  pools(): Promise<Array<{ gid: string; capacity: Capacity }>>;
}

/**
 * Pipes' shared state: which pipes a group has, who holds them, their open ends, and the bytes
 * in each one's bounded buffer. The ends themselves (credit, replay) are each kernel's own; a
 * kernel alone keeps this in its memory (pipes, as Unix pipes, do not outlive their kernel); an
 * engine several kernels share keeps it where they all see it, so that a writer on one kernel
 * and a reader on another use one buffer. An end is named `INCARNATION/N`: the kernel's id and
 * run that opened it (see Pipes), so that the ends of a kernel that died can be forgotten.
 */
export interface PipeStore {
  /** A new anonymous pipe, held by `owner` (a process; its children forked later hold it too). quota_exceeded past `max` pipes in the group. */
  create(gid: string, id: string, max: number, owner: number | null): Promise<void>;
  /** The group's FIFO `id`, made unless it is there (the same quota). */
  fifo(gid: string, id: string, max: number): Promise<void>;
  /** The anonymous pipes `pid` holds. */
  list(gid: string, pid: number): Promise<string[]>;
  /** `pid` holds what its parent holds. */
  inherit(gid: string, ppid: number, pid: number): Promise<void>;
  /** Records an open end; false if there is no such pipe. */
  open(gid: string, id: string, end: string, mode: 'r' | 'w'): Promise<boolean>;
  /** Forgets an end; an anonymous pipe nobody holds or has open any more is deleted with it. */
  close(gid: string, id: string, end: string): Promise<void>;
  /**
   * Appends `data` to the buffer unless it holds bytes already and these would take it past
   * `capacity` ('full': the writer waits). 'epipe': readers were open and none is left; 'gone':
   * the pipe is not there.
   */
  write(gid: string, id: string, data: Buffer, capacity: number): Promise<'ok' | 'full' | 'epipe' | 'gone'>;
  /** Takes up to `max` bytes from the buffer's head; eof: it is empty, writers were open and none is left (or the pipe is gone). */
  take(gid: string, id: string, max: number): Promise<{ data: Buffer; eof: boolean }>;
  /** A process ended: it holds its anonymous pipes no more (one nobody holds or has open is deleted). */
  release(gid: string, pid: number): Promise<void>;
  deleteGroup(gid: string): Promise<void>;
  /** Forgets the ends opened by the kernel runs `dead` says are over; answers how many. */
  sweep(dead: (incarnation: string) => Promise<boolean>): Promise<number>;
}

export interface Store {
  readonly groups: GroupStore;
  readonly processes: ProcessStore;
  readonly tokens: TokenStore;
  readonly kills: KillStore;
  readonly signals: SignalQueueStore;
  readonly mailboxes: MailboxStore;
  readonly shm: ShmStore;
  readonly schedule: ScheduleStore;
  /** Only an engine several kernels share has one; a kernel alone keeps its pipes in memory. */
  readonly pipes?: PipeStore;
  close(): Promise<void>;
}
