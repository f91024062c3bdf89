import { Cluster, Redis } from 'ioredis';
import { RackError } from '../../common/errors.js';
import { parseRedisUrl, redact } from './url.js';

export type Client = Redis | Cluster;

/** How long a kernel waits for its Redis store at start. */
const CONNECT_MS = 30_000;

/**
 * Connects, or fails at once (a kernel does not start on a store it cannot reach). Later, the
 * client reconnects by itself and queues commands meanwhile; `onError` hears of each failure.
 */
export async function connectRedis(url: string, onError: (err: Error) => void = () => {}): Promise<Client> {
  const t = parseRedisUrl(url);
  const auth = { username: t.username, password: t.password };
  // Auto-pipelining batches the many small reads of one call into one round trip (per node).
  const client = t.cluster
    ? new Cluster(t.nodes, { lazyConnect: true, enableAutoPipelining: true, redisOptions: auth })
    : new Redis({ ...t.nodes[0]!, ...auth, db: t.db, lazyConnect: true, enableAutoPipelining: true });
  let last: Error | undefined;
  const remember = (err: Error): void => {
    last = err;
  };
  client.on('error', remember);
  // A cluster that is not serving every slot yet keeps connect() waiting (ioredis retries): a
  // kernel says so in bounded time rather than hang at its start.
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(last?.message ?? `no answer within ${CONNECT_MS / 1000} s`)), CONNECT_MS);
  });
  try {
    await Promise.race([client.connect(), late]);
  } catch (err) {
    client.disconnect();
    // connect() rejects with "Connection is closed"; the error event said why.
    throw new RackError('unavailable', `cannot reach Redis at ${redact(url)}: ${(last ?? (err as Error)).message}`);
  } finally {
    clearTimeout(timer);
  }
  client.off('error', remember);
  client.on('error', onError);
  return client;
}

type Arg = string | number | Buffer;

/**
 * Lua scripts, sent once per connection and then called by SHA (ioredis' defineCommand). Every
 * script takes one key, the group's key base `rack:{gid}:`, and builds the names of the group's
 * keys from it: all share the hash tag, so they live in one cluster slot with the base.
 * An error a script returns as `RACK <code> <message>` is a RackError.
 */
export interface Scripts<N extends string> {
  run(name: N, base: string, ...args: Arg[]): Promise<unknown>;
  /** The same, answering bulk strings as Buffers (binary data). */
  runBuffer(name: N, base: string, ...args: Arg[]): Promise<unknown>;
}

export function scripts<N extends string>(client: Client, family: string, lua: Record<N, string>): Scripts<N> {
  for (const [name, body] of Object.entries<string>(lua)) client.defineCommand(`rack_${family}_${name}`, { numberOfKeys: 1, lua: body });
  const commands = client as unknown as Record<string, (...args: Arg[]) => Promise<unknown>>;
  const call = (command: string, base: string, args: Arg[]): Promise<unknown> =>
    commands[command]!(base, ...args).catch((err: Error) => {
      const m = /^RACK ([a-z_]+) ([\s\S]*)$/.exec(err.message);
      throw m ? new RackError(m[1] as RackError['code'], m[2]!) : err;
    });
  return {
    run: (name, base, ...args) => call(`rack_${family}_${name}`, base, args),
    // ioredis defines NAMEBuffer beside each command.
    runBuffer: (name, base, ...args) => call(`rack_${family}_${name}Buffer`, base, args),
  };
}
