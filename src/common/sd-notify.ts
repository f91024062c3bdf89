import { execFile } from 'node:child_process';
import { python3 } from './python.js';

/**
 * Sends one sd_notify(3) datagram (READY=1, STATUS=..., ...) to `socket`. Node has no unix
 * datagram sockets, so a short-lived helper sends it: systemd's own `systemd-notify`, or, where
 * that is missing, python3 (which every cloud-init VM has). `pid` names the main process
 * (MAINPID=) when the sender is not the process systemd watches. Resolves once sent; rejects
 * with a one-line error when neither helper could send it.
 */
export function sdNotify(socket: string, fields: Record<string, string>, opts: { pid?: number } = {}): Promise<void> {
  const lines = Object.entries(fields).map(([k, v]) => `${k}=${v.replace(/\n/g, ' ')}`);
  const env = { ...process.env, NOTIFY_SOCKET: socket };
  const run = (file: string, args: string[]): Promise<{ code?: unknown; message: string } | null> =>
    new Promise((resolve) => execFile(file, args, { env, timeout: 5000 }, (err) => resolve(err)));
  return (async () => {
    const err = await run('systemd-notify', [...(opts.pid ? [`--pid=${opts.pid}`] : []), ...lines]);
    if (!err) return;
    if (err.code !== 'ENOENT') throw new Error(`systemd-notify failed: ${err.message.split('\n')[0]}`);
    const msg = [...(opts.pid ? [`MAINPID=${opts.pid}`] : []), ...lines].join('\n');
    const { file, args } = python3();
    const py = await run(file, [...args, '-c', PY_SEND, socket, msg]);
    if (py) throw new Error(`cannot send to NOTIFY_SOCKET: neither systemd-notify nor python3 could (${py.message.split('\n')[0]})`);
  })();
}

const PY_SEND = `
import socket, sys
path = sys.argv[1]
if path.startswith("@"): path = "\\0" + path[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(sys.argv[2].encode(), path)
`;
