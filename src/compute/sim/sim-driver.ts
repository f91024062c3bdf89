import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import yaml from 'js-yaml';
import { RackError } from '../../common/errors.js';
import { silentLogger, type Logger } from '../../common/log.js';
import { packageRoot } from '../../common/package-info.js';
import type { FlavorSize } from '../../protocol/resources.js';
import { consoleTail } from '../console-tail.js';
import type { BootRequest, ComputeDriver, VmChange, VmInfo, VmState } from '../driver.js';
import { imageFlavor } from '../image-flavors.js';
import { MetadataServer } from '../metadata/metadata-server.js';
import { findVmsProcesses, killVmsProcesses, processStartTime } from './os-processes.js';

export interface SimDriverOptions {
  /** The kernel's data dir; VMs live in DATA/vms/<id>/. */
  dataDir: string;
  /** Directories searched for a template given by name; an absolute path is used as it is. */
  templates: string[];
  metadataPort?: number;
  log?: Logger;
}

/** What DATA/vms/<id>/vm.json records: enough to adopt the VM after a kernel restart. */
interface VmRecord {
  id: string;
  template: string;
  name: string;
  flavor: string | null;
  meta: Record<string, string>;
  userData: string | null;
  secret: string;
  pid: number;
  startTime: number;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** A sim VM's serial console (its init's stdout and stderr), as `nova console-log` would show. */
export function consolePath(dataDir: string, vmId: string): string {
  return join(dataDir, 'vms', vmId, 'console.log');
}

/** Node's flags for the guest agent, as systemd/dckinit.service gives them in a real VM. */
export const AGENT_NODE_FLAGS = ['--lite-mode', '--single-threaded-gc'];

/**
 * The `sim` compute driver: a VM is a local process tree started from a template directory (the
 * stand-in for a VM image: its etc/dckinit/config.yaml and opt/app), with its own working
 * directory as its disk and a Nova-compatible metadata service. VMs run detached, so they outlive
 * a kernel that is killed, and are adopted again when it restarts.
 */
export class SimDriver implements ComputeDriver {
  readonly name = 'sim';
  /** Destroys asked for in the same turn share each look at /proc: the more at once, the fewer looks. */
  readonly destroyConcurrency = Infinity;
  private readonly vmsDir: string;
  private readonly metadata = new MetadataServer();
  private readonly listeners: Array<(change: VmChange) => void> = [];
  /**
   * VMs destroy() ended: their init's exit, which Node may report after destroy() has returned,
   * is not news. Kept until that exit is seen (VMs this driver started) or destroy() ends (others).
   */
  private readonly destroyed = new Set<string>();
  /** VMs whose init this driver started and has not seen exit. */
  private readonly spawned = new Set<string>();
  /** VMs adopted from disk (not our children): watched by polling. */
  private readonly adopted = new Map<string, VmRecord>();
  /** Other kernels' VMs handed to us to watch (see adopt): polled too, all in one look at /proc. */
  private readonly foreign = new Set<string>();
  private poller: NodeJS.Timeout | null = null;
  private readonly log: Logger;

  constructor(private readonly opts: SimDriverOptions) {
    this.vmsDir = join(opts.dataDir, 'vms');
    this.log = opts.log ?? silentLogger();
  }

  async start(): Promise<void> {
    mkdirSync(this.vmsDir, { recursive: true, mode: 0o700 });
    const portFile = join(this.vmsDir, 'metadata.port');
    const previous = existsSync(portFile) ? Number(readFileSync(portFile, 'utf8')) : 0;
    const port = await this.metadata.listen(this.opts.metadataPort ?? (Number.isInteger(previous) ? previous : 0));
    writeFileSync(portFile, String(port));
    for (const rec of this.records()) {
      this.metadata.register({ secret: rec.secret, uuid: rec.id, name: rec.name, meta: rec.meta, userData: rec.userData });
      this.adopted.set(rec.id, rec);
    }
    // A VM we did not start ourselves (adopted after a restart) is polled for its end.
    this.poller = setInterval(() => {
      for (const [id, rec] of this.adopted) {
        if (!this.alive(rec)) {
          this.adopted.delete(id);
          this.gone(id);
        }
      }
      if (this.foreign.size === 0) return;
      const running = findVmsProcesses(this.foreign);
      for (const id of this.foreign) {
        if (running.has(id)) continue;
        this.foreign.delete(id);
        this.gone(id);
      }
    }, 2000);
    this.poller.unref();
  }

