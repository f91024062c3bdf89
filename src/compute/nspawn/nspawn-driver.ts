import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { dirname, join } from 'node:path';
import { silentLogger, type Logger } from '../../common/log.js';
import { consoleTail } from '../console-tail.js';
import type { FlavorSize } from '../../protocol/resources.js';
import type { BootRequest, ComputeDriver, VmChange, VmInfo, VmState } from '../driver.js';
import { imageFlavor } from '../image-flavors.js';
import { MetadataServer } from '../metadata/metadata-server.js';
import { writeGuestFiles } from './guest-files.js';
import { resolveImage } from './images.js';
import { alive, pidNamespace, startMachine, stopMachine, waitLeader, type OsProcess } from './machine.js';
import { serveMirror } from './mirror.js';
import { listenInNetns } from './netns-listen.js';
import { GATEWAY, GuestNetwork, METADATA_ADDRESS, netnsExists } from './network.js';
import { KernelRelay } from './relay.js';

/** Where guests reach the kernel (through the relay) and the mirror, on the gateway address. */
const RELAY_PORT = 8088;
const MIRROR_PORT = 8080;
/** Where guests find the RACK_NSPAWN_MIRROR directory. */
export const NSPAWN_MIRROR_URL = `http://${GATEWAY}:${MIRROR_PORT}`;

export interface NspawnDriverOptions {
  /** The kernel's data dir; VMs live in DATA/vms/<id>/. */
  dataDir: string;
  /** This kernel's stable id: its guest network is named after it. */
  kernelId: string;
  /** Image stores searched for template names (scripts/guest-image.sh). */
  images: string[];
  /** A directory served read-only to guests at http://GATEWAY:8080/ (RACK_NSPAWN_MIRROR). */
  mirror?: string;
  /** How long a destroyed guest gets to power off before it is killed. */
  stopGraceMs?: number;
  log?: Logger;
}

/** What DATA/vms/<id>/vm.json records: enough to serve, watch and stop the VM after a restart. */
export interface NspawnVm {
  id: string;
  name: string;
  gid: string;
  pid: number;
  rootfs: string;
  meta: Record<string, string>;
  userData: string | null;
  secret: string;
  address: string;
  netns: string;
  nspawn: OsProcess;
  leader: OsProcess;
  /** The guest's PID namespace: every process of the machine is in it. */
  pidns: string | null;
}

const ID = /^nspawn-[0-9a-f-]{36}$/;

export function readVm(dataDir: string, id: string): NspawnVm | null {
  if (!ID.test(id)) return null;
  try {
    return JSON.parse(readFileSync(join(dataDir, 'vms', id, 'vm.json'), 'utf8')) as NspawnVm;
  } catch {
    return null;
  }
}

/**
 * The `nspawn` compute driver: every VM is a systemd-nspawn machine booted from an image's root
 * filesystem, with real systemd as PID 1 and real cloud-init, in a network namespace of its own
 * whose only neighbour is this kernel's bridge: the Nova-compatible metadata service at
 * 169.254.169.254 and a relay to the kernel. Needs root.
 */
export class NspawnDriver implements ComputeDriver {
  readonly name = 'nspawn';
  private readonly vmsDir: string;
  private readonly network: GuestNetwork;
  private readonly metadata = new MetadataServer();
  private readonly listeners: Array<(change: VmChange) => void> = [];
  private readonly destroyed = new Set<string>();
  private readonly reserved = new Set<string>();
  private readonly log: Logger;
  private relayListener: import('node:net').Server | null = null;
  private relay: KernelRelay | null = null;
  private mirror: Server | null = null;
  private poller: NodeJS.Timeout | null = null;

  constructor(private readonly opts: NspawnDriverOptions) {
    this.vmsDir = join(opts.dataDir, 'vms');
    this.network = new GuestNetwork(`rack-${opts.kernelId.replace(/[^0-9a-f]/g, '').slice(0, 8)}`);
    this.log = opts.log ?? silentLogger();
  }

  async start(): Promise<void> {
    mkdirSync(this.vmsDir, { recursive: true, mode: 0o700 });
    await this.network.ensure();
    const endpoints: Array<[string, number]> = [[METADATA_ADDRESS, 80], [GATEWAY, RELAY_PORT]];
    if (this.opts.mirror) endpoints.push([GATEWAY, MIRROR_PORT]);
    const [metadata, relay, mirror] = await listenInNetns(this.network.hostNetns, endpoints);
    await this.metadata.attach(metadata!);
    this.relayListener = relay!;
    if (mirror) this.mirror = await serveMirror(this.opts.mirror!, mirror);
    for (const vm of this.records()) this.metadata.register({ secret: vm.secret, uuid: vm.id, name: vm.name, meta: vm.meta, userData: vm.userData, address: vm.address });
    // Machines this process did not start (a restarted kernel) are polled for their end.
    this.poller = setInterval(() => {
      for (const vm of this.records()) if (!alive(vm.nspawn) && !this.destroyed.has(vm.id)) this.gone(vm.id);
    }, 2000);
    this.poller.unref();
    this.log.info({ netns: this.network.hostNetns, images: this.opts.images, mirror: this.opts.mirror }, 'nspawn guest network ready');
  }

