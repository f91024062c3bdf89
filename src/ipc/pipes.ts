import { randomBytes } from 'node:crypto';
import { RackError } from '../common/errors.js';
import type { Principal } from '../kernel/auth.js';
import { requireGroup } from '../kernel/policy.js';

export const PIPE_CAPACITY = 1024 * 1024;
export const MAX_WRITE = 256 * 1024;

/** Where a reader end's bytes go (a WebSocket connection, or an HTTP response). */
export interface ReaderSink {
  data(chunk: Buffer): void;
  eof(): void;
}

interface End {
  id: number;
  pipe: Pipe;
  gid: string;
  pid: number;
  mode: 'r' | 'w';
  /** The connection (or request) that opened it; the end closes with it. */
  owner: object;
  credit: number;
  sink: ReaderSink | null;
  eofSent: boolean;
}

interface PendingWrite {
  data: Buffer;
  resolve(): void;
  reject(err: Error): void;
}

class Pipe {
  readonly owners = new Set<number>();
  readonly ends = new Set<End>();
  chunks: Buffer[] = [];
  size = 0;
  everReader = false;
  everWriter = false;
  readonly pending: PendingWrite[] = [];

  constructor(
    readonly id: string,
    readonly gid: string,
  ) {}

  count(mode: 'r' | 'w'): number {
    let n = 0;
    for (const e of this.ends) if (e.mode === mode) n++;
    return n;
  }
}

const FIFO_NAME = /^[A-Za-z0-9._-]{1,128}$/;

/**
 * Pipes: byte streams between processes of a group through a bounded buffer in the kernel.
 * Writers wait while the buffer is full (backpressure); readers get bytes pushed up to the credit
 * they granted, and EOF once every writer is gone and the buffer is empty.
 */
export class Pipes {
  private readonly pipes = new Map<string, Pipe>();
  private readonly ends = new Map<number, End>();
  private nextEnd = 1;

  private key(gid: string, id: string): string {
    return `${gid}/${id}`;
  }

  create(who: Principal, gid: string): string {
    requireGroup(who, gid);
    const id = randomBytes(8).toString('hex');
    const p = new Pipe(id, gid);
    if (who.kind === 'process') p.owners.add(who.pid);
    this.pipes.set(this.key(gid, id), p);
    return id;
  }

  /** A named FIFO of the group, created on first use. */
  fifo(who: Principal, gid: string, name: string): string {
    requireGroup(who, gid);
    if (typeof name !== 'string' || !FIFO_NAME.test(name)) throw new RackError('bad_request', 'a FIFO name is 1-128 letters, digits, ".", "_" or "-"');
    const id = `fifo:${name}`;
    if (!this.pipes.has(this.key(gid, id))) this.pipes.set(this.key(gid, id), new Pipe(id, gid));
    return id;
  }

  /** The anonymous pipes a process created or inherited from its parent at fork. */
  list(gid: string, pid: number): string[] {
    return [...this.pipes.values()].filter((p) => p.gid === gid && p.owners.has(pid)).map((p) => p.id);
  }

  /** fork(): the child inherits its parent's anonymous pipes, as a Unix child inherits descriptors. */
  inherit(gid: string, ppid: number, pid: number): void {
    for (const p of this.pipes.values()) if (p.gid === gid && p.owners.has(ppid)) p.owners.add(pid);
  }

  open(who: Principal, gid: string, id: string, mode: 'r' | 'w', owner: object): number {
    requireGroup(who, gid);
    if (mode !== 'r' && mode !== 'w') throw new RackError('bad_request', '"mode" must be r or w');
    const pipe = this.pipes.get(this.key(gid, id));
    if (!pipe) throw new RackError('not_found', `no pipe ${String(id).slice(0, 80)} in group ${gid}`);
    const end: End = { id: this.nextEnd++, pipe, gid, pid: who.kind === 'process' ? who.pid : 0, mode, owner, credit: 0, sink: null, eofSent: false };
    pipe.ends.add(end);
    this.ends.set(end.id, end);
    if (mode === 'r') pipe.everReader = true;
    else pipe.everWriter = true;
    return end.id;
  }

  private end(who: Principal, id: number, mode?: 'r' | 'w'): End {
    const e = this.ends.get(id);
    if (!e || (who.kind === 'process' && (e.gid !== who.gid || e.pid !== who.pid))) {
      throw new RackError('not_found', `no open pipe end ${id} of this process`);
    }
    if (mode && e.mode !== mode) throw new RackError('bad_request', `pipe end ${id} is open for ${e.mode === 'r' ? 'reading' : 'writing'}`);
    return e;
  }

