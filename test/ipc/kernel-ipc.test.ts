import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Process } from '../../src/protocol/process.js';
import { startTestKernel, untilProcess, type TestKernel } from '../support/kernel.js';
import { RawClient } from '../support/ws-client.js';

describe('kernel IPC over the raw protocol', () => {
  let k: TestKernel;
  let gid: string;
  let other: string;
  let parent: Process;
  let stranger: Process;
  const tok = (p: Process): string => k.tokenOf(p);

  beforeAll(async () => {
    k = await startTestKernel();
    gid = (await k.call('POST', '/v1/groups', { group: { name: 'ipc', template: 'idle' } })).body.group.gid;
    other = (await k.call('POST', '/v1/groups', { group: { name: 'other', template: 'idle' } })).body.group.gid;
    const r = await k.call('POST', `/v1/groups/${gid}/processes`, { process: {} });
    parent = await untilProcess(k, gid, r.body.processes[0].pid, (p) => p.compute_id !== null);
    const s = await k.call('POST', `/v1/groups/${other}/processes`, { process: {} });
    stranger = await untilProcess(k, other, s.body.processes[0].pid, (p) => p.compute_id !== null);
  });
  afterAll(() => k.cleanup());

  async function fork(n: number): Promise<Process[]> {
    const res = await k.call('POST', `/v1/groups/${gid}/processes`, { process: { count: n } }, tok(parent));
    return Promise.all(res.body.processes.map((p: Process) => untilProcess(k, gid, p.pid, (x) => x.compute_id !== null)));
  }

  it('a message sent before the receiver connects is delivered once it does, and again until acked', async () => {
    const kids = await fork(2);
    const sender = await RawClient.connect(k.url, tok(parent));
    const sent = await sender.call('send', { to: kids[0]!.pid, data: { hello: 'child' }, mid: 'm1' });
    expect(sent.ok).toBe(true);
    // The same mid again (a resend after a lost reply) is stored once.
    const again = await sender.call('send', { to: kids[0]!.pid, data: { hello: 'child' }, mid: 'm1' });
    expect(again.result.seq).toBe(sent.result.seq);
    const bin = await sender.callBinary('send', { to: kids[0]!.pid }, Buffer.from([0, 1, 2, 255]));
    expect(bin.ok).toBe(true);

    const recv = await RawClient.connect(k.url, tok(kids[0]!));
    const got: Array<[any, Buffer | undefined]> = [];
    const two = new Promise<void>((resolve) => recv.on((e, payload) => e.event === 'message' && got.push([e, payload]) === 2 && resolve()));
    await recv.call('recv.start');
    await two;
    expect(got[0]![0]).toMatchObject({ seq: sent.result.seq, from: parent.pid, data: { hello: 'child' } });
    expect([...got[1]![1]!]).toEqual([0, 1, 2, 255]);
    await recv.close();

    // Not acknowledged: delivered again on the next connection; after the ack, never again.
    const recv2 = await RawClient.connect(k.url, tok(kids[0]!));
    const again2: any[] = [];
    const both = new Promise<void>((resolve) => recv2.on((e) => e.event === 'message' && again2.push(e) === 2 && resolve()));
    await recv2.call('recv.start');
    await both;
    expect(again2.map((e) => e.seq)).toEqual(got.map(([e]) => e.seq));
    expect((await recv2.call('ack', { seq: again2[1].seq })).ok).toBe(true);
    await recv2.close();
    const rest = await k.call('GET', `/v1/groups/${gid}/processes/${kids[0]!.pid}/messages?timeout=0.2`, undefined, tok(kids[0]!));
    expect(rest.status).toBe(408);
    await sender.close();
  });

  it('send.batch: one frame, each message in order with its own result; resends stored once', async () => {
    const [a, b] = await fork(2);
    await k.call('DELETE', `/v1/groups/${gid}/processes/${b!.pid}?signal=KILL`, undefined, tok(parent));
    await untilProcess(k, gid, b!.pid, (p) => p.status === 'KILLED');
    const sender = await RawClient.connect(k.url, tok(parent));
    const batch = [
      { to: a!.pid, data: 1, mid: 'b1' },
      { to: 99999, data: 2 },
      { to: b!.pid, data: 3 },
      { to: a!.pid, data: { n: 4 }, mid: 'b4' },
    ];
    const r = await sender.call('send.batch', { messages: batch });
    expect(r.ok).toBe(true);
    const [r1, r2, r3, r4] = r.result.results;
    expect(r1.seq).toBeLessThan(r4.seq);
    expect(r2.error.code).toBe('not_found');
    expect(r3.error.code).toBe('conflict');
    const again = await sender.call('send.batch', { messages: [batch[0], batch[3]] });
    expect(again.result.results.map((x: any) => x.seq)).toEqual([r1.seq, r4.seq]);
    for (const [bad, why] of [
      [[], /1 to 1000/],
      [Array.from({ length: 1001 }, () => ({ to: a!.pid, data: 0 })), /1 to 1000/],
      [[{ to: a!.pid }], /"data" is required/],
      [[{ to: a!.pid, data: 1, extra: 1 }], /unknown field "extra"/],
      [[{ to: -1, data: 1 }], /messages\[0\]/],
      ['nope', /1 to 1000/],
    ] as const) {
      const res = await sender.call('send.batch', { messages: bad });
      expect(res.error.code).toBe('bad_request');
      expect(res.error.message).toMatch(why);
    }
    const recv = await RawClient.connect(k.url, tok(a!));
    const got: any[] = [];
    const two = new Promise<void>((resolve) => recv.on((e) => e.event === 'message' && got.push(e) === 2 && resolve()));
    await recv.call('recv.start');
    await two;
    expect(got.map((e) => e.data)).toEqual([1, { n: 4 }]);
    await Promise.all([sender.close(), recv.close()]);
  });

  it('a receiver that is caught up gets each message pushed as sent, every character intact; its end refuses messages that came after, though earlier ones to it were taken', async () => {
    const [kid] = await fork(1);
    const sender = await RawClient.connect(k.url, tok(parent));
    const recv = await RawClient.connect(k.url, tok(kid!));
    const got: any[] = [];
    const datas = [{ s: 'héllo ✓ 🚀 "quoted" \\ \u0000' }, [1, 2.5, null, true], 'plain', 0, { deep: { n: [{}] } }];
    const all = new Promise<void>((resolve) => recv.on((e) => e.event === 'message' && got.push(e) === datas.length && resolve()));
    await recv.call('recv.start');
    // One at a time, each after the last was pushed: the receiver is caught up for every one.
    const seqs: number[] = [];
    for (const data of datas) {
      const before = got.length;
      seqs.push((await sender.call('send', { to: kid!.pid, data })).result.seq);
      while (got.length === before) {
        await new Promise<void>((r) => {
          const off = recv.on(() => (off(), r()));
        });
      }
    }
    await all;
    expect(got.map((e) => [e.seq, e.from, e.data])).toEqual(datas.map((d, i) => [seqs[i], parent.pid, d]));
    await k.call('DELETE', `/v1/groups/${gid}/processes/${kid!.pid}?signal=KILL`, undefined, tok(parent));
    await untilProcess(k, gid, kid!.pid, (p) => p.status === 'KILLED');
    const after = await sender.call('send', { to: kid!.pid, data: 'too late' });
    expect(after.error.code).toBe('conflict');
    await Promise.all([sender.close(), recv.close()]);
  });

  it('a full mailbox refuses with mailbox_full, never silently', async () => {
    const small = await startTestKernel({ quotas: { mailbox_messages: 3 } });
    try {
      const g = (await small.call('POST', '/v1/groups', { group: { name: 'full', template: 'idle' } })).body.group.gid;
      const [a, b] = (await small.call('POST', `/v1/groups/${g}/processes`, { process: { count: 2 } })).body.processes as Process[];
      const box = `/v1/groups/${g}/processes/${b!.pid}/messages`;
      const from = small.tokenOf(await untilProcess(small, g, a!.pid, (p) => p.compute_id !== null));
      for (let i = 0; i < 3; i++) expect((await small.call('POST', box, { message: { data: i } }, from)).status).toBe(202);
      const full = await small.call('POST', box, { message: { data: 4 } }, from);
      expect(full.status).toBe(429);
      expect(full.body.error.code).toBe('mailbox_full');
      const first = await small.call('GET', box, undefined, small.tokenOf(await untilProcess(small, g, b!.pid, (p) => p.compute_id !== null)));
      expect(first.body.message).toMatchObject({ from: a!.pid, data: 0 });
    } finally {
      await small.cleanup();
    }
  });

  it('shared memory: concurrent incr and compare-and-set lose no update', async () => {
    const clients = await Promise.all((await fork(2)).map((p) => RawClient.connect(k.url, tok(p))));
    await Promise.all(clients.map(async (c) => {
      for (let i = 0; i < 500; i++) await c.call('shm.incr', { key: 'counter' });
    }));
    expect((await clients[0]!.call('shm.get', { key: 'counter' })).result.value).toBe(1000);
    // CAS loop: read, compute, swap; retry when another writer got there first.
    await Promise.all(clients.map(async (c) => {
      for (let i = 0; i < 200; i++) {
        for (;;) {
          const cur = (await c.call('shm.get', { key: 'cas' })).result.value;
          const r = await c.call('shm.cas', { key: 'cas', expect: cur, value: { n: (cur?.n ?? 0) + 1 } });
          if (r.result.ok) break;
        }
      }
    }));
    expect((await clients[1]!.call('shm.get', { key: 'cas' })).result.value).toEqual({ n: 400 });
    // Lists, blocking pop and watch.
    const watched: any[] = [];
    clients[1]!.on((e) => e.event === 'shm' && watched.push(e));
    await clients[1]!.call('shm.watch', { prefix: 'q' });
    const popping = clients[0]!.call('shm.pop', { key: 'queue', timeout: 10 });
    await clients[1]!.call('shm.push', { key: 'queue', values: ['a', 'b', { c: 1 }] });
    expect((await popping).result.value).toBe('a');
    expect((await clients[0]!.call('shm.range', { key: 'queue', start: 0, stop: -1 })).result.values).toEqual(['b', { c: 1 }]);
    expect((await clients[0]!.call('shm.len', { key: 'queue' })).result.length).toBe(2);
    expect(watched.map((e) => e.op)).toContain('push');
    const typed = await clients[0]!.call('shm.incr', { key: 'queue' });
    expect(typed.error.code).toBe('conflict');
    await Promise.all(clients.map((c) => c.close()));
  });

  it('shared memory: a large value with every kind of character reads back equal over both transports and from a blocking pop', async () => {
    // Answers carry the stored text as it is (bytes in several frames over the WebSocket).
    const value = { text: 'é€😀"\\\n\u0000'.repeat(20_000), list: [1, -2.5, null, true, { z: 'a', a: 'z' }] };
    const [p] = await fork(1);
    const c = await RawClient.connect(k.url, tok(p!));
    expect((await c.call('shm.set', { key: 'big', value })).ok).toBe(true);
    const overWs = await c.call('shm.get', { key: 'big' });
    expect(overWs.result).toEqual({ value, version: 1 });
    const overRest = await k.call('GET', `/v1/groups/${gid}/shm/big`, undefined, tok(p!));
    expect(overRest.status).toBe(200);
    expect(overRest.body).toEqual({ value, version: 1 });
    await c.call('shm.push', { key: 'bigq', values: [value] });
    expect((await c.call('shm.pop', { key: 'bigq' })).result.value).toEqual(value);
    await c.close();
  });

  it('a pipe carries bytes in order, with backpressure, then EOF; EPIPE without readers', async () => {
    const w = await RawClient.connect(k.url, tok(parent));
    const pipe = (await w.call('pipe.create')).result.pipe;
    const [child] = await fork(1);
    const r = await RawClient.connect(k.url, tok(child!));
    expect((await r.call('pipe.list')).result.pipes).toContain(pipe);
    const rEnd = (await r.call('pipe.open', { pipe, mode: 'r' })).result.end;
    const wEnd = (await w.call('pipe.open', { pipe, mode: 'w' })).result.end;
    const data = randomBytes(8 * 1024 * 1024);
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
    // The reader grants only 64 KiB to start: the writer must wait for it (bounded buffer).
    await r.call('pipe.read', { end: rEnd, bytes: 64 * 1024 });
    for (let off = 0; off < data.length; off += 256 * 1024) {
      const res = await w.callBinary('pipe.write', { end: wEnd }, data.subarray(off, off + 256 * 1024));
      expect(res.ok).toBe(true);
    }
    await w.call('pipe.close', { end: wEnd });
    await eof;
    expect(received).toBe(data.length);
    expect(hash.digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    await r.call('pipe.close', { end: rEnd });
    const w2 = (await w.call('pipe.open', { pipe, mode: 'w' })).result.end;
    const broken = await w.callBinary('pipe.write', { end: w2 }, Buffer.from('x'));
    expect(broken.error.code).toBe('epipe');
    await Promise.all([w.close(), r.close()]);
  });

  it('resumable ends: a write sent again is taken once, a gap is refused, a reader attached again gets what it missed', async () => {
    const [child] = await fork(1);
    const w = await RawClient.connect(k.url, tok(parent));
    const pipe = (await w.call('fifo.open', { name: 'resume' })).result.pipe;
    const wEnd = (await w.call('pipe.open', { pipe, mode: 'w', resume: true })).result.end;
    let r = await RawClient.connect(k.url, tok(child!));
    const rEnd = (await r.call('pipe.open', { pipe, mode: 'r', resume: true })).result.end;
    expect((await w.callBinary('pipe.write', { end: wEnd, offset: 0 }, Buffer.from('hello '))).ok).toBe(true);
    expect((await w.callBinary('pipe.write', { end: wEnd, offset: 0 }, Buffer.from('hello '))).ok).toBe(true); // sent again
    expect((await w.callBinary('pipe.write', { end: wEnd, offset: 3 }, Buffer.from('lo world'))).ok).toBe(true); // overlaps
    expect((await w.callBinary('pipe.write', { end: wEnd, offset: 99 }, Buffer.from('x'))).error.code).toBe('bad_request');
    // The reader gets 4 bytes, then its connection drops with 4 more pushed and never seen.
    const first = new Promise<string>((resolve) => r.on((e, p) => e.event === 'pipe.data' && resolve(p!.toString())));
    await r.call('pipe.read', { end: rEnd, bytes: 4 });
    expect(await first).toBe('hell');
    await r.call('pipe.read', { end: rEnd, bytes: 4, received: 4 });
    await r.close();
    r = await RawClient.connect(k.url, tok(child!));
    const stolen = await RawClient.connect(k.url, tok(child!));
    expect((await stolen.call('pipe.read', { end: rEnd, bytes: 4 })).error.code).toBe('conflict'); // attach first
    expect((await r.call('pipe.attach', { end: rEnd, received: 4 })).result).toEqual({ offset: 4 });
    await w.call('pipe.close', { end: wEnd });
    const rest = new Promise<string>((resolve) => {
      let text = '';
      r.on((e, p) => {
        if (e.event === 'pipe.data') text += p!.toString();
        if (e.event === 'pipe.eof') resolve(text);
      });
    });
    await r.call('pipe.read', { end: rEnd, bytes: 1024 });
    expect(await rest).toBe('o world');
    expect((await r.call('pipe.close', { end: rEnd })).ok).toBe(true);
    expect((await r.call('pipe.close', { end: rEnd })).ok).toBe(true); // closing again is no error
    await Promise.all([w.close(), r.close(), stolen.close()]);
  });

  it('killing the only writer gives the reader EOF', async () => {
    const [writer] = await fork(1);
    const wc = await RawClient.connect(k.url, tok(writer!));
    const pipe = (await wc.call('fifo.open', { name: 'logs' })).result.pipe;
    const wEnd = (await wc.call('pipe.open', { pipe, mode: 'w' })).result.end;
    const rc = await RawClient.connect(k.url, tok(parent));
    const rEnd = (await rc.call('pipe.open', { pipe: (await rc.call('fifo.open', { name: 'logs' })).result.pipe, mode: 'r' })).result.end;
    const eof = new Promise<string>((resolve) => {
      let text = '';
      rc.on((e, p) => {
        if (e.event === 'pipe.data') text += p!.toString();
        if (e.event === 'pipe.eof') resolve(text);
      });
    });
    await rc.call('pipe.read', { end: rEnd, bytes: 1 << 20 });
    await wc.callBinary('pipe.write', { end: wEnd }, Buffer.from('last words'));
    await k.call('DELETE', `/v1/groups/${gid}/processes/${writer!.pid}?signal=KILL`, undefined, tok(parent));
    expect(await eof).toBe('last words');
    await Promise.all([wc.close(), rc.close()]);
  });

  it('files: put, get with a range, list, stat, delete; bad paths refused', async () => {
    const t = tok(parent);
    const body = randomBytes(300_000);
    const put = await fetch(`${k.url}/v1/groups/${gid}/files/data/in.bin`, { method: 'PUT', headers: { authorization: `Bearer ${t}` }, body });
    expect(put.status).toBe(201);
    expect(((await put.json()) as { file: unknown }).file).toMatchObject({ path: 'data/in.bin', size: 300_000, etag: createHash('sha256').update(body).digest('hex') });
    const part = await fetch(`${k.url}/v1/groups/${gid}/files/data/in.bin`, { headers: { authorization: `Bearer ${t}`, range: 'bytes=100-199' } });
    expect(part.status).toBe(206);
    expect(Buffer.from(await part.arrayBuffer()).equals(body.subarray(100, 200))).toBe(true);
    const head = await fetch(`${k.url}/v1/groups/${gid}/files/data/in.bin`, { method: 'HEAD', headers: { authorization: `Bearer ${t}` } });
    expect(head.headers.get('content-length')).toBe('300000');
    const list = await k.call('GET', `/v1/groups/${gid}/files?prefix=data/`, undefined, t);
    expect(list.body.files.map((f: any) => f.path)).toEqual(['data/in.bin']);
    for (const bad of ['..%2Fescape', 'a/x%2F%2E%2E%2F%2E%2E%2Fb', '%2Fetc%2Fpasswd', 'a%00b', 'a%0Ab', 'a//b', 'a%5Cb']) {
      const res = await fetch(`${k.url}/v1/groups/${gid}/files/${bad}`, { method: 'PUT', headers: { authorization: `Bearer ${t}` }, body: 'x' });
      expect(res.status, bad).toBe(400);
    }
    // fetch() normalises dot segments away; a raw request sends them as they are.
    const raw = await new Promise<number>((resolve, reject) => {
      const { hostname, port } = new URL(k.url);
      const path = `/v1/groups/${gid}/files/a/../../../../etc/passwd`;
      const req = request({ hostname, port, path, method: 'GET', headers: { authorization: `Bearer ${t}` } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    expect(raw).toBe(400);
    expect((await fetch(`${k.url}/v1/groups/${gid}/files/data/in.bin`, { headers: { authorization: `Bearer ${t}`, range: 'bytes=400000-' } })).status).toBe(416);
    expect((await k.call('DELETE', `/v1/groups/${gid}/files/data/in.bin`, undefined, t)).status).toBe(204);
    expect((await k.call('GET', `/v1/groups/${gid}/files/data/in.bin`, undefined, t)).status).toBe(404);
  });

  it('a process of group A cannot reach group B: shared memory, files, pipes, mailboxes', async () => {
    const t = tok(stranger);
    expect((await k.call('GET', `/v1/groups/${gid}/shm/counter`, undefined, t)).status).toBe(403);
    expect((await k.call('PUT', `/v1/groups/${gid}/shm/counter`, { value: 0 }, t)).status).toBe(403);
    expect((await k.call('GET', `/v1/groups/${gid}/files`, undefined, t)).status).toBe(403);
    expect((await k.call('PUT', `/v1/groups/${gid}/files/x`, 'x', t)).status).toBe(403);
    expect((await k.call('POST', `/v1/groups/${gid}/pipes`, undefined, t)).status).toBe(403);
    expect((await k.call('POST', `/v1/groups/${gid}/processes/${parent.pid}/messages`, { message: { data: 1 } }, t)).status).toBe(403);
    expect((await k.call('GET', `/v1/groups/${gid}/processes/${parent.pid}/messages?timeout=0`, undefined, t)).status).toBe(403);
    const c = await RawClient.connect(k.url, t);
    for (const [op, params] of [['shm.get', { gid, key: 'counter' }], ['send', { gid, to: parent.pid, data: 1 }], ['fifo.open', { gid, name: 'logs' }]] as const) {
      expect((await c.call(op, params)).error.code, op).toBe('forbidden');
    }
    // Its own group's key of the same name is a different key.
    expect((await c.call('shm.get', { key: 'counter' })).result.value).toBeNull();
    await c.close();
    // A child cannot read another process's mailbox in its own group either.
    const [kid] = await fork(1);
    expect((await k.call('GET', `/v1/groups/${gid}/processes/${parent.pid}/messages?timeout=0`, undefined, tok(kid!))).status).toBe(403);
  });
});
