// The part of a hypervisor that Nova's fake virt driver leaves out: it runs a guest for every
// ACTIVE server a test chooses. The guest is the real guest agent (dist/dckinit/main.js) with a
// template directory as its disk, reading its server's real Nova metadata through a neutron-like
// metadata proxy; when Nova no longer lists the server, the guest is killed, as a deleted VM is.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMetadataProxy } from './metadata-proxy.mjs';

const ROOT = join(import.meta.dirname, '..', '..', '..');

/**
 * Every process of a guest carries RACK_OS_GUEST=<server id> in its environment: the agent starts
 * apps in process groups of their own, so killing the agent's group would leave them running.
 */
function guestProcesses(id) {
  const marker = `RACK_OS_GUEST=${id}`;
  const out = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0').includes(marker)) out.push(Number(entry));
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

export class GuestHost {
  /**
   * session: a KeystoneSession (dist/openstack/keystone.js) of the project the servers are in;
   * secret: Nova's metadata proxy shared secret; template: the image directory (etc/dckinit, opt/app);
   * match(server): whether this host runs a guest for that server (e.g. by its rack_gid metadata).
   */
  constructor({ session, secret, template, match, onLine = () => {}, pollMs = 500 }) {
    Object.assign(this, { session, secret, template, match, onLine, pollMs });
    /** server id -> { child, proxy, disk, started, console } */
    this.guests = new Map();
    this.listeners = new Set();
    this.timer = null;
    this.stopped = false;
  }

  start() {
    // Guests are detached (they must outlive nothing but their server): should this process end
    // without stop() (an exception, a timeout), they go with it.
    this.onExit = () => {
      for (const id of this.guests.keys()) this.halt(id, 'host exited');
    };
    process.once('exit', this.onExit);
    const tick = async () => {
      if (this.stopped) return;
      try {
        await this.scan();
      } catch (err) {
        this.onLine(`guest host: ${err.message}`);
      }
      if (!this.stopped) this.timer = setTimeout(tick, this.pollMs);
    };
    void tick();
    return this;
  }

  async scan() {
    const res = await this.session.request('compute', { method: 'GET', path: '/servers/detail', headers: { accept: 'application/json' } });
    if (res.status !== 200) throw new Error(`Nova answered HTTP ${res.status} to the server list`);
    const { servers } = await res.body.json();
    const live = new Set(servers.map((s) => s.id));
    for (const s of servers) {
      if (s.status === 'ACTIVE' && !this.guests.has(s.id) && this.match(s)) await this.boot(s);
    }
    // A guest whose agent exited may have left its app running (on_exit: stay): it goes with its server.
    for (const [id, g] of this.guests) if (!live.has(id) && !g.reaped) this.halt(id, 'server deleted');
  }

  async boot(server) {
    const proxy = await startMetadataProxy({ instance: server.id, tenant: server.tenant_id, secret: this.secret });
    const disk = mkdtempSync(join(tmpdir(), 'rack-guest-'));
    const child = spawn(process.execPath, ['--lite-mode', '--single-threaded-gc', join(ROOT, 'dist', 'dckinit', 'main.js')], {
      cwd: disk,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH, HOME: disk, LANG: 'C.UTF-8', RACK_METADATA_URL: proxy.url, DCKINIT_ROOT: this.template, RACK_LOG_LEVEL: 'info', RACK_OS_GUEST: server.id },
    });
    const g = { child, proxy, disk, started: Date.now(), console: '', ended: false, exit: null };
    this.guests.set(server.id, g);
    for (const stream of [child.stdout, child.stderr]) {
      stream.setEncoding('utf8');
      stream.on('data', (d) => {
        g.console += d;
        for (const line of d.split('\n').filter(Boolean)) this.onLine(`${server.name}: ${line}`);
      });
    }
    child.once('exit', (code, signal) => {
      g.exit = { code, signal };
      void this.cleanup(g);
      for (const l of this.listeners) l(server.id);
    });
    for (const l of this.listeners) l(server.id);
  }

  /** Kills every process of the guest: its VM is gone. */
  halt(id, why) {
    const g = this.guests.get(id);
    if (!g) return;
    g.ended ||= why;
    const pids = guestProcesses(id);
    if (pids.length === 0 && g.exit) g.reaped = true;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone meanwhile */
      }
    }
  }

  async cleanup(g) {
    g.ended ||= 'exited';
    await g.proxy.close();
    rmSync(g.disk, { recursive: true, force: true });
  }

  /** Resolves once pred() holds; checked at every guest start and exit. */
  until(pred, ms = 120_000) {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!pred()) return;
        clearTimeout(timer);
        this.listeners.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.listeners.delete(check);
        reject(new Error(`guests: condition not met in ${ms} ms`));
      }, ms);
      this.listeners.add(check);
      check();
    });
  }

  async stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    process.off('exit', this.onExit);
    const exits = [];
    for (const [id, g] of this.guests) {
      if (!g.exit) exits.push(new Promise((r) => g.child.once('exit', r)));
      this.halt(id, 'host stopped');
    }
    await Promise.all(exits);
    // SIGKILL is delivered asynchronously: give the apps a moment to be gone from /proc.
    for (let i = 0; ; i++) {
      const left = [...this.guests.keys()].flatMap(guestProcesses);
      if (left.length === 0) return;
      if (i === 50) throw new Error(`guest processes left after stop: ${left.join(' ')}`);
      for (const pid of left) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
