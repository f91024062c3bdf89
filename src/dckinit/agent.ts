import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { KernelSocket, kernelUrls } from '../client/kernel-socket.js';
import type { Logger } from '../common/log.js';
import { META, RESERVED_META_PREFIX } from '../protocol/metadata.js';
import { credentialsOf } from '../protocol/user-data.js';
import type { SignalEvent } from '../protocol/channel.js';
import { SIGNAL_TABLE } from '../protocol/process.js';
import { ConfigError, loadConfig, type OnExit } from './config/config.js';
import { readInstanceData, LINK_LOCAL } from './metadata/source.js';
import type { InstanceData } from './metadata/openstack.js';
import { startUsageReports } from './monitor/reporter.js';
import { Notifier } from './notify/notify.js';
import type { NotifyRelay } from './notify/relay.js';
import { decideRole } from './role/role.js';
import { AppRecord } from './state/app-record.js';
import { saveKernelCa } from './state/kernel-ca.js';
import { Supervisor, userIds, type AppExit } from './supervisor/supervisor.js';

export interface AgentOptions {
  configFile?: string;
  metadataUrl?: string;
  log: Logger;
  /**
   * The app's NOTIFY_SOCKET relay, started by the caller before this module loaded (see main.ts)
   * and closed by it when the agent is done; the agent closes it sooner when there is no app to run.
   */
  relay: Promise<NotifyRelay | null>;
}

/** How the agent process ends: 0 for "not a RACK VM" and for a stop by systemd; 1 for a bad config or metadata. */
export type AgentResult = { code: number; reason: string };

/**
 * The exit code of an agent whose work ran out while its VM is a live RACK process (a bug: it
 * must never happen). Not 0, so that systemd restarts it; EX_TEMPFAIL, as in sysexits.h.
 */
export const EXIT_ENDED_EARLY = 75;

export function defaultConfigFile(): string {
  return join(process.env.DCKINIT_ROOT || '/', 'etc', 'dckinit', 'config.yaml');
}

/** The app's environment: who it is in RACK, how to reach the kernel, and its args. */
export function appEnvironment(meta: Record<string, string>, role: string, token: string, caFile?: string): Record<string, string> {
  const env: Record<string, string> = {
    RACK_URL: meta[META.url] ?? '',
    RACK_GID: meta[META.gid] ?? '',
    RACK_PID: meta[META.pid] ?? '',
    RACK_PPID: meta[META.ppid] ?? '',
    RACK_ROLE: role,
    RACK_TOKEN: token,
    ...(caFile ? { RACK_CA: caFile } : {}),
  };
  for (const [k, v] of Object.entries(meta)) {
    if (!k.startsWith(RESERVED_META_PREFIX)) env[`RACK_ARG_${k.toUpperCase()}`] = v;
  }
  return env;
}

function checkRackMeta(data: InstanceData): string | null {
  const m = data.meta;
  for (const key of [META.gid, META.url]) if (!m[key]) return `metadata has no ${key}`;
  if (!/^[0-9]+$/.test(m[META.pid]!)) return `${META.pid} is not a number: "${m[META.pid]}"`;
  if ((m[META.ppid] ?? '') !== '' && !/^[0-9]+$/.test(m[META.ppid]!)) return `${META.ppid} is not a number: "${m[META.ppid]}"`;
  // One kernel, or every kernel over one store, comma-separated.
  try {
    for (const u of kernelUrls(m[META.url]!)) new URL(u);
  } catch {
    return `${META.url} is not a URL or a comma-separated list of URLs`;
  }
  return null;
}

/**
 * The guest agent: metadata -> role -> app, with a channel to the kernel and systemd
 * notifications. Once it runs a RACK process it ends only when systemd stops it: after the app
 * has exited it stays (on_exit: stay), or asks the kernel to destroy its VM (kill) and waits for
 * that, or powers the VM off; a kernel outage on the way only delays the reports.
 */
