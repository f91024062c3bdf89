import type { FlavorSize } from '../protocol/resources.js';

/**
 * What the kernel needs from a compute service: boot a VM with metadata and user_data, destroy
 * it, and tell its state. `sim` (local processes) and `nova` (OpenStack) implement it.
 */

export interface BootRequest {
  gid: string;
  pid: number;
  /** Server name / hostname, e.g. `rack-<gid8>-<pid>`. */
  name: string;
  /** The image: a Glance image id (nova) or a template directory name or path (sim). */
  template: string;
  /** A Nova flavor id; the sim driver records it only. */
  flavor: string | null;
  /** Server metadata (Nova `meta`): the rack_* keys and the user args, all strings. */
  meta: Record<string, string>;
  /** Raw user_data (not base64), or null. */
  userData: string | null;
}

/** Nova's view, reduced: BUILD -> ACTIVE; ERROR; GONE once it no longer exists (or has stopped). */
export type VmState = 'BUILD' | 'ACTIVE' | 'ERROR' | 'GONE';

export interface VmInfo {
  id: string;
  state: VmState;
}

/** A change the driver learned of by itself (not the outcome of a destroy() call). */
export interface VmChange {
  id: string;
  /** ACTIVE: the VM finished building; ERROR: it failed (see fault); GONE: it stopped or vanished. */
  state: Exclude<VmState, 'BUILD'>;
  /** Why, when the compute service says (Nova's server fault message). */
  fault?: string;
}

/** The project's own limits (Nova's absolute /limits): its bounds, and what it uses now (all its servers). */
export interface ProjectLimits {
  max: { instances: number | null; vcpus: number | null; ram_mb: number | null };
  used: { instances: number; vcpus: number; ram_mb: number };
}

export interface ComputeDriver {
  readonly name: string;
  /** Starts booting a VM and returns its id as soon as the compute service has accepted it. */
  boot(req: BootRequest): Promise<string>;
  /** Destroys a VM at once (no grace); idempotent: an unknown or gone VM is not an error. */
  destroy(id: string): Promise<void>;
  /**
   * How many destroys the kernel may have in flight at once (default 64, what a cloud takes in
   * parallel). A driver that batches the destroys asked for together says Infinity.
   */
  readonly destroyConcurrency?: number;
  state(id: string): Promise<VmState>;
  /**
   * The last `lines` lines of the VM's serial console (the guest agent's log, with its app's
   * output), as `nova console-log` shows it; empty when the VM is gone.
   */
  consoleOutput(id: string, lines: number): Promise<string>;
  /** Every VM this driver manages (for reconciliation after a restart). */
  list(): Promise<VmInfo[]>;
  /**
   * The size of a flavor, for the Resource Scheduler: Nova's flavor details, or what a local
   * template declares. null when the driver cannot tell (the scheduler then assumes a default);
   * a flavor the service does not have is a bad_request. Optional.
   */
  flavor?(template: string, flavor: string | null): Promise<FlavorSize | null>;
  /** The project's own limits, when the compute service has any (Nova's /limits). Optional. */
  limits?(): Promise<ProjectLimits | null>;
  /** Called when the driver learns that a VM became ACTIVE, failed, or died on its own. */
  onChange(listener: (change: VmChange) => void): void;
  /**
   * Several kernels on one store: the leader hands its driver the VMs of every live process,
   * another kernel's too (that kernel may have died), and hears of their changes through
   * onChange as of its own. Answers each VM's state now; VMs already watched are not looked up
   * again. Optional: without it a VM's end is heard only by the kernel that booted it.
   */
  adopt?(ids: readonly string[]): Promise<Map<string, VmState>>;
  /**
   * For VMs that cannot reach the kernel at the address it listens on (their own network): the
   * URL they reach it at instead (the driver relays), put in their metadata as rack_url.
   */
  guestUrl?(kernelUrl: string): Promise<string>;
  close(): Promise<void>;
}
