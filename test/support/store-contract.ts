import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RackError } from '../../src/common/errors.js';
import { DEFAULT_QUOTAS, type Group, type ProcessStatus } from '../../src/protocol/process.js';
import { MemoryPipes } from '../../src/store/memory-pipes.js';
import type { NewProcess, PipeStore, Store } from '../../src/store/store.js';

const LIMITS = { maxCount: 100, maxBytes: 1 << 20 };
const ROOMY = { processes: 1000, forks: 100_000 };
const MB = 1 << 20;

function row(gid: string, ppid: number | null, status: ProcessStatus = 'BUILD', name = 'p'): NewProcess {
  return { gid, ppid, name, template: 't', flavor: null, args: { a: 'b' }, status, app_state: 'pending', app_status: '', exit_code: null, signal: null, error: null, compute_id: null };
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<RackError> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(RackError);
  expect((err as RackError).code).toBe(code);
  return err as RackError;
}

/**
 * What every Store engine must do, learnt from the SQLite engine and from the kernel's callers:
 * the same tests run against SQLite (test/store) and against Redis, single node and cluster
 * (test/redis). Each test gets a fresh store and makes its own groups.
 */
/** A shared-memory read with its JSON as text (an engine may answer it as UTF-8 bytes). */
async function shmGet(store: Store, gid: string, key: string): Promise<{ json: string | null; version: number }> {
  const v = await store.shm.get(gid, key);
  return { json: v.json === null ? null : v.json.toString(), version: v.version };
}

