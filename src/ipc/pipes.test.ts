import { describe, expect, it } from 'vitest';
import type { Principal } from '../auth/auth.js';
import { MemoryPipes } from '../store/memory-pipes.js';
import { MAX_CREDIT, MAX_WRITE, PIPE_CAPACITY, Pipes, type ReaderSink } from './pipes.js';

const admin: Principal = { kind: 'admin' };

/** A reader's sink that counts what it got, and says when it has `n` bytes (or EOF). */
function counter(): ReaderSink & { got: Buffer[]; bytes(): number; upto(n: number): Promise<void>; ended: Promise<void> } {
  const got: Buffer[] = [];
  let waiting: { n: number; ok(): void } | null = null;
  let eof!: () => void;
  const ended = new Promise<void>((ok) => (eof = ok));
  const bytes = (): number => got.reduce((n, c) => n + c.length, 0);
  return {
    got,
    bytes,
    ended,
    data(c) {
      got.push(c);
      if (waiting && bytes() >= waiting.n) waiting.ok();
    },
    eof: () => eof(),
    upto: (n) => (bytes() >= n ? Promise.resolve() : new Promise((ok) => (waiting = { n, ok }))),
  };
}

describe('pipes (kernel side)', () => {
  it('a resumable reader that never confirms stalls at MAX_CREDIT: the kernel keeps no more for it', async () => {
    const pipes = new Pipes(new MemoryPipes());
    const conn = {};
    const id = await pipes.create(admin, 'g', 16);
    const r = await pipes.open(admin, 'g', id, 'r', conn, true);
    const w = await pipes.open(admin, 'g', id, 'w', conn, true);
    const sink = counter();
    pipes.read(admin, r, MAX_CREDIT, sink, conn);
    const writes: Array<Promise<void>> = [];
    for (let off = 0; off < MAX_CREDIT + 4 * MAX_WRITE; off += MAX_WRITE) writes.push(pipes.write(admin, w, Buffer.alloc(MAX_WRITE), off));
    await Promise.all(writes.slice(0, MAX_CREDIT / MAX_WRITE));
    await sink.upto(MAX_CREDIT);
    pipes.read(admin, r, MAX_CREDIT, sink, conn); // more credit, nothing confirmed
    // The buffer fills behind the stalled reader: the writes past it wait.
    await Promise.all(writes.slice(0, (MAX_CREDIT + PIPE_CAPACITY) / MAX_WRITE));
    expect(sink.bytes()).toBe(MAX_CREDIT);
    pipes.read(admin, r, 0, sink, conn, MAX_CREDIT); // confirmed: room again
    pipes.read(admin, r, MAX_CREDIT, sink, conn, MAX_CREDIT);
    await Promise.all(writes);
    await sink.upto(MAX_CREDIT + 4 * MAX_WRITE);
    expect(sink.bytes()).toBe(MAX_CREDIT + 4 * MAX_WRITE);
  });

  it('a write sent again is taken once; a write beyond what was taken is refused', async () => {
    const pipes = new Pipes(new MemoryPipes());
    const conn = {};
    const id = await pipes.create(admin, 'g', 16);
    const r = await pipes.open(admin, 'g', id, 'r', conn, true);
    const w = await pipes.open(admin, 'g', id, 'w', conn, true);
    const sink = counter();
    pipes.read(admin, r, 1024, sink, conn);
    await pipes.write(admin, w, Buffer.from('abc'), 0);
    await pipes.write(admin, w, Buffer.from('abc'), 0);
    await pipes.write(admin, w, Buffer.from('cde'), 2);
    expect(() => pipes.write(admin, w, Buffer.from('z'), 9)).toThrow(/bytes are missing/);
    await sink.upto(5);
    expect(Buffer.concat(sink.got).toString()).toBe('abcde');
  });
});

