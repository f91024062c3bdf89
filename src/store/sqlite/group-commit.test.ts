import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { once } from 'node:events';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RackError } from '../../common/errors.js';
import { DEFAULT_QUOTAS } from '../../protocol/process.js';
import { openDatabase } from './database.js';
import { GroupCommit } from './group-commit.js';
import { SqliteStore } from './sqlite-store.js';

const GID = 'g1';
const group = { gid: GID, name: 'g', description: '', template: null, flavor: null, args: {}, quotas: DEFAULT_QUOTAS, created_at: new Date(0).toISOString() };
const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));
const codeOf = (p: Promise<unknown>): Promise<string> => p.then(() => 'ok', (err: unknown) => (err instanceof RackError ? err.code : String(err)));

describe('group commit', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'rack-group-commit-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('commits the writes of one turn together: one that fails is undone alone, the others are stored and answered with their own results', async () => {
    const db = openDatabase(join(dir, 'db.sqlite'));
    db.exec('CREATE TABLE t (v INTEGER)');
    const commits = new GroupCommit(db);
    const insert = (v: number) => () => Number(db.prepare('INSERT INTO t (v) VALUES (?)').run(v).lastInsertRowid);
    const answers = [
      commits.run(insert(1)),
      commits.run(() => {
        insert(2)();
        throw new RackError('conflict', 'refused after writing');
      }),
      commits.run(insert(3)),
      commits.run(() => db.prepare('INSERT INTO nowhere VALUES (1)').run()),
      commits.run(insert(5)),
    ];
    // Nothing is written before the turn ends.
    expect(db.prepare('SELECT count(*) AS n FROM t').get()).toEqual({ n: 0 });
    const settled = await Promise.allSettled(answers);
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled']);
    expect((settled[1] as PromiseRejectedResult).reason).toMatchObject({ code: 'conflict' });
    expect(String((settled[3] as PromiseRejectedResult).reason)).toMatch(/no such table/);
    expect(db.prepare('SELECT v FROM t ORDER BY v').all()).toEqual([{ v: 1 }, { v: 3 }, { v: 5 }]);
    db.close();
  });

  it('answers nobody before the commit: every write of the batch is visible to another connection when the first answer arrives', async () => {
    const file = join(dir, 'db.sqlite');
    const store = new SqliteStore(file);
    await store.groups.create(group);
    const other = new Database(file, { readonly: true });
    const seen: number[] = [];
    const limits = { maxCount: 100, maxBytes: 1 << 20 };
    const writes = [
      ...Array.from({ length: 20 }, () => store.shm.incr(GID, 'n', 1, 1 << 20)),
      ...Array.from({ length: 20 }, (_, i) => store.mailboxes.appendMany(GID, 100, [{ to: 101, mid: `m${i}`, data: json({ i }), binary: false }], limits)),
    ].map((p) =>
      p.then((v) => {
        // Read by another connection: only committed data is there.
        const n = (other.prepare(`SELECT value FROM shm WHERE gid = ? AND key = 'n'`).get(GID) as { value: string } | undefined)?.value;
        const m = (other.prepare('SELECT count(*) AS n FROM messages').get() as { n: number }).n;
        seen.push(Number(n) * 1000 + m);
        return v;
      }),
    );
    await Promise.all(writes);
    expect(new Set(seen)).toEqual(new Set([20 * 1000 + 20]));
    other.close();
    await store.close();
  });

  it('a full mailbox, a quota or a conflict refuses only its own write among many in one turn', async () => {
    const store = new SqliteStore(join(dir, 'db.sqlite'));
    await store.groups.create(group);
    await store.shm.set(GID, 'text', '"not a number"', null, 1 << 20);
    const limits = { maxCount: 3, maxBytes: 1 << 20 };
    const calls = [
      store.shm.incr(GID, 'a', 1, 1 << 20),
      store.shm.incr(GID, 'text', 1, 1 << 20), // conflict: not an integer
      store.shm.incr(GID, 'a', 1, 1 << 20),
      store.shm.set(GID, 'big', JSON.stringify('x'.repeat(100)), null, 50), // quota_exceeded
      store.mailboxes.appendMany(GID, 100, [1, 2, 3, 4].map((i) => ({ to: 101, mid: `m${i}`, data: json(i), binary: false })), limits),
      store.shm.push(GID, 'list', ['1', '2'], false, 1 << 20),
      store.mailboxes.appendMany(GID, 100, [{ to: 101, mid: 'm5', data: json(5), binary: false }], limits),
      store.shm.incr(GID, 'a', 1, 1 << 20),
    ];
    expect(await Promise.all(calls.map(codeOf))).toEqual(['ok', 'conflict', 'ok', 'quota_exceeded', 'ok', 'ok', 'ok', 'ok']);
    expect(await calls[7]).toBe(3);
    // The fourth message and the fifth found the mailbox full; the first three are stored.
    const appended = (await calls[4]) as Array<number | RackError>;
    expect(appended.slice(0, 3).every((r) => typeof r === 'number')).toBe(true);
    expect(appended[3]).toMatchObject({ code: 'mailbox_full' });
    expect(((await calls[6]) as Array<number | RackError>)[0]).toMatchObject({ code: 'mailbox_full' });
    expect((await store.mailboxes.after(GID, 101, 0, 10)).map((m) => JSON.parse(m.data.toString()))).toEqual([1, 2, 3]);
    expect(await store.shm.get(GID, 'big')).toEqual({ json: null, version: 0 });
    expect(await store.shm.range(GID, 'list', 0, -1)).toEqual(['1', '2']);
    // The usage counts what is stored, nothing of the refused writes.
    expect(await store.shm.usage(GID)).toBe('text'.length + '"not a number"'.length + 'a'.length + 1 + 'list'.length + 2);
    await store.close();
  });

  it('a read sees the writes asked for before it, answered or not', async () => {
    const store = new SqliteStore(join(dir, 'db.sqlite'));
    await store.groups.create(group);
    const written = store.shm.set(GID, 'k', '1', null, 1 << 20);
    const acked = store.mailboxes.appendMany(GID, 100, [{ to: 101, mid: null, data: json('x'), binary: false }], { maxCount: 10, maxBytes: 1 << 20 });
    expect((await store.shm.get(GID, 'k')).version).toBe(1);
    expect(await store.mailboxes.after(GID, 101, 0, 10)).toHaveLength(1);
    await Promise.all([written, acked]);
    await store.close();
  });

  it('a commit that fails answers every write of the batch with the error, and stores none of them', async () => {
    const db = openDatabase(join(dir, 'db.sqlite'));
    // A deferred foreign key is checked at COMMIT, after every savepoint was released.
    db.exec('CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE c (p INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED)');
    const commits = new GroupCommit(db);
    const answers = [commits.run(() => db.prepare('INSERT INTO p VALUES (1)').run()), commits.run(() => db.prepare('INSERT INTO c VALUES (2)').run())];
    const settled = await Promise.allSettled(answers);
    expect(settled.map((s) => s.status)).toEqual(['rejected', 'rejected']);
    expect(db.prepare('SELECT count(*) AS n FROM p').get()).toEqual({ n: 0 });
    expect(db.inTransaction).toBe(false);
    db.close();
  });

  it('a write answered before a kill -9 of the process is there after it', async () => {
    const file = join(dir, 'db.sqlite');
    const store = new SqliteStore(file);
    await store.groups.create(group);
    await store.close();
    // A process of its own (kill -9 must not take the test with it), on the built store.
    const script = `
      const { SqliteStore } = await import(${JSON.stringify(resolve('dist/store/sqlite/sqlite-store.js'))});
      const store = new SqliteStore(${JSON.stringify(file)});
      const limits = { maxCount: 10000, maxBytes: 1 << 24 };
      let answered = 0;
      for (let i = 0; i < 300; i++) {
        const p = i % 2 ? store.shm.incr('g1', 'n', 1, 1 << 20) : store.mailboxes.appendMany('g1', 100, [{ to: 101, mid: 'm' + i, data: Buffer.from(String(i)), binary: false }], limits);
        p.then(() => process.stdout.write(++answered === 300 ? 'all\\n' : ''));
      }
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('all')) child.kill('SIGKILL');
    });
    const [, signal] = (await once(child, 'exit')) as [number | null, string | null];
    expect(signal).toBe('SIGKILL');
    const after = new SqliteStore(file);
    expect((await after.shm.get(GID, 'n')).json?.toString()).toBe('150');
    expect(await after.mailboxes.after(GID, 101, 0, 1000)).toHaveLength(150);
    await after.close();
  });
});
