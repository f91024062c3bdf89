import fc from 'fast-check';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { operations } from '../../src/api/ops/index.js';
import type { Operation } from '../../src/api/operation.js';
import type { Process } from '../../src/protocol/process.js';
import { startTestKernel, untilProcess, type TestKernel } from '../support/kernel.js';

/**
 * Every operation's input validation, with generated inputs, over both transports: whatever a
 * client sends, the kernel answers with a 2xx or a 4xx and a structured error, never a 5xx or a
 * dropped connection, and it keeps answering. The caller is a process token of a small group (a
 * few processes at most), so that what happens to be valid cannot grow without bound.
 */

/** Values of every shape, the valid ones among them. */
function valueFor(schema: Record<string, unknown> | undefined, name: string, valid: Record<string, unknown>): fc.Arbitrary<unknown> {
  const wild = fc.oneof(
    fc.anything({ maxDepth: 2 }),
    fc.string({ maxLength: 300 }),
    fc.integer(),
    fc.double(),
    fc.constantFrom(null, true, '', -1, 2 ** 53, '../..', '%2e%2e', 'a'.repeat(5000), '\u0000', '\ud800'),
  );
  const typed: fc.Arbitrary<unknown>[] = [];
  const type = schema?.type;
  if (type === 'integer') typed.push(fc.integer({ min: -5, max: 5000 }));
  if (type === 'string') typed.push(fc.string({ maxLength: 64 }));
  if (type === 'boolean') typed.push(fc.boolean());
  if (Array.isArray(schema?.enum)) typed.push(fc.constantFrom(...(schema.enum as unknown[])));
  if (name in valid) typed.push(fc.constant(valid[name]));
  return typed.length ? fc.oneof(wild, ...typed) : wild;
}

/** Fields that make a call wait (long polls): a valid wait is kept short, the rest stays wild. */
const WAITS = ['timeout', 'wait_running'];

function inputFor(op: Operation, valid: Record<string, unknown>): fc.Arbitrary<Record<string, unknown>> {
  const props = op.input.properties as Record<string, Record<string, unknown>>;
  const names = Object.keys(props).filter((n) => n !== '$payload');
  const fields = Object.fromEntries(names.map((n) => [n, valueFor(props[n], n, valid)]));
  const record: fc.Arbitrary<Record<string, unknown>> = fc.record({ ...fields, extra: fc.anything({ maxDepth: 1 }) }, { requiredKeys: [] });
  return record.map((input) => {
    for (const w of WAITS) {
      if (!(w in props)) continue;
      const v = input[w];
      if (v === undefined || (typeof v === 'number' && v > 1)) input[w] = 1;
    }
    return input;
  });
}

