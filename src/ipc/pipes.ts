import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { RackError } from '../common/errors.js';
import type { Principal } from '../auth/auth.js';

export const PIPE_CAPACITY = 1024 * 1024;
export const MAX_WRITE = 256 * 1024;
/** The most credit a reader end may hold (it bounds what the kernel keeps for a replay). */
export const MAX_CREDIT = 16 * 1024 * 1024;
/** How long a resumable end waits for its process to attach it again after its connection drops. */
export const LINGER_MS = 30_000;

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
  /**
   * The connection (or request) it is attached to. A resumable end outlives its connection for
   * LINGER_MS (null owner meanwhile) so that the process can attach it again after a reconnect;
   * any other end closes with its owner.
   */
  owner: object | null;
  resumable: boolean;
  linger: NodeJS.Timeout | null;
  // Reader ends.
  credit: number;
  sink: ReaderSink | null;
  eofSent: boolean;
  /** Bytes pushed to the reader so far, and how many of them it confirmed. */
  delivered: number;
  acked: number;
  /** Pushed and not confirmed (resumable readers): pushed again after a reconnect. */
  unacked: Buffer[];
  /** To push before anything new from the buffer. */
  replay: Buffer[];
  // Writer ends: bytes taken from this writer, and how many of them are in the buffer already.
  written: number;
  admitted: number;
  waiters: Array<{ upto: number; resolve(): void; reject(err: Error): void }>;
}

interface PendingWrite {
  end: End;
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
export class Pipes extends EventEmitter<{ opened: [{ gid: string; pipe: string; mode: 'r' | 'w' }] }> {
  private readonly pipes = new Map<string, Pipe>();
  private readonly ends = new Map<number, End>();
  private nextEnd = 1;

  private key(gid: string, id: string): string {
    return `${gid}/${id}`;
  }

  /** Refuses a new pipe past the group's quota. */
  private room(gid: string, max: number): void {
    let n = 0;
    for (const p of this.pipes.values()) if (p.gid === gid) n++;
    if (n >= max) throw new RackError('quota_exceeded', `quota: the group may have ${max} pipes open at once; it has ${n}`);
  }

  create(who: Principal, gid: string, max: number): string {
    this.room(gid, max);
    const id = randomBytes(8).toString('hex');
    const p = new Pipe(id, gid);
    if (who.kind === 'process') p.owners.add(who.pid);
    this.pipes.set(this.key(gid, id), p);
    return id;
  }