describe('pipes: ends of a process that ended', () => {
  it("its writes waiting for room fail, and closing its ends does not wait for them", async () => {
    const pipes = new Pipes(new MemoryPipes());
    const proc: Principal = { kind: 'process', gid: 'g', pid: 101, role: 'app' };
    const id = await pipes.create(admin, 'g', 16);
    await pipes.open(admin, 'g', id, 'r', {});
    const w = await pipes.open(proc, 'g', id, 'w', {});
    for (let n = 0; n < PIPE_CAPACITY; n += MAX_WRITE) await pipes.write(proc, w, Buffer.alloc(MAX_WRITE));
    const blocked = pipes.write(proc, w, Buffer.alloc(1));
    await pipes.closeProcess('g', 101);
    await expect(blocked).rejects.toThrow(/the writing process ended/);
  });
});

describe('pipes on a store two kernels share (fake: one MemoryPipes)', () => {
  /** Two kernels' Pipes on one store, each telling the other of its changes as the bus would. */
  function twoKernels(alive = new Set(['a', 'b'])): { a: Pipes; b: Pipes; alive: Set<string> } {
    const store = new MemoryPipes();
    const peers: { a?: Pipes; b?: Pipes } = {};
    const isAlive = async (k: string): Promise<boolean> => alive.has(k);
    peers.a = new Pipes(store, { kernel: 'a', publish: (gid, pipe) => peers.b!.poke(gid, pipe), alive: isAlive });
    peers.b = new Pipes(store, { kernel: 'b', publish: (gid, pipe) => peers.a!.poke(gid, pipe), alive: isAlive });
    return { a: peers.a, b: peers.b, alive };
  }

  it('a writer on A and a reader on B: bytes in order, the writer held back by the buffer, then EOF', async () => {
    const { a, b } = twoKernels();
    const id = await a.create(admin, 'g', 16);
    const w = await a.open(admin, 'g', id, 'w', {});
    const conn = {};
    const r = await b.open(admin, 'g', id, 'r', conn);
    const total = PIPE_CAPACITY + 3 * MAX_WRITE;
    let admitted = 0;
    const writes: Array<Promise<void>> = [];
    for (let off = 0; off < total; off += MAX_WRITE) writes.push(a.write(admin, w, Buffer.alloc(MAX_WRITE, off / MAX_WRITE), off).then(() => void (admitted += MAX_WRITE)));
    await Promise.all(writes.slice(0, PIPE_CAPACITY / MAX_WRITE));
    // Nobody reads yet: what does not fit in the buffer waits.
    await b.recheck();
    expect(admitted).toBe(PIPE_CAPACITY);
    const sink = counter();
    b.read(admin, r, total, sink, conn);
    await Promise.all(writes);
    await a.close(admin, w);
    await sink.ended;
    const all = Buffer.concat(sink.got);
    expect(all.length).toBe(total);
    for (let i = 0; i < total / MAX_WRITE; i++) expect(all[i * MAX_WRITE]).toBe(i);
  });

  it('the ends of a kernel that died are closed: its reader gone, a writer elsewhere gets a broken pipe', async () => {
    const { a, b, alive } = twoKernels();
    const id = await a.create(admin, 'g', 16);
    await b.open(admin, 'g', id, 'r', {});
    const w = await a.open(admin, 'g', id, 'w', {});
    for (let n = 0; n < PIPE_CAPACITY; n += MAX_WRITE) await a.write(admin, w, Buffer.alloc(MAX_WRITE));
    const blocked = a.write(admin, w, Buffer.alloc(1));
    alive.delete('b');
    await a.recheck();
    await expect(blocked).rejects.toThrow(/broken pipe/);
  });

  it("a kernel's earlier run is over as soon as it runs again: what that run left open is closed", async () => {
    const store = new MemoryPipes();
    const swept: string[] = [];
    store.sweep = async (dead) => {
      for (const run of ['k/old', 'k/new', 'other/x']) if (await dead(run)) swept.push(run);
      return swept.length;
    };
    const pipes = new Pipes(store, { kernel: 'k', alive: async (k) => k === 'k' || k === 'other' });
    await pipes.recheck();
    expect(swept).toEqual(['k/old', 'k/new']);
  });
});