/** Every byte of the text's UTF-8 percent-encoded (a lone surrogate becomes U+FFFD, as on the wire). */
const encodePath = (v: string): string => [...Buffer.from(v, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');

const DANGEROUS = new Set(['exit', 'kill', 'group.delete']); // ending the caller ends the run's coverage

describe('every operation, generated inputs, both transports', () => {
  let k: TestKernel;
  let gid: string;
  let token: string;
  let self: Process;
  let valid: Record<string, unknown>;
  let ops: Operation[];

  beforeAll(async () => {
    k = await startTestKernel();
    const g = await k.call('POST', '/v1/groups', { group: { name: 'fuzz', template: 'idle', quotas: { processes: 3, forks: 50, pipes: 8, shm_bytes: 1 << 20, file_bytes: 1 << 20 } } });
    gid = g.body.group.gid;
    const r = await k.call('POST', `/v1/groups/${gid}/processes`, { process: {} });
    self = await untilProcess(k, gid, r.body.processes[0].pid, (p) => p.compute_id !== null);
    token = k.tokenOf(self);
    valid = { gid, pid: self.pid, ppid: self.pid, to: self.pid, key: 'k', path: 'f.txt', name: 'n' };
    ops = operations(k.services).filter((op) => !DANGEROUS.has(op.name));
  }, 60_000);
  afterAll(() => k.cleanup());

  const healthy = async (): Promise<void> => {
    const r = await fetch(`${k.url}/healthz`);
    expect(r.status).toBe(200);
  };

  it('over REST: each answer is 2xx/3xx or 4xx with {"error": {code, message}}, never 5xx', async () => {
    for (const op of ops.filter((o) => o.rest)) {
      const rest = op.rest!;
      await fc.assert(
        fc.asyncProperty(inputFor(op, valid), async (input) => {
          let path = rest.path;
          for (const [, param] of rest.path.matchAll(/\{(\w+)\}/g)) {
            const field = rest.params?.[param!] ?? param!;
            const v = input[field] ?? valid[field] ?? 'x';
            path = path.replace(`{${param}}`, encodePath(typeof v === 'string' ? v : JSON.stringify(v)));
          }
          const qs = new URLSearchParams();
          for (const q of rest.query ?? []) if (input[q] !== undefined) qs.set(q, typeof input[q] === 'string' ? (input[q] as string) : JSON.stringify(input[q]));
          let body: string | undefined;
          if (rest.raw && rest.method === 'PUT') body = JSON.stringify(input).slice(0, 1000);
          else if (rest.body) {
            const fields = Object.fromEntries(Object.entries(input).filter(([n]) => rest.body!.fields.includes(n) || n === 'extra'));
            body = JSON.stringify(rest.body.root ? { [rest.body.root]: fields } : fields);
          }
          const res = await fetch(`${k.url}${path}${qs.size ? `?${qs}` : ''}`, {
            method: rest.method,
            headers: { authorization: `Bearer ${token}`, 'content-type': rest.raw ? 'application/octet-stream' : 'application/json' },
            body,
            signal: AbortSignal.timeout(20_000),
          });
          const text = rest.method === 'HEAD' ? '' : await res.text();
          expect(res.status, `${rest.method} ${path} -> ${res.status} ${text.slice(0, 200)}`).toBeLessThan(500);
          if (res.status >= 400 && rest.method !== 'HEAD') {
            const e = JSON.parse(text).error;
            expect(typeof e.code).toBe('string');
            expect(typeof e.message).toBe('string');
          }
        }),
        { numRuns: 25, seed: 7 },
      );
    }
    await healthy();
  }, 300_000);

  it('over the WebSocket: each frame gets its own answer, ok or a structured error (never internal), on a connection that stays open', async () => {
    const ws = new WebSocket(`${k.url.replace('http', 'ws')}/v1/ws`, { headers: { authorization: `Bearer ${token}` } });
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const waiting = new Map<number, (m: any) => void>();
    ws.on('message', (d, binary) => {
      if (binary) return;
      const m = JSON.parse(d.toString());
      if (typeof m.id === 'number') waiting.get(m.id)?.(m);
    });
    let id = 0;
    const call = (frame: Record<string, unknown>): Promise<any> => {
      const mine = ++id;
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no answer to ${JSON.stringify(frame).slice(0, 200)}`)), 20_000);
        waiting.set(mine, (m) => {
          clearTimeout(t);
          waiting.delete(mine);
          resolve(m);
        });
        ws.send(JSON.stringify({ ...frame, id: mine }));
      });
    };
    expect((await call({ op: 'hello', role: 'app' })).ok).toBe(true);
    for (const op of ops.filter((o) => o.ws !== false && o.name !== 'hello')) {
      await fc.assert(
        fc.asyncProperty(inputFor(op, valid), async (input) => {
          const { id: _id, op: _op, ...rest } = input;
          const m = await call({ op: op.name, ...rest });
          if (!m.ok) {
            expect(m.error.code, `${op.name} ${JSON.stringify(input).slice(0, 200)}: ${m.error.message}`).not.toBe('internal');
            expect(typeof m.error.message).toBe('string');
          }
          expect(ws.readyState).toBe(WebSocket.OPEN);
        }),
        { numRuns: 25, seed: 7 },
      );
    }
    ws.close();
    await healthy();
  }, 300_000);
});
