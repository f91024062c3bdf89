import WebSocket from 'ws';
import type { Process } from '../../src/protocol/process.js';

/**
 * Follows a group's process events over the kernel's WebSocket (for kernels running as another OS
 * process, where in-process events are out of reach). `until` resolves on the first matching state.
 */
export async function watchGroup(url: string, token: string, gid: string) {
  const ws = new WebSocket(url.replace(/^http/, 'ws') + '/v1/ws', { headers: { authorization: `Bearer ${token}` } });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const latest = new Map<number, Process>();
  const waiters = new Set<() => void>();
  ws.on('message', (d) => {
    const f = JSON.parse(d.toString());
    if (f.event === 'process') {
      latest.set(f.process.pid, f.process);
      for (const w of [...waiters]) w();
    }
  });
  const request = (frame: object): Promise<any> =>
    new Promise((resolve) => {
      const id = Math.floor(Math.random() * 1e9);
      const onMsg = (d: WebSocket.RawData): void => {
        const f = JSON.parse(d.toString());
        if (f.id === id) {
          ws.off('message', onMsg);
          resolve(f);
        }
      };
      ws.on('message', onMsg);
      ws.send(JSON.stringify({ ...frame, id }));
    });
  await request({ op: 'hello', role: 'admin' });
  await request({ op: 'subscribe', gid });
  return {
    latest,
    until(pred: (all: Map<number, Process>) => boolean, ms = 30_000): Promise<void> {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          if (pred(latest)) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve();
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error('timed out watching the group'));
        }, ms);
        waiters.add(check);
        check();
      });
    },
    close: () => ws.close(),
  };
}
