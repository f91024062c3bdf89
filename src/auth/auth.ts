import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RackError } from '../common/errors.js';
import type { TokenStore } from '../store/store.js';

/** Who is calling: an operator with the admin token, or one process with its own token. */
export type Principal = { kind: 'admin' } | { kind: 'process'; gid: string; pid: number };

export const ADMIN: Principal = { kind: 'admin' };

const PROCESS_TOKEN_PREFIX = 'rkp_';

export function newToken(prefix = ''): string {
  return prefix + randomBytes(32).toString('base64url');
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/**
 * The admin token: `RACK_ADMIN_TOKEN` when set, else the one in `DATA/admin-token`, created with
 * mode 0600 on first start so only the kernel's user can read it.
 */
export function loadAdminToken(dataDir: string, fromEnv = process.env.RACK_ADMIN_TOKEN): string {
  if (fromEnv !== undefined && fromEnv !== '') {
    if (fromEnv.length < 16) throw new RackError('bad_request', 'RACK_ADMIN_TOKEN is too short: use at least 16 characters');
    return fromEnv;
  }
  const file = join(dataDir, 'admin-token');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const token = newToken('rka_');
  writeFileSync(file, token + '\n', { mode: 0o600, flag: 'wx' });
  return token;
}

/** Turns a bearer token into a principal; 401 for anything unknown. */
export class Authenticator {
  private readonly adminHash: Buffer;
  /** Token hash -> owner; tokens never change owner, so a cache is always right. */
  private readonly cache = new Map<string, Principal>();

  constructor(
    adminToken: string,
    private readonly tokens: TokenStore,
  ) {
    this.adminHash = createHash('sha256').update(adminToken).digest();
  }

  /** Issues a token for a new process and stores only its hash. */
  async issue(gid: string, pid: number): Promise<string> {
    const token = newToken(PROCESS_TOKEN_PREFIX);
    await this.tokens.put(hashToken(token), { gid, pid });
    return token;
  }

  async authenticate(authorization: string | undefined): Promise<Principal> {
    const token = parseBearer(authorization);
    const digest = createHash('sha256').update(token).digest();
    // Compare digests of equal length in constant time, so timing tells nothing about the token.
    if (timingSafeEqual(digest, this.adminHash)) return ADMIN;
    const hex = digest.toString('hex');
    const cached = this.cache.get(hex);
    if (cached) return cached;
    const owner = await this.tokens.owner(hex);
    if (!owner) throw new RackError('unauthorized', 'unknown token');
    const principal: Principal = { kind: 'process', gid: owner.gid, pid: owner.pid };
    this.cache.set(hex, principal);
    return principal;
  }

  forget(gid: string): void {
    for (const [k, p] of this.cache) if (p.kind === 'process' && p.gid === gid) this.cache.delete(k);
  }
}

function parseBearer(header: string | undefined): string {
  if (header === undefined || header === '') {
    throw new RackError('unauthorized', 'missing Authorization header: send "Authorization: Bearer <token>"');
  }
  const m = /^Bearer\s+(\S{1,512})\s*$/i.exec(header);
  if (!m) throw new RackError('unauthorized', 'malformed Authorization header: expected "Bearer <token>"');
  return m[1]!;
}
