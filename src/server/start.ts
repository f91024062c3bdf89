import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { operations, type Services } from '../api/ops/index.js';
import { createApi, type Api } from '../api/server.js';
import { RackError } from '../common/errors.js';
import { createLogger, type Logger } from '../common/log.js';
import type { ComputeDriver } from '../compute/driver.js';
import type { FileBackend } from '../files/backend.js';
import { openStore } from '../store/open-store.js';
import { bridge } from './bridge.js';
import { aliveLease, RECHECK_MS, type KernelBus } from '../bus/bus.js';
import { openBus } from '../bus/open-bus.js';
import type { Quotas } from '../protocol/process.js';
import type { Store } from '../store/store.js';
import { Authenticator, loadAdminToken } from '../auth/auth.js';
import { DEFAULT_LIMITS, Limiter, type ClientLimits } from '../auth/limits.js';
import { LocalFiles } from '../files/local.js';
import { Messaging } from '../ipc/messaging.js';
import { Pipes } from '../ipc/pipes.js';
import { MemoryPipes } from '../store/memory-pipes.js';
import { SharedMemory } from '../ipc/shared-memory.js';
import { Kernel } from '../kernel/kernel.js';
import { Monitor } from '../monitor/monitor.js';
import type { Capacity } from '../protocol/resources.js';
import { kernelId, lockDataDir } from './data-dir.js';
import { createCompute, createFiles, type DriverConfig } from './drivers.js';

export interface KernelConfig extends DriverConfig {
  /** host:port to listen on; port 0 picks a free one. */
  listen: string;
  dataDir: string;
  adminToken?: string;
  /**
   * The URL VMs use to reach the kernel, when it differs from the listen address; several,
   * comma-separated, for kernels over one store (clients move to the next when theirs goes away).
   */
  publicUrl?: string;
  forkLimit?: number;
  defaultGraceMs?: number;
  log?: Logger;
  /** A ready-made store (tests, embedding); the default is DATA/rack.db. */
  store?: Store;
  /** Where the state is kept when no `store` is given: a Redis URL (see openStore); null/absent: DATA/rack.db. */
  storeUrl?: string | null;
  /**
   * How the kernel hears other kernels on its store (src/bus). Default: Redis pub/sub beside a
   * Redis `storeUrl` (several kernels may share it), else none (a kernel alone on its store).
   */
  bus?: KernelBus;
  /** The quotas of groups created without their own (see Quotas). */
  quotas?: Partial<Quotas>;
  /** What one client may take: request rate, requests in flight, connections, bytes queued to it. */
  limits?: Partial<ClientLimits>;
  /**
   * https and wss: the certificate (chain) and key, PEM. VMs are given `ca` to trust it, by
   * default the certificate itself (right for a self-signed one; give the CA that signed it).
   */
  tls?: { cert: string; key: string; ca?: string };
  /** The kernel-wide resource pool (instances, vCPUs, RAM); on Nova the project's limits apply too. */
  pool?: Capacity;
}

export interface RunningKernel {
  url: string;
  adminToken: string;
  dataDir: string;
  kernel: Kernel;
  /** The kernel's parts, as the operations see them. */
  services: Services;
  api: Api;
  close(): Promise<void>;
}

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$/.exec(listen);
  if (!m || Number(m[2]) > 65535) {
    throw new RackError('bad_request', `--listen must be HOST:PORT (e.g. 127.0.0.1:8088), got "${listen}"`);
  }
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

