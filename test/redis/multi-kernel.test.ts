import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { RECHECK_MS } from '../../src/bus/bus.js';
import type { Process } from '../../src/protocol/process.js';
import { untilFile } from '../support/files.js';
import { osProcessesOfVm } from '../support/kernel.js';
import { ADMIN_TOKEN, adminCall, credentialsOfVm, freePort, startKernelOn, stopKernelProcess, type KernelOnStore } from '../support/kernel-process.js';
import { watchGroup } from '../support/watch.js';
import { RawClient } from '../support/ws-client.js';

/** A Redis database of its own, emptied first: these kernels use the default key prefix. */
async function freshStore(db: number): Promise<string> {
  const url = `${inject('redisUrl')}/${db}`;
  const r = new Redis(url);
  await r.flushdb();
  r.disconnect();
  return url;
}

/** A process's app token. */
function tokenOf(k: KernelOnStore, p: Process): string {
  return credentialsOfVm(k, p).token;
}

/** Resolves once `check` answers true, checking after each event of `client` (and at once). */
function whenEvent(client: RawClient, check: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    if (check()) return resolve();
    const off = client.on(() => {
      if (check()) {
        off();
        resolve();
      }
    });
  });
}

describe('several kernels on one Redis store', () => {
  const dirs: string[] = [];
  let a: KernelOnStore;
  let b: KernelOnStore;
  const vms = new Set<string>();

  beforeAll(async () => {
    const store = await freshStore(13);
    dirs.push(mkdtempSync(join(tmpdir(), 'rack-multi-a-')), mkdtempSync(join(tmpdir(), 'rack-multi-b-')));
    [a, b] = await Promise.all([startKernelOn(store, dirs[0]!), startKernelOn(store, dirs[1]!)]);
  });

  afterAll(async () => {
    const call = adminCall(a.url);
    for (const g of (await call('GET', '/v1/groups')).body.groups) {
      for (const p of (await call('GET', `/v1/groups/${g.gid}/processes`)).body.processes as Process[]) if (p.compute_id) vms.add(p.compute_id);
      await call('DELETE', `/v1/groups/${g.gid}`);
    }
    await Promise.all([stopKernelProcess(a.child, 'SIGTERM'), stopKernelProcess(b.child, 'SIGTERM')]);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    const left = [...vms].flatMap((id) => osProcessesOfVm(id));
    for (const pid of left) process.kill(pid, 'SIGKILL');
    expect(left).toEqual([]);
  });

  async function group(template: string): Promise<string> {
    return (await adminCall(a.url)('POST', '/v1/groups', { group: { name: 'multi', template } })).body.group.gid;
  }

  it('fork through A, wait and subscribe through B: B wakes when A records the exit', async () => {
    const [callA, callB] = [adminCall(a.url), adminCall(b.url)];
    const gid = await group('idle');
    const watchB = await watchGroup(b.url, ADMIN_TOKEN, gid);
    expect((await callA('POST', `/v1/groups/${gid}/processes`, { process: {} })).status).toBe(202);
    expect((await callA('POST', `/v1/groups/${gid}/processes`, { process: { ppid: 100, count: 2 } })).status).toBe(202);
    // B's subscription hears A's forks and boots.
    await watchB.until((all) => all.size === 3 && [...all.values()].every((p) => p.status === 'ACTIVE'));
    const waiting = callB('GET', `/v1/groups/${gid}/processes/100/wait?timeout=30`);
    const killedAt = Date.now();
    expect((await callA('DELETE', `/v1/groups/${gid}/processes/102?signal=KILL`)).status).toBe(202);
    const waited = await waiting;
    expect(waited.status).toBe(200);
    expect(waited.body.wait).toMatchObject({ pid: 102, status: 'killed', signal: 'KILL' });
    // Woken by the bus, not by the periodic look at the store.
    expect(Date.now() - killedAt).toBeLessThan(RECHECK_MS);
    await watchB.until((all) => all.get(102)?.status === 'KILLED');
    watchB.close();
  });

  it('a message sent through A reaches its receiver on B in order, once', async () => {
    const gid = await group('idle');
    const callA = adminCall(a.url);
    await callA('POST', `/v1/groups/${gid}/processes`, { process: {} });
    const [child] = (await callA('POST', `/v1/groups/${gid}/processes`, { process: { ppid: 100 } })).body.processes as Process[];
    const root = (await callA('GET', `/v1/groups/${gid}/processes/100`)).body.process as Process;
    const sender = await RawClient.connect(a.url, tokenOf(a, child!));
    const receiver = await RawClient.connect(b.url, tokenOf(a, root));
    const got: Array<{ seq: number; from: number; data: unknown }> = [];
    receiver.on((e) => {
      if (e.event !== 'message') return;
      got.push({ seq: e.seq, from: e.from, data: e.data });
      void receiver.call('ack', { seq: e.seq });
    });
    expect((await receiver.call('recv.start')).ok).toBe(true);
    const N = 200;
    // Half sent one by one, half in batches, without waiting for each answer.
    const sends: Promise<any>[] = [];
    for (let i = 0; i < N / 2; i++) sends.push(sender.call('send', { to: 100, data: { i }, mid: `m${i}` }));
    for (let i = N / 2; i < N; i += 10) sends.push(sender.call('send.batch', { messages: Array.from({ length: 10 }, (_, j) => ({ to: 100, data: { i: i + j } })) }));
    for (const r of await Promise.all(sends)) expect(r.ok).toBe(true);
    await whenEvent(receiver, () => got.length >= N);
    expect(got.map((m) => (m.data as { i: number }).i)).toEqual(Array.from({ length: N }, (_, i) => i));
    expect(new Set(got.map((m) => m.seq)).size).toBe(N);
    expect(got.every((m) => m.from === child!.pid)).toBe(true);
    await Promise.all([sender.close(), receiver.close()]);
  });

  it('shared memory: a watch and a blocking pop on B hear a set and a push through A', async () => {
    const gid = await group('idle');
    const [onA, onB] = await Promise.all([RawClient.connect(a.url, ADMIN_TOKEN, 'admin'), RawClient.connect(b.url, ADMIN_TOKEN, 'admin')]);
    expect((await onB.call('shm.watch', { gid, prefix: 'job/' })).ok).toBe(true);
    const popping = onB.call('shm.pop', { gid, key: 'queue', timeout: 30 });
    expect((await onA.call('shm.set', { gid, key: 'job/1', value: { state: 'done' } })).ok).toBe(true);
    await whenEvent(onB, () => onB.events.some((e) => e.event === 'shm' && e.key === 'job/1' && e.op === 'set'));
    const pushedAt = Date.now();
    expect((await onA.call('shm.push', { gid, key: 'queue', values: ['work'] })).ok).toBe(true);
    const popped = await popping;
    expect(popped).toMatchObject({ ok: true, result: { value: 'work' } });
    expect(Date.now() - pushedAt).toBeLessThan(RECHECK_MS);
    await Promise.all([onA.close(), onB.close()]);
  });

  it('a pipe whose writer is on A and reader on B: bytes in order, held back by the buffer until B reads, EOF, then EPIPE', async () => {
    const gid = await group('idle');
    const callA = adminCall(a.url);
    await callA('POST', `/v1/groups/${gid}/processes`, { process: {} });
    const [child] = (await callA('POST', `/v1/groups/${gid}/processes`, { process: { ppid: 100 } })).body.processes as Process[];
    const root = (await callA('GET', `/v1/groups/${gid}/processes/100`)).body.process as Process;
    const w = await RawClient.connect(a.url, tokenOf(a, root));
    const pipe = (await w.call('pipe.create')).result.pipe;
    const r = await RawClient.connect(b.url, tokenOf(a, child!));
    expect((await r.call('pipe.list')).result.pipes).toEqual([]); // forked before the pipe was made
    const rEnd = (await r.call('pipe.open', { pipe, mode: 'r' })).result.end;
    const wEnd = (await w.call('pipe.open', { pipe, mode: 'w' })).result.end;
    const CHUNK = 256 * 1024;
    const data = randomBytes(8 * 1024 * 1024);
    let acked = 0;
    const write = (i: number): Promise<void> =>
      w.callBinary('pipe.write', { end: wEnd }, data.subarray(i * CHUNK, (i + 1) * CHUNK)).then((res) => {
        expect(res.ok).toBe(true);
        acked++;
      });
    // Nobody reads yet: the 1 MiB buffer takes four writes, and the fifth waits (a call sent
    // after it on the same connection is answered before it).
    const first = [0, 1, 2, 3, 4].map(write);
    await Promise.all(first.slice(0, 4));
    await w.call('pipe.list');
    expect(acked).toBe(4);
    const hash = createHash('sha256');
    let received = 0;
    const eof = new Promise<void>((resolve) =>
      r.on((e, payload) => {
        if (e.event === 'pipe.data' && payload) {
          hash.update(payload);
          received += payload.length;
          void r.call('pipe.read', { end: rEnd, bytes: payload.length });
        }
        if (e.event === 'pipe.eof') resolve();
      }),
    );
    await r.call('pipe.read', { end: rEnd, bytes: 64 * 1024 });
    await first[4];
    for (let i = 5; i < data.length / CHUNK; i++) await write(i);
    await w.call('pipe.close', { end: wEnd });
    await eof;
    expect(received).toBe(data.length);
    expect(hash.digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    // The reader on B closes: a writer on A gets a broken pipe.
    await r.call('pipe.close', { end: rEnd });
    const w2 = (await w.call('pipe.open', { pipe, mode: 'w' })).result.end;
    expect((await w.callBinary('pipe.write', { end: w2 }, Buffer.from('x'))).error.code).toBe('epipe');
    await Promise.all([w.close(), r.close()]);
  });

  it("an agent's usage sample reported to A shows on B", async () => {
    const gid = await group('idle');
    const [p] = (await adminCall(a.url)('POST', `/v1/groups/${gid}/processes`, { process: {} })).body.processes as Process[];
    const agent = await RawClient.connect(a.url, credentialsOfVm(a, p!).agent_token, 'agent');
    const sample = { t: 1, cpu_pct: 7, cpus: 1, load: [0, 0, 0], mem_total: 1, mem_available: 1, disk_total: 1, disk_used: 1, net_rx: 0, net_tx: 0, app_procs: 1, app_cpu_pct: 3, app_rss: 1 };
    const watcher = await RawClient.connect(b.url, tokenOf(a, p!));
    let pushed: any;
    expect((await watcher.call('usage.subscribe')).ok).toBe(true);
    watcher.on((e) => e.event === 'usage' && (pushed = e));
    const heard = whenEvent(watcher, () => pushed !== undefined);
    expect((await agent.call('usage.report', sample)).ok).toBe(true);
    await heard;
    expect(pushed).toMatchObject({ pid: p!.pid, usage: { t: 1, cpu_pct: 7, app_cpu_pct: 3 } });
    expect((await watcher.call('usage', { pid: p!.pid })).result.latest).toMatchObject({ t: 1, cpu_pct: 7 });
    await Promise.all([agent.close(), watcher.close()]);
  });

  it('a token revoked on A closes its WebSocket on B', async () => {
    const gid = await group('idle');
    const callA = adminCall(a.url);
    const [p] = (await callA('POST', `/v1/groups/${gid}/processes`, { process: {} })).body.processes as Process[];
    const token = tokenOf(a, p!);
    const onB = await RawClient.connect(b.url, token);
    const closed = new Promise<void>((resolve) => onB.ws.once('close', () => resolve()));
    // The process ends on A: its app token is revoked there.
    expect((await callA('DELETE', `/v1/groups/${gid}/processes/100?signal=KILL`)).status).toBe(202);
    await closed;
    const res = await fetch(`${b.url}/v1/self`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(401);
  });

  it('a group deleted through A is gone on B', async () => {
    const gid = await group('idle');
    const callB = adminCall(b.url);
    expect((await callB('GET', `/v1/groups/${gid}/processes`)).status).toBe(200);
    expect((await adminCall(a.url)('DELETE', `/v1/groups/${gid}`)).status).toBe(204);
    expect((await callB('GET', `/v1/groups/${gid}/processes`)).status).toBe(404);
  });

  it('a signal sent through B reaches the agent connected to A, once', async () => {
    const out = mkdtempSync(join(tmpdir(), 'rack-multi-out-'));
    dirs.push(out);
    const gid = await group('agent-app');
    const [callA, callB] = [adminCall(a.url), adminCall(b.url)];
    // Booted by A: its agent connects to A (the rack_url A put in its metadata).
    await callA('POST', `/v1/groups/${gid}/processes`, { process: { args: { out } } });
    expect((await callB('GET', `/v1/groups/${gid}/processes/100/running?timeout=30`)).status).toBe(200);
    const file = join(out, '100.signals');
    // Written once the app's traps are set.
    await untilFile(join(out, '100.env'));
    expect((await callB('POST', `/v1/groups/${gid}/processes/100/signal`, { signal: { name: 'USR1' } })).status).toBe(202);
    await untilFile(file, (t) => t.includes('USR1'));
    // TERM through B too (a kill): the app traps it and exits, its agent reports that to A.
    expect((await callB('DELETE', `/v1/groups/${gid}/processes/100?signal=TERM&grace=20`)).status).toBe(202);
    const watch = await watchGroup(b.url, ADMIN_TOKEN, gid);
    watch.latest.set(100, (await callB('GET', `/v1/groups/${gid}/processes/100`)).body.process);
    await watch.until((all) => ['EXITED', 'KILLED'].includes(all.get(100)!.status));
    watch.close();
    expect(readFileSync(file, 'utf8')).toBe('USR1\nTERM\n');
  });
});

describe('a kernel killed -9 beside another on the same store', () => {
  it('the other finishes its pending kill, and its VMs stay controllable', async () => {
    const store = await freshStore(12);
    const [dirA, dirB] = [mkdtempSync(join(tmpdir(), 'rack-takeover-a-')), mkdtempSync(join(tmpdir(), 'rack-takeover-b-'))];
    // A starts first: it does the kernel-wide duties (the leader lease) until it dies.
    const a = await startKernelOn(store, dirA);
    const b = await startKernelOn(store, dirB);
    const vms: string[] = [];
    try {
      const [callA, callB] = [adminCall(a.url), adminCall(b.url)];
      const gid = (await callA('POST', '/v1/groups', { group: { name: 'takeover', template: 'idle' } })).body.group.gid;
      const other = (await callA('POST', '/v1/groups', { group: { name: 'bystander', template: 'idle' } })).body.group.gid;
      const watch = await watchGroup(b.url, ADMIN_TOKEN, gid);
      await callA('POST', `/v1/groups/${gid}/processes`, { process: {} });
      await callA('POST', `/v1/groups/${gid}/processes`, { process: { ppid: 100, count: 2 } });
      const [bystander] = (await callA('POST', `/v1/groups/${other}/processes`, { process: {} })).body.processes as Process[];
      await watch.until((all) => all.size === 3 && [...all.values()].every((p) => p.status === 'ACTIVE'));
      for (const p of (await callB('GET', `/v1/groups/${gid}/processes`)).body.processes as Process[]) vms.push(p.compute_id!);
      vms.push(bystander!.compute_id!);

      // A FIFO read on A and written on B; the writer waits for room when A dies.
      const reader = await RawClient.connect(a.url, tokenOf(a, bystander!));
      const writer = await RawClient.connect(b.url, tokenOf(a, bystander!));
      const fifo = (await writer.call('fifo.open', { name: 'across' })).result.pipe;
      expect((await reader.call('pipe.open', { pipe: fifo, mode: 'r' })).ok).toBe(true);
      const wEnd = (await writer.call('pipe.open', { pipe: fifo, mode: 'w' })).result.end;
      for (let i = 0; i < 4; i++) expect((await writer.callBinary('pipe.write', { end: wEnd }, Buffer.alloc(256 * 1024))).ok).toBe(true);
      const blocked = writer.callBinary('pipe.write', { end: wEnd }, Buffer.alloc(1));

      // The idle image has no agent to hear the TERM: the whole grace runs, and A dies in it.
      expect((await callA('DELETE', `/v1/groups/${gid}/processes/100?signal=TERM&grace=2`)).status).toBe(202);
      await stopKernelProcess(a.child, 'SIGKILL');
      for (const vm of vms) expect(osProcessesOfVm(vm).length).toBeGreaterThan(0);
      // The reader's end died with A: once A's lease lapses, B closes it, and the write is refused.
      expect((await blocked).error.code).toBe('epipe');
      await writer.close();
      await reader.close();

      // B takes over A's duties once A's leases lapse, and finishes the kill: the VMs A booted go.
      await watch.until((all) => [...all.values()].every((p) => p.status === 'KILLED'), 45_000);
      watch.close();
      const after = (await callB('GET', `/v1/groups/${gid}/processes`)).body.processes as Process[];
      expect(after.map((p) => [p.pid, p.status, p.signal])).toEqual([[100, 'KILLED', 'TERM'], [101, 'KILLED', 'TERM'], [102, 'KILLED', 'TERM']]);
      for (const vm of vms.slice(0, 3)) expect(osProcessesOfVm(vm)).toEqual([]);

      // The bystander's VM, booted by A, is still running and still B's to control.
      expect((await callB('GET', `/v1/groups/${other}/processes/100`)).body.process.status).toBe('ACTIVE');
      const watchOther = await watchGroup(b.url, ADMIN_TOKEN, other);
      expect((await callB('DELETE', `/v1/groups/${other}/processes/100?signal=KILL`)).status).toBe(202);
      await watchOther.until((all) => all.get(100)?.status === 'KILLED');
      watchOther.close();
      expect(osProcessesOfVm(vms[3]!)).toEqual([]);
    } finally {
      await stopKernelProcess(a.child);
      await stopKernelProcess(b.child, 'SIGTERM');
      for (const vm of vms) for (const pid of osProcessesOfVm(vm)) process.kill(pid, 'SIGKILL');
      rmSync(dirA, { recursive: true, force: true });
      rmSync(dirB, { recursive: true, force: true });
    }
  });
});

describe('resource pools across kernels', () => {
  it("a fork through B counts what A holds; a fork A queued boots through B once A is killed -9 and room frees up", async () => {
    const store = await freshStore(8);
    const [dirA, dirB] = [mkdtempSync(join(tmpdir(), 'rack-pool-a-')), mkdtempSync(join(tmpdir(), 'rack-pool-b-'))];
    const a = await startKernelOn(store, dirA);
    const b = await startKernelOn(store, dirB);
    const vms = new Set<string>();
    try {
      const [callA, callB] = [adminCall(a.url), adminCall(b.url)];
      const gid = (await callA('POST', '/v1/groups', { group: { name: 'pool', template: 'idle' } })).body.group.gid;
      expect((await callA('PUT', `/v1/groups/${gid}/pool`, { pool: { capacity: { instances: 1 } } })).status).toBe(200);
      const watch = await watchGroup(b.url, ADMIN_TOKEN, gid);
      const [first, queued] = (await callA('POST', `/v1/groups/${gid}/processes`, { process: { count: 2 } })).body.processes as Process[];
      expect(first!.status).not.toBe('QUEUED');
      expect(queued!.status).toBe('QUEUED');
      // B learns A's holding and queue from the store (told by the bus, or at its next look):
      // nothing to wait on through B's API, so it is asked again, for at most two such looks.
      const poolOnB = async (): Promise<any> => (await callB('GET', `/v1/groups/${gid}/pool`)).body.pool;
      let pool = await poolOnB();
      for (const until = Date.now() + 2 * RECHECK_MS; pool.queue.length === 0 && Date.now() < until; ) pool = await poolOnB();
      expect(pool.group.used.instances).toBe(1);
      expect(pool.queue.map((q: { pid: number }) => q.pid)).toEqual([queued!.pid]);
      // A fork through B queues behind it: the group's one instance is A's.
      const [third] = (await callB('POST', `/v1/groups/${gid}/processes`, { process: {} })).body.processes as Process[];
      expect(third!.status).toBe('QUEUED');
      await watch.until((all) => all.get(first!.pid)?.status === 'ACTIVE');
      vms.add((await callB('GET', `/v1/groups/${gid}/processes/${first!.pid}`)).body.process.compute_id);

      // A dies with a fork in its queue; room frees up through B: B boots A's queued fork, in order.
      await stopKernelProcess(a.child, 'SIGKILL');
      expect((await callB('DELETE', `/v1/groups/${gid}/processes/${first!.pid}?signal=KILL`)).status).toBe(202);
      await watch.until((all) => all.get(first!.pid)?.status === 'KILLED' && all.get(queued!.pid)?.status === 'ACTIVE', 45_000);
      expect(watch.latest.get(third!.pid)?.status ?? 'QUEUED').toBe('QUEUED');
      for (const p of (await callB('GET', `/v1/groups/${gid}/processes`)).body.processes as Process[]) if (p.compute_id) vms.add(p.compute_id);
      watch.close();
      await callB('DELETE', `/v1/groups/${gid}`);
    } finally {
      await stopKernelProcess(a.child);
      await stopKernelProcess(b.child, 'SIGTERM');
      for (const vm of vms) for (const pid of osProcessesOfVm(vm)) process.kill(pid, 'SIGKILL');
      rmSync(dirA, { recursive: true, force: true });
      rmSync(dirB, { recursive: true, force: true });
    }
  });
});

describe('the VMs of a kernel killed -9', () => {
  it('one that ends after its kernel died is recorded by the leader, and its parent can wait for it', async () => {
    const store = await freshStore(10);
    const [dirA, dirB] = [mkdtempSync(join(tmpdir(), 'rack-adopt-a-')), mkdtempSync(join(tmpdir(), 'rack-adopt-b-'))];
    // A starts first and leads; B boots the VMs and dies.
    const a = await startKernelOn(store, dirA);
    const b = await startKernelOn(store, dirB);
    const vms: string[] = [];
    try {
      const [callA, callB] = [adminCall(a.url), adminCall(b.url)];
      const gid = (await callA('POST', '/v1/groups', { group: { name: 'adopt', template: 'idle' } })).body.group.gid;
      const watch = await watchGroup(a.url, ADMIN_TOKEN, gid);
      await callB('POST', `/v1/groups/${gid}/processes`, { process: {} });
      await callB('POST', `/v1/groups/${gid}/processes`, { process: { ppid: 100, count: 2 } });
      await watch.until((all) => all.size === 3 && [...all.values()].every((p) => p.status === 'ACTIVE'));
      for (const p of (await callA('GET', `/v1/groups/${gid}/processes`)).body.processes as Process[]) vms.push(p.compute_id!);

      await stopKernelProcess(b.child, 'SIGKILL');
      // A VM of the dead kernel crashes: nobody but the leader can still hear of it.
      for (const pid of osProcessesOfVm(vms[1]!)) process.kill(pid, 'SIGKILL');
      await watch.until((all) => all.get(101)?.status === 'ERROR', 20_000);
      expect(watch.latest.get(101)!.error).toMatch(/VM stopped/);
      const waited = await callA('GET', `/v1/groups/${gid}/processes/100/wait?pid=101&timeout=5`);
      expect([waited.status, waited.body.wait.pid, waited.body.wait.status]).toEqual([200, 101, "error"]);
      // The others run on, still A's to control.
      expect(watch.latest.get(102)!.status).toBe('ACTIVE');
      expect((await callA('DELETE', `/v1/groups/${gid}/processes/102?signal=KILL`)).status).toBe(202);
      await watch.until((all) => all.get(102)?.status === 'KILLED');
      expect(osProcessesOfVm(vms[2]!)).toEqual([]);
      watch.close();
    } finally {
      await stopKernelProcess(b.child);
      await stopKernelProcess(a.child, 'SIGTERM');
      for (const vm of vms) for (const pid of osProcessesOfVm(vm)) process.kill(pid, 'SIGKILL');
      rmSync(dirA, { recursive: true, force: true });
      rmSync(dirB, { recursive: true, force: true });
    }
  });
});

describe('a kernel that dies in the middle of a fork', () => {
  it('the processes it had not booted yet end in ERROR once its lease lapses; those it booted run on', async () => {
    const store = await freshStore(9);
    const [dirA, dirB] = [mkdtempSync(join(tmpdir(), 'rack-midfork-a-')), mkdtempSync(join(tmpdir(), 'rack-midfork-b-'))];
    const a = await startKernelOn(store, dirA);
    const b = await startKernelOn(store, dirB);
    const abort = new AbortController();
    try {
      const callA = adminCall(a.url);
      const gid = (await callA('POST', '/v1/groups', { group: { name: 'midfork', template: 'idle' } })).body.group.gid;
      const watch = await watchGroup(a.url, ADMIN_TOKEN, gid);
      // B records the hundred processes, says so, then boots them sixteen at a time: it stops
      // (as a machine that hangs) as soon as A hears of the first, and is killed later.
      void fetch(`${b.url}/v1/groups/${gid}/processes`, { method: 'POST', signal: abort.signal, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ process: { count: 100 } }) }).catch(() => {});
      await watch.until((all) => all.size > 0);
      b.child.kill('SIGSTOP');
      await watch.until((all) => all.size === 100 && [...all.values()].every((p) => p.status !== 'BUILD'), 30_000);
      const ended = [...watch.latest.values()].filter((p) => p.status === 'ERROR');
      expect(ended.length).toBeGreaterThan(0);
      for (const p of ended) expect(p.error).toBe('its kernel died before the VM was booted');
      for (const p of watch.latest.values()) expect(['ACTIVE', 'ERROR']).toContain(p.status);
      watch.close();
    } finally {
      abort.abort();
      b.child.kill('SIGKILL');
      await stopKernelProcess(b.child);
      await stopKernelProcess(a.child, 'SIGTERM');
      // Every VM B started, also one whose id it had not recorded yet.
      for (const vm of readdirSync(join(dirB, 'vms')).filter((d) => d.startsWith('sim-'))) for (const pid of osProcessesOfVm(vm)) process.kill(pid, 'SIGKILL');
      rmSync(dirA, { recursive: true, force: true });
      rmSync(dirB, { recursive: true, force: true });
    }
  });
});

