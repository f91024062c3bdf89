import { RackError } from '../../common/errors.js';
import type { FlavorSize } from '../../protocol/resources.js';
import type { BootRequest, ComputeDriver, ProjectLimits, VmChange, VmInfo, VmState } from '../driver.js';

interface FakeVm {
  id: string;
  req: BootRequest;
  state: VmState;
}

/**
 * A compute driver in memory, for the kernel's unit tests: VMs boot at once (or when the test
 * lets them), can be made to fail or vanish, and every call is recorded.
 */
export class FakeDriver implements ComputeDriver {
  readonly name = 'fake';
  readonly vms = new Map<string, FakeVm>();
  readonly destroyed: string[] = [];
  private readonly listeners: Array<(c: VmChange) => void> = [];
  private next = 1;
  /** The state a VM has right after boot (BUILD: it stays building until `change`). */
  bootState: VmState = 'ACTIVE';
  /** When set, boot() throws it (a refusal by the compute service). */
  refuse: RackError | null = null;
  /** When set, boot() waits for it before answering. */
  gate: Promise<void> | null = null;

  /** Flavor sizes by name (null flavor: `default`); others are unknown. */
  flavors: Record<string, FlavorSize> = { default: { vcpus: 1, ram_mb: 512 }, large: { vcpus: 4, ram_mb: 4096 } };
  /** What limits() answers. */
  projectLimits: ProjectLimits | null = null;

  async flavor(_template: string, flavor: string | null): Promise<FlavorSize | null> {
    const f = this.flavors[flavor ?? 'default'];
    if (!f) throw new RackError('bad_request', `no flavor ${flavor}`);
    return f;
  }

  async limits(): Promise<ProjectLimits | null> {
    return this.projectLimits;
  }

  async boot(req: BootRequest): Promise<string> {
    if (this.gate) await this.gate;
    if (this.refuse) throw this.refuse;
    const id = `fake-${this.next++}`;
    this.vms.set(id, { id, req, state: this.bootState });
    return id;
  }

  async destroy(id: string): Promise<void> {
    this.destroyed.push(id);
    this.vms.delete(id);
  }

  async state(id: string): Promise<VmState> {
    return this.vms.get(id)?.state ?? 'GONE';
  }

  async consoleOutput(id: string, lines: number): Promise<string> {
    return this.vms.has(id) ? `console of ${id}\n`.repeat(lines) : '';
  }

  async list(): Promise<VmInfo[]> {
    return [...this.vms.values()].map((v) => ({ id: v.id, state: v.state }));
  }

  onChange(listener: (c: VmChange) => void): void {
    this.listeners.push(listener);
  }

  /** What a real driver reports by itself: a build finished, a VM failed or vanished. */
  change(id: string, state: VmChange['state'], fault?: string): void {
    const vm = this.vms.get(id);
    if (vm) vm.state = state;
    if (state === 'GONE') this.vms.delete(id);
    for (const l of this.listeners) l({ id, state, fault });
  }

  /** A VM that exists in the compute service but that no process knows. */
  orphan(): string {
    const id = `fake-${this.next++}`;
    this.vms.set(id, { id, req: { gid: '', pid: 0, name: 'orphan', template: '', flavor: null, meta: {}, userData: null }, state: 'ACTIVE' });
    return id;
  }

  async close(): Promise<void> {}
}
