import { readFileSync } from 'node:fs';
import yaml from 'js-yaml';
import { cloudConfigs } from '../../protocol/user-data.js';

export type OnExit = 'kill' | 'stay' | 'poweroff';

export interface RoleConfig {
  /** argv; a single string only with `shell: true`. */
  command: string[] | string;
  shell: boolean;
  workdir: string | null;
  user: string | null;
  environment: Record<string, string>;
  restart: { policy: 'never' | 'on-failure'; max: number; backoff: number };
  on_exit: OnExit | null;
  stop_grace: number;
  /**
   * When the app counts as ready: once started (`started`, as a systemd Type=simple service), or
   * when it sends READY=1 to its NOTIFY_SOCKET (`notify`, as Type=notify).
   */
  ready: 'started' | 'notify';
}

export interface AgentConfig {
  metadata: { url: string | null; timeout: number; config_drive: string | null };
  heartbeat: number;
  /** Seconds between usage samples sent to the kernel; 0: none. */
  monitor: { interval: number };
  roles: Record<string, RoleConfig>;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** The line of a key path in YAML text (1-based), found by walking indentation; 0 when unknown. */
export function lineOf(text: string, path: readonly string[]): number {
  const lines = text.split('\n');
  let from = 0;
  let indent = -1;
  let found = 0;
  for (const seg of path) {
    const re = new RegExp(`^(\\s*)(?:-\\s+)?["']?${seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}["']?\\s*:`);
    let hit = -1;
    for (let i = from; i < lines.length; i++) {
      const m = re.exec(lines[i]!);
      const lineIndent = lines[i]!.search(/\S/);
      if (i > from && lineIndent >= 0 && lineIndent <= indent && !lines[i]!.trimStart().startsWith('#')) break;
      if (m && m[1]!.length > indent) {
        hit = i;
        indent = m[1]!.length;
        break;
      }
    }
    if (hit < 0) return found;
    found = hit + 1;
    from = hit;
  }
  return found;
}

type Obj = Record<string, unknown>;

class Checker {
  constructor(
    private readonly file: string,
    private readonly text: string,
  ) {}

  fail(path: string[], msg: string): never {
    const line = lineOf(this.text, path);
    throw new ConfigError(`${this.file}${line ? `:${line}` : ''}: ${path.join('.') || '(top level)'} ${msg}`);
  }

  obj(v: unknown, path: string[], keys: readonly string[] | null): Obj {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(path, 'must be a mapping');
    if (keys) for (const k of Object.keys(v as Obj)) if (!keys.includes(k)) this.fail([...path, k], `is not a known key (known: ${keys.join(', ')})`);
    return v as Obj;
  }

  str(v: unknown, path: string[]): string {
    if (typeof v !== 'string' || v.length === 0) this.fail(path, 'must be a non-empty string');
    return v as string;
  }

  num(v: unknown, path: string[], min: number, max: number): number {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) this.fail(path, `must be a number from ${min} to ${max}`);
    return v as number;
  }

  bool(v: unknown, path: string[]): boolean {
    if (typeof v !== 'boolean') this.fail(path, 'must be true or false');
    return v as boolean;
  }

  oneOf<T extends string>(v: unknown, path: string[], values: readonly T[]): T {
    if (typeof v !== 'string' || !values.includes(v as T)) this.fail(path, `must be one of ${values.join(', ')}`);
    return v as T;
  }
}

const ROLE_KEYS = ['command', 'shell', 'workdir', 'user', 'environment', 'restart', 'on_exit', 'stop_grace', 'ready'] as const;

function role(c: Checker, v: unknown, path: string[]): RoleConfig {
  const o = c.obj(v, path, ROLE_KEYS);
  const shell = o.shell === undefined ? false : c.bool(o.shell, [...path, 'shell']);
  let command: string[] | string;
  if (typeof o.command === 'string') {
    if (!shell) c.fail([...path, 'command'], 'is a single string: give an argv list, or set "shell: true" to run it through /bin/sh');
    command = o.command;
  } else if (Array.isArray(o.command) && o.command.length > 0 && o.command.every((a) => typeof a === 'string')) {
    command = o.command as string[];
  } else {
    c.fail([...path, 'command'], 'must be a non-empty list of strings (argv)');
  }
  const env: Record<string, string> = {};
  if (o.environment !== undefined) {
    for (const [k, val] of Object.entries(c.obj(o.environment, [...path, 'environment'], null))) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) c.fail([...path, 'environment', k], 'is not a valid variable name');
      if (typeof val !== 'string' && typeof val !== 'number' && typeof val !== 'boolean') c.fail([...path, 'environment', k], 'must be a string');
      env[k] = String(val);
    }
  }
  const r = o.restart === undefined ? {} : c.obj(o.restart, [...path, 'restart'], ['policy', 'max', 'backoff']);
  return {
    command,
    shell,
    workdir: o.workdir === undefined ? null : c.str(o.workdir, [...path, 'workdir']),
    user: o.user === undefined ? null : c.str(o.user, [...path, 'user']),
    environment: env,
    restart: {
      policy: r.policy === undefined ? 'never' : c.oneOf(r.policy, [...path, 'restart', 'policy'], ['never', 'on-failure'] as const),
      max: r.max === undefined ? 3 : c.num(r.max, [...path, 'restart', 'max'], 0, 1000),
      backoff: r.backoff === undefined ? 1 : c.num(r.backoff, [...path, 'restart', 'backoff'], 0, 3600),
    },
    on_exit: o.on_exit === undefined ? null : c.oneOf(o.on_exit, [...path, 'on_exit'], ['kill', 'stay', 'poweroff'] as const),
    stop_grace: o.stop_grace === undefined ? 10 : c.num(o.stop_grace, [...path, 'stop_grace'], 0, 3600),
    ready: o.ready === undefined ? 'started' : c.oneOf(o.ready, [...path, 'ready'], ['started', 'notify'] as const),
  };
}

