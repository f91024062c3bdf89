import { EventEmitter } from 'node:events';
import { RackError } from '../common/errors.js';
import { until } from '../common/until.js';
import type { ShmStore } from '../store/store.js';
import { JsonText } from '../protocol/json-text.js';

export type ShmOp = 'set' | 'delete' | 'expire' | 'push' | 'pop';

export interface ShmChange {
  gid: string;
  key: string;
  op: ShmOp;
}

const MAX_VALUE = 1024 * 1024;

/** JSON with object keys sorted, so equal values have equal text (compare-and-set compares text). */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    }
    return v;
  });
}

export function checkKey(key: unknown): string {
  // eslint-disable-next-line no-control-regex
  if (typeof key !== 'string' || key.length === 0 || key.length > 255 || /[\u0000-\u001f\u007f]/.test(key)) {
    throw new RackError('bad_request', '"key" must be 1-255 characters without control characters');
  }
  return key;
}

function encode(value: unknown): string {
  if (value === undefined) throw new RackError('bad_request', '"value" is required');
  const json = canonicalJson(value);
  if (json.length > MAX_VALUE) throw new RackError('payload_too_large', `a value is at most ${MAX_VALUE} bytes of JSON`);
  return json;
}

/**
 * Shared memory of a group: values, counters, compare-and-set and lists, durable in the store,
 * with change events for watchers and blocking pops.
 */
export class SharedMemory extends EventEmitter<{ change: [ShmChange, elsewhere?: boolean] }> {
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly store: ShmStore,
    /** The bytes a group's shared memory may hold (its quota). */
    private readonly maxBytes: (gid: string) => Promise<number>,
    /** Set when other kernels share the store (src/bus): a blocking pop looks at it again this often. */
    private readonly recheckMs?: number,
  ) {
    super();
    this.setMaxListeners(0);
    this.sweeper = setInterval(() => {
      void this.store.expire(Date.now()).then((gone) => {
        for (const g of gone) this.changed(g.gid, g.key, 'expire');
      });
    }, 1000);
    this.sweeper.unref();
  }

  private changed(gid: string, key: string, op: ShmOp): void {
    this.emit('change', { gid, key, op } satisfies ShmChange);
  }

  /** Another kernel changed a key: watchers and blocking pops here hear of it. */
  changedElsewhere(c: ShmChange): void {
    this.emit('change', c, true);
  }

  async get(gid: string, key: string): Promise<{ value: unknown; version: number }> {
    const { value, version } = await this.getText(gid, key);
    return { value: value === null ? null : value.toJSON(), version };
  }

  /** get() for an answer: the value as the JSON text it is stored as, never parsed here. */
  async getText(gid: string, key: string): Promise<{ value: JsonText | null; version: number }> {
    const v = await this.store.get(gid, checkKey(key));
    return { value: v.json === null ? null : new JsonText(v.json), version: v.version };
  }

  async set(gid: string, key: string, value: unknown, ttlMs: number | null): Promise<{ version: number }> {
    const version = await this.store.set(gid, checkKey(key), encode(value), ttlMs, await this.maxBytes(gid));
    this.changed(gid, key, 'set');
    return { version };
  }

  async delete(gid: string, key: string): Promise<{ deleted: boolean }> {
    const deleted = await this.store.delete(gid, checkKey(key));
    if (deleted) this.changed(gid, key, 'delete');
    return { deleted };
  }

  // incr, cas, push and pop take the caller's request id: sent again, they answer as the first time.

  async incr(gid: string, key: string, by: number, rid: string | null = null): Promise<{ value: number }> {
    if (!Number.isSafeInteger(by)) throw new RackError('bad_request', '"by" must be an integer');
    const value = await this.store.incr(gid, checkKey(key), by, await this.maxBytes(gid), rid);
    this.changed(gid, key, 'set');
    return { value };
  }

  async cas(gid: string, key: string, expect: unknown, value: unknown, rid: string | null = null): Promise<{ ok: boolean; value: unknown }> {
    const expectJson = expect === null || expect === undefined ? null : encode(expect);
    const r = await this.store.cas(gid, checkKey(key), expectJson, encode(value), await this.maxBytes(gid), rid);
    if (r.ok) this.changed(gid, key, 'set');
    return { ok: r.ok, value: r.current === null ? null : JSON.parse(r.current) };
  }

  async push(gid: string, key: string, values: unknown, left: boolean, rid: string | null = null): Promise<{ length: number }> {
    if (!Array.isArray(values) || values.length === 0 || values.length > 10_000) {
      throw new RackError('bad_request', '"values" must be an array of 1 to 10000 JSON values');
    }
    const length = await this.store.push(gid, checkKey(key), values.map(encode), left, await this.maxBytes(gid), rid);
    this.changed(gid, key, 'push');
    return { length };
  }

  /** Pops one item; with a timeout, waits for a push when the list is empty (blocking pop). */
  async pop(gid: string, key: string, left: boolean, timeoutMs = 0, rid: string | null = null): Promise<{ value: JsonText | null }> {
    checkKey(key);
    const json = await until(
      this,
      'change',
      (c: ShmChange) => c.gid === gid && c.key === key && c.op === 'push',
      () => this.store.pop(gid, key, left, rid),
      Date.now() + timeoutMs,
      { onTimeout: () => null as unknown as string, recheckMs: this.recheckMs },
    );
    if (json === null) return { value: null };
    this.changed(gid, key, 'pop');
    return { value: new JsonText(json) };
  }

  async range(gid: string, key: string, start: number, stop: number): Promise<{ values: unknown[] }> {
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(stop)) throw new RackError('bad_request', '"start" and "stop" must be integers');
    const values = await this.store.range(gid, checkKey(key), start, stop);
    return { values: values.map((v) => JSON.parse(v) as unknown) };
  }

  async len(gid: string, key: string): Promise<{ length: number }> {
    return { length: await this.store.len(gid, checkKey(key)) };
  }

  async keys(gid: string, prefix: string): Promise<{ keys: string[] }> {
    if (typeof prefix !== 'string' || prefix.length > 255) throw new RackError('bad_request', '"prefix" must be a string of at most 255 characters');
    return { keys: await this.store.keys(gid, prefix) };
  }

  /** Calls `fn` on every change of a key of `gid` starting with `prefix`; returns the unsubscribe. */
  watch(gid: string, prefix: string, fn: (c: ShmChange) => void): () => void {
    if (typeof prefix !== 'string' || prefix.length > 255) throw new RackError('bad_request', '"prefix" must be a string of at most 255 characters');
    const listener = (c: ShmChange): void => {
      if (c.gid === gid && c.key.startsWith(prefix)) fn(c);
    };
    this.on('change', listener);
    return () => this.off('change', listener);
  }

  close(): void {
    clearInterval(this.sweeper);
  }
}
