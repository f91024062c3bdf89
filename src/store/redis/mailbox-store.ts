import { RackError } from '../../common/errors.js';
import type { MailboxLimits, MailboxStore, StoredMessage } from '../store.js';
import { scripts, type Client, type Scripts } from './connect.js';
import type { Keys } from './keys.js';
import { MAILBOX_SCRIPTS } from './mailbox-scripts.js';

/** Mailboxes on Redis: a stream per receiver, written and acknowledged by scripts (see mailbox-scripts.ts). */
export class RedisMailboxes implements MailboxStore {
  private readonly lua: Scripts<keyof typeof MAILBOX_SCRIPTS>;

  constructor(
    private readonly redis: Client,
    private readonly keys: Keys,
  ) {
    this.lua = scripts(redis, 'mailbox', MAILBOX_SCRIPTS);
  }

  async appendMany(gid: string, from: number, items: ReadonlyArray<{ to: number; mid: string | null; data: Buffer; binary: boolean }>, limits: MailboxLimits): Promise<Array<number | RackError>> {
    if (items.length === 0) return [];
    const args = items.flatMap((m) => [m.to, m.mid ?? '', m.binary ? '1' : '0', m.data]);
    const out = (await this.lua.run('append', this.keys.group(gid), Date.now(), from, limits.maxCount, limits.maxBytes, ...args)) as Array<number | [number, number]>;
    return out.map((r, i) =>
      typeof r === 'number'
        ? r
        : new RackError(
            'mailbox_full',
            `the mailbox of process ${items[i]!.to} is full (${r[0]} messages, ${r[1]} bytes; limits ${limits.maxCount} messages, ${limits.maxBytes} bytes): retry once it has read some`,
          ),
    );
  }

  async after(gid: string, to: number, after: number, limit: number): Promise<StoredMessage[]> {
    const entries = (await this.redis.xrangeBuffer(`${this.keys.group(gid)}mb:${to}`, String(after + 1), '+', 'COUNT', limit)) as Array<[Buffer, Buffer[]]>;
    return entries.map(([id, fields]) => {
      const f = new Map<string, Buffer>();
      for (let i = 0; i < fields.length; i += 2) f.set(fields[i]!.toString(), fields[i + 1]!);
      return { seq: Number(id.toString().split('-')[0]), from: Number(f.get('f')!.toString()), data: f.get('d')!, binary: f.get('b')!.toString() === '1' };
    });
  }

  async ack(gid: string, to: number, seq: number): Promise<void> {
    await this.lua.run('ack', this.keys.group(gid), Date.now(), to, seq);
  }

  async clear(gid: string, to: number): Promise<void> {
    await this.lua.run('clear', this.keys.group(gid), Date.now(), to);
  }
}
