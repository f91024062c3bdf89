import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const START_MS = 60_000;

export interface KernelProcessOptions {
  /** Everything after `rack kernel`. */
  args: readonly string[];
  adminToken: string;
  /** Where its log lines go (appended). */
  logFile: string;
}

/**
 * `rack kernel` as its own OS process, one of several kernels on one store: something that can be
 * killed -9 without taking the demo down with it.
 */
export class KernelProcess {
  private constructor(
    private readonly child: ChildProcess,
    /** The address it says it listens at. */
    readonly url: string,
  ) {}

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts it; resolves once it says where it listens, fails with its last words if it ends first. */
  static start(opts: KernelProcessOptions): Promise<KernelProcess> {
    const log = openSync(opts.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [CLI, 'kernel', ...opts.args], {
        env: { ...process.env, RACK_ADMIN_TOKEN: opts.adminToken },
        stdio: ['ignore', 'pipe', log],
      });
    } finally {
      closeSync(log);
    }
    return new Promise((ok, fail) => {
      let out = '';
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        fail(new Error(`rack kernel did not listen within ${START_MS / 1000} s (its log: ${opts.logFile})`));
      }, START_MS);
      child.once('error', (err) => {
        clearTimeout(timer);
        fail(err);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        fail(new Error(`rack kernel ended (${signal ?? `exit ${code}`}) before it listened; its log: ${opts.logFile}`));
      });
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /RACK kernel at (\S+)/.exec(out);
        if (!m) return;
        clearTimeout(timer);
        child.removeAllListeners('exit');
        child.stdout!.removeAllListeners('data').resume();
        ok(new KernelProcess(child, m[1]!));
      });
    });
  }

  /** Sends `signal` and resolves once the process has ended (KILL: the way a machine dies). */
  stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((ok) => {
      this.child.once('exit', () => ok());
      this.child.kill(signal);
    });
  }
}
