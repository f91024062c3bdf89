import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FileBackend } from '../../src/files/backend.js';
import type { FileInfo } from '../../src/protocol/files.js';

export interface ContractOptions {
  /** Makes the backend under test (once for the suite). */
  make(): Promise<FileBackend>;
  /** Size of the big file: over the backend's segment size when it has one, so ranges cross segments. */
  bigBytes: number;
  /** A byte offset where something changes inside the big file (a segment boundary). */
  boundary: number;
  /** Called after each write of the big file and after the test's deletions (e.g. to count a backend's leftovers). */
  afterBig?(backend: FileBackend, gid: string): Promise<void>;
}

/** A body that arrives in pieces, as a request body does. */
function trickle(data: Buffer, piece = 16 * 1024): Readable {
  let at = 0;
  return new Readable({
    read() {
      setImmediate(() => {
        if (at >= data.length) return this.push(null);
        this.push(data.subarray(at, at + piece));
        at += piece;
      });
    },
  });
}

/** A body that fails half-way (a client that went away). */
function failing(data: Buffer): Readable {
  let sent = false;
  return new Readable({
    read() {
      if (!sent) {
        sent = true;
        this.push(data.subarray(0, Math.floor(data.length / 2)));
      } else setImmediate(() => this.destroy(new Error('client went away')));
    },
  });
}

/**
 * What every FileBackend must do, whatever stores the bytes: the same tests run against the local
 * directory (test/files) and against Swift (test/openstack).
 */