  /** Guests cannot reach the kernel's loopback: they get a relay on their gateway instead. */
  async guestUrl(kernelUrl: string): Promise<string> {
    const u = new URL(kernelUrl);
    const host = u.hostname.replace(/^\[|\]$/g, '');
    this.relay = new KernelRelay(this.relayListener!, { host: host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host, port: Number(u.port) });
    return `http://${GATEWAY}:${RELAY_PORT}`;
  }

  private records(): NspawnVm[] {
    const out: NspawnVm[] = [];
    for (const entry of existsSync(this.vmsDir) ? readdirSync(this.vmsDir) : []) {
      const vm = readVm(this.opts.dataDir, entry);
      if (vm) out.push(vm);
    }
    return out;
  }

  /**
   * The flavors the image declares: an `image.yaml` beside its rootfs (scripts/guest-image.sh
   * copies the app's), as for the sim's templates (see image-flavors.ts).
   */
  async flavor(template: string, flavor: string | null): Promise<FlavorSize | null> {
    return imageFlavor(dirname(resolveImage(this.opts.images, template)), flavor);
  }

  async boot(req: BootRequest): Promise<string> {
    const rootfs = resolveImage(this.opts.images, req.template);
    const uuid = randomUUID();
    const id = `nspawn-${uuid}`;
    const vmDir = join(this.vmsDir, id);
    mkdirSync(vmDir, { recursive: true, mode: 0o700 });
    const address = GuestNetwork.allocate([...this.records().map((r) => r.address), ...this.reserved]);
    this.reserved.add(address);
    const key = uuid.replaceAll('-', '').slice(0, 12);
    const secret = MetadataServer.newSecret();
    try {
      const netns = await this.network.attach(key, address);
      const files = writeGuestFiles(vmDir, GATEWAY);
      this.metadata.register({ secret, uuid: id, name: req.name, meta: req.meta, userData: req.userData, address });
      const { nspawn, exited } = await startMachine({
        // Not req.name: the guest's hostname is cloud-init's to set, from the metadata.
        name: `rk-${key}`,
        rootfs,
        netns,
        console: join(vmDir, 'console.log'),
        binds: [
          [files.resolvConf, '/etc/resolv.conf'],
          [files.cloudCfg, '/etc/cloud/cloud.cfg.d/90-rack-nspawn.cfg'],
        ],
      });
      const leader = await waitLeader(nspawn, 60_000).catch(async (err: unknown) => {
        await stopMachine(nspawn, null, 0);
        throw err;
      });
      const vm: NspawnVm = { id, name: req.name, gid: req.gid, pid: req.pid, rootfs, meta: req.meta, userData: req.userData, secret, address, netns, nspawn, leader, pidns: pidNamespace(leader.pid) };
      writeFileSync(join(vmDir, 'vm.json'), JSON.stringify(vm, null, 2), { mode: 0o600 });
      void exited.then(() => {
        this.log.info({ vm: id, gid: req.gid, pid: req.pid }, 'machine stopped');
        if (!this.destroyed.has(id)) this.gone(id);
      });
      this.log.info({ vm: id, gid: req.gid, pid: req.pid, template: req.template, address, os_pid: leader.pid }, 'machine booted');
      return id;
    } catch (err) {
      this.metadata.unregister(secret);
      await this.network.detach(key).catch(() => {});
      rmSync(vmDir, { recursive: true, force: true });
      throw err;
    } finally {
      this.reserved.delete(address);
    }
  }

  private gone(id: string): void {
    if (this.destroyed.has(id)) return;
    this.destroyed.add(id);
    for (const l of this.listeners) l({ id, state: 'GONE' });
  }

  async state(id: string): Promise<VmState> {
    const vm = readVm(this.opts.dataDir, id);
    return vm && alive(vm.nspawn) ? 'ACTIVE' : 'GONE';
  }

  async consoleOutput(id: string, lines: number): Promise<string> {
    return ID.test(id) ? consoleTail(join(this.vmsDir, id, 'console.log'), lines) : '';
  }

  async destroy(id: string): Promise<void> {
    const vm = readVm(this.opts.dataDir, id);
    if (!vm) return;
    this.destroyed.add(id);
    await stopMachine(vm.nspawn, vm.leader, this.opts.stopGraceMs ?? 5000);
    await this.network.detach(vm.netns.slice(this.network.hostNetns.length + 1));
    this.metadata.unregister(vm.secret);
    rmSync(join(this.vmsDir, id), { recursive: true, force: true });
    this.log.info({ vm: id, gid: vm.gid, pid: vm.pid }, 'machine destroyed');
  }

  async list(): Promise<VmInfo[]> {
    return this.records().map((vm) => ({ id: vm.id, state: alive(vm.nspawn) ? 'ACTIVE' : 'GONE' }));
  }

  onChange(listener: (change: VmChange) => void): void {
    this.listeners.push(listener);
  }

  /** Stops serving; machines keep running (a restarted kernel adopts them). The network goes once no machine is left. */
  async close(): Promise<void> {
    if (this.poller) clearInterval(this.poller);
    await this.relay?.close();
    if (!this.relay) this.relayListener?.close();
    await this.metadata.close();
    this.mirror?.closeAllConnections();
    await new Promise<void>((resolve) => (this.mirror ? this.mirror.close(() => resolve()) : resolve()));
    if (!this.records().some((vm) => alive(vm.nspawn) || netnsExists(vm.netns))) await this.network.remove();
  }
}
