import { describe, expect, it } from 'vitest';
import type { Principal } from '../auth/auth.js';
import { MAX_CREDIT, MAX_WRITE, Pipes } from './pipes.js';

const admin: Principal = { kind: 'admin' };

describe('pipes (kernel side)', () => {
  it('a resumable reader that never confirms stalls at MAX_CREDIT: the kernel keeps no more for it', async () => {
    const pipes = new Pipes();
    const conn = {};
    const id = pipes.create(admin, 'g', 16);
    const r = pipes.open(admin, 'g', id, 'r', conn, true);
    const w = pipes.open(admin, 'g', id, 'w', conn, true);
    let pushed = 0;
    const sink = { data: (c: Buffer) => void (pushed += c.length), eof: () => {} };
    pipes.read(admin, r, MAX_CREDIT, sink, conn);
    const writes: Array<Promise<void>> = [];
    for (let off = 0; off < MAX_CREDIT + 4 * MAX_WRITE; off += MAX_WRITE) writes.push(pipes.write(admin, w, Buffer.alloc(MAX_WRITE), off));
    await Promise.all(writes.slice(0, MAX_CREDIT / MAX_WRITE));
    pipes.read(admin, r, MAX_CREDIT, sink, conn); // more credit, nothing confirmed
    expect(pushed).toBe(MAX_CREDIT);
    pipes.read(admin, r, 0, sink, conn, MAX_CREDIT); // confirmed: room again
    pipes.read(admin, r, MAX_CREDIT, sink, conn, MAX_CREDIT);
    await Promise.all(writes);
    expect(pushed).toBe(MAX_CREDIT + 4 * MAX_WRITE);
  });

  it('a write sent again is taken once; a write beyond what was taken is refused', async () => {
    const pipes = new Pipes();
    const conn = {};
    const id = pipes.create(admin, 'g', 16);
    const r = pipes.open(admin, 'g', id, 'r', conn, true);
    const w = pipes.open(admin, 'g', id, 'w', conn, true);
    const got: Buffer[] = [];
    pipes.read(admin, r, 1024, { data: (c) => void got.push(c), eof: () => {} }, conn);
    await pipes.write(admin, w, Buffer.from('abc'), 0);
    await pipes.write(admin, w, Buffer.from('abc'), 0);
    await pipes.write(admin, w, Buffer.from('cde'), 2);
    expect(() => pipes.write(admin, w, Buffer.from('z'), 9)).toThrow(/bytes are missing/);
    expect(Buffer.concat(got).toString()).toBe('abcde');
  });
});