describe('agents given every kernel (--public-url A,B)', () => {
  it('when their kernel is killed -9, the agents move to the other, and every VM takes a signal through it', async () => {
    const store = await freshStore(11);
    const [dirA, dirB, out] = ['a', 'b', 'out'].map((x) => mkdtempSync(join(tmpdir(), `rack-failover-${x}-`)));
    const [pA, pB] = [await freePort(), await freePort()];
    const urls = `http://127.0.0.1:${pA},http://127.0.0.1:${pB}`;
    const a = await startKernelOn(store, dirA!, ['--listen', `127.0.0.1:${pA}`, '--public-url', urls]);
    const b = await startKernelOn(store, dirB!, ['--listen', `127.0.0.1:${pB}`, '--public-url', urls]);
    const vms: string[] = [];
    try {
      const [callA, callB] = [adminCall(a.url), adminCall(b.url)];
      const gid = (await callA('POST', '/v1/groups', { group: { name: 'failover', template: 'agent-app' } })).body.group.gid;
      // Each agent starts on a kernel of the list picked at random: with six, A holds some.
      const forked = (await callA('POST', `/v1/groups/${gid}/processes`, { process: { count: 6, args: { out } } })).body.processes as Process[];
      for (const p of forked) await untilFile(join(out!, `${p.pid}.env`));
      for (const p of (await callA('GET', `/v1/groups/${gid}/processes`)).body.processes as Process[]) vms.push(p.compute_id!);
      expect(readFileSync(join(out!, `${forked[0]!.pid}.env`), 'utf8')).toContain(`RACK_URL=${urls}`);

      await stopKernelProcess(a.child, 'SIGKILL');
      // Through B, at once: a signal for an agent not (yet) connected to B is queued and
      // delivered when it connects; every one of them must arrive.
      for (const p of forked) expect((await callB('POST', `/v1/groups/${gid}/processes/${p.pid}/signal`, { signal: { name: 'USR1' } })).status).toBe(202);
      for (const p of forked) await untilFile(join(out!, `${p.pid}.signals`), (t) => t === 'USR1\n');
      const watch = await watchGroup(b.url, ADMIN_TOKEN, gid);
      expect((await callB('DELETE', `/v1/groups/${gid}/processes/${forked[0]!.pid}?signal=TERM&grace=20`)).status).toBe(202);
      watch.latest.set(forked[0]!.pid, (await callB('GET', `/v1/groups/${gid}/processes/${forked[0]!.pid}`)).body.process);
      await watch.until((all) => all.get(forked[0]!.pid)!.status === 'EXITED');
      watch.close();
      expect(readFileSync(join(out!, `${forked[0]!.pid}.signals`), 'utf8')).toBe('USR1\nTERM\n');
    } finally {
      await stopKernelProcess(a.child);
      await stopKernelProcess(b.child, 'SIGTERM');
      for (const vm of vms) for (const pid of osProcessesOfVm(vm)) process.kill(pid, 'SIGKILL');
      for (const d of [dirA, dirB, out]) rmSync(d!, { recursive: true, force: true });
    }
  });
});