export function storeContract(name: string, make: () => Promise<Store>): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    let created = Date.parse('2030-01-01T00:00:00Z');

    beforeEach(async () => {
      store = await make();
    });
    afterEach(async () => {
      vi.useRealTimers();
      await store.close();
    });

    async function group(over: Partial<Group> = {}, userData: string | null = null): Promise<string> {
      const g: Group = {
        gid: randomUUID(),
        name: 'g',
        description: 'd',
        template: 'tpl',
        flavor: null,
        args: { k: 'v' },
        quotas: { ...DEFAULT_QUOTAS },
        created_at: new Date(created++).toISOString(),
        ...over,
      };
      await store.groups.create(g, userData);
      return g.gid;
    }

    async function fork(gid: string, ppid: number | null, n = 1, status: ProcessStatus = 'BUILD'): Promise<number[]> {
      const { processes } = await store.processes.insert(gid, Array.from({ length: n }, () => row(gid, ppid, status)), ROOMY);
      return processes.map((p) => p.pid);
    }

    const end = (gid: string, pid: number, at: string, status: ProcessStatus = 'EXITED') =>
      store.processes.updateLive(gid, pid, { status, exit_code: 0, ended_at: at });

    describe('groups', () => {
      it('stores a group with its quotas and user_data (never shown in the group); unknown is null', async () => {
        const gid = await group({ quotas: { ...DEFAULT_QUOTAS, processes: 7 }, args: { x: 'y' } }, '#!/bin/sh');
        const g = await store.groups.get(gid);
        expect(g).toMatchObject({ gid, name: 'g', description: 'd', template: 'tpl', flavor: null, args: { x: 'y' } });
        expect(g!.quotas.processes).toBe(7);
        expect(g).not.toHaveProperty('userdata');
        expect(await store.groups.userData(gid)).toBe('#!/bin/sh');
        expect(await store.groups.userData(await group())).toBeNull();
        expect(await store.groups.get('nope')).toBeNull();
        expect(await store.groups.userData('nope')).toBeNull();
      });

      it('a gid is created once: creating it again fails and its PIDs go on', async () => {
        const gid = await group();
        await fork(gid, null);
        await expect(store.groups.create({ ...(await store.groups.get(gid))!, name: 'again' })).rejects.toThrow();
        expect((await store.groups.get(gid))!.name).toBe('g');
        expect(await fork(gid, null)).toEqual([101]);
      });

      it('lists groups by creation time', async () => {
        const late = await group({ created_at: '2031-01-01T00:00:00.000Z' });
        const early = await group({ created_at: '2029-01-01T00:00:00.000Z' });
        expect((await store.groups.list()).map((g) => g.gid)).toEqual([early, late]);
      });

      it('delete removes the group and everything stored under it, and nothing of another group', async () => {
        const gid = await group();
        const other = await group();
        for (const g of [gid, other]) {
          const [pid] = await fork(g, null);
          await store.processes.update(g, pid!, { compute_id: `vm-${g}` });
          await store.tokens.put(`tok-${g}`, { gid: g, pid: pid!, role: 'app' });
          await store.kills.put({ gid: g, pid: pid!, signal: 'TERM', deadline: 5 });
          await store.signals.push(g, pid!, 'sig');
          await store.mailboxes.appendMany(g, 0, [{ to: pid!, mid: 'm', data: Buffer.from('x'), binary: false }], LIMITS);
          await store.shm.set(g, 'k', '1', null, MB);
          await store.shm.push(g, 'l', ['1'], false, MB);
          await store.shm.set(g, 'ttl', '1', 60_000, MB);
          await store.schedule.add([{ gid: g, pid: pid!, vcpus: 1, ram_mb: 512, queued: false, priority: 0, deadline: null, userdata: null }]);
          await store.schedule.setPool(g, { instances: 2 });
        }
        await store.groups.delete(gid);
        expect(await store.groups.get(gid)).toBeNull();
        expect((await store.groups.list()).map((g) => g.gid)).toEqual([other]);
        expect(await store.processes.list(gid)).toEqual([]);
        expect((await store.processes.listLive()).map((p) => p.gid)).toEqual([other]);
        expect(await store.processes.byComputeId(`vm-${gid}`)).toBeNull();
        expect(await store.processes.countByStatus()).toEqual({ BUILD: 1 });
        expect(await store.tokens.owner(`tok-${gid}`)).toBeNull();
        expect((await store.kills.list()).map((k) => k.gid)).toEqual([other]);
        expect(await store.signals.take(gid, 100)).toEqual([]);
        expect(await store.mailboxes.after(gid, 100, 0, 10)).toEqual([]);
        expect(await store.shm.usage(gid)).toBe(0);
        expect(await store.shm.keys(gid, '')).toEqual([]);
        expect(await store.shm.expire(Date.now() + 120_000)).toEqual([{ gid: other, key: 'ttl' }]);
        expect((await store.schedule.list()).map((e) => e.gid)).toEqual([other]);
        expect((await store.schedule.pools()).map((p) => p.gid)).toEqual([other]);
        // The other group is whole.
        expect(await store.processes.byComputeId(`vm-${other}`)).toMatchObject({ gid: other, pid: 100 });
        expect(await store.tokens.owner(`tok-${other}`)).toEqual({ gid: other, pid: 100, role: 'app' });
        expect((await store.mailboxes.after(other, 100, 0, 10)).length).toBe(1);
        expect(await store.shm.keys(other, '')).toEqual(['k', 'l']);
      });
    });

    describe('processes', () => {
      it('allocates consecutive PIDs from 100, increasing, never reused after remove', async () => {
        const gid = await group();
        const { processes, replayed } = await store.processes.insert(gid, [row(gid, null), row(gid, null)], ROOMY);
        expect(replayed).toBe(false);
        expect(processes.map((p) => p.pid)).toEqual([100, 101]);
        expect(processes[0]).toMatchObject({ gid, ppid: null, name: 'p', args: { a: 'b' }, status: 'BUILD', ended_at: null });
        expect(Date.parse(processes[0]!.created_at)).not.toBeNaN();
        expect(processes[0]!.updated_at).toBe(processes[0]!.created_at);
        expect(await store.processes.get(gid, 100)).toEqual(processes[0]);
        await store.processes.remove(gid, [101]);
        expect(await fork(gid, 100)).toEqual([102]);
        // Each group counts on its own.
        expect(await fork(await group(), null)).toEqual([100]);
      });

      it('refuses a fork past the live-process quota (QUEUED counts, ended does not): none stored', async () => {
        const gid = await group();
        await fork(gid, null, 2, 'QUEUED');
        const [a] = await fork(gid, null, 1, 'ACTIVE');
        const quotas = { processes: 4, forks: 100 };
        const err = await rejectsWith(store.processes.insert(gid, [row(gid, null), row(gid, null)], quotas), 'quota_exceeded');
        expect(err.message).toMatch(/4 live processes; it has 3/);
        expect((await store.processes.list(gid)).length).toBe(3);
        await end(gid, a!, new Date().toISOString());
        const { processes } = await store.processes.insert(gid, [row(gid, null), row(gid, null)], quotas);
        // The refused fork took no PID.
        expect(processes.map((p) => p.pid)).toEqual([103, 104]);
      });

      it('refuses a fork past the forks-in-all quota, counting removed ones; the refused one takes no PID', async () => {
        const gid = await group();
        await fork(gid, null, 2);
        await store.processes.remove(gid, [100, 101]);
        const quotas = { processes: 100, forks: 3 };
        const err = await rejectsWith(store.processes.insert(gid, [row(gid, null), row(gid, null)], quotas), 'quota_exceeded');
        expect(err.message).toMatch(/fork 3 processes in all; it has forked 2/);
        expect(await store.processes.list(gid)).toEqual([]);
        const { processes } = await store.processes.insert(gid, [row(gid, null)], quotas);
        expect(processes.map((p) => p.pid)).toEqual([102]);
      });

      it('an insert with a request id seen before answers the same processes and creates none', async () => {
        const gid = await group();
        const first = await store.processes.insert(gid, [row(gid, null), row(gid, null)], ROOMY, 'r1');
        await store.processes.update(gid, 100, { status: 'ACTIVE' });
        const again = await store.processes.insert(gid, [row(gid, null), row(gid, null)], ROOMY, 'r1');
        expect(again).toEqual({ processes: first.processes, replayed: true });
        expect((await store.processes.list(gid)).length).toBe(2);
        // Replayed even where the quota would now refuse it.
        expect((await store.processes.insert(gid, [row(gid, null)], { processes: 0, forks: 0 }, 'r1')).replayed).toBe(true);
        expect((await store.processes.insert(gid, [row(gid, null)], ROOMY, 'r2')).processes.map((p) => p.pid)).toEqual([102]);
      });

      it('an insert into an unknown group fails and stores nothing', async () => {
        await expect(store.processes.insert('nope', [row('nope', null)], ROOMY)).rejects.toThrow();
        expect(await store.processes.list('nope')).toEqual([]);
      });

      it('lists by parent (null: roots) and by status, in PID order', async () => {
        const gid = await group();
        await fork(gid, null, 2);
        await fork(gid, 100, 2);
        await fork(gid, 101, 1);
        await store.processes.update(gid, 102, { status: 'ACTIVE' });
        const pids = async (f?: Parameters<Store['processes']['list']>[1]) => (await store.processes.list(gid, f)).map((p) => p.pid);
        expect(await pids()).toEqual([100, 101, 102, 103, 104]);
        expect(await pids({ ppid: null })).toEqual([100, 101]);
        expect(await pids({ ppid: 100 })).toEqual([102, 103]);
        expect(await pids({ ppid: 100, status: ['ACTIVE'] })).toEqual([102]);
        expect(await pids({ status: ['BUILD', 'EXITED'] })).toEqual([100, 101, 103, 104]);
        expect(await pids({ status: [] })).toEqual([100, 101, 102, 103, 104]);
      });

      it('listText is the list as JSON, field for field and in PID order, for every filter', async () => {
        const gid = await group();
        await fork(gid, null, 2);
        await fork(gid, 100, 2);
        await store.processes.update(gid, 102, { status: 'EXITED', exit_code: 3, app_status: 'a "quoted"\\ line\n\u0001 é 😀', error: 'e', compute_id: 'vm-1', ended_at: '2030-01-01T00:00:00.000Z' });
        await store.processes.update(gid, 103, { status: 'KILLED', signal: 'KILL' });
        const filters = [undefined, { ppid: null }, { ppid: 100 }, { ppid: 100, status: ['EXITED' as const] }, { status: ['KILLED' as const, 'BUILD' as const] }, { ppid: 999 }];
        for (const f of filters) {
          const text = (await store.processes.listText(gid, f)).text.toString();
          expect(JSON.parse(text)).toEqual(await store.processes.list(gid, f));
        }
        // What an answer puts on the wire: the same keys in the same order as the objects'.
        const [listed] = await store.processes.list(gid, { ppid: 100, status: ['EXITED'] });
        expect(Object.keys(JSON.parse((await store.processes.listText(gid, { ppid: 100, status: ['EXITED'] })).text.toString())[0])).toEqual(Object.keys(listed!));
        expect((await store.processes.listText('nope')).text.toString()).toBe('[]');
        // Some fields only: those, in the usual order whatever order they are asked in.
        const some = JSON.parse((await store.processes.listText(gid, { ppid: 100 }, ['status', 'pid', 'args', 'app_status'])).text.toString()) as Array<Record<string, unknown>>;
        expect(some).toEqual((await store.processes.list(gid, { ppid: 100 })).map((p) => ({ pid: p.pid, args: p.args, status: p.status, app_status: p.app_status })));
        expect(Object.keys(some[0]!)).toEqual(['pid', 'args', 'status', 'app_status']);
      });

      it('update applies a patch and sets updated_at; any status, even out of a terminal one', async () => {
        vi.useFakeTimers({ toFake: ['Date'] });
        vi.setSystemTime(Date.parse('2030-05-01T00:00:00Z'));
        const gid = await group();
        const [pid] = await fork(gid, null);
        vi.setSystemTime(Date.parse('2030-05-01T00:00:05Z'));
        const p = await store.processes.update(gid, pid!, { status: 'EXITED', exit_code: 3, app_status: 'done', ended_at: '2030-05-01T00:00:04.000Z' });
        expect(p).toMatchObject({ status: 'EXITED', exit_code: 3, app_status: 'done', ended_at: '2030-05-01T00:00:04.000Z', updated_at: '2030-05-01T00:00:05.000Z', created_at: '2030-05-01T00:00:00.000Z' });
        expect(await store.processes.get(gid, pid!)).toEqual(p);
        expect(await store.processes.update(gid, pid!, { status: 'ACTIVE', exit_code: null })).toMatchObject({ status: 'ACTIVE', exit_code: null, app_status: 'done' });
        expect((await store.processes.listLive()).map((x) => x.pid)).toEqual([pid]);
        expect(await store.processes.update(gid, 999, { status: 'ACTIVE' })).toBeNull();
      });

      it('updateLive applies only while live: a terminal state is reached once, whoever races for it', async () => {
        const gid = await group();
        const [q, b, a] = [...(await fork(gid, null, 1, 'QUEUED')), ...(await fork(gid, null, 1, 'BUILD')), ...(await fork(gid, null, 1, 'ACTIVE'))];
        for (const pid of [q!, b!, a!]) expect(await store.processes.updateLive(gid, pid, { app_state: 'running' })).toMatchObject({ app_state: 'running' });
        const raced = await Promise.all([
          store.processes.updateLive(gid, a!, { status: 'EXITED', exit_code: 0 }),
          store.processes.updateLive(gid, a!, { status: 'KILLED', signal: 'KILL' }),
          store.processes.updateLive(gid, a!, { status: 'ERROR', error: 'lost' }),
        ]);
        expect(raced.filter((p) => p !== null).length).toBe(1);
        const won = raced.find((p) => p !== null)!;
        expect(await store.processes.get(gid, a!)).toEqual(won);
        expect(await store.processes.updateLive(gid, a!, { status: 'ACTIVE' })).toBeNull();
        expect(await store.processes.updateLive(gid, a!, { app_status: 'late' })).toBeNull();
        expect((await store.processes.get(gid, a!))!.app_status).toBe('');
        expect(await store.processes.updateLive(gid, 999, { status: 'ACTIVE' })).toBeNull();
      });

      it('listLive has every live process of every group (QUEUED included), by gid then PID', async () => {
        const g1 = await group();
        const g2 = await group();
        await fork(g1, null, 1, 'ACTIVE');
        await fork(g1, null, 1, 'QUEUED');
        await fork(g2, null, 2);
        await end(g2, 100, new Date().toISOString());
        await store.processes.update(g1, 100, { status: 'KILLED' });
        const live = (await store.processes.listLive()).map((p) => `${p.gid}/${p.pid}/${p.status}`);
        expect(live).toEqual([`${g1}/101/QUEUED`, `${g2}/101/BUILD`].sort());
      });

      it('reapAny takes the oldest ended child (ended_at, then PID), each once, live and reaped ones never', async () => {
        const gid = await group();
        const [parent] = await fork(gid, null);
        await fork(gid, parent!, 4);
        const [other] = await fork(gid, null);
        await fork(gid, other!, 1);
        expect(await store.processes.reapAny(gid, parent!)).toBeNull();
        await end(gid, 102, '2030-01-01T00:00:02.000Z');
        await end(gid, 103, '2030-01-01T00:00:01.000Z', 'KILLED');
        await end(gid, 101, '2030-01-01T00:00:01.000Z', 'ERROR');
        await end(gid, 106, '2030-01-01T00:00:00.000Z');
        await store.processes.markReaped(gid, 103);
        expect((await store.processes.reapAny(gid, parent!))?.pid).toBe(101);
        expect((await store.processes.reapAny(gid, parent!))?.pid).toBe(102);
        expect(await store.processes.reapAny(gid, parent!)).toBeNull();
        expect((await store.processes.reapAny(gid, other!))?.pid).toBe(106);
        // 104 is live, and never reaped while it is.
        expect((await store.processes.list(gid, { ppid: parent! })).map((p) => p.pid)).toEqual([101, 102, 103, 104]);
      });

      it('reapAny with a request id seen before answers the child it reaped then; a null answer is not kept', async () => {
        const gid = await group();
        const [parent] = await fork(gid, null);
        await fork(gid, parent!, 2);
        expect(await store.processes.reapAny(gid, parent!, 'w1')).toBeNull();
        await end(gid, 101, '2030-01-01T00:00:01.000Z');
        await end(gid, 102, '2030-01-01T00:00:02.000Z');
        const first = await store.processes.reapAny(gid, parent!, 'w1');
        expect(first?.pid).toBe(101);
        expect(await store.processes.reapAny(gid, parent!, 'w1')).toEqual(first);
        expect((await store.processes.reapAny(gid, parent!, 'w2'))?.pid).toBe(102);
      });

      it('byComputeId finds the process of a VM (any status); an id no process has now is null', async () => {
        const gid = await group();
        const [pid] = await fork(gid, null);
        await store.processes.update(gid, pid!, { compute_id: 'vm-1' });
        expect(await store.processes.byComputeId('vm-1')).toMatchObject({ gid, pid });
        await end(gid, pid!, new Date().toISOString());
        expect(await store.processes.byComputeId('vm-1')).toMatchObject({ gid, pid, status: 'EXITED' });
        await store.processes.update(gid, pid!, { compute_id: 'vm-2' });
        expect(await store.processes.byComputeId('vm-1')).toBeNull();
        expect(await store.processes.byComputeId('vm-2')).toMatchObject({ pid });
        expect(await store.processes.byComputeId('nope')).toBeNull();
      });

      it('countByStatus counts every group', async () => {
        const g1 = await group();
        const g2 = await group();
        await fork(g1, null, 2, 'QUEUED');
        await fork(g2, null, 3);
        await end(g2, 100, new Date().toISOString());
        await store.processes.update(g1, 100, { status: 'ACTIVE' });
        expect(await store.processes.countByStatus()).toEqual({ QUEUED: 1, ACTIVE: 1, BUILD: 2, EXITED: 1 });
      });

      it('remove forgets processes and their tokens', async () => {
        const gid = await group();
        await fork(gid, null, 3);
        await store.tokens.put('t1', { gid, pid: 101, role: 'app' });
        await store.tokens.put('t2', { gid, pid: 101, role: 'agent' });
        await store.tokens.put('t3', { gid, pid: 102, role: 'app' });
        await store.processes.update(gid, 101, { compute_id: 'vm-r' });
        await store.processes.remove(gid, [100, 101]);
        expect((await store.processes.list(gid)).map((p) => p.pid)).toEqual([102]);
        expect((await store.processes.listLive()).map((p) => p.pid)).toEqual([102]);
        expect(await store.processes.countByStatus()).toEqual({ BUILD: 1 });
        expect(await store.processes.byComputeId('vm-r')).toBeNull();
        expect(await store.tokens.owner('t1')).toBeNull();
        expect(await store.tokens.owner('t2')).toBeNull();
        expect(await store.tokens.owner('t3')).toEqual({ gid, pid: 102, role: 'app' });
      });
    });

    it('tokens: an owner per hash; revoke forgets one role of one process', async () => {
      const gid = await group();
      await fork(gid, null, 2);
      await store.tokens.put('a100', { gid, pid: 100, role: 'app' });
      await store.tokens.put('g100', { gid, pid: 100, role: 'agent' });
      await store.tokens.put('a101', { gid, pid: 101, role: 'app' });
      expect(await store.tokens.owner('g100')).toEqual({ gid, pid: 100, role: 'agent' });
      await store.tokens.revoke(gid, 100, 'app');
      expect(await store.tokens.owner('a100')).toBeNull();
      expect(await store.tokens.owner('g100')).toEqual({ gid, pid: 100, role: 'agent' });
      expect(await store.tokens.owner('a101')).toEqual({ gid, pid: 101, role: 'app' });
      expect(await store.tokens.owner('unknown')).toBeNull();
    });

    it('kills: one per process (a put replaces it), listed by deadline across groups', async () => {
      const g1 = await group();
      const g2 = await group();
      await store.kills.put({ gid: g1, pid: 100, signal: 'TERM', deadline: 300 });
      await store.kills.put({ gid: g2, pid: 100, signal: 'TERM', deadline: 200 });
      await store.kills.put({ gid: g1, pid: 101, signal: 'TERM', deadline: 100 });
      await store.kills.put({ gid: g1, pid: 100, signal: 'KILL', deadline: 50 });
      expect(await store.kills.list()).toEqual([
        { gid: g1, pid: 100, signal: 'KILL', deadline: 50 },
        { gid: g1, pid: 101, signal: 'TERM', deadline: 100 },
        { gid: g2, pid: 100, signal: 'TERM', deadline: 200 },
      ]);
      await store.kills.delete(g1, 100);
      await store.kills.delete(g1, 999);
      expect((await store.kills.list()).map((k) => `${k.gid}/${k.pid}`)).toEqual([`${g1}/101`, `${g2}/100`]);
    });

    it('signals: queued per process in order; take empties the queue; clear drops it', async () => {
      const gid = await group();
      for (const e of ['TERM', 'USR1', 'HUP']) await store.signals.push(gid, 100, e);
      await store.signals.push(gid, 101, 'INT');
      expect(await store.signals.take(gid, 100)).toEqual(['TERM', 'USR1', 'HUP']);
      expect(await store.signals.take(gid, 100)).toEqual([]);
      await store.signals.clear(gid, 101);
      expect(await store.signals.take(gid, 101)).toEqual([]);
    });

    describe('mailboxes', () => {
      const msg = (to: number, text: string, mid: string | null = null, binary = false) => ({ to, mid, data: Buffer.from(text), binary });

      it('stores messages in order with increasing seqs; after() reads the unacknowledged ones past a seq', async () => {
        const gid = await group();
        const bytes = Buffer.from([0, 255, 10, 128]);
        const seqs = await store.mailboxes.appendMany(gid, 7, [msg(100, '"a"'), msg(101, '"x"'), { to: 100, mid: null, data: bytes, binary: true }, msg(100, '"c"')], LIMITS);
        expect(seqs.every((s) => typeof s === 'number')).toBe(true);
        const [a, x, b, c] = seqs as number[];
        expect(a! < x! && x! < b! && b! < c!).toBe(true);
        const box = await store.mailboxes.after(gid, 100, 0, 10);
        expect(box).toEqual([
          { seq: a, from: 7, data: Buffer.from('"a"'), binary: false },
          { seq: b, from: 7, data: bytes, binary: true },
          { seq: c, from: 7, data: Buffer.from('"c"'), binary: false },
        ]);
        expect((await store.mailboxes.after(gid, 100, a!, 1)).map((m) => m.seq)).toEqual([b]);
        expect((await store.mailboxes.after(gid, 101, 0, 10)).map((m) => m.data.toString())).toEqual(['"x"']);
        expect(await store.mailboxes.appendMany(gid, 7, [], LIMITS)).toEqual([]);
        // Another group's mailbox of the same PID is its own.
        expect(await store.mailboxes.after(await group(), 100, 0, 10)).toEqual([]);
      });

      it('a resend with the same (from, mid) is answered its first seq, even once acknowledged; null mids never match', async () => {
        const gid = await group();
        const [first] = (await store.mailboxes.appendMany(gid, 7, [msg(100, '1', 'm1')], LIMITS)) as number[];
        const again = await store.mailboxes.appendMany(gid, 7, [msg(100, '1', 'm1'), msg(100, '2', null), msg(100, '3', null)], LIMITS);
        expect(again[0]).toBe(first);
        const other = await store.mailboxes.appendMany(gid, 8, [msg(100, '4', 'm1')], LIMITS);
        expect(other[0]).not.toBe(first);
        expect((await store.mailboxes.after(gid, 100, 0, 10)).map((m) => m.data.toString())).toEqual(['1', '2', '3', '4']);
        await store.mailboxes.ack(gid, 100, first!);
        expect(await store.mailboxes.appendMany(gid, 7, [msg(100, '1', 'm1')], LIMITS)).toEqual([first]);
        expect((await store.mailboxes.after(gid, 100, 0, 10)).map((m) => m.data.toString())).toEqual(['2', '3', '4']);
      });

      it('a full mailbox (messages or bytes) refuses with mailbox_full, that message alone; acks make room', async () => {
        const gid = await group();
        const limits = { maxCount: 2, maxBytes: 10 };
        const r = await store.mailboxes.appendMany(gid, 7, [msg(100, '12345'), msg(100, '1234'), msg(100, '1'), msg(101, '1')], limits);
        expect(typeof r[0]).toBe('number');
        expect(typeof r[1]).toBe('number');
        expect(r[2]).toBeInstanceOf(RackError);
        expect((r[2] as RackError).code).toBe('mailbox_full');
        expect(typeof r[3]).toBe('number');
        await store.mailboxes.ack(gid, 100, r[0] as number);
        const bytes = await store.mailboxes.appendMany(gid, 7, [msg(100, '1234567'), msg(100, '123456')], limits);
        expect((bytes[0] as RackError).code).toBe('mailbox_full');
        expect(typeof bytes[1]).toBe('number');
        expect((await store.mailboxes.after(gid, 100, 0, 10)).map((m) => m.data.toString())).toEqual(['1234', '123456']);
      });

      it('ack acknowledges every message up to a seq, of that mailbox only', async () => {
        const gid = await group();
        const [a, b, x, c] = (await store.mailboxes.appendMany(gid, 7, [msg(100, 'a'), msg(100, 'b'), msg(101, 'x'), msg(100, 'c')], LIMITS)) as number[];
        await store.mailboxes.ack(gid, 100, x!);
        expect((await store.mailboxes.after(gid, 100, 0, 10)).map((m) => m.seq)).toEqual([c]);
        expect((await store.mailboxes.after(gid, 101, 0, 10)).map((m) => m.seq)).toEqual([x]);
        await store.mailboxes.ack(gid, 100, b!); // already acknowledged: nothing changes
        await store.mailboxes.ack(gid, 100, c!);
        expect(await store.mailboxes.after(gid, 100, 0, 10)).toEqual([]);
        expect(a! < c!).toBe(true);
      });

      it('clear drops a mailbox; later messages get higher seqs and the mailbox counts from empty', async () => {
        const gid = await group();
        const limits = { maxCount: 2, maxBytes: 100 };
        const [a] = (await store.mailboxes.appendMany(gid, 7, [msg(100, 'a'), msg(100, 'b')], limits)) as number[];
        await store.mailboxes.clear(gid, 100);
        expect(await store.mailboxes.after(gid, 100, 0, 10)).toEqual([]);
        const r = await store.mailboxes.appendMany(gid, 7, [msg(100, 'c'), msg(100, 'd')], limits);
        expect(r.every((s) => typeof s === 'number' && s > a!)).toBe(true);
      });
    });

    describe('shared memory', () => {
      const bytes = (...s: string[]) => s.reduce((n, x) => n + Buffer.byteLength(x), 0);

      it('set and get: canonical JSON back, versions from 1, a delete starts them again', async () => {
        const gid = await group();
        expect(await shmGet(store, gid, 'k')).toEqual({ json: null, version: 0 });
        expect(await store.shm.set(gid, 'k', '{"a":1}', null, MB)).toBe(1);
        expect(await store.shm.set(gid, 'k', '"é"', null, MB)).toBe(2);
        expect(await shmGet(store, gid, 'k')).toEqual({ json: '"é"', version: 2 });
        expect(await shmGet(store, await group(), 'k')).toEqual({ json: null, version: 0 });
        expect(await store.shm.delete(gid, 'k')).toBe(true);
        expect(await store.shm.delete(gid, 'k')).toBe(false);
        expect(await shmGet(store, gid, 'k')).toEqual({ json: null, version: 0 });
        expect(await store.shm.set(gid, 'k', '1', null, MB)).toBe(1);
      });

      it('counts each key and value in bytes, and refuses a write past the quota, changing nothing', async () => {
        const gid = await group();
        await store.shm.set(gid, 'ké', '"ü"', null, MB);
        expect(await store.shm.usage(gid)).toBe(bytes('ké', '"ü"'));
        await store.shm.set(gid, 'ké', '12', null, MB);
        expect(await store.shm.usage(gid)).toBe(bytes('ké', '12'));
        const max = bytes('ké', '12', 'n', '100');
        await rejectsWith(store.shm.set(gid, 'n', '1000', null, max), 'quota_exceeded');
        expect(await shmGet(store, gid, 'n')).toEqual({ json: null, version: 0 });
        expect(await store.shm.set(gid, 'n', '100', null, max)).toBe(1);
        expect(await store.shm.usage(gid)).toBe(max);
        await rejectsWith(store.shm.incr(gid, 'n', 900, max), 'quota_exceeded');
        await rejectsWith(store.shm.cas(gid, 'n', '100', '1000', max), 'quota_exceeded');
        await rejectsWith(store.shm.push(gid, 'l', ['1'], false, max), 'quota_exceeded');
        expect(await shmGet(store, gid, 'n')).toEqual({ json: '100', version: 1 });
        expect(await store.shm.incr(gid, 'n', -1, max)).toBe(99);
        expect(await store.shm.usage(gid)).toBe(max - 1);
        await store.shm.delete(gid, 'ké');
        expect(await store.shm.usage(gid)).toBe(bytes('n', '99'));
        await store.shm.push(gid, 'l', ['"ab"', '1'], false, MB);
        expect(await store.shm.usage(gid)).toBe(bytes('n', '99', 'l', '"ab"', '1'));
        await store.shm.pop(gid, 'l', true);
        expect(await store.shm.usage(gid)).toBe(bytes('n', '99', 'l', '1'));
        await store.shm.set(gid, 'l', '2', null, MB); // a value replaces the list
        expect(await store.shm.usage(gid)).toBe(bytes('n', '99', 'l', '2'));
        expect(await shmGet(store, gid, 'l')).toEqual({ json: '2', version: 1 });
      });

      it('a TTL: the key is gone once it passes (get, keys, usage), and expire() reports it once', async () => {
        vi.useFakeTimers({ toFake: ['Date'] });
        const t0 = Date.parse('2030-06-01T00:00:00Z');
        vi.setSystemTime(t0);
        const gid = await group();
        const other = await group();
        await store.shm.set(gid, 'a', '1', 1000, MB);
        await store.shm.set(gid, 'b', '2', 5000, MB);
        await store.shm.set(gid, 'c', '3', 1000, MB);
        await store.shm.set(gid, 'c', '3', null, MB); // a set without TTL keeps the key for good
        await store.shm.set(other, 'z', '4', 1000, MB);
        expect(await store.shm.incr(gid, 'a', 1, MB)).toBe(2); // incr keeps the TTL
        expect(await store.shm.expire(t0 + 999)).toEqual([]);
        vi.setSystemTime(t0 + 1000);
        expect(await shmGet(store, gid, 'a')).toEqual({ json: null, version: 0 });
        expect(await store.shm.keys(gid, '')).toEqual(['b', 'c']);
        const gone = await store.shm.expire(t0 + 1000);
        expect(gone).toEqual([{ gid: other, key: 'z' }]);
        expect(await store.shm.usage(gid)).toBe(bytes('b', '2', 'c', '3'));
        expect(await store.shm.usage(other)).toBe(0);
        expect(await store.shm.expire(t0 + 1000)).toEqual([]);
        expect(await store.shm.expire(t0 + 5000)).toEqual([{ gid, key: 'b' }]);
        expect(await store.shm.keys(gid, '')).toEqual(['c']);
      });

      it('incr: from absent, by any step; a value that is not an integer, or an overflow, is a conflict', async () => {
        const gid = await group();
        expect(await store.shm.incr(gid, 'n', 5, MB)).toBe(5);
        expect(await store.shm.incr(gid, 'n', -7, MB)).toBe(-2);
        expect(await shmGet(store, gid, 'n')).toEqual({ json: '-2', version: 2 });
        await store.shm.set(gid, 'f', '1.5', null, MB);
        await rejectsWith(store.shm.incr(gid, 'f', 1, MB), 'conflict');
        await store.shm.set(gid, 's', '"1"', null, MB);
        await rejectsWith(store.shm.incr(gid, 's', 1, MB), 'conflict');
        await store.shm.set(gid, 'big', String(Number.MAX_SAFE_INTEGER - 1), null, MB);
        expect(await store.shm.incr(gid, 'big', 1, MB)).toBe(Number.MAX_SAFE_INTEGER);
        await rejectsWith(store.shm.incr(gid, 'big', 1, MB), 'conflict');
        expect(await shmGet(store, gid, 'big')).toEqual({ json: String(Number.MAX_SAFE_INTEGER), version: 2 });
        await store.shm.push(gid, 'l', ['1'], false, MB);
        await rejectsWith(store.shm.incr(gid, 'l', 1, MB), 'conflict');
      });

      it('incr, cas and push with a request id seen before answer as then and change nothing', async () => {
        const gid = await group();
        expect(await store.shm.incr(gid, 'n', 1, MB, 'i1')).toBe(1);
        expect(await store.shm.incr(gid, 'n', 1, MB, 'i1')).toBe(1);
        expect(await store.shm.incr(gid, 'n', 1, MB, 'i2')).toBe(2);
        expect(await store.shm.cas(gid, 'n', '2', '"x"', MB, 'c1')).toEqual({ ok: true, current: '"x"' });
        expect(await store.shm.cas(gid, 'n', '2', '"x"', MB, 'c1')).toEqual({ ok: true, current: '"x"' });
        expect(await store.shm.cas(gid, 'n', '2', '"y"', MB, 'c2')).toEqual({ ok: false, current: '"x"' });
        await store.shm.set(gid, 'n', '"z"', null, MB);
        expect(await store.shm.cas(gid, 'n', '2', '"y"', MB, 'c2')).toEqual({ ok: false, current: '"x"' });
        expect(await store.shm.push(gid, 'l', ['1', '2'], false, MB, 'p1')).toBe(2);
        expect(await store.shm.push(gid, 'l', ['1', '2'], false, MB, 'p1')).toBe(2);
        expect(await store.shm.len(gid, 'l')).toBe(2);
      });

      it('cas sets only over the expected value (null: absent) and keeps the TTL', async () => {
        vi.useFakeTimers({ toFake: ['Date'] });
        const t0 = Date.parse('2030-06-01T00:00:00Z');
        vi.setSystemTime(t0);
        const gid = await group();
        expect(await store.shm.cas(gid, 'k', null, '1', MB)).toEqual({ ok: true, current: '1' });
        expect(await store.shm.cas(gid, 'k', null, '2', MB)).toEqual({ ok: false, current: '1' });
        expect(await store.shm.cas(gid, 'absent', '1', '2', MB)).toEqual({ ok: false, current: null });
        expect(await shmGet(store, gid, 'absent')).toEqual({ json: null, version: 0 });
        await store.shm.set(gid, 't', '1', 1000, MB);
        expect(await store.shm.cas(gid, 't', '1', '2', MB)).toEqual({ ok: true, current: '2' });
        expect(await shmGet(store, gid, 't')).toEqual({ json: '2', version: 2 });
        expect(await store.shm.expire(t0 + 1000)).toEqual([{ gid, key: 't' }]);
      });

      it('lists: push left or right, pop from either end, range with negative indices, len; the last pop removes the key', async () => {
        const gid = await group();
        expect(await store.shm.push(gid, 'l', ['1', '2'], false, MB)).toBe(2);
        expect(await store.shm.push(gid, 'l', ['0', '-1'], true, MB)).toBe(4);
        expect(await store.shm.range(gid, 'l', 0, -1)).toEqual(['-1', '0', '1', '2']);
        expect(await store.shm.range(gid, 'l', 1, 2)).toEqual(['0', '1']);
        expect(await store.shm.range(gid, 'l', -2, 100)).toEqual(['1', '2']);
        expect(await store.shm.range(gid, 'l', -100, 0)).toEqual(['-1']);
        expect(await store.shm.range(gid, 'l', 3, 1)).toEqual([]);
        expect(await store.shm.range(gid, 'absent', 0, -1)).toEqual([]);
        expect(await store.shm.len(gid, 'l')).toBe(4);
        expect(await store.shm.len(gid, 'absent')).toBe(0);
        expect(await store.shm.pop(gid, 'l', true)).toBe('-1');
        expect(await store.shm.pop(gid, 'l', false)).toBe('2');
        expect(await store.shm.pop(gid, 'l', false)).toBe('1');
        expect(await store.shm.pop(gid, 'l', false)).toBe('0');
        expect(await store.shm.pop(gid, 'l', false)).toBeNull();
        expect(await store.shm.keys(gid, '')).toEqual([]);
        expect(await store.shm.usage(gid)).toBe(0);
        expect(await store.shm.push(gid, 'l', ['5'], false, MB)).toBe(1);
      });

      it('a value is not a list and a list is not a value: conflict', async () => {
        const gid = await group();
        await store.shm.set(gid, 'v', '1', null, MB);
        await store.shm.push(gid, 'l', ['1'], false, MB);
        await rejectsWith(store.shm.get(gid, 'l'), 'conflict');
        await rejectsWith(store.shm.cas(gid, 'l', null, '1', MB), 'conflict');
        await rejectsWith(store.shm.push(gid, 'v', ['1'], false, MB), 'conflict');
        await rejectsWith(store.shm.pop(gid, 'v', true), 'conflict');
        await rejectsWith(store.shm.range(gid, 'v', 0, -1), 'conflict');
        await rejectsWith(store.shm.len(gid, 'v'), 'conflict');
      });

      it('pop with a request id: answered as then, without popping again; a pop that found nothing is not kept', async () => {
        const gid = await group();
        expect(await store.shm.pop(gid, 'l', true, 'p')).toBeNull();
        await store.shm.push(gid, 'l', ['"a"', '"b"'], false, MB);
        expect(await store.shm.pop(gid, 'l', true, 'p')).toBe('"a"');
        expect(await store.shm.pop(gid, 'l', true, 'p')).toBe('"a"');
        expect(await store.shm.range(gid, 'l', 0, -1)).toEqual(['"b"']);
      });

      it('versions count writes to a list; keys lists a group\'s keys by prefix, sorted', async () => {
        const gid = await group();
        await store.shm.push(gid, 'job/2', ['1'], false, MB);
        await store.shm.push(gid, 'job/2', ['1'], false, MB);
        await store.shm.pop(gid, 'job/2', true);
        expect(await store.shm.set(gid, 'job/10', '1', null, MB)).toBe(1);
        await store.shm.set(gid, 'jo', '1', null, MB);
        await store.shm.set(gid, 'other', '1', null, MB);
        await store.shm.set(await group(), 'job/3', '1', null, MB);
        expect(await store.shm.keys(gid, 'job/')).toEqual(['job/10', 'job/2']);
        expect(await store.shm.keys(gid, '')).toEqual(['jo', 'job/10', 'job/2', 'other']);
        expect(await store.shm.keys(gid, 'zz')).toEqual([]);
        // A list set over starts a value at version 1; a list's own writes counted 3.
        expect(await store.shm.set(gid, 'job/2', '1', null, MB)).toBe(1);
      });
    });

    describe('schedule', () => {
      const entry = (gid: string, pid: number, over = {}) => ({ gid, pid, vcpus: 0.5, ram_mb: 512, queued: true, priority: 0, deadline: 99, userdata: 'ud', ...over });

      it('add answers increasing seqs; list has every group\'s entries in seq order; dequeued and delete', async () => {
        const g1 = await group();
        const g2 = await group();
        const [a, b] = await store.schedule.add([entry(g1, 100), entry(g2, 100, { queued: false, deadline: null, userdata: null, priority: 5 })]);
        const [c] = await store.schedule.add([entry(g1, 101)]);
        expect(a!.seq < b!.seq && b!.seq < c!.seq).toBe(true);
        expect(a).toEqual({ ...entry(g1, 100), seq: a!.seq });
        expect(await store.schedule.list()).toEqual([a, b, c]);
        await store.schedule.dequeued(g1, 100);
        await store.schedule.delete(g1, 101);
        expect(await store.schedule.list()).toEqual([{ ...a, queued: false, deadline: null, userdata: null }, b]);
      });

      it('pools: set, replaced, removed; listed by gid', async () => {
        const [g1, g2] = (await Promise.all([group(), group()])).sort();
        await store.schedule.setPool(g2!, { instances: 2, vcpus: 1.5, ram_mb: 1024 });
        await store.schedule.setPool(g1!, { instances: 1 });
        await store.schedule.setPool(g1!, { ram_mb: 64 });
        expect(await store.schedule.pools()).toEqual([
          { gid: g1, capacity: { instances: null, vcpus: null, ram_mb: 64 } },
          { gid: g2, capacity: { instances: 2, vcpus: 1.5, ram_mb: 1024 } },
        ]);
        await store.schedule.setPool(g2!, null);
        expect((await store.schedule.pools()).map((p) => p.gid)).toEqual([g1]);
      });
    });

    // A kernel alone keeps its pipes in memory (MemoryPipes); an engine kernels share has its own.
    describe('pipes', () => {
      const pipes = (): PipeStore => store.pipes ?? (memory ??= new MemoryPipes());
      let memory: MemoryPipes | undefined;
      beforeEach(() => {
        memory = undefined;
      });
      const CAP = 1000;

      it('create within the quota, FIFOs made once; who holds what, inherited at fork and released at the end', async () => {
        const gid = await group();
        await pipes().create(gid, 'a1', 3, 100);
        await pipes().fifo(gid, 'fifo:x', 3);
        await pipes().fifo(gid, 'fifo:x', 3);
        await pipes().create(gid, 'a2', 3, null);
        await rejectsWith(pipes().create(gid, 'a3', 3, 100), 'quota_exceeded');
        await rejectsWith(pipes().fifo(gid, 'fifo:y', 3), 'quota_exceeded');
        await pipes().inherit(gid, 100, 101);
        expect(await pipes().list(gid, 101)).toEqual(['a1']);
        await pipes().release(gid, 100);
        expect(await pipes().open(gid, 'a1', 'k/r/1', 'r')).toBe(true);
        // Its last holder ends while an end is open: the pipe goes with that end.
        await pipes().release(gid, 101);
        expect(await pipes().list(gid, 101)).toEqual([]);
        await pipes().close(gid, 'a1', 'k/r/1');
        expect(await pipes().open(gid, 'a1', 'k/r/2', 'r')).toBe(false);
        await pipes().create(gid, 'a4', 3, 100); // room again
        expect(await pipes().open(gid, 'fifo:x', 'k/r/3', 'w')).toBe(true);
      });

      it('bytes come out in order, split where asked; a full buffer refuses; EOF once writers are gone, EPIPE once readers are', async () => {
        const gid = await group();
        await pipes().create(gid, 'p', 8, null);
        await pipes().open(gid, 'p', 'k/r/w', 'w');
        await pipes().open(gid, 'p', 'k/r/r', 'r');
        const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
        expect(await pipes().write(gid, 'p', all, CAP)).toBe('ok');
        expect(await pipes().write(gid, 'p', Buffer.alloc(CAP - 256, 7), CAP)).toBe('ok');
        expect(await pipes().write(gid, 'p', Buffer.from('x'), CAP)).toBe('full');
        const first = await pipes().take(gid, 'p', 100);
        expect(first).toEqual({ data: all.subarray(0, 100), eof: false });
        expect((await pipes().take(gid, 'p', 200)).data).toEqual(Buffer.concat([all.subarray(100), Buffer.alloc(44, 7)]));
        expect(await pipes().write(gid, 'p', Buffer.from('x'), CAP)).toBe('ok');
        await pipes().close(gid, 'p', 'k/r/w');
        const rest = await pipes().take(gid, 'p', 10_000);
        expect(rest.data.length).toBe(CAP - 300 + 1);
        expect(rest.eof).toBe(true);
        expect(await pipes().take(gid, 'p', 0)).toEqual({ data: Buffer.alloc(0), eof: true });
        await pipes().close(gid, 'p', 'k/r/r');
        expect(await pipes().write(gid, 'p', Buffer.from('y'), CAP)).toBe('epipe');
        // A buffer that is empty takes one write bigger than it.
        await pipes().create(gid, 'big', 8, null);
        expect(await pipes().write(gid, 'big', Buffer.alloc(CAP * 2), CAP)).toBe('ok');
        expect(await pipes().take(gid, 'big', 0)).toEqual({ data: Buffer.alloc(0), eof: false });
      });

      it("sweep closes the ends of the runs it is told are over; deleteGroup leaves nothing", async () => {
        const gid = await group();
        await pipes().create(gid, 'p', 8, null);
        await pipes().open(gid, 'p', 'dead/1/1', 'r');
        await pipes().open(gid, 'p', 'live/1/1', 'w');
        expect(await pipes().sweep(async (run) => run === 'dead/1')).toBe(1);
        expect(await pipes().write(gid, 'p', Buffer.from('x'), CAP)).toBe('epipe');
        expect(await pipes().sweep(async (run) => run === 'dead/1')).toBe(0);
        await pipes().deleteGroup(gid);
        expect(await pipes().write(gid, 'p', Buffer.from('x'), CAP)).toBe('gone');
        expect(await pipes().take(gid, 'p', 10)).toEqual({ data: Buffer.alloc(0), eof: true });
        expect(await pipes().open(gid, 'p', 'live/1/2', 'w')).toBe(false);
      });
    });
  });
}
