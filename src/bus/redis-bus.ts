import { connectRedis, type Client } from '../store/redis/connect.js';
import { parseRedisUrl } from '../store/redis/url.js';
import type { BusMessage, KernelBus } from './bus.js';

/** SET NX PX, or renew the lease if it is ours already. */
const ACQUIRE = `
local v = redis.call('GET', KEYS[1])
if v == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0`;

type LeaseCommands = {
  rack_lease_acquire(key: string, me: string, ttl: number): Promise<number>;
  rack_lease_release(key: string, me: string): Promise<number>;
};

/**
 * The kernel bus over Redis pub/sub: one channel, `PREFIX:bus`, for every kernel on the store
 * (every kernel serves every group, so each needs every group's changes; a channel per group
 * would be one subscription per group on each kernel). Publications go out on one connection,
 * in order; a subscriber connection of its own (a connection in subscriber mode takes no other
 * command) hears them. Leases are keys `PREFIX:NAME`; a name with a group's `{gid}` hash tag
 * lives in that group's cluster slot.
 */
export class RedisBus implements KernelBus {
  readonly shared = true;
  private readonly channel: string;
  private readonly handlers: Array<(m: BusMessage) => void> = [];
  private readonly gapHandlers: Array<() => void> = [];

  private constructor(
    readonly id: string,
    private readonly pub: Client,
    private readonly sub: Client,
    private readonly prefix: string,
    private readonly onError: (err: Error) => void,
    db: number,
  ) {
    // Pub/sub channels are server-wide, whatever the database: kernels on another database of
    // the same server are another installation, and must not hear this one.
    this.channel = db === 0 ? `${prefix}:bus` : `${prefix}:bus:db${db}`;
    pub.defineCommand('rack_lease_acquire', { numberOfKeys: 1, lua: ACQUIRE });
    pub.defineCommand('rack_lease_release', { numberOfKeys: 1, lua: RELEASE });
    sub.on('message', (channel: string, text: string) => {
      if (channel !== this.channel) return;
      let env: { o: string; m: BusMessage };
      try {
        env = JSON.parse(text) as { o: string; m: BusMessage };
      } catch (err) {
        return this.onError(err as Error);
      }
      if (env.o === this.id) return;
      for (const fn of this.handlers) fn(env.m);
    });
    // ioredis subscribes again by itself after a reconnect; what was published meanwhile is lost.
    sub.on('ready', () => {
      for (const fn of this.gapHandlers) fn();
    });
  }

  /** `id`: the kernel's, the same across its restarts (its leases are its own again at once). */
  static async open(url: string, id: string, prefix = 'rack', onError: (err: Error) => void = () => {}): Promise<RedisBus> {
    const pub = await connectRedis(url, onError);
    const sub = await connectRedis(url, onError).catch((err: unknown) => {
      pub.disconnect();
      throw err;
    });
    const bus = new RedisBus(id, pub, sub, prefix, onError, parseRedisUrl(url).db);
    await sub.subscribe(bus.channel);
    return bus;
  }

  publish(m: BusMessage): void {
    this.pub.publish(this.channel, JSON.stringify({ o: this.id, m })).catch(this.onError);
  }

  subscribe(fn: (m: BusMessage) => void): void {
    this.handlers.push(fn);
  }

  onGap(fn: () => void): void {
    this.gapHandlers.push(fn);
  }

  async acquire(name: string, ttlMs: number): Promise<boolean> {
    return (await (this.pub as unknown as LeaseCommands).rack_lease_acquire(`${this.prefix}:${name}`, this.id, ttlMs)) === 1;
  }

  async release(name: string): Promise<void> {
    await (this.pub as unknown as LeaseCommands).rack_lease_release(`${this.prefix}:${name}`, this.id);
  }

  async holder(name: string): Promise<string | null> {
    return this.pub.get(`${this.prefix}:${name}`);
  }

  async close(): Promise<void> {
    await Promise.all([this.sub.quit().catch(() => this.sub.disconnect()), this.pub.quit().catch(() => this.pub.disconnect())]);
  }
}
