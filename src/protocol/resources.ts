/**
 * What a VM takes from a resource pool (the Resource Scheduler's unit), and what the guest agent
 * samples of its VM and its app (Resource Monitoring). Shared by the kernel, libdck, the CLI and
 * the live view.
 */

export const RESOURCES = ['instances', 'vcpus', 'ram_mb'] as const;
export type ResourceName = (typeof RESOURCES)[number];

/** Amounts of each resource: one VM of a flavor is { instances: 1, vcpus, ram_mb }. */
export type Resources = Record<ResourceName, number>;

/** A pool's bounds; a missing or null bound is no bound. */
export type Capacity = Partial<Record<ResourceName, number | null>>;

/** A flavor's size as the compute service declares it. */
export interface FlavorSize {
  vcpus: number;
  ram_mb: number;
}

export interface PoolView {
  /** The bounds in force (null: unbounded). */
  capacity: Record<ResourceName, number | null>;
  /** What live processes hold (booting or booted VMs). */
  used: Resources;
  /** capacity - used, never below 0 (null: unbounded). */
  free: Record<ResourceName, number | null>;
  /** How many processes wait in the queue for this pool. */
  queued: number;
}

export interface QueuedFork {
  gid: string;
  pid: number;
  /** 1-based place in its group's queue (what boots first is 1). */
  position: number;
  priority: number;
  /** When it gives up waiting (ISO time), or null. */
  deadline: string | null;
  size: Resources;
  /** The pool it waits for: group or kernel. */
  waiting_for: 'group' | 'kernel';
}

/** One sample the guest agent takes of its VM and of its app's process tree. */
export interface UsageSample {
  /** When it was taken (epoch ms, the VM's clock). */
  t: number;
  /** The VM's CPUs busy, in % of all of them, over the last period. */
  cpu_pct: number;
  cpus: number;
  /** /proc/loadavg: 1, 5 and 15 minutes. */
  load: [number, number, number];
  mem_total: number;
  mem_available: number;
  disk_total: number;
  disk_used: number;
  /** Bytes received and sent by every interface but loopback, since boot. */
  net_rx: number;
  net_tx: number;
  /** The app's process tree: how many processes, CPU in % of one CPU over the period, resident memory. */
  app_procs: number;
  app_cpu_pct: number;
  app_rss: number;
}

/** A sample as the kernel keeps it: with the rates it derives from the one before. */
export interface Usage extends UsageSample {
  /** Network bytes per second since the previous sample (0 for the first). */
  net_rx_rate: number;
  net_tx_rate: number;
}

export interface ProcessUsage {
  gid: string;
  pid: number;
  latest: Usage | null;
  /** Older samples first; at most what was asked for. */
  history: Usage[];
}

/** Counts of the group's IPC operations since the kernel started. */
export interface IpcCounters {
  messages: number;
  shm: number;
  pipes: number;
  files: number;
}

export interface GroupUsage {
  gid: string;
  /** Processes that have reported a sample (live ones only). */
  reporting: number;
  /** Sums over the group's latest samples. */
  app_cpu_pct: number;
  app_rss: number;
  mem_used: number;
  net_rx_rate: number;
  net_tx_rate: number;
  processes: ProcessUsage[];
  ipc: IpcCounters;
}
