import { RackError } from '../common/errors.js';
import type { Ipc } from '../ipc/index.js';
import { MAX_CREDIT } from '../ipc/pipes.js';
import type { ShmChange } from '../ipc/shared-memory.js';
import { encodeBinaryFrame } from '../protocol/binary-frame.js';
import type { RequestFrame } from '../protocol/channel.js';
import { int, only, seconds, str, type Connection, type OpHandler } from './websocket.js';

function own(conn: Connection): { gid: string; pid: number } {
  return conn.self();
}

const MAX_BATCH = 1000;

/** WebSocket ops for messages, shared memory and pipes (see docs/protocol.md). */
export function ipcOps(ipc: Ipc): Map<string, OpHandler> {
  const ops = new Map<string, OpHandler>();
  const receivers = new WeakMap<Connection, { ack(seq: number): Promise<void>; close(): void }>();
  // Sends of one connection are stored in the order they came: per-sender order is a promise.
  const sendChains = new WeakMap<Connection, Promise<unknown>>();

  // ---- messages ----
  ops.set('send', async (conn, f) => {
    only(f, ['gid', 'to', 'data', 'mid', '$payload']);
    const gid = conn.gidFor(f);
    const payload = f.$payload as Buffer | undefined;
    const binary = payload !== undefined;
    if (!binary && !('data' in f)) throw new RackError('bad_request', '"data" is required');
    const data = binary ? payload : Buffer.from(JSON.stringify(f.data));
    const mid = f.mid === undefined ? null : str(f, 'mid', { max: 64 });
    const to = int(f, 'to');
    const previous = sendChains.get(conn) ?? Promise.resolve();
    const mine = previous.catch(() => {}).then(() => ipc.messaging.send(conn.who, gid, to, data, binary, mid));
    sendChains.set(conn, mine);
    return { seq: await mine };
  });

  // Several JSON messages in one frame and one commit (libdck sends what piles up while earlier
  // sends are unanswered this way). Each message has its own result, in order.
  ops.set('send.batch', async (conn, f) => {
    only(f, ['gid', 'messages']);
    const gid = conn.gidFor(f);
    const list = f.messages;
    if (!Array.isArray(list) || list.length === 0 || list.length > MAX_BATCH) throw new RackError('bad_request', `"messages" must be a list of 1 to ${MAX_BATCH} messages`);
    const items = list.map((m: unknown, i: number) => {
      if (typeof m !== 'object' || m === null || Array.isArray(m)) throw new RackError('bad_request', `messages[${i}] must be an object`);
      const e = m as RequestFrame;
      const extra = Object.keys(e).find((k) => !['to', 'data', 'mid'].includes(k));
      if (extra) throw new RackError('bad_request', `messages[${i}] has an unknown field "${extra.slice(0, 40)}"`);
      if (!('data' in e)) throw new RackError('bad_request', `messages[${i}]: "data" is required`);
      try {
        return { to: int(e, 'to'), data: Buffer.from(JSON.stringify(e.data)), binary: false, mid: e.mid === undefined ? null : str(e, 'mid', { max: 64 }) };
      } catch (err) {
        throw new RackError('bad_request', `messages[${i}]: ${(err as Error).message}`);
      }
    });
    const previous = sendChains.get(conn) ?? Promise.resolve();
    const mine = previous.catch(() => {}).then(() => ipc.messaging.sendMany(conn.who, gid, items));
    sendChains.set(conn, mine);
    const results = await mine;
    return { results: results.map((r) => (typeof r === 'number' ? { seq: r } : { error: r.toJSON() })) };
  });

  ops.set('recv.start', async (conn, f) => {
    only(f, ['window']);
    const { gid, pid } = own(conn);
    const window = f.window === undefined ? 256 : int(f, 'window', 1, 10_000);
    receivers.get(conn)?.close();
    const r = await ipc.messaging.receive(conn.who, gid, pid, (m) => {
      if (m.binary) conn.ws.send(encodeBinaryFrame({ event: 'message', seq: m.seq, from: m.from }, m.data));
      else conn.ws.send(`{"event":"message","seq":${m.seq},"from":${m.from},"data":${m.data.toString('utf8')}}`);
    }, window);
    receivers.set(conn, r);
    conn.onClose(() => r.close());
    return {};
  });

  ops.set('ack', async (conn, f) => {
    only(f, ['seq']);
    const r = receivers.get(conn);
    if (!r) throw new RackError('bad_request', 'send recv.start before ack');
    await r.ack(int(f, 'seq', 0, Number.MAX_SAFE_INTEGER));
    return {};
  });

  // ---- shared memory ----
  const key = (f: RequestFrame): string => {
    if (typeof f.key !== 'string') throw new RackError('bad_request', '"key" must be a string');
    return f.key;
  };
  ops.set('shm.get', async (conn, f) => (only(f, ['gid', 'key']), ipc.shm.get(conn.who, conn.gidFor(f), key(f))));
  ops.set('shm.set', async (conn, f) => {
    only(f, ['gid', 'key', 'value', 'ttl']);
    const ttl = f.ttl === undefined ? null : seconds(f, 'ttl', 0, 31_536_000);
    return ipc.shm.set(conn.who, conn.gidFor(f), key(f), f.value, ttl);
  });
  ops.set('shm.delete', async (conn, f) => (only(f, ['gid', 'key']), ipc.shm.delete(conn.who, conn.gidFor(f), key(f))));
  ops.set('shm.incr', async (conn, f) => {
    only(f, ['gid', 'key', 'by']);
    const by = f.by === undefined ? 1 : int(f, 'by', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
    return ipc.shm.incr(conn.who, conn.gidFor(f), key(f), by);
  });
  ops.set('shm.cas', async (conn, f) => (only(f, ['gid', 'key', 'expect', 'value']), ipc.shm.cas(conn.who, conn.gidFor(f), key(f), f.expect, f.value)));
  ops.set('shm.push', async (conn, f) => (only(f, ['gid', 'key', 'values', 'left']), ipc.shm.push(conn.who, conn.gidFor(f), key(f), f.values, f.left === true)));
  ops.set('shm.pop', async (conn, f) => {
    only(f, ['gid', 'key', 'left', 'timeout']);
    return ipc.shm.pop(conn.who, conn.gidFor(f), key(f), f.left !== false, seconds(f, 'timeout', 0, 3600));
  });
  ops.set('shm.range', async (conn, f) => {
    only(f, ['gid', 'key', 'start', 'stop']);
    const s = f.start === undefined ? 0 : int(f, 'start', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
    const e = f.stop === undefined ? -1 : int(f, 'stop', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
    return ipc.shm.range(conn.who, conn.gidFor(f), key(f), s, e);
  });
  ops.set('shm.len', async (conn, f) => (only(f, ['gid', 'key']), ipc.shm.len(conn.who, conn.gidFor(f), key(f))));
  ops.set('shm.keys', async (conn, f) => (only(f, ['gid', 'prefix']), ipc.shm.keys(conn.who, conn.gidFor(f), (f.prefix as string | undefined) ?? '')));
  ops.set('shm.watch', async (conn, f) => {
    only(f, ['gid', 'prefix']);
    const stop = ipc.shm.watch(conn.who, conn.gidFor(f), (f.prefix as string | undefined) ?? '', (c: ShmChange) =>
      conn.push({ event: 'shm', key: c.key, op: c.op }),
    );
    conn.onClose(stop);
    return {};
  });

  // ---- pipes ----
  ops.set('pipe.create', async (conn, f) => (only(f, ['gid']), { pipe: ipc.pipes.create(conn.who, conn.gidFor(f)) }));
  ops.set('pipe.list', async (conn, f) => {
    only(f, []);
    const { gid, pid } = own(conn);
    return { pipes: ipc.pipes.list(gid, pid) };
  });
  ops.set('fifo.open', async (conn, f) => (only(f, ['gid', 'name']), { pipe: ipc.pipes.fifo(conn.who, conn.gidFor(f), str(f, 'name', { max: 128 })) }));
  // A connection's pipe ends are detached (resumable ones) or closed when it drops.
  const watched = new WeakSet<object>();
  const watch = (conn: Connection): void => {
    if (watched.has(conn)) return;
    watched.add(conn);
    conn.onClose(() => ipc.pipes.detachOwner(conn));
  };
  ops.set('pipe.open', async (conn, f) => {
    only(f, ['gid', 'pipe', 'mode', 'resume']);
    if (f.resume !== undefined && typeof f.resume !== 'boolean') throw new RackError('bad_request', '"resume" must be true or false');
    const end = ipc.pipes.open(conn.who, conn.gidFor(f), str(f, 'pipe', { max: 140 }), f.mode as 'r' | 'w', conn, f.resume === true);
    watch(conn);
    return { end };
  });
  ops.set('pipe.attach', async (conn, f) => {
    only(f, ['end', 'received']);
    const received = f.received === undefined ? undefined : int(f, 'received', 0, Number.MAX_SAFE_INTEGER);
    const r = ipc.pipes.attach(conn.who, int(f, 'end'), conn, received);
    watch(conn);
    return r;
  });
  ops.set('pipe.write', async (conn, f) => {
    only(f, ['end', 'offset', '$payload']);
    const payload = f.$payload as Buffer | undefined;
    if (!payload) throw new RackError('bad_request', 'pipe.write carries its bytes in a binary frame');
    const end = int(f, 'end');
    const offset = f.offset === undefined ? undefined : int(f, 'offset', 0, Number.MAX_SAFE_INTEGER);
    ipc.pipes.adoptWriter(conn.who, end, conn);
    watch(conn);
    await ipc.pipes.write(conn.who, end, payload, offset);
    return {};
  });
  ops.set('pipe.read', async (conn, f) => {
    only(f, ['end', 'bytes', 'received']);
    const end = int(f, 'end');
    const received = f.received === undefined ? undefined : int(f, 'received', 0, Number.MAX_SAFE_INTEGER);
    ipc.pipes.read(
      conn.who,
      end,
      int(f, 'bytes', 0, MAX_CREDIT),
      {
        data: (chunk) => conn.ws.send(encodeBinaryFrame({ event: 'pipe.data', end }, chunk)),
        eof: () => conn.push({ event: 'pipe.eof', end }),
      },
      conn,
      received,
    );
    return {};
  });
  ops.set('pipe.close', async (conn, f) => {
    only(f, ['end']);
    ipc.pipes.close(conn.who, int(f, 'end'));
    return {};
  });
  return ops;
}
