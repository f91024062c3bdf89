import { randomUUID } from 'node:crypto';
import type { Revoked } from '../auth/auth.js';
import type { ShmChange } from '../ipc/shared-memory.js';
import type { Process } from '../protocol/process.js';
import type { UsageSample } from '../protocol/resources.js';

/**
 * What one kernel tells the others that share its store. Each is a wake-up about something the
 * store holds already (the store is written first): a kernel that misses one loses nothing
 * durable, it finds the change on its next look at the store.
 */
export type BusMessage =
  /** A process changed (its new row): waits, long polls and subscriptions there look again. */
  | { t: 'process'; p: Process }
  | { t: 'group-deleted'; gid: string }
  /** A message was stored in `to`'s mailbox: its receiver, wherever it is connected, reads it. */
  | { t: 'mail'; gid: string; to: number; seq: number }
  | { t: 'shm'; c: ShmChange }
  /** Tokens that authenticate no more: their connections close on every kernel. */
  | { t: 'revoked'; r: Revoked }
  /** Signals wait in the store for this agent: the kernel it is connected to delivers them. */
  | { t: 'signals'; gid: string; pid: number }
  /** A kill was recorded whose lease another kernel holds: that kernel runs it (a KILL after a TERM). */
  | { t: 'kill'; gid: string; pid: number }
  /** Bytes went into or out of a pipe's buffer, or one of its ends closed: ends on it elsewhere look again. */
  | { t: 'pipe'; gid: string; pipe: string }
  /** A fork's holdings and queued processes, or a pool's bounds, were stored: every kernel's pools count them. */
  | { t: 'schedule' }
  /** An agent connected here sent a usage sample: every kernel shows it (samples are kept in memory, not stored). */
  | { t: 'sample'; gid: string; pid: number; s: UsageSample };

/** How often a kernel on a shared bus looks at the store again without being told (a lost publication costs at most this). */
export const RECHECK_MS = 5000;

/** A lease lapses this long after its kernel last renewed it; kernels renew theirs, and look for lapsed ones, every LEASE_RENEW_MS. */
export const LEASE_TTL_MS = 6000;
export const LEASE_RENEW_MS = 2000;

/**
 * Named leases held by one kernel at a time, that lapse when their kernel stops renewing them
 * (it died): who runs a kill, who does the kernel-wide duties (reconcile, orphans).
 */
export interface Leases {
  /** Takes the lease for `ttlMs` if it is free or held by this kernel already (renewing it); true if held now. */
  acquire(name: string, ttlMs: number): Promise<boolean>;
  /** Lets go of a lease this kernel holds (another kernel's is left alone). */
  release(name: string): Promise<void>;
  /** The id of the kernel holding the lease, or null when nobody does (free, or lapsed). */
  holder(name: string): Promise<string | null>;
}

/** Every kernel holds this lease while it runs: its boots are under way while it does. */
export function aliveLease(kernelId: string): string {
  return `kernel:${kernelId}`;
}

/** Held by the kernel booting a process until it has its VM (taken when the fork or the queue starts it). */
export function bootLease(gid: string, pid: number): string {
  return `{${gid}}:boot:${pid}`;
}

/** How long a boot lease lasts unrenewed: boots wait for a slot, and their kernel's own lease says whether it lives. */
export const BOOT_LEASE_MS = 3_600_000;

/**
 * The kernel bus: how the kernels that share one store hear each other's changes. A kernel
 * acts on its own changes locally, as it always did, and publishes them for the others; it
 * never hears its own publications.
 */
export interface KernelBus extends Leases {
  /** This kernel's id among them. */
  readonly id: string;
  /** false: this kernel is alone on its store (publications go nowhere, every lease is its own). */
  readonly shared: boolean;
  publish(m: BusMessage): void;
  /** `fn` hears every publication of the other kernels, in the order each one published them. */
  subscribe(fn: (m: BusMessage) => void): void;
  /** `fn` is called when publications may have been lost (the connection was down): look at the store again. */
  onGap(fn: () => void): void;
  close(): Promise<void>;
}

/** One kernel on its own store (SQLite, the default): today's in-process behaviour, nothing to tell. */
export class LocalBus implements KernelBus {
  readonly id = randomUUID();
  readonly shared = false;
  publish(): void {}
  subscribe(): void {}
  onGap(): void {}
  async acquire(): Promise<boolean> {
    return true;
  }
  async release(): Promise<void> {}
  async holder(): Promise<string | null> {
    return this.id;
  }
  async close(): Promise<void> {}
}