  private records(): VmRecord[] {
    const out: VmRecord[] = [];
    for (const entry of readdirSync(this.vmsDir)) {
      const file = join(this.vmsDir, entry, 'vm.json');
      if (!existsSync(file)) continue;
      try {
        out.push(JSON.parse(readFileSync(file, 'utf8')) as VmRecord);
      } catch {
        this.log.warn({ vm: entry }, 'unreadable vm.json; ignoring the VM');
      }
    }
    return out;
  }

  private record(id: string): VmRecord | null {
    if (!/^sim-[0-9a-f-]{36}$/.test(id)) return null;
    try {
      return JSON.parse(readFileSync(join(this.vmsDir, id, 'vm.json'), 'utf8')) as VmRecord;
    } catch {
      return null;
    }
  }

  /**
   * A template name -> its directory under one of the operator's template directories. A caller
   * names a template; it never names a path (a template's image.yaml says what the VM runs).
   */
  resolveTemplate(template: string): string {
    if (!NAME.test(template)) throw new RackError('bad_request', `template "${template.slice(0, 60)}" is not a template name (letters, digits, ".", "_", "-"; a name the operator's --templates directories hold, never a path)`);
    for (const dir of this.opts.templates) {
      const candidate = resolve(dir, template);
      if (existsSync(candidate) && statSync(candidate).isDirectory()) return candidate;
    }
    throw new RackError('bad_request', `no template "${template}" in ${this.opts.templates.join(', ') || '(no template directories configured)'}`);
  }

  /** The command a VM of this template boots: image.yaml's `init`, else the guest agent. */
  private initCommand(dir: string): string[] {
    const imageFile = join(dir, 'image.yaml');
    if (existsSync(imageFile)) {
      const image = yaml.load(readFileSync(imageFile, 'utf8')) as { init?: unknown } | null;
      const init = image?.init;
      if (init !== undefined) {
        if (!Array.isArray(init) || init.length === 0 || !init.every((a) => typeof a === 'string')) {
          throw new RackError('bad_request', `${imageFile}: init must be a non-empty list of strings`);
        }
        return init.map((a: string) => a.replaceAll('${IMAGE}', dir));
      }
    }
    return [process.execPath, ...AGENT_NODE_FLAGS, join(packageRoot(), 'dist', 'dckinit', 'main.js')];
  }

  /** The flavors a template declares in its image.yaml (see image-flavors.ts). */
  async flavor(template: string, flavor: string | null): Promise<FlavorSize | null> {
    return imageFlavor(this.resolveTemplate(template), flavor);
  }

  async boot(req: BootRequest): Promise<string> {
    const dir = this.resolveTemplate(req.template);
    const [cmd, ...args] = this.initCommand(dir);
    const id = `sim-${randomUUID()}`;
    const vmDir = join(this.vmsDir, id);
    const disk = join(vmDir, 'disk');
    mkdirSync(disk, { recursive: true, mode: 0o700 });
    const secret = MetadataServer.newSecret();
    this.metadata.register({ secret, uuid: id, name: req.name, meta: req.meta, userData: req.userData });
    const console = openSync(consolePath(this.opts.dataDir, id), 'a');
    let child;
    try {
      child = spawn(cmd!, args, {
        cwd: disk,
        detached: true,
        stdio: ['ignore', console, console],
        env: {
          PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
          HOME: disk,
          LANG: 'C.UTF-8',
          RACK_SIM_VM: id,
          // What systemd's StateDirectory=dckinit gives the agent in a real VM: its disk.
          STATE_DIRECTORY: join(disk, 'var', 'lib', 'dckinit'),
          RACK_METADATA_URL: this.metadata.baseUrl(secret),
          DCKINIT_ROOT: dir,
          ...(process.env.RACK_LOG_LEVEL ? { RACK_LOG_LEVEL: process.env.RACK_LOG_LEVEL } : {}),
        },
      });
    } finally {
      closeSync(console);
    }
    const pid = await new Promise<number>((ok, fail) => {
      child.once('spawn', () => ok(child.pid!));
      child.once('error', (err) => fail(new RackError('compute_error', `cannot start VM init ${cmd}: ${err.message}`)));
    }).catch((err: unknown) => {
      this.metadata.unregister(secret);
      rmSync(vmDir, { recursive: true, force: true });
      throw err;
    });
    child.unref();
    const rec: VmRecord = { id, template: dir, name: req.name, flavor: req.flavor, meta: req.meta, userData: req.userData, secret, pid, startTime: processStartTime(pid) ?? 0 };
    writeFileSync(join(vmDir, 'vm.json'), JSON.stringify(rec, null, 2), { mode: 0o600 });
    this.spawned.add(id);
    child.once('exit', (code, signal) => {
      this.spawned.delete(id);
      this.log.info({ vm: id, gid: req.gid, pid: req.pid, code, signal }, 'VM init exited');
      if (!this.destroyed.delete(id)) this.gone(id);
    });
    this.log.info({ vm: id, gid: req.gid, pid: req.pid, template: dir, os_pid: pid }, 'VM booted');
    return id;
  }

