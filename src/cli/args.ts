/** What every rack command shares: argument parsing, the kernel client, output. */
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { QUOTA_NAMES, type Quotas } from '../protocol/process.js';
import { readCa } from '../client/ca.js';
import { RestClient } from './client.js';

export class UsageError extends Error {}

export interface Command {
  summary: string;
  usage: string;
  /** More on the options, shown by the command's own --help. */
  details?: string;
  run(argv: string[]): Promise<number>;
}

type Options = NonNullable<ParseArgsConfig['options']>;

const CONNECT: Options = {
  url: { type: 'string' },
  token: { type: 'string' },
  ca: { type: 'string' },
  json: { type: 'boolean', default: false },
};

export function parse(argv: string[], options: Options, allowPositionals = 0) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...CONNECT, ...options }, allowPositionals: allowPositionals > 0, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0]!);
  }
  if (parsed.positionals.length > allowPositionals) {
    throw new UsageError(`unexpected argument "${parsed.positionals[allowPositionals]}"`);
  }
  return parsed as { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] };
}

export function client(values: Record<string, unknown>): RestClient {
  const url = (values.url as string | undefined) ?? process.env.RACK_URL;
  const token = (values.token as string | undefined) ?? process.env.RACK_TOKEN;
  if (!url) throw new UsageError('no kernel URL: set RACK_URL or pass --url http://HOST:PORT');
  if (!token) throw new UsageError('no token: set RACK_TOKEN or pass --token (the admin token is in DATA/admin-token)');
  for (const u of url.split(',').map((x) => x.trim()).filter(Boolean)) {
    try {
      new URL(u);
    } catch {
      throw new UsageError(`--url is not a URL: "${u}"`);
    }
  }
  return new RestClient(url, token, undefined, caOf(values));
}

/** The CA to trust for an https:// kernel: --ca FILE, or RACK_CA. */
export function caOf(values: Record<string, unknown>): string | undefined {
  const file = (values.ca as string | undefined) ?? process.env.RACK_CA;
  try {
    return readCa(file, values.ca !== undefined ? '--ca' : 'RACK_CA');
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export function gidOf(values: Record<string, unknown>): string {
  const gid = (values.gid as string | undefined) ?? process.env.RACK_GID;
  if (!gid) throw new UsageError('no group: pass --gid GID or set RACK_GID');
  return gid;
}

export function int(value: string | undefined, what: string): number {
  if (value === undefined || !/^[0-9]{1,10}$/.test(value)) throw new UsageError(`${what} must be a non-negative integer, got "${value ?? ''}"`);
  return Number(value);
}

export function seconds(value: string | undefined, what: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[0-9]+(\.[0-9]+)?$/.test(value)) throw new UsageError(`${what} must be a number of seconds, got "${value}"`);
  return Number(value);
}

export function argsOf(list: string[] | undefined): Record<string, string> | undefined {
  if (!list || list.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const item of list) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new UsageError(`--arg must be NAME=VALUE, got "${item}"`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

export function print(json: boolean, data: unknown, text: () => string): void {
  process.stdout.write(json ? JSON.stringify(data) + '\n' : text() + '\n');
}


/** Nova takes at most 65,535 bytes of base64 user_data: 49,151 bytes of the file itself. */
const MAX_USER_DATA = 49_151;

/** `--user-data FILE` as the API wants it (base64); a clear usage error for a missing or too big file. */
export function userDataOf(file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new UsageError(`--user-data ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  if (bytes.length > MAX_USER_DATA) throw new UsageError(`--user-data ${file} is ${bytes.length} bytes; at most ${MAX_USER_DATA} fit Nova's 64 KiB of base64`);
  return bytes.toString('base64');
}

/** `--quota NAME=N` (repeatable) as quotas; a clear usage error for an unknown name or a bad number. */
export function quotasOf(list: string[] | undefined): Partial<Quotas> | undefined {
  if (!list || list.length === 0) return undefined;
  const out: Partial<Quotas> = {};
  for (const item of list) {
    const m = /^([a-z_]+)=([0-9]{1,15})$/.exec(item);
    if (!m || !(QUOTA_NAMES as string[]).includes(m[1]!)) {
      throw new UsageError(`--quota must be NAME=N with NAME one of ${QUOTA_NAMES.join(', ')}, got "${item}"`);
    }
    out[m[1] as keyof Quotas] = Number(m[2]);
  }
  return out;
}
