import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { RackError } from '../common/errors.js';
import type { Principal } from '../auth/auth.js';
import type { PipeStore } from '../store/store.js';

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
  /** Its name in the store: this kernel run's, then its id. */
  name: string;
  pipe: LocalPipe;
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
  /** Settles with the write, either way (a closing writer waits for its last one). */
  settled: Promise<void>;
}

/** This kernel's side of a pipe: its own ends on it, and its writes waiting for room. */
class LocalPipe {
  readonly ends = new Set<End>();
  readonly pending: PendingWrite[] = [];
  /** A pump is under way; `again`: look once more when it is done (something changed meanwhile). */
  running = false;
  again = false;

  constructor(
    readonly gid: string,
    readonly id: string,
  ) {}
}

export interface PipesOptions {
  /** This kernel's id: ends are named after it and its run. */
  kernel?: string;
  /** Other kernels share the store: tell them a pipe's buffer or ends changed. */
  publish?(gid: string, pipe: string): void;
  /** Whether a kernel still runs (its liveness lease): the ends of one that died are closed. */
  alive?(kernel: string): Promise<boolean>;
  onError?(err: unknown): void;
}

const FIFO_NAME = /^[A-Za-z0-9._-]{1,128}$/;
const epipe = (): RackError => new RackError('epipe', 'broken pipe: no reader is left');
const gone = (): RackError => new RackError('not_found', 'the pipe is gone (its group was deleted)');

/**
 * Pipes: byte streams between processes of a group through a bounded buffer. Writers wait while
 * the buffer is full (backpressure); readers get bytes pushed up to the credit they granted,
 * and EOF once every writer is gone and the buffer is empty.
 *
 * The buffer and the count of open ends are the PipeStore's (this kernel's memory, or a store
 * other kernels share, so that a writer connected to one kernel and a reader connected to
 * another use one pipe); what an end's connection needs (credit, bytes kept for a replay, the
 * writes waiting for room) is this kernel's. A change to a pipe wakes this kernel's ends on it,
 * and, through `publish`, the other kernels' (poke).
 */
export class Pipes extends EventEmitter<{ opened: [{ gid: string; pipe: string; mode: 'r' | 'w' }] }> {
  private readonly pipes = new Map<string, LocalPipe>();
  private readonly ends = new Map<number, End>();
  private nextEnd = 1;
  /** This kernel run: ends opened by an earlier run of the same kernel are over too. */
  private readonly kernel: string;
  private readonly run: string;

  constructor(
    private readonly store: PipeStore,
    private readonly options: PipesOptions = {},
  ) {
    super();
    this.kernel = options.kernel ?? 'kernel';
    this.run = `${this.kernel}/${randomBytes(6).toString('hex')}`;
  }

  private key(gid: string, id: string): string {
    return `${gid}/${id}`;
  }

  async create(who: Principal, gid: string, max: number): Promise<string> {
    const id = randomBytes(8).toString('hex');
    await this.store.create(gid, id, max, who.kind === 'process' ? who.pid : null);
    return id;
  }

  /** A named FIFO of the group, created on first use. */
  async fifo(gid: string, name: string, max: number): Promise<string> {
    if (typeof name !== 'string' || !FIFO_NAME.test(name)) throw new RackError('bad_request', 'a FIFO name is 1-128 letters, digits, ".", "_" or "-"');
    const id = `fifo:${name}`;
    await this.store.fifo(gid, id, max);
    return id;
  }

  /** The anonymous pipes a process created or inherited from its parent at fork. */
  list(gid: string, pid: number): Promise<string[]> {
    return this.store.list(gid, pid);
  }

  /** fork(): the child inherits its parent's anonymous pipes, as a Unix child inherits descriptors. */
  inherit(gid: string, ppid: number, pid: number): Promise<void> {
    return this.store.inherit(gid, ppid, pid);
  }

