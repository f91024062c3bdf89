import { execFileSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createInterface } from 'node:readline';
import { execa, type ResultPromise } from 'execa';
import type { Logger } from '../../common/log.js';
import type { RoleConfig } from '../config/config.js';

export interface AppExit {
  code: number | null;
  signal: string | null;
}

/** `${NAME}` from the environment, as systemd expands ExecStart; unknown names stay as they are. */
export function expand(value: string, env: Record<string, string | undefined>): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (m, name: string) => env[name] ?? m);
}

export function userIds(user: string): { uid: number; gid: number } {
  try {
    const uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    throw new Error(`user "${user}" does not exist on this machine`);
  }
}

/**
 * Runs the role's app in its own process group, streams its output into the agent's log, reaps
 * it, restarts it by policy, and delivers signals to the whole group. Events: 'state'
 * ('starting' | 'running'), 'exit' (AppExit, final after restarts).
 */
export class Supervisor extends EventEmitter {
  private child: ResultPromise | null = null;
  private stopping = false;
  private restarts = 0;

  constructor(
    private readonly role: RoleConfig,
    private readonly env: Record<string, string>,
    private readonly log: Logger,
  ) {
    super();
  }

  start(): void {
    this.emit('state', 'starting');
    const base = { ...process.env, ...this.env };
    const extra = Object.fromEntries(Object.entries(this.role.environment).map(([k, v]) => [k, expand(v, base)]));
    const env = { ...base, ...extra };
    const cwd = this.role.workdir ? expand(this.role.workdir, env) : process.cwd();
    const ids = this.role.user ? userIds(this.role.user) : {};
    const [file, ...args] = typeof this.role.command === 'string' ? ['/bin/sh', '-c', this.role.command] : this.role.command.map((a) => expand(a, env));
    // Own process group (detached), so signals reach everything the app starts.
    const child = execa(file!, args, { cwd, env, extendEnv: false, detached: true, reject: false, stdin: 'ignore', buffer: false, ...ids });
    this.child = child;
    for (const [name, stream] of [['stdout', child.stdout], ['stderr', child.stderr]] as const) {
      if (!stream) continue;
      createInterface({ input: stream }).on('line', (line) => this.log.info({ stream: name, app_pid: child.pid }, line));
    }
    child.once('spawn', () => {
      this.log.info({ app_pid: child.pid, command: file }, 'app started');
      this.emit('state', 'running');
    });
    void child.then((r) => {
      const exit: AppExit = r.signal ? { code: null, signal: r.signal.replace(/^SIG/, '') } : { code: r.exitCode ?? (r.failed ? 127 : 0), signal: null };
      if (r.failed && r.exitCode === undefined && !r.signal) this.log.error({ err: r.shortMessage }, 'app could not start');
      this.child = null;
      this.onExit(exit);
    });
  }

  private onExit(exit: AppExit): void {
    this.log.info({ code: exit.code, signal: exit.signal }, 'app exited');
    const failed = exit.code !== 0;
    const { policy, max, backoff } = this.role.restart;
    if (!this.stopping && failed && policy === 'on-failure' && this.restarts < max) {
      this.restarts++;
      const delay = backoff * 1000 * 2 ** (this.restarts - 1);
      this.log.warn({ attempt: this.restarts, max, delay_ms: delay }, 'restarting the app');
      setTimeout(() => this.start(), delay);
      return;
    }
    this.emit('exit', exit);
  }

  /** The app's first process (its process group's id), while it runs. */
  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  /** A signal to the app's whole process group. */
  signal(sig: NodeJS.Signals): boolean {
    const pid = this.child?.pid;
    if (!pid) return false;
    try {
      process.kill(-pid, sig);
      return true;
    } catch {
      return false;
    }
  }

  /** TERM, then KILL after the grace period; resolves with how the app ended. */
  stop(graceMs = this.role.stop_grace * 1000): Promise<AppExit | null> {
    this.stopping = true;
    if (!this.child) return Promise.resolve(null);
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
      this.once('exit', (e: AppExit) => {
        clearTimeout(timer);
        resolve(e);
      });
      this.signal('SIGTERM');
    });
  }
}