export function fileBackendContract(name: string, opts: ContractOptions): void {
  describe(`FileBackend contract: ${name}`, () => {
    let fs: FileBackend;
    const gid = randomUUID();
    const other = randomUUID();
    const big = randomBytes(opts.bigBytes);
    /** A put with room to spare (the quota tests give their own). */
    const put = (g: string, path: string, body: Readable): Promise<FileInfo> => fs.put(g, path, body, 1024 ** 4);

    beforeAll(async () => {
      fs = await opts.make();
    });
    afterAll(async () => {
      await fs.deleteGroup(gid);
      await fs.deleteGroup(other);
      await fs.close?.();
    });

    it('a streamed put of a big file reads back whole and by ranges, across segment boundaries', async () => {
      const info = await put(gid, 'data/big.bin', trickle(big));
      // A file written through RACK: its etag is the sha256 of its content (src/protocol/files.ts).
      expect(info).toMatchObject({ path: 'data/big.bin', size: big.length, etag: createHash('sha256').update(big).digest('hex') });
      const st = await fs.stat(gid, 'data/big.bin');
      expect(st).toMatchObject({ path: 'data/big.bin', size: big.length });
      expect(st.etag).toMatch(/\S/);
      expect(Date.now() - Date.parse(st.modified)).toBeLessThan(10 * 60_000);
      expect((await buffer(await fs.get(gid, 'data/big.bin'))).equals(big)).toBe(true);
      for (const [start, end] of [[0, 0], [opts.boundary - 10, opts.boundary + 10], [big.length - 1, big.length - 1], [1, big.length - 2]] as const) {
        expect((await buffer(await fs.get(gid, 'data/big.bin', { start, end }))).equals(big.subarray(start, end + 1))).toBe(true);
      }
      await opts.afterBig?.(fs, gid);
    });

    it('small and empty files; an overwrite replaces the content and its etag', async () => {
      await put(gid, 'small.txt', Readable.from([Buffer.from('hello')]));
      expect((await buffer(await fs.get(gid, 'small.txt'))).toString()).toBe('hello');
      const before = await fs.stat(gid, 'small.txt');
      await put(gid, 'small.txt', Readable.from([Buffer.from('hello, again')]));
      const after = await fs.stat(gid, 'small.txt');
      expect(after.size).toBe(12);
      expect(after.etag).not.toBe(before.etag);
      expect((await buffer(await fs.get(gid, 'small.txt'))).toString()).toBe('hello, again');
      await put(gid, 'empty', Readable.from([]));
      expect(await fs.stat(gid, 'empty')).toMatchObject({ size: 0 });
      expect((await buffer(await fs.get(gid, 'empty'))).length).toBe(0);
    });

    it('a put whose body fails leaves the previous version whole', async () => {
      await put(gid, 'keep.bin', Readable.from([Buffer.from('old version')]));
      await expect(put(gid, 'keep.bin', failing(big))).rejects.toThrow(/client went away/);
      expect((await buffer(await fs.get(gid, 'keep.bin'))).toString()).toBe('old version');
      await expect(put(gid, 'never.bin', failing(big))).rejects.toThrow(/client went away/);
      await expect(fs.stat(gid, 'never.bin')).rejects.toMatchObject({ code: 'not_found' });
    });

    it('lists by prefix, in path order, with sizes', async () => {
      for (const p of ['list/a/1', 'list/a/2', 'list/b/1', 'list/ab']) await put(gid, p, Readable.from([Buffer.from(p)]));
      const paths = async (prefix: string): Promise<string[]> => (await fs.list(gid, prefix)).map((f) => f.path);
      expect(await paths('list/a/')).toEqual(['list/a/1', 'list/a/2']);
      expect(await paths('list/a')).toEqual(['list/a/1', 'list/a/2', 'list/ab']);
      expect(await paths('list/')).toEqual(['list/a/1', 'list/a/2', 'list/ab', 'list/b/1']);
      expect(await paths('nothing/')).toEqual([]);
      const all = await fs.list(gid, '');
      expect(all.find((f) => f.path === 'list/ab')).toMatchObject({ size: 7 });
      expect(all.find((f) => f.path === 'data/big.bin')).toMatchObject({ size: big.length });
      expect(all.map((f) => f.path)).toEqual([...all.map((f) => f.path)].sort());
    });

    it('a missing file is not_found; a bad path is bad_request; delete; groups are apart', async () => {
      await expect(fs.stat(gid, 'missing')).rejects.toMatchObject({ code: 'not_found' });
      await expect(fs.get(gid, 'missing')).rejects.toMatchObject({ code: 'not_found' });
      await expect(fs.delete(gid, 'missing')).rejects.toMatchObject({ code: 'not_found' });
      await expect(put(gid, '../escape', Readable.from([Buffer.from('x')]))).rejects.toMatchObject({ code: 'bad_request' });
      await put(other, 'small.txt', Readable.from([Buffer.from('other group')]));
      await fs.delete(gid, 'small.txt');
      await expect(fs.stat(gid, 'small.txt')).rejects.toMatchObject({ code: 'not_found' });
      expect((await buffer(await fs.get(other, 'small.txt'))).toString()).toBe('other group');
      await fs.delete(gid, 'data/big.bin');
      await opts.afterBig?.(fs, gid);
      await fs.deleteGroup(other);
      expect(await fs.list(other, '')).toEqual([]);
      expect((await fs.list(gid, 'list/')).length).toBe(4);
    });

    it('usage counts the bytes of the group; a put past maxBytes is quota_exceeded and leaves the old file', async () => {
      const g = randomUUID();
      try {
        expect(await fs.usage(g)).toBe(0);
        await fs.put(g, 'a', Readable.from([Buffer.alloc(1000)]), 4000);
        await fs.put(g, 'b', Readable.from([Buffer.alloc(2000)]), 4000);
        expect(await fs.usage(g)).toBe(3000);
        // an overwrite counts the new size, not both
        await fs.put(g, 'b', Readable.from([Buffer.alloc(3000)]), 4000);
        expect(await fs.usage(g)).toBe(4000);
        await expect(fs.put(g, 'c', Readable.from([Buffer.alloc(1)]), 4000)).rejects.toMatchObject({ code: 'quota_exceeded' });
        await expect(fs.stat(g, 'c')).rejects.toMatchObject({ code: 'not_found' });
        // a big streamed file past the quota stops mid-stream and leaves the old version whole
        await expect(fs.put(g, 'a', trickle(big), 4000 + opts.boundary)).rejects.toMatchObject({ code: 'quota_exceeded' });
        expect((await buffer(await fs.get(g, 'a'))).length).toBe(1000);
        expect(await fs.usage(g)).toBe(4000);
        await fs.delete(g, 'b');
        expect(await fs.usage(g)).toBe(1000);
        await fs.put(g, 'c', Readable.from([Buffer.alloc(3000)]), 4000);
        expect(await fs.usage(g)).toBe(4000);
      } finally {
        await fs.deleteGroup(g);
      }
    });
  });
}
