import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RackError } from '../common/errors.js';
import type { TokenRole, TokenStore } from '../store/store.js';

/**
 * Who is calling: an operator with the admin token, or one process with one of its two tokens.
 * A process's `app` token is its app's (RACK_TOKEN): it ends with the process. Its `agent` token
 * is its guest agent's: it may only keep the agent's channel (hello, heartbeat, state reports,
 * the self-kill), and lasts as long as the VM, so that an agent whose app has ended can still be
 * reached until its VM is destroyed.
 */
export type Principal = { kind: 'admin' } | { kind: 'process'; gid: string; pid: number; role: TokenRole };

export const ADMIN: Principal = { kind: 'admin' };

export interface ProcessTokens {
  app: string;
  agent: string;
}

const PREFIX: Record<TokenRole, string> = { app: 'rkp_', agent: 'rkg_' };

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

/**
 * Turns a bearer token into a principal (401 for anything unknown), issues process tokens and
 * revokes them. Emits 'revoked' (a process principal) so that open connections authenticated by
 * a revoked token are closed.
 */
/** Whose tokens were revoked: one token of one process, or every token of a group. */
export type Revoked = { gid: string; pid?: number; role?: TokenRole };

export class Authenticator extends EventEmitter<{ revoked: [Revoked, elsewhere?: boolean] }> {
  private readonly adminHash: Buffer;
  /** Token hash -> owner, for tokens seen; and each process's cached hashes, to forget them fast. */
  private readonly cache = new Map<string, Extract<Principal, { kind: 'process' }>>();
  private readonly byProcess = new Map<string, Set<string>>();

  constructor(
    adminToken: string,
    private readonly tokens: TokenStore,
  ) {
    super();
    this.adminHash = createHash('sha256').update(adminToken).digest();
  }

  /** Issues a new process's two tokens and stores only their hashes. */
  async issue(gid: string, pid: number): Promise<ProcessTokens> {
    const app = newToken(PREFIX.app);
    const agent = newToken(PREFIX.agent);
    await this.tokens.put(hashToken(app), { gid, pid, role: 'app' });
    await this.tokens.put(hashToken(agent), { gid, pid, role: 'agent' });
    return { app, agent };
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
    if (!owner) throw new RackError('unauthorized', 'unknown token (or the process it belonged to has ended)');
    const principal = { kind: 'process' as const, gid: owner.gid, pid: owner.pid, role: owner.role };
    this.cache.set(hex, principal);
    const key = `${owner.gid}/${owner.pid}`;
    let set = this.byProcess.get(key);
    if (!set) this.byProcess.set(key, (set = new Set()));
    set.add(hex);
    return principal;
  }

  /** A process's token of this role authenticates no more, here and on every open connection. */
  async revoke(gid: string, pid: number, role: TokenRole): Promise<void> {
    await this.tokens.revoke(gid, pid, role);
    this.uncache({ gid, pid, role });
    this.emit('revoked', { gid, pid, role });
  }

  /** Every token of a deleted group (the store dropped them with the group). */
  forgetGroup(gid: string): void {
    this.uncache({ gid });
    this.emit('revoked', { gid });
  }

  /** Another kernel on the same store revoked these tokens: they authenticate no more here either. */
  revokedElsewhere(whose: Revoked): void {
    this.uncache(whose);
    this.emit('revoked', whose, true);
  }

  private uncache(whose: Revoked): void {
    const keys = whose.pid === undefined ? [...this.byProcess.keys()].filter((k) => k.startsWith(`${whose.gid}/`)) : [`${whose.gid}/${whose.pid}`];
    for (const key of keys) {
      const set = this.byProcess.get(key);
      if (!set) continue;
      for (const hex of set) {
        if (whose.role !== undefined && this.cache.get(hex)?.role !== whose.role) continue;
        this.cache.delete(hex);
        set.delete(hex);
      }
      if (set.size === 0) this.byProcess.delete(key);
    }
  }

  /** Forgets every token seen: each is looked up in the store again (a revocation by another kernel may not have been heard). */
  recheck(): void {
    this.cache.clear();
    this.byProcess.clear();
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