  /** A named FIFO of the group, created on first use. */
  fifo(gid: string, name: string, max: number): string {
    if (typeof name !== 'string' || !FIFO_NAME.test(name)) throw new RackError('bad_request', 'a FIFO name is 1-128 letters, digits, ".", "_" or "-"');
    const id = `fifo:${name}`;
    if (!this.pipes.has(this.key(gid, id))) {
      this.room(gid, max);
      this.pipes.set(this.key(gid, id), new Pipe(id, gid));
    }
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

  open(who: Principal, gid: string, id: string, mode: 'r' | 'w', owner: object, resumable = false): number {
    if (mode !== 'r' && mode !== 'w') throw new RackError('bad_request', '"mode" must be r or w');
    const pipe = this.pipes.get(this.key(gid, id));
    if (!pipe) throw new RackError('not_found', `no pipe ${String(id).slice(0, 80)} in group ${gid}`);
    const end: End = {
      id: this.nextEnd++,
      pipe,
      gid,
      pid: who.kind === 'process' ? who.pid : 0,
      mode,
      owner,
      resumable,
      linger: null,
      credit: 0,
      sink: null,
      eofSent: false,
      delivered: 0,
      acked: 0,
      unacked: [],
      replay: [],
      written: 0,
      admitted: 0,
      waiters: [],
    };
    pipe.ends.add(end);
    this.ends.set(end.id, end);
    if (mode === 'r') pipe.everReader = true;
    else pipe.everWriter = true;
    this.emit('opened', { gid, pipe: id, mode });
    return end.id;
  }

  /**
   * A resumable end's process took it up again on a new connection (after a reconnect). A reader
   * says how many bytes it has received: what was pushed beyond that is pushed again, in order.
   * Answers where the end stands: bytes received (reader) or taken (writer).
   */
  attach(who: Principal, endId: number, owner: object, received?: number): { offset: number } {
    const e = this.end(who, endId);
    if (!e.resumable) throw new RackError('bad_request', `pipe end ${endId} was not opened resumable`);
    this.adopt(e, owner);
    if (e.mode === 'w') return { offset: e.written };
    if (received !== undefined) this.ack(e, received);
    e.replay = [...e.unacked, ...e.replay];
    e.unacked = [];
    e.delivered = e.acked;
    e.credit = 0;
    e.sink = null;
    e.eofSent = false;
    return { offset: e.acked };
  }

  /** A writer's bytes arriving on another connection attach its end there (offsets make resends safe). */
  adoptWriter(who: Principal, endId: number, owner: object): void {
    const e = this.end(who, endId, 'w');
    if (e.resumable && e.owner !== owner) this.adopt(e, owner);
  }

  private adopt(e: End, owner: object): void {
    if (e.linger) clearTimeout(e.linger);
    e.linger = null;
    e.owner = owner;
  }

  private end(who: Principal, id: number, mode?: 'r' | 'w'): End {
    const e = this.ends.get(id);
    if (!e || (who.kind === 'process' && (e.gid !== who.gid || e.pid !== who.pid))) {
      throw new RackError('not_found', `no open pipe end ${id} of this process`);
    }
    if (mode && e.mode !== mode) throw new RackError('bad_request', `pipe end ${id} is open for ${e.mode === 'r' ? 'reading' : 'writing'}`);
    return e;
  }

  /**
   * Resolves once the bytes are in the buffer: a writer waits while it is full. With `offset`
   * (the position of these bytes in the writer's stream) a write sent again after a reconnect
   * is recognised, and bytes already taken are not taken twice.
   */
  write(who: Principal, endId: number, data: Buffer, offset?: number): Promise<void> {
    const e = this.end(who, endId, 'w');
    const pipe = e.pipe;
    if (data.length > MAX_WRITE) throw new RackError('payload_too_large', `a pipe write is at most ${MAX_WRITE} bytes`);
    if (offset !== undefined) {
      if (!Number.isSafeInteger(offset) || offset < 0) throw new RackError('bad_request', '"offset" must be a non-negative integer');
      if (offset > e.written) throw new RackError('bad_request', `a write at offset ${offset}, but this end has taken ${e.written} bytes: bytes are missing`);
      const seen = e.written - offset;
      if (seen >= data.length) return this.admittedTo(e, offset + data.length);
      data = data.subarray(seen);
    }
    if (pipe.everReader && pipe.count('r') === 0) throw new RackError('epipe', 'broken pipe: no reader is left');
    if (data.length === 0) return Promise.resolve();
    e.written += data.length;
    return new Promise<void>((resolve, reject) => {
      pipe.pending.push({ end: e, data, resolve, reject });
      this.admit(pipe);
      this.pump(pipe);
    });
  }

  /** Resolves once this writer's bytes up to `upto` are in the buffer. */
  private admittedTo(e: End, upto: number): Promise<void> {
    if (e.admitted >= upto) return Promise.resolve();
    return new Promise((resolve, reject) => e.waiters.push({ upto, resolve, reject }));
  }

  /**
   * Grants a reader end `bytes` more credit, and says where its bytes go. A resumable reader
   * also says how many bytes it has `received`, which the kernel then no longer keeps.
   */
  read(who: Principal, endId: number, bytes: number, sink: ReaderSink, owner: object, received?: number): void {
    const e = this.end(who, endId, 'r');
    if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes > MAX_CREDIT) throw new RackError('bad_request', `"bytes" must be an integer from 0 to ${MAX_CREDIT}`);
    if (e.owner !== owner) throw new RackError('conflict', `pipe end ${endId} is not attached to this connection: pipe.attach it first`);
    if (received !== undefined) this.ack(e, received);
    e.sink = sink;
    // What is kept for a replay counts against the credit: a reader that never confirms stalls
    // at MAX_CREDIT instead of growing the kernel's memory.
    const kept = e.resumable ? e.delivered - e.acked : 0;
    e.credit = Math.max(0, Math.min(e.credit + bytes, MAX_CREDIT - kept));
    this.pump(e.pipe);
  }

