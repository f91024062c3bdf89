import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Logger } from '../../common/log.js';
import { python3 } from '../../common/python.js';

/**
 * The receiving end of the app's NOTIFY_SOCKET. Node cannot bind a unix datagram socket, and the
 * native addons that can need a compiler in the image (images install dckinit without running
 * install scripts); python3 is on every VM that runs cloud-init (cloud-init is written in it), so
 * a few lines of its standard library bind the socket and hand each datagram to the agent as a
 * JSON line on a pipe. The helper ends when the agent does (its stdin closes).
 */
const HELPER = `
import json, os, select, socket, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
# The directory (mode 0700, the app's user's) is what guards the socket.
os.chmod(path, 0o666)
print("bound", flush=True)
while True:
    ready, _, _ = select.select([s, sys.stdin], [], [])
    if sys.stdin in ready and not sys.stdin.buffer.read1(1):
        break
    if s in ready:
        data = s.recv(4096)
        print(json.dumps(data.decode("utf-8", "replace")), flush=True)
`;

/** One notification: its KEY=VALUE lines as fields. */
export type Notification = Record<string, string>;

/** Parses an sd_notify datagram ("READY=1\nSTATUS=..."); lines without "=" are skipped. */
export function parseNotification(text: string): Notification {
  const out: Notification = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

/** Events: 'message' (Notification). */
export class NotifyRelay extends EventEmitter<{ message: [Notification] }> {
  private constructor(
    readonly socketPath: string,
    private readonly dir: string,
    private readonly helper: ChildProcess,
  ) {
    super();
  }

  /**
   * Binds a NOTIFY_SOCKET for the app; null when no helper can (no python3): the app then runs
   * without one, and the log says so.
   */
  static async start(log: Logger): Promise<NotifyRelay | null> {
    // A short path: a unix socket's path has at most 107 bytes.
    const dir = mkdtempSync(join(process.env.RUNTIME_DIRECTORY || tmpdir(), 'dckinit-'));
    const path = join(dir, 'notify.sock');
    const py = python3();
    const helper = spawn(py.file, [...py.args, '-c', HELPER, path], { stdio: ['pipe', 'pipe', 'pipe'] });
    const lines = createInterface({ input: helper.stdout! });
    let stderr = '';
    helper.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-500)));
    const bound = await new Promise<boolean>((resolve) => {
      helper.once('error', () => resolve(false));
      helper.once('exit', () => resolve(false));
      lines.once('line', (l) => resolve(l === 'bound'));
    });
    if (!bound) {
      log.warn({ err: stderr.trim().split('\n').at(-1) || 'python3 is not there' }, 'no NOTIFY_SOCKET for the app: its helper could not start');
      helper.kill();
      rmSync(dir, { recursive: true, force: true });
      return null;
    }
    const relay = new NotifyRelay(path, dir, helper);
    lines.on('line', (l) => {
      try {
        relay.emit('message', parseNotification(JSON.parse(l) as string));
      } catch {
        log.warn('an unreadable line from the NOTIFY_SOCKET helper');
      }
    });
    helper.once('exit', (code) => log.debug({ code }, 'NOTIFY_SOCKET helper ended'));
    return relay;
  }

  /** For an app that runs as another user: the socket's directory (mode 0700, what guards it) becomes theirs. */
  giveTo(owner: { uid: number; gid: number }): void {
    chownSync(this.dir, owner.uid, owner.gid);
  }

  /** Ends the helper and removes the socket; again is harmless. */
  close(): void {
    this.helper.stdin?.end();
    this.helper.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