/** Starts a kernel: store, compute driver, reconciliation, then the API. */
export async function startKernel(cfg: KernelConfig): Promise<RunningKernel> {
  const { host, port } = parseListen(cfg.listen);
  const dataDir = resolve(cfg.dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const log = cfg.log ?? createLogger({ name: 'rack-kernel' });
  const unlock = lockDataDir(dataDir);
  const adminToken = loadAdminToken(dataDir, cfg.adminToken ?? process.env.RACK_ADMIN_TOKEN);
  let store: Store;
  let bus: KernelBus;
  try {
    store = cfg.store ?? (await openStore(cfg.storeUrl ?? null, dataDir, log));
    bus = await (cfg.bus ? Promise.resolve(cfg.bus) : openBus(cfg.store ? null : (cfg.storeUrl ?? null), () => kernelId(dataDir), log)).catch(async (err: unknown) => {
      await store.close();
      throw err;
    });
  } catch (err) {
    unlock();
    throw err;
  }
  let compute: ComputeDriver;
  let remoteFiles: FileBackend | undefined;
  try {
    compute = await createCompute(cfg, dataDir, log);
    remoteFiles = await createFiles(cfg, log).catch(async (err: unknown) => {
      await compute.close();
      throw err;
    });
  } catch (err) {
    await bus.close();
    await store.close();
    unlock();
    throw err;
  }
  let url = cfg.publicUrl ?? '';
  const auth = new Authenticator(adminToken, store.tokens);
  const kernel = new Kernel({
    store,
    compute,
    tokens: auth,
    log,
    url: () => url,
    forkLimit: cfg.forkLimit,
    defaultGraceMs: cfg.defaultGraceMs,
    quotas: cfg.quotas,
    ca: cfg.tls ? (cfg.tls.ca ?? cfg.tls.cert) : undefined,
    pool: cfg.pool,
    bus,
  });
  const quotas = (gid: string): Promise<Quotas> => kernel.quotas(gid);
  const services: Services = {
    kernel,
    messaging: new Messaging(
      store.mailboxes,
      (gid, pid) => kernel.getProcess(gid, pid),
      async (gid) => {
        const q = await quotas(gid);
        return { maxCount: q.mailbox_messages, maxBytes: q.mailbox_bytes };
      },
      bus.shared ? (gid, to, seq) => bus.publish({ t: 'mail', gid, to, seq }) : undefined,
    ),
    shm: new SharedMemory(store.shm, async (gid) => (await quotas(gid)).shm_bytes, bus.shared ? RECHECK_MS : undefined),
    pipes: new Pipes(store.pipes ?? new MemoryPipes(), {
      onError: (err) => log.warn({ err }, 'a pipe operation failed'),
      ...(bus.shared
        ? {
            kernel: bus.id,
            publish: (gid: string, pipe: string) => bus.publish({ t: 'pipe', gid, pipe }),
            alive: async (id: string) => (await bus.holder(aliveLease(id))) !== null,
          }
        : {}),
    }),
    files: remoteFiles ?? (cfg.filesDir ? new LocalFiles(resolve(cfg.filesDir), { shared: true }) : new LocalFiles(join(dataDir, 'files'))),
    monitor: new Monitor(),
  };
  // Every reaction to a process's life, in one place (the kernel's own, the signals queued for
  // its agent, is registered by the kernel). They run in this order before the change is announced.
  // With other kernels on the store, the `…Elsewhere` reactions forget what this kernel keeps in
  // memory when another kernel saw the end (tokens: their revocation travels on the bus itself).
  const { messaging, pipes, files, monitor } = services;
  kernel.use({
    name: 'pipes',
    // fork(): a child inherits its parent's anonymous pipes, as a Unix child its descriptors.
    forked: (p) => (p.ppid === null ? undefined : pipes.inherit(p.gid, p.ppid, p.pid)),
    ended: (p) => pipes.closeProcess(p.gid, p.pid),
    groupDeleted: (gid) => pipes.closeGroup(gid),
    endedElsewhere: (p) => pipes.closeProcess(p.gid, p.pid, false),
    groupDeletedElsewhere: (gid) => pipes.closeGroup(gid, false),
  });
  kernel.use({ name: 'mailbox', ended: (p) => messaging.forget(p.gid, p.pid), endedElsewhere: (p) => messaging.forget(p.gid, p.pid) });
  // A process's app token ends with the process; its agent's, with its VM.
  kernel.use({
    name: 'tokens',
    ended: (p) => auth.revoke(p.gid, p.pid, 'app'),
    vmGone: (p) => auth.revoke(p.gid, p.pid, 'agent'),
    groupDeleted: (gid) => auth.forgetGroup(gid),
  });
  // Local files are each kernel's own directory; a shared backend (Swift) is deleted once.
  kernel.use({ name: 'files', groupDeleted: (gid) => files.deleteGroup(gid), ...(remoteFiles ? {} : { groupDeletedElsewhere: (gid: string) => files.deleteGroup(gid) }) });
  kernel.use({
    name: 'usage samples',
    ended: (p) => monitor.forget(p.gid, p.pid),
    groupDeleted: (gid) => monitor.forgetGroup(gid),
    endedElsewhere: (p) => monitor.forget(p.gid, p.pid),
    groupDeletedElsewhere: (gid) => monitor.forgetGroup(gid),
  });
  await kernel.reconcile();
  const limiter = new Limiter({ ...DEFAULT_LIMITS, ...cfg.limits });
  const api = createApi({ operations: operations(services), kernel, auth, limiter, log, monitor, tls: cfg.tls });
  // A revoked token's open connections close (their clients get 401 if they come back), on
  // every kernel: the bridge publishes revocations and hears the other kernels'.
  auth.on('revoked', (whose) => api.ws.disconnect(whose));
  const unbridge = bridge(bus, { kernel, messaging, shm: services.shm, pipes, monitor, auth, log });
  await new Promise<void>((ok, fail) => {
    api.server.once('error', fail);
    api.server.listen(port, host, () => ok());
  });
  const addr = api.server.address() as AddressInfo;
  const hostPart = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const listenUrl = `${cfg.tls ? 'https' : 'http'}://${hostPart}:${addr.port}`;
  // A driver whose VMs cannot reach this address (nspawn guests in their own network) relays.
  if (!url) url = compute.guestUrl ? await compute.guestUrl(listenUrl) : listenUrl;
  log.info({ url: listenUrl, vm_url: url, data: dataDir, driver: compute.name }, 'kernel listening');

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      api.ws.close();
      api.server.closeAllConnections();
      await new Promise<void>((ok) => api.server.close(() => ok()));
      unbridge();
      await kernel.close();
      await bus.close();
      services.shm.close();
      await services.files.close?.();
      await compute.close();
      await store.close();
      unlock();
    })());
  // Several public URLs name every kernel of the store: this one is at its listen address.
  const ownUrl = cfg.publicUrl && !cfg.publicUrl.includes(',') ? cfg.publicUrl : listenUrl;
  return { url: ownUrl, adminToken, dataDir, kernel, services, api, close };
}