  private ack(e: End, received: number): void {
    if (!Number.isSafeInteger(received) || received < e.acked || received > e.delivered) {
      throw new RackError('bad_request', `"received" must be between ${e.acked} and ${e.delivered} for pipe end ${e.id}`);
    }
    let n = received - e.acked;
    while (n > 0 && e.unacked.length > 0) {
      const head = e.unacked[0]!;
      if (head.length <= n) {
        e.unacked.shift();
        n -= head.length;
      } else {
        e.unacked[0] = head.subarray(n);
        n = 0;
      }
    }
    e.acked = received;
  }

  /** Closes an end; closing one that is closed already is no error (a close sent again after a reconnect). */
  close(who: Principal, endId: number): void {
    if (!this.ends.has(endId)) return;
    this.drop(this.end(who, endId));
  }

  /** A connection dropped: its resumable ends wait LINGER_MS to be attached again, the others close. */
  detachOwner(owner: object): void {
    for (const e of [...this.ends.values()]) {
      if (e.owner !== owner) continue;
      if (!e.resumable) {
        this.drop(e);
        continue;
      }
      e.owner = null;
      e.sink = null;
      e.credit = 0;
      e.linger = setTimeout(() => this.drop(e), LINGER_MS);
      e.linger.unref();
    }
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
    if (e.linger) clearTimeout(e.linger);
    const pipe = e.pipe;
    pipe.ends.delete(e);
    if (e.mode === 'r' && pipe.count('r') === 0) {
      // Nobody will read what is queued: writers waiting for room fail as a Unix writer would.
      const broken = (): RackError => new RackError('epipe', 'broken pipe: no reader is left');
      for (const w of pipe.pending.splice(0)) w.reject(broken());
      for (const w of pipe.ends) for (const x of w.waiters.splice(0)) x.reject(broken());
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
      const e = w.end;
      e.admitted += w.data.length;
      if (e.waiters.length > 0) {
        const ready = e.waiters.filter((x) => x.upto <= e.admitted);
        e.waiters = e.waiters.filter((x) => x.upto > e.admitted);
        for (const x of ready) x.resolve();
      }
    }
  }

  private pump(pipe: Pipe): void {
    for (const e of pipe.ends) {
      if (e.mode !== 'r' || !e.sink) continue;
      while (e.credit > 0 && e.replay.length > 0) {
        let chunk = e.replay.shift()!;
        if (chunk.length > e.credit) {
          e.replay.unshift(chunk.subarray(e.credit));
          chunk = chunk.subarray(0, e.credit);
        }
        this.push(e, chunk);
      }
      while (e.credit > 0 && pipe.size > 0) {
        this.push(e, this.take(pipe, Math.min(e.credit, MAX_WRITE)));
        this.admit(pipe);
      }
    }
    const done = pipe.everWriter && pipe.count('w') === 0 && pipe.size === 0 && pipe.pending.length === 0;
    if (!done) return;
    for (const e of pipe.ends) {
      if (e.mode === 'r' && e.sink && !e.eofSent && e.replay.length === 0) {
        e.eofSent = true;
        e.sink.eof();
      }
    }
  }

  private push(e: End, chunk: Buffer): void {
    e.credit -= chunk.length;
    e.delivered += chunk.length;
    if (e.resumable) e.unacked.push(chunk);
    e.sink!.data(chunk);
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