  async open(who: Principal, gid: string, id: string, mode: 'r' | 'w', owner: object, resumable = false): Promise<number> {
    if (mode !== 'r' && mode !== 'w') throw new RackError('bad_request', '"mode" must be r or w');
    const n = this.nextEnd++;
    const name = `${this.run}/${n}`;
    if (!(await this.store.open(gid, id, name, mode))) throw new RackError('not_found', `no pipe ${String(id).slice(0, 80)} in group ${gid}`);
    let pipe = this.pipes.get(this.key(gid, id));
    if (!pipe) this.pipes.set(this.key(gid, id), (pipe = new LocalPipe(gid, id)));
    const end: End = {
      id: n,
      name,
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
    if (data.length > MAX_WRITE) throw new RackError('payload_too_large', `a pipe write is at most ${MAX_WRITE} bytes`);
    if (offset !== undefined) {
      if (!Number.isSafeInteger(offset) || offset < 0) throw new RackError('bad_request', '"offset" must be a non-negative integer');
      if (offset > e.written) throw new RackError('bad_request', `a write at offset ${offset}, but this end has taken ${e.written} bytes: bytes are missing`);
      const seen = e.written - offset;
      if (seen >= data.length) return this.admittedTo(e, offset + data.length);
      data = data.subarray(seen);
    }
    if (data.length === 0) return Promise.resolve();
    e.written += data.length;
    let resolve!: () => void;
    let reject!: (err: Error) => void;
    const done = new Promise<void>((ok, fail) => {
      resolve = ok;
      reject = fail;
    });
    e.pipe.pending.push({ end: e, data, resolve, reject, settled: done.then(() => {}, () => {}) });
    this.pump(e.pipe);
    return done;
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
  async close(who: Principal, endId: number): Promise<void> {
    if (!this.ends.has(endId)) return;
    await this.drop(this.end(who, endId));
  }

  /** A connection dropped: its resumable ends wait LINGER_MS to be attached again, the others close. */
  async detachOwner(owner: object): Promise<void> {
    const closing: Array<Promise<void>> = [];
    for (const e of [...this.ends.values()]) {
      if (e.owner !== owner) continue;
      if (!e.resumable) {
        closing.push(this.drop(e));
        continue;
      }
      e.owner = null;
      e.sink = null;
      e.credit = 0;
      e.linger = setTimeout(() => void this.drop(e), LINGER_MS);
      e.linger.unref();
    }
    await Promise.all(closing);
  }

  /** Closes every end a connection or request opened. */
  async closeOwner(owner: object): Promise<void> {
    await Promise.all([...this.ends.values()].filter((e) => e.owner === owner).map((e) => this.drop(e)));
  }

  /**
   * A process ended: its ends close, and it no longer holds its anonymous pipes (`stored`: this
   * kernel says so to the store; false when another kernel saw the end and did).
   */
  async closeProcess(gid: string, pid: number, stored = true): Promise<void> {
    await Promise.all([...this.ends.values()].filter((e) => e.gid === gid && e.pid === pid).map((e) => this.drop(e, false)));
    if (stored) await this.store.release(gid, pid);
  }

  /** The group is gone: its ends here close (their writes fail), and its pipes (`stored`, as above). */
  async closeGroup(gid: string, stored = true): Promise<void> {
    for (const e of [...this.ends.values()]) {
      if (e.gid !== gid) continue;
      this.ends.delete(e.id);
      if (e.linger) clearTimeout(e.linger);
      for (const x of e.waiters.splice(0)) x.reject(gone());
    }
    for (const [k, p] of this.pipes) {
      if (p.gid !== gid) continue;
      this.pipes.delete(k);
      for (const w of p.pending.splice(0)) w.reject(gone());
    }
    if (stored) await this.store.deleteGroup(gid);
  }

  /** Another kernel changed the pipe (bytes in or out, an end closed): this kernel's ends on it look again. */
  poke(gid: string, id: string): void {
    const pipe = this.pipes.get(this.key(gid, id));
    if (pipe) this.pump(pipe);
  }

  /**
   * What other kernels said may have been lost (or a kernel died): every pipe here looks again,
   * and the ends of kernel runs that are over are closed.
   */
  async recheck(): Promise<void> {
    for (const pipe of this.pipes.values()) this.pump(pipe);
    const { alive } = this.options;
    if (!alive) return;
    const closed = await this.store.sweep(async (run) => {
      if (run === this.run) return false;
      const kernel = run.slice(0, run.lastIndexOf('/'));
      return kernel === this.kernel || !(await alive(kernel));
    });
    if (closed > 0) for (const pipe of this.pipes.values()) this.pump(pipe);
  }

  /**
   * Closes an end here and in the store. A writer's bytes already taken go in first (`flush`),
   * so that its reader's EOF comes after them; without `flush` (its process ended) the writes
   * still waiting for room fail, as an interrupted write does.
   */
  private async drop(e: End, flush = true): Promise<void> {
    if (!this.ends.delete(e.id)) return;
    if (e.linger) clearTimeout(e.linger);
    const pipe = e.pipe;
    pipe.ends.delete(e);
    const mine = pipe.pending.filter((w) => w.end === e);
    if (flush && mine.length > 0) await mine.at(-1)!.settled;
    else if (mine.length > 0) {
      pipe.pending.splice(0, pipe.pending.length, ...pipe.pending.filter((w) => w.end !== e));
      for (const w of mine) w.reject(new RackError('epipe', 'the writing process ended'));
    }
    try {
      await this.store.close(pipe.gid, pipe.id, e.name);
    } catch (err) {
      // The store is unreachable: the end stays counted there until this kernel's run is over.
      this.options.onError?.(err);
    } finally {
      this.changed(pipe);
      if (pipe.ends.size === 0 && pipe.pending.length === 0) this.pipes.delete(this.key(pipe.gid, pipe.id));
    }
  }

  /** This kernel changed the pipe: its ends here look again, and the other kernels are told. */
  private changed(pipe: LocalPipe): void {
    this.options.publish?.(pipe.gid, pipe.id);
    this.pump(pipe);
  }

  /**
   * Moves this kernel's waiting writes into the buffer while it has room, then pushes what the
   * buffer holds to this kernel's readers, up to their credit; EOF once it is empty and no
   * writer is left. One pass at a time per pipe (a change meanwhile asks for one more).
   */
  private pump(pipe: LocalPipe): void {
    if (pipe.running) {
      pipe.again = true;
      return;
    }
    pipe.running = true;
    void (async () => {
      try {
        do {
          pipe.again = false;
          const admitted = await this.admit(pipe);
          const delivered = await this.deliver(pipe);
          if (admitted || delivered) {
            this.options.publish?.(pipe.gid, pipe.id);
            pipe.again = true;
          }
        } while (pipe.again);
      } catch (err) {
        this.options.onError?.(err);
      } finally {
        pipe.running = false;
      }
    })();
  }

  /** True if a write went in. */
  private async admit(pipe: LocalPipe): Promise<boolean> {
    let moved = false;
    while (pipe.pending.length > 0) {
      const w = pipe.pending[0]!;
      let answer: Awaited<ReturnType<PipeStore['write']>>;
      try {
        answer = await this.store.write(pipe.gid, pipe.id, w.data, PIPE_CAPACITY);
      } catch (err) {
        // The store is unreachable: this write fails (its writer may send it again, at its offset).
        this.unpend(pipe, w);
        w.reject(err instanceof RackError ? err : new RackError('unavailable', `the pipe's store: ${(err as Error).message}`));
        continue;
      }
      if (answer === 'full') break;
      if (answer !== 'ok') {
        // Nobody will read what is queued: writers waiting for room fail as a Unix writer would.
        const err = answer === 'epipe' ? epipe : gone;
        for (const x of pipe.pending.splice(0)) x.reject(err());
        for (const e of pipe.ends) for (const x of e.waiters.splice(0)) x.reject(err());
        break;
      }
      this.unpend(pipe, w);
      moved = true;
      w.resolve();
      const e = w.end;
      e.admitted += w.data.length;
      if (e.waiters.length > 0) {
        const ready = e.waiters.filter((x) => x.upto <= e.admitted);
        e.waiters = e.waiters.filter((x) => x.upto > e.admitted);
        for (const x of ready) x.resolve();
      }
    }
    return moved;
  }

  /** Takes a write off the waiting list (its end may have closed while the store had it: then it is off already). */
  private unpend(pipe: LocalPipe, w: PendingWrite): void {
    const i = pipe.pending.indexOf(w);
    if (i >= 0) pipe.pending.splice(i, 1);
  }

  /** True if bytes left the buffer. */
  private async deliver(pipe: LocalPipe): Promise<boolean> {
    let moved = false;
    for (const e of [...pipe.ends]) {
      if (e.mode !== 'r' || !e.sink || e.eofSent) continue;
      while (e.credit > 0 && e.replay.length > 0) {
        let chunk = e.replay.shift()!;
        if (chunk.length > e.credit) {
          e.replay.unshift(chunk.subarray(e.credit));
          chunk = chunk.subarray(0, e.credit);
        }
        this.push(e, chunk);
      }
      if (e.replay.length > 0) continue;
      // With no credit this only asks whether the pipe is at its end.
      const { data, eof } = await this.store.take(pipe.gid, pipe.id, Math.min(e.credit, MAX_WRITE));
      if (data.length > 0) {
        moved = true;
        // The end may have lost its connection meanwhile: a resumable one keeps the bytes for its
        // next; a closed one's reader is gone, as a Unix reader's bytes in flight.
        if (e.sink) this.push(e, data);
        else if (this.ends.has(e.id)) e.replay.push(data);
      }
      if (eof && e.sink && !e.eofSent && e.replay.length === 0) {
        e.eofSent = true;
        e.sink.eof();
      }
    }
    return moved;
  }

  private push(e: End, chunk: Buffer): void {
    e.credit = Math.max(0, e.credit - chunk.length);
    e.delivered += chunk.length;
    if (e.resumable) e.unacked.push(chunk);
    e.sink!.data(chunk);
  }
}
