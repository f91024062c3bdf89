import { Readable, Writable } from 'node:stream';
import { RackError } from '../common/errors.js';
import type { KernelSocket } from '../client/kernel-socket.js';

const CHUNK = 256 * 1024;
const CREDIT = 1024 * 1024;
/** Writes travelling at once; the kernel answers each once its bytes are in its buffer. */
const IN_FLIGHT = 4;

/**
 * A pipe (anonymous or a FIFO) as Node streams. The kernel keeps a bounded buffer: a writer's
 * callback completes only once its bytes are in it, and a reader grants credit as it consumes,
 * so a slow reader slows the writers down.
 *
 * Ends are opened resumable, so a reconnect is invisible: writes carry their offset in the
 * stream and are sent again (the kernel takes each byte once), and a reader attaches its end
 * again saying how many bytes it has, and gets the rest in order. Only a kernel restart, or a
 * connection away for longer than the kernel keeps a detached end (30 s), ends a stream: with an
 * error, never with an early EOF.
 */
export class Pipe {
  constructor(
    private readonly conn: KernelSocket,
    readonly id: string,
  ) {}

  reader(): Readable {
    const conn = this.conn;
    let end: number | null = null;
    let opening: Promise<void> | null = null;
    let received = 0;
    let outstanding = 0;
    let attaching = false;
    const fail = (err: Error): void => void stream.destroy(err);
    const grant = (): void => {
      if (end === null || attaching || outstanding > CREDIT / 2) return;
      const more = CREDIT - outstanding;
      outstanding += more;
      void conn.call('pipe.read', { end, bytes: more, received }, { bound: true }).catch((err: RackError) => {
        // A grant lost with the connection is renewed once the end is attached again.
        if (err.code !== 'unavailable' && err.code !== 'conflict') fail(err);
      });
    };
    const onEvent = (e: { event?: string; end?: number }, payload?: Buffer): void => {
      if (e.end !== end || end === null) return;
      if (e.event === 'pipe.data' && payload) {
        received += payload.length;
        outstanding -= payload.length;
        if (stream.push(payload)) grant();
      } else if (e.event === 'pipe.eof') {
        stop();
        stream.push(null);
      }
    };
    // After a reconnect: attach the end again (the newest attempt wins), then grant afresh.
    let generation = 0;
    const onReconnect = (): void => {
      if (end === null) return;
      const mine = ++generation;
      outstanding = 0;
      attaching = true;
      conn.call('pipe.attach', { end, received }).then(
        () => {
          if (mine !== generation) return;
          attaching = false;
          grant();
        },
        (err: RackError) => {
          // Dropped again: the next reconnect attaches again.
          if (mine !== generation || err.code === 'unavailable') return;
          fail(new RackError(err.code, `the pipe could not be taken up again after a reconnect: ${err.message}`));
        },
      );
    };
    const stop = (): void => {
      conn.off('event', onEvent);
      conn.off('reconnect', onReconnect);
    };
    const stream = new Readable({
      highWaterMark: CREDIT,
      read: () => {
        if (end !== null) return grant();
        opening ??= conn.call('pipe.open', { pipe: this.id, mode: 'r', resume: true }, { bound: true }).then((r: { end: number }) => {
          end = r.end;
          grant();
        }, fail);
      },
      destroy(err, cb) {
        stop();
        if (end !== null) void conn.call('pipe.close', { end }).catch(() => {});
        cb(err);
      },
    });
    conn.on('event', onEvent);
    conn.on('reconnect', onReconnect);
    return stream;
  }

  writer(): Writable {
    const conn = this.conn;
    let end: number | null = null;
    const open = async (): Promise<number> => {
      end ??= (await conn.call('pipe.open', { pipe: this.id, mode: 'w', resume: true }, { bound: true })).end as number;
      return end;
    };
    let offset = 0;
    const flying = new Set<Promise<unknown>>();
    let failed: Error | null = null;
    const launch = (e: number, bytes: Buffer): void => {
      const p = conn
        .call('pipe.write', { end: e, offset }, { payload: bytes, timeoutMs: 24 * 3600 * 1000 })
        .catch((err: Error) => (failed ??= err));
      offset += bytes.length;
      flying.add(p);
      void p.finally(() => flying.delete(p));
    };
    return new Writable({
      highWaterMark: CHUNK,
      write(chunk: Buffer, _enc, cb) {
        void (async () => {
          const e = await open();
          for (let off = 0; off < chunk.length; off += CHUNK) {
            if (failed) throw failed;
            while (flying.size >= IN_FLIGHT) await Promise.race(flying);
            launch(e, chunk.subarray(off, off + CHUNK));
          }
          if (failed) throw failed;
        })().then(() => cb(), cb);
      },
      final(cb) {
        void (async () => {
          const e = await open();
          await Promise.all(flying);
          if (failed) throw failed;
          await conn.call('pipe.close', { end: e });
        })().then(() => cb(), cb);
      },
    });
  }
}
