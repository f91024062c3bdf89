import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { Notifier } from './notify.js';

const canRun = spawnSync('systemd-notify', ['--help'], { stdio: 'ignore' }).status === 0 && spawnSync('/usr/bin/python3', ['-V'], { stdio: 'ignore' }).status === 0;

/** Node cannot bind a unix datagram socket: a few lines of Python receive the notifications. */
const RECEIVER = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("bound", flush=True)
while True:
    print(s.recv(65536).decode().replace("\\n", "|"), flush=True)
`;

describe.skipIf(!canRun)('sd_notify through systemd-notify', () => {
  it('sends READY=1, STATUS=, WATCHDOG=1 and STOPPING=1 datagrams to NOTIFY_SOCKET', async () => {
    const sock = join(mkdtempSync(join(tmpdir(), 'notify-')), 'notify.sock');
    const rx = spawn('/usr/bin/python3', ['-c', RECEIVER, sock], { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines: string[] = [];
    const waiters: Array<() => void> = [];
    createInterface({ input: rx.stdout! }).on('line', (l) => {
      lines.push(l);
      for (const w of waiters.splice(0)) w();
    });
    const until = (pred: () => boolean): Promise<void> =>
      new Promise((resolve) => {
        const check = (): void => (pred() ? resolve() : void waiters.push(check));
        check();
      });
    await until(() => lines.includes('bound'));
    const saved = { ...process.env };
    Object.assign(process.env, { NOTIFY_SOCKET: sock, WATCHDOG_USEC: '200000', WATCHDOG_PID: String(process.pid) });
    try {
      const n = new Notifier();
      expect(n.enabled).toBe(true);
      await n.notify({ READY: '1', STATUS: 'parent pid 100: app running' });
      n.startWatchdog();
      await until(() => lines.filter((l) => l.includes('WATCHDOG=1')).length >= 2);
      n.stop();
      await n.notify({ STOPPING: '1' });
      await until(() => lines.some((l) => l.includes('STOPPING=1')));
    } finally {
      process.env = saved;
      rx.kill();
    }
    const all = lines.join('\n');
    expect(all).toMatch(/READY=1/);
    expect(all).toMatch(/STATUS=parent pid 100: app running/);
    expect(all).toMatch(new RegExp(`MAINPID=${process.pid}`));
  });

  it('is a no-op without NOTIFY_SOCKET', async () => {
    const saved = process.env.NOTIFY_SOCKET;
    delete process.env.NOTIFY_SOCKET;
    const n = new Notifier();
    expect(n.enabled).toBe(false);
    await n.notify({ READY: '1' });
    if (saved !== undefined) process.env.NOTIFY_SOCKET = saved;
  });
});