export async function runAgent(opts: AgentOptions): Promise<AgentResult> {
  const { log } = opts;
  const configFile = opts.configFile ?? defaultConfigFile();
  const notifier = new Notifier();
  let config = loadConfig(configFile);
  const urls = opts.metadataUrl ? [opts.metadataUrl] : process.env.RACK_METADATA_URL ? [process.env.RACK_METADATA_URL] : config.metadata.url ? [config.metadata.url] : LINK_LOCAL;
  void notifier.notify({ STATUS: 'reading metadata' });
  const data = await readInstanceData({ urls, configDrive: config.metadata.config_drive, deadlineMs: config.metadata.timeout * 1000, log });
  if (data.meta[META.pid] === undefined) {
    log.info({ source: data.source }, 'not a RACK VM (no rack_pid in the metadata): nothing to launch');
    await notifier.notify({ READY: '1', STATUS: 'not a RACK VM' });
    return { code: 0, reason: 'not a RACK VM' };
  }
  const bad = checkRackMeta(data);
  if (bad) throw new ConfigError(`${data.source}: ${bad}`);
  const credentials = credentialsOf(data.userData);
  if (!credentials) throw new ConfigError(`${data.source}: the user_data holds no RACK credentials (a cloud-config with rack.token and rack.agent_token)`);
  config = loadConfig(configFile, data.userData);
  const meta = data.meta;
  const gid = meta[META.gid]!;
  const pid = Number(meta[META.pid]);
  const role = decideRole(meta);
  const alog = log.child({ gid, pid, role });

  // From here on this agent is a live RACK process's: nothing but a stop may end it.
  let stopping = false;
  process.on('beforeExit', () => {
    if (stopping || process.exitCode) return;
    alog.error('the agent ran out of work while its VM is a live RACK process; exiting so that systemd restarts it');
    process.exitCode = EXIT_ENDED_EARLY;
  });

  // An https kernel's CA: trusted by this agent, and by the app (RACK_CA names the file).
  const caFile = credentials.ca ? saveKernelCa(credentials.ca, alog) : undefined;
  const channel = new KernelSocket({ url: meta[META.url]!, token: credentials.agent_token, ca: credentials.ca, role: 'agent', timeoutMs: 0, heartbeatMs: config.heartbeat * 1000, log: alog });
  channel.start();
  const roleConfig = config.roles[role];
  const record = new AppRecord(gid, pid, alog);
  const onExit: OnExit = roleConfig?.on_exit ?? (role === 'parent' ? 'stay' : 'kill');
  // An agent restarted by systemd after its app ended does not run the app again.
  let exit: AppExit | null = record.exited();
  // The app's NOTIFY_SOCKET (READY=1, STATUS=), never the agent's own from systemd.
  let relay: NotifyRelay | null = null;
  if (roleConfig && !exit) {
    relay = await opts.relay;
    const owner = ownerOf(roleConfig.user);
    if (relay && owner) relay.giveTo(owner);
  } else void opts.relay.then((r) => r?.close());
  const env = { ...appEnvironment(meta, role, credentials.token, caFile), NOTIFY_SOCKET: relay?.socketPath ?? '' };
  const supervisor = roleConfig ? new Supervisor(roleConfig, env, alog) : null;
  let state: 'starting' | 'running' | 'ready' | 'exited' = exit ? 'exited' : 'starting';
  if (!roleConfig && !exit) {
    alog.error({ config: configFile, roles: Object.keys(config.roles) }, `no role "${role}" in the config`);
    exit = { code: 78, signal: null };
    state = 'exited';
  }
  let ready = false;

  const report = (): Promise<unknown> =>
    channel.call('state', state === 'exited' ? { state, code: exit?.code ?? null, signal: exit?.signal ?? null } : { state });
  const status = (): void => void notifier.notify({ STATUS: `${role} pid ${pid}: app ${state}${channel.isUp ? '' : ' (kernel unreachable)'}` });
  const maybeReady = (): void => {
    if (ready || state === 'starting' || !channel.isUp) return;
    ready = true;
    void notifier.notify({ READY: '1' });
    notifier.startWatchdog();
  };

  relay?.on('message', (m) => {
    if (m.READY === '1' && state === 'running') {
      state = 'ready';
      alog.info('the app is ready (READY=1)');
      void report().catch(() => {});
      status();
    }
    if (m.STATUS !== undefined) appStatus(m.STATUS);
  });
  // STATUS= lines go to the kernel as the app's status; a burst sends only the last one.
  let nextStatus: string | null = null;
  let sendingStatus = false;
  const appStatus = (text: string): void => {
    nextStatus = text.replace(/\s+/g, ' ').slice(0, 255);
    if (sendingStatus) return;
    sendingStatus = true;
    void (async () => {
      while (nextStatus !== null) {
        const app_status = nextStatus;
        nextStatus = null;
        await channel.call('status', { app_status }).catch((err: Error) => alog.warn({ err: err.message }, 'app status refused'));
      }
      sendingStatus = false;
    })();
  };
  const stopUsage = startUsageReports({ channel, intervalS: config.monitor.interval, appPgid: () => supervisor?.pid ?? null, log: alog });

  channel.on('up', () => {
    void report().catch((err: Error) => alog.warn({ err: err.message }, 'state report refused'));
    maybeReady();
    status();
  });
  channel.on('down', () => {
    alog.warn('channel to the kernel is down; reconnecting');
    status();
  });
  channel.on('event', (ev: SignalEvent) => {
    if (ev.event !== 'signal') return;
    const sig = SIGNAL_TABLE[ev.signal]?.node;
    if (!sig || !supervisor) return;
    alog.info({ signal: ev.signal, grace_ms: ev.grace_ms }, 'signal from the kernel');
    supervisor.signal(sig);
  });

  const stopped = new Promise<void>((resolve) => {
    const onSignal = (): void => {
      if (stopping) return;
      stopping = true;
      alog.info('shutting down: stopping the app');
      void notifier.notify({ STOPPING: '1', STATUS: 'stopping' });
      void (supervisor?.stop() ?? Promise.resolve()).then(() => resolve());
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });

  if (!exit && supervisor) {
    supervisor.on('state', (s: 'starting' | 'running') => {
      // An app that does not speak sd_notify is ready once it has started (systemd's Type=simple).
      state = s === 'running' && roleConfig!.ready === 'started' ? 'ready' : s;
      void report().catch(() => {});
      maybeReady();
      status();
    });
    const ended = new Promise<AppExit>((resolve) => supervisor.once('exit', resolve));
    supervisor.start();
    exit = await ended;
    state = 'exited';
    stopUsage();
    record.save(exit);
    status();
  } else {
    alog.info({ code: exit?.code, signal: exit?.signal }, 'the app has ended already: not running it again');
  }
  // The exit must reach the kernel: the channel sends it again after every reconnect until it is answered.
  const reported = report().then(
    () => true,
    (err: Error) => (alog.error({ err: err.message }, 'the kernel refused the exit report'), false),
  );
  if (!stopping) {
    alog.info({ on_exit: onExit }, 'app ended');
    await reported;
    if (onExit === 'kill' && !stopping) {
      // The seed's self-KILL: the kernel destroys this VM, and this agent with it.
      await channel.call('kill', { pid, signal: 'KILL' }).catch((err: Error) => alog.error({ err: err.message }, 'self-kill refused by the kernel'));
    } else if (onExit === 'poweroff' && !process.env.RACK_SIM_VM) {
      execFile('systemctl', ['poweroff'], () => {});
    }
  }
  // Stay until systemd stops the agent (or the VM goes): signals and kills still reach it.
  await stopped;
  stopUsage();
  notifier.stop();
  channel.close();
  return { code: 0, reason: `stopped; the app had exited (${exit?.code ?? exit?.signal})` };
}

/** The uid and gid the app runs as, for its NOTIFY_SOCKET's directory (none: the agent's own). */
function ownerOf(user: string | null): { uid: number; gid: number } | undefined {
  if (!user) return undefined;
  try {
    return userIds(user);
  } catch {
    return undefined; // the supervisor reports the missing user when it starts the app
  }
}
