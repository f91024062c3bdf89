import { execFile } from 'node:child_process';
import { join } from 'node:path';
import type { Logger } from '../common/log.js';
import { META, RESERVED_META_PREFIX } from '../protocol/metadata.js';
import type { SignalEvent } from '../protocol/channel.js';
import { Channel } from './channel/channel.js';
import { ConfigError, loadConfig, type OnExit } from './config/config.js';
import { readInstanceData, LINK_LOCAL } from './metadata/source.js';
import type { InstanceData } from './metadata/openstack.js';
import { request } from './http/request.js';
import { Notifier } from './notify/notify.js';
import { decideRole } from './role/role.js';
import { Supervisor, type AppExit } from './supervisor/supervisor.js';

export interface AgentOptions {
  configFile?: string;
  metadataUrl?: string;
  log: Logger;
}

/** How the agent process ends: 0 also for "not a RACK VM"; 1 for a bad config or metadata. */
export type AgentResult = { code: number; reason: string };

export function defaultConfigFile(): string {
  return join(process.env.DCKINIT_ROOT || '/', 'etc', 'dckinit', 'config.yaml');
}

/** The app's environment: who it is in RACK, how to reach the kernel, and its args. */
export function appEnvironment(meta: Record<string, string>, role: string): Record<string, string> {
  const env: Record<string, string> = {
    RACK_URL: meta[META.url] ?? '',
    RACK_GID: meta[META.gid] ?? '',
    RACK_PID: meta[META.pid] ?? '',
    RACK_PPID: meta[META.ppid] ?? '',
    RACK_ROLE: role,
    RACK_TOKEN: meta[META.token] ?? '',
  };
  for (const [k, v] of Object.entries(meta)) {
    if (!k.startsWith(RESERVED_META_PREFIX)) env[`RACK_ARG_${k.toUpperCase()}`] = v;
  }
  return env;
}

function checkRackMeta(data: InstanceData): string | null {
  const m = data.meta;
  for (const key of [META.gid, META.url, META.token]) if (!m[key]) return `metadata has no ${key}`;
  if (!/^[0-9]+$/.test(m[META.pid]!)) return `${META.pid} is not a number: "${m[META.pid]}"`;
  if ((m[META.ppid] ?? '') !== '' && !/^[0-9]+$/.test(m[META.ppid]!)) return `${META.ppid} is not a number: "${m[META.ppid]}"`;
  try {
    new URL(m[META.url]!);
  } catch {
    return `${META.url} is not a URL`;
  }
  return null;
}

const SIGNALS: Record<string, NodeJS.Signals> = { TERM: 'SIGTERM', INT: 'SIGINT', HUP: 'SIGHUP', USR1: 'SIGUSR1', USR2: 'SIGUSR2', STOP: 'SIGSTOP', CONT: 'SIGCONT' };

/** The guest agent: metadata -> role -> app, with a channel to the kernel and systemd notifications. */
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
  config = loadConfig(configFile, data.userData);
  const meta = data.meta;
  const gid = meta[META.gid]!;
  const pid = Number(meta[META.pid]);
  const role = decideRole(meta);
  const alog = log.child({ gid, pid, role });
  const roleConfig = config.roles[role];
  const channel = new Channel({ url: meta[META.url]!, token: meta[META.token]!, log: alog, heartbeatMs: config.heartbeat * 1000 });
  channel.start();
  if (!roleConfig) {
    alog.error({ config: configFile, roles: Object.keys(config.roles) }, `no role "${role}" in the config`);
    await channel.request({ op: 'state', state: 'exited', code: 78 }).catch(() => {});
    channel.close();
    return { code: 1, reason: `no role "${role}" in ${configFile}` };
  }
  const onExit: OnExit = roleConfig.on_exit ?? (role === 'parent' ? 'stay' : 'kill');
  const supervisor = new Supervisor(roleConfig, appEnvironment(meta, role), alog);
  let state: 'starting' | 'running' | 'exited' = 'starting';
  let exit: AppExit | null = null;
  let ready = false;

  const report = (): Promise<unknown> =>
    channel.request(state === 'exited' ? { op: 'state', state, code: exit?.code ?? null, signal: exit?.signal ?? null } : { op: 'state', state });
  const status = (): void => void notifier.notify({ STATUS: `${role} pid ${pid}: app ${state}${channel.isUp ? '' : ' (kernel unreachable)'}` });
  const maybeReady = (): void => {
    if (ready || state !== 'running' || !channel.isUp) return;
    ready = true;
    void notifier.notify({ READY: '1' });
    notifier.startWatchdog();
  };

  channel.on('up', () => {
    void report().catch((err: Error) => alog.warn({ err: err.message }, 'state report refused'));
    maybeReady();
    status();
  });
  channel.on('down', status);
  channel.on('event', (ev: SignalEvent) => {
    if (ev.event !== 'signal') return;
    const sig = SIGNALS[ev.signal];
    if (!sig) return;
    alog.info({ signal: ev.signal, grace_ms: ev.grace_ms }, 'signal from the kernel');
    supervisor.signal(sig);
  });
  supervisor.on('state', (s: 'starting' | 'running') => {
    state = s;
    void report().catch(() => {});
    maybeReady();
    status();
  });

  const ended = new Promise<AppExit>((resolve) => supervisor.once('exit', resolve));
  let shuttingDown = false;
  const shutdown = new Promise<void>((resolve) => {
    const onSignal = (): void => {
      if (shuttingDown) return;
      shuttingDown = true;
      alog.info('shutting down: stopping the app');
      void notifier.notify({ STOPPING: '1', STATUS: 'stopping' });
      void supervisor.stop().then(() => resolve());
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
  supervisor.start();

  exit = await ended;
  state = 'exited';
  status();
  // The exit code must reach the kernel: retried across reconnects, bounded.
  const reported = await Promise.race([report().then(() => true, () => false), new Promise<boolean>((r) => setTimeout(() => r(false), 300_000).unref())]);
  if (!reported) alog.error('could not report the exit to the kernel');
  if (shuttingDown) {
    await shutdown;
    notifier.stop();
    channel.close();
    return { code: 0, reason: 'stopped' };
  }
  alog.info({ on_exit: onExit }, 'app ended');
  if (onExit === 'kill') {
    // The seed's self-KILL: the kernel destroys this VM (and this agent with it).
    await request(`${meta[META.url]!.replace(/\/+$/, '')}/v1/groups/${gid}/processes/${pid}?signal=KILL`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${meta[META.token]}` },
      timeoutMs: 30_000,
      maxBytes: 64 * 1024,
    }).then(
      (r) => r.status >= 300 && alog.error({ status: r.status, body: r.body.toString('utf8').slice(0, 200) }, 'self-kill refused by the kernel'),
      (err: Error) => alog.error({ err: err.message }, 'self-kill failed'),
    );
  } else if (onExit === 'poweroff' && !process.env.RACK_SIM_VM) {
    execFile('systemctl', ['poweroff'], () => {});
  } else if (onExit === 'stay') {
    await shutdown;
  }
  notifier.stop();
  channel.close();
  return { code: 0, reason: `app exited (${exit.code ?? exit.signal})` };
}