/** Validates a parsed config document (the file, or the file with user-data merged over it). */
export function checkConfig(doc: unknown, file: string, text: string): AgentConfig {
  const c = new Checker(file, text);
  const top = c.obj(doc ?? {}, [], ['metadata', 'heartbeat', 'monitor', 'roles']);
  const mon = top.monitor === undefined ? {} : c.obj(top.monitor, ['monitor'], ['interval']);
  const interval = mon.interval === undefined ? 5 : c.num(mon.interval, ['monitor', 'interval'], 0, 3600);
  if (interval > 0 && interval < 1) c.fail(['monitor', 'interval'], 'must be 0 (no samples) or from 1 to 3600 seconds');
  const md = top.metadata === undefined ? {} : c.obj(top.metadata, ['metadata'], ['url', 'timeout', 'config_drive']);
  const roles: Record<string, RoleConfig> = {};
  const rolesObj = top.roles === undefined ? {} : c.obj(top.roles, ['roles'], null);
  for (const [name, v] of Object.entries(rolesObj)) {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) c.fail(['roles', name], 'is not a valid role name (letters, digits, _ and -)');
    roles[name] = role(c, v, ['roles', name]);
  }
  return {
    metadata: {
      url: md.url === undefined ? null : c.str(md.url, ['metadata', 'url']),
      timeout: md.timeout === undefined ? 120 : c.num(md.timeout, ['metadata', 'timeout'], 1, 3600),
      config_drive: md.config_drive === undefined ? null : c.str(md.config_drive, ['metadata', 'config_drive']),
    },
    heartbeat: top.heartbeat === undefined ? 15 : c.num(top.heartbeat, ['heartbeat'], 1, 3600),
    monitor: { interval },
    roles,
  };
}

function parseYaml(text: string, file: string): unknown {
  try {
    return yaml.load(text, { filename: file });
  } catch (err) {
    const e = err as { mark?: { line: number }; reason?: string; message: string };
    throw new ConfigError(`${file}${e.mark ? `:${e.mark.line + 1}` : ''}: not valid YAML: ${e.reason ?? e.message}`);
  }
}

/** Deep merge for mappings: `over` wins; lists and scalars are replaced whole. */
function merge(base: unknown, over: unknown): unknown {
  if (typeof base !== 'object' || base === null || Array.isArray(base) || typeof over !== 'object' || over === null || Array.isArray(over)) return over;
  const out: Obj = { ...(base as Obj) };
  for (const [k, v] of Object.entries(over as Obj)) out[k] = k in out ? merge(out[k], v) : v;
  return out;
}

/** The `dckinit:` key of the user_data's cloud-config (the whole user_data, or one of its MIME parts). */
export function userDataOverlay(userData: string | null): { doc: unknown; text: string } | null {
  for (const text of cloudConfigs(userData)) {
    const doc = parseYaml(text, 'user_data') as Obj | null;
    if (doc && typeof doc === 'object' && 'dckinit' in doc) return { doc: doc.dckinit, text };
  }
  return null;
}

/** Loads and validates the config file (a missing file is an empty config), with user_data's `dckinit:` over it. */
export function loadConfig(file: string, userData: string | null = null): AgentConfig {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new ConfigError(`${file}: ${(err as Error).message}`);
  }
  const base = text ? parseYaml(text, file) : {};
  checkConfig(base, file, text);
  const overlay = userDataOverlay(userData);
  if (!overlay) return checkConfig(base, file, text);
  return checkConfig(merge(base, overlay.doc), 'user_data (dckinit:)', overlay.text);
}
