import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Server as NetServer } from 'node:net';

/** Nova's metadata versions, oldest first; cloud-init picks the newest it knows from this list. */
export const VERSIONS = ['2012-08-10', '2013-04-04', '2013-10-17', '2015-10-15', '2016-06-30', '2016-10-06', '2017-02-22', '2018-08-27', '2020-10-14'];

export interface VmMetadata {
  /** The secret path prefix: the only way to reach this VM's metadata. */
  secret: string;
  uuid: string;
  name: string;
  meta: Record<string, string>;
  userData: string | null;
  /**
   * The VM's own IP address, for a VM that reaches the service from a network of its own (the
   * nspawn driver): like real Nova, a request from that address gets this VM's metadata at the
   * plain paths, with no secret prefix.
   */
  address?: string;
}

/**
 * A Nova-compatible metadata service for every local VM. Real Nova tells VMs apart by their source
 * address, and so does this service for VMs registered with an `address` (on a listener in their
 * network, see `attach`). Sim VMs share the host's loopback, so each instead gets a base URL with a
 * secret prefix (`http://127.0.0.1:PORT/<secret>`): it can read its own metadata and nobody else's.
 */
export class MetadataServer {
  private readonly vms = new Map<string, VmMetadata>();
  private readonly byAddress = new Map<string, VmMetadata>();
  private server: Server | null = null;
  private readonly attached: Server[] = [];

  static newSecret(): string {
    return randomBytes(16).toString('hex');
  }

  register(vm: VmMetadata): void {
    this.vms.set(vm.secret, vm);
    if (vm.address) this.byAddress.set(vm.address, vm);
  }

  unregister(secret: string): void {
    const vm = this.vms.get(secret);
    if (vm?.address && this.byAddress.get(vm.address) === vm) this.byAddress.delete(vm.address);
    this.vms.delete(secret);
  }

  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? 0;
  }

  baseUrl(secret: string): string {
    return `http://127.0.0.1:${this.port}/${secret}`;
  }

  private handler(): Server {
    const server = createServer((req, res) => {
      const send = (status: number, body: string, type = 'text/plain'): void => {
        res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
        res.end(body);
      };
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed');
      const parts = (req.url ?? '/').split('?')[0]!.split('/').filter(Boolean);
      const remote = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
      const own = this.byAddress.get(remote);
      const vm = own ?? this.vms.get(parts[0] ?? '');
      if (!vm) return send(404, 'not found');
      const answer = this.answer(vm, own ? parts : parts.slice(1));
      if (!answer) return send(404, 'not found');
      send(200, answer.body, answer.type);
    });
    server.on('clientError', (_e, socket) => socket.destroy());
    return server;
  }

  /** Listens on `port` (0: any); if that port is taken, on any other. */
  async listen(port = 0): Promise<number> {
    const server = this.handler();
    const tryListen = (p: number): Promise<void> =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(p, '127.0.0.1', () => {
          server.off('error', reject);
          resolve();
        });
      });
    try {
      await tryListen(port);
    } catch (err) {
      if (port === 0 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
      await tryListen(0);
    }
    this.server = server;
    return this.port;
  }

  /** Also serves on a listening socket made elsewhere (in a VM network's namespace, say). */
  async attach(listener: NetServer): Promise<void> {
    const server = this.handler();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(listener, () => resolve());
    });
    this.attached.push(server);
  }

  private answer(vm: VmMetadata, path: string[]): { body: string; type: string } | null {
    const json = (o: unknown): { body: string; type: string } => ({ body: JSON.stringify(o), type: 'application/json' });
    const text = (s: string): { body: string; type: string } => ({ body: s, type: 'text/plain' });
    if (path.length === 0) return text('openstack\n');
    if (path[0] !== 'openstack') return null;
    if (path.length === 1) return text([...VERSIONS, 'latest'].join('\n'));
    const version = path[1]!;
    if (version !== 'latest' && !VERSIONS.includes(version)) return null;
    const files = ['meta_data.json', ...(vm.userData === null ? [] : ['user_data']), 'network_data.json', 'vendor_data.json', 'vendor_data2.json'];
    if (path.length === 2) return text(files.join('\n'));
    if (path.length !== 3) return null;
    switch (path[2]) {
      case 'meta_data.json':
        return json({
          uuid: vm.uuid,
          name: vm.name,
          hostname: vm.name,
          launch_index: 0,
          availability_zone: 'sim',
          project_id: 'rack-sim',
          meta: vm.meta,
          public_keys: {},
          keys: [],
          devices: [],
        });
      case 'user_data':
        return vm.userData === null ? null : text(vm.userData);
      case 'network_data.json':
        return json({ links: [], networks: [], services: [] });
      case 'vendor_data.json':
      case 'vendor_data2.json':
        return json({});
      default:
        return null;
    }
  }

  async close(): Promise<void> {
    const servers = [...(this.server ? [this.server] : []), ...this.attached.splice(0)];
    this.server = null;
    await Promise.all(
      servers.map((s) => {
        s.closeAllConnections();
        return new Promise<void>((resolve) => s.close(() => resolve()));
      }),
    );
  }
}