  /** Resolves once the bytes are in the buffer: a writer waits while it is full. */
  write(who: Principal, endId: number, data: Buffer): Promise<void> {
    const e = this.end(who, endId, 'w');
    const pipe = e.pipe;
    if (data.length > MAX_WRITE) throw new RackError('payload_too_large', `a pipe write is at most ${MAX_WRITE} bytes`);
    if (pipe.everReader && pipe.count('r') === 0) throw new RackError('epipe', 'broken pipe: no reader is left');
    if (data.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      pipe.pending.push({ data, resolve, reject });
      this.admit(pipe);
      this.pump(pipe);
    });
  }

  /** Grants a reader end `bytes` more credit, and says where its bytes go. */
  read(who: Principal, endId: number, bytes: number, sink: ReaderSink): void {
    const e = this.end(who, endId, 'r');
    if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes > 64 * 1024 * 1024) throw new RackError('bad_request', '"bytes" must be an integer from 0 to 67108864');
    e.sink = sink;
    e.credit += bytes;
    this.pump(e.pipe);
  }

  close(who: Principal, endId: number): void {
    this.drop(this.end(who, endId));
  }

  /** Closes every end a connection or request opened. */
  closeOwner(owner: object): void {
    for (const e of [...this.ends.values()]) if (e.owner === owner) this.drop(e);
  }

  /** A process ended: its ends close and it no longer holds its anonymous pipes. */
  closeProcess(gid: string, pid: number): void {
    for (const e of [...this.ends.values()]) if (e.gid === gid && e.pid === pid) this.drop(e);
    for (const p of [...this.pipes.values()]) {
      if (p.gid !== gid || !p.owners.delete(pid)) continue;
      if (p.owners.size === 0 && p.ends.size === 0) this.pipes.delete(this.key(gid, p.id));
    }
  }

  closeGroup(gid: string): void {
    for (const e of [...this.ends.values()]) if (e.gid === gid) this.drop(e);
    for (const [k, p] of this.pipes) if (p.gid === gid) this.pipes.delete(k);
  }

  private drop(e: End): void {
    if (!this.ends.delete(e.id)) return;
    const pipe = e.pipe;
    pipe.ends.delete(e);
    if (e.mode === 'r' && pipe.count('r') === 0) {
      // Nobody will read what is queued: writers waiting for room fail as a Unix writer would.
      for (const w of pipe.pending.splice(0)) w.reject(new RackError('epipe', 'broken pipe: no reader is left'));
    }
    this.pump(pipe);
  }

  /** Moves waiting writes into the buffer while it has room (one oversize write when it is empty). */
  private admit(pipe: Pipe): void {
    while (pipe.pending.length > 0) {
      const w = pipe.pending[0]!;
      if (pipe.size > 0 && pipe.size + w.data.length > PIPE_CAPACITY) break;
      pipe.pending.shift();
      pipe.chunks.push(w.data);
      pipe.size += w.data.length;
      w.resolve();
    }
  }

  private pump(pipe: Pipe): void {
    for (const e of pipe.ends) {
      if (e.mode !== 'r' || !e.sink) continue;
      while (e.credit > 0 && pipe.size > 0) {
        const n = Math.min(e.credit, MAX_WRITE);
        const chunk = this.take(pipe, n);
        e.credit -= chunk.length;
        e.sink.data(chunk);
        this.admit(pipe);
      }
    }
    const done = pipe.everWriter && pipe.count('w') === 0 && pipe.size === 0 && pipe.pending.length === 0;
    if (!done) return;
    for (const e of pipe.ends) {
      if (e.mode === 'r' && e.sink && !e.eofSent) {
        e.eofSent = true;
        e.sink.eof();
      }
    }
  }

  private take(pipe: Pipe, max: number): Buffer {
    const parts: Buffer[] = [];
    let n = 0;
    while (n < max && pipe.chunks.length > 0) {
      const head = pipe.chunks[0]!;
      const want = max - n;
      if (head.length <= want) {
        parts.push(head);
        pipe.chunks.shift();
        n += head.length;
      } else {
        parts.push(head.subarray(0, want));
        pipe.chunks[0] = head.subarray(want);
        n += want;
      }
    }
    pipe.size -= n;
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, n);
  }
}
