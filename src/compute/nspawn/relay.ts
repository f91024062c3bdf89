import { connect, type Server, type Socket } from 'node:net';

/**
 * Forwards every connection accepted on `listener` (in the guests' network) to the kernel's own
 * address, so guests reach a kernel that listens on loopback, and keep one URL across kernel
 * restarts on other ports.
 */
export class KernelRelay {
  private readonly sockets = new Set<Socket>();

  constructor(
    private readonly listener: Server,
    target: { host: string; port: number },
  ) {
    listener.on('connection', (inbound) => {
      const outbound = connect(target.port, target.host);
      for (const s of [inbound, outbound]) {
        this.sockets.add(s);
        s.once('close', () => this.sockets.delete(s));
        s.on('error', () => {
          inbound.destroy();
          outbound.destroy();
        });
      }
      inbound.pipe(outbound).pipe(inbound);
    });
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.listener.close(() => resolve()));
  }
}
