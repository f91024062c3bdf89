import type { Principal } from '../auth/auth.js';
import { RackError } from '../common/errors.js';

/** A request id: what a client names a request by, so that sending it twice does it once. */
const RID = /^[A-Za-z0-9._:-]{1,100}$/;

export function checkRid(rid: unknown, where: string): string | null {
  if (rid === undefined || rid === null) return null;
  if (typeof rid !== 'string' || !RID.test(rid)) throw new RackError('bad_request', `${where} must be 1-100 letters, digits, ".", "_", ":" or "-"`);
  return rid;
}

/** The key a request id is kept under: ids are the client's, unique only for its token. */
export function requestKey(who: Principal, rid: string): string {
  return who.kind === 'admin' ? `admin/${rid}` : `${who.gid}/${who.pid}/${who.role}/${rid}`;
}

interface Entry {
  answer: Promise<unknown>;
  at: number;
}

/**
 * The answers of recent requests that change something, by request key: a request sent again
 * (its answer was lost with a connection) gets the first answer, also while the first is still
 * being worked on, instead of doing it twice. In memory, for a while, and bounded (the answers
 * kept here are small). Operations whose change is stored keep their answer durably instead, in
 * the same step as the change, so that it also survives a kernel restart (a fork's processes, a
 * reap, a shared-memory write: the op's `durable` flag and the `rid` the store takes).
 */
export class Answers {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly ttlMs = 10 * 60_000,
    private readonly most = 10_000,
  ) {}

  /** The answer of `key`: the first one's, or `run()`'s when it is new. */
  once(key: string, run: () => Promise<unknown>): Promise<unknown> {
    const now = Date.now();
    const seen = this.entries.get(key);
    if (seen && now - seen.at < this.ttlMs) return seen.answer;
    const answer = run();
    this.entries.set(key, { answer, at: now });
    // A failed attempt can be tried again: only answers are kept, not transient failures.
    answer.catch((err: unknown) => {
      if (!(err instanceof RackError) || err.code === 'unavailable' || err.code === 'internal') this.entries.delete(key);
    });
    this.trim(now);
    return answer;
  }

  /** Oldest first (a Map keeps insertion order): drop what is too old, and past the bound. */
  private trim(now: number): void {
    for (const [key, e] of this.entries) {
      if (this.entries.size <= this.most && now - e.at < this.ttlMs) break;
      this.entries.delete(key);
    }
  }
}
