import { Readable, Writable } from 'node:stream';
import type { Connection } from './connection.js';

const CHUNK = 256 * 1024;
const CREDIT = 1024 * 1024;

/**
 * A pipe (anonymous or a FIFO) as Node streams. The kernel keeps a bounded buffer: a writer's
 * callback completes only once its bytes are in it, and a reader grants credit as it consumes,
 * so a slow reader slows the writers down. An open end belongs to this connection: if the
 * connection drops, its ends close (readers of a lost writer see EOF, as with a killed writer).
 */
export class Pipe {
  constructor(
    private readonly conn: Connection,
    readonly id: string,
  ) {}

  reader(): Readable {
    const conn = this.conn;
    let end: number | null = null;
    let outstanding = 0;
    let opening: Promise<void> | null = null;
    const grant = (): void => {
      if (end === null || outstanding > CREDIT / 2) return;
      const more = CREDIT - outstanding;
      outstanding += more;
      void conn.call('pipe.read', { end, bytes: more }).catch((err: Error) => stream.destroy(err));
    };
    const onEvent = (e: { event?: string; end?: number }, payload?: Buffer): void => {
      if (e.end !== end) return;
      if (e.event === 'pipe.data' && payload) {
        outstanding -= payload.length;
        if (stream.push(payload)) grant();
      } else if (e.event === 'pipe.eof') {
        conn.off('event', onEvent);
        stream.push(null);
      }
    };
    const stream = new Readable({
      highWaterMark: CREDIT,
      read() {
        if (end === null) {
          opening ??= conn.call('pipe.open', { pipe: thisPipe.id, mode: 'r' }).then(
            (r: { end: number }) => {
              end = r.end;
              grant();
            },
            (err: Error) => void stream.destroy(err),
          );
          return;
        }
        grant();
      },
      destroy(err, cb) {
        conn.off('event', onEvent);
        if (end !== null) void conn.call('pipe.close', { end }).catch(() => {});
        cb(err);
      },
    });
    const thisPipe = this;
    conn.on('event', onEvent);
    return stream;
  }

  writer(): Writable {
    const conn = this.conn;
    let end: number | null = null;
    const open = async (): Promise<number> => {
      end ??= (await conn.call('pipe.open', { pipe: this.id, mode: 'w' })).end as number;
      return end;
    };
    // Up to IN_FLIGHT writes travel at once (the kernel answers each once its bytes are in the
    // buffer); a failed write fails the next write or the end.
    const IN_FLIGHT = 4;
    const flying = new Set<Promise<unknown>>();
    let failed: Error | null = null;
    const launch = (e: number, bytes: Buffer): Promise<unknown> => {
      const p = conn.call('pipe.write', { end: e }, { payload: bytes, timeoutMs: 24 * 3600 * 1000 }).catch((err: Error) => (failed ??= err));
      flying.add(p);
      void p.finally(() => flying.delete(p));
      return p;
    };
    return new Writable({
      highWaterMark: CHUNK,
      write(chunk: Buffer, _enc, cb) {
        void (async () => {
          const e = await open();
          for (let off = 0; off < chunk.length; off += CHUNK) {
            if (failed) throw failed;
            while (flying.size >= IN_FLIGHT) await Promise.race(flying);
            void launch(e, chunk.subarray(off, off + CHUNK));
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