  private gone(id: string): void {
    if (this.destroyed.has(id)) return;
    for (const l of this.listeners) l({ id, state: 'GONE' });
  }

  private alive(rec: VmRecord): boolean {
    const st = processStartTime(rec.pid);
    return st !== null && (rec.startTime === 0 || st === rec.startTime);
  }

  async state(id: string): Promise<VmState> {
    const rec = this.record(id);
    // A VM of another kernel on this machine (several kernels on one store): alive while any
    // process of it runs, and destroy() finds them all the same.
    if (!rec) return /^sim-[0-9a-f-]{36}$/.test(id) && findVmsProcesses(new Set([id])).has(id) ? 'ACTIVE' : 'GONE';
    return this.alive(rec) ? 'ACTIVE' : 'GONE';
  }

  async consoleOutput(id: string, lines: number): Promise<string> {
    if (!/^sim-[0-9a-f-]{36}$/.test(id)) return '';
    return consoleTail(consolePath(this.opts.dataDir, id), lines);
  }

  async adopt(ids: readonly string[]): Promise<Map<string, VmState>> {
    const out = new Map<string, VmState>();
    const others = new Set<string>();
    for (const id of ids) {
      if (this.spawned.has(id) || this.adopted.has(id) || this.foreign.has(id)) out.set(id, 'ACTIVE');
      else if (this.record(id)) out.set(id, await this.state(id));
      else if (/^sim-[0-9a-f-]{36}$/.test(id)) others.add(id);
      else out.set(id, 'GONE');
    }
    // One look at /proc for all of them: a VM runs while any process of it does.
    const running = others.size > 0 ? findVmsProcesses(others) : new Map<string, number[]>();
    for (const id of others) {
      if (running.has(id)) this.foreign.add(id);
      out.set(id, running.has(id) ? 'ACTIVE' : 'GONE');
    }
    return out;
  }

  /**
   * Destroys go out in batches: the ones asked for in the same turn share each look at /proc
   * (a group of a thousand VMs is destroyed in a few looks, not a thousand).
   */
  private batch: { ids: Set<string>; done: Promise<void> } | null = null;

  private killSoon(id: string): Promise<void> {
    if (!this.batch) {
      const ids = new Set<string>();
      const done = new Promise<void>((resolve, reject) =>
        setImmediate(() => {
          this.batch = null;
          killVmsProcesses(ids).then(resolve, reject);
        }),
      );
      this.batch = { ids, done };
    }
    this.batch.ids.add(id);
    return this.batch.done;
  }

  async destroy(id: string): Promise<void> {
    const rec = this.record(id);
    this.destroyed.add(id);
    this.foreign.delete(id);
    try {
      // Every process that inherited the VM's marker, including ones that left its session.
      await this.killSoon(id);
      if (rec) this.metadata.unregister(rec.secret);
      this.adopted.delete(id);
      if (/^sim-[0-9a-f-]{36}$/.test(id)) rmSync(join(this.vmsDir, id), { recursive: true, force: true });
    } finally {
      if (!this.spawned.has(id)) this.destroyed.delete(id);
    }
  }

  async list(): Promise<VmInfo[]> {
    const records = this.records();
    const running = findVmsProcesses(new Set(records.map((r) => r.id)));
    return records.map((r) => ({ id: r.id, state: this.alive(r) || running.has(r.id) ? 'ACTIVE' : 'GONE' }));
  }

  onChange(listener: (change: VmChange) => void): void {
    this.listeners.push(listener);
  }

  /** Stops serving metadata and watching; the VMs keep running (a restart adopts them). */
  async close(): Promise<void> {
    if (this.poller) clearInterval(this.poller);
    await this.metadata.close();
  }
}
