import { pipeline } from 'node:stream/promises';
import { RackError } from '../common/errors.js';
import type { Kernel } from '../kernel/kernel.js';
import type { Ipc } from '../ipc/index.js';
import { checkPath } from '../protocol/file-path.js';
import { MAX_MESSAGE } from '../ipc/messaging.js';
import { MAX_WRITE } from '../ipc/pipes.js';
import { parseId, parseSeconds, readJson } from './http.js';
import { gidOf, pidOf, queryOf } from './process-routes.js';
import type { Context, Route } from './router.js';

async function rawBody(ctx: Context, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of ctx.req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > limit) throw new RackError('payload_too_large', `body is larger than ${limit} bytes`);
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

function object(body: unknown, root: string, allowed: readonly string[]): Record<string, unknown> {
  const outer = body as Record<string, unknown>;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new RackError('bad_request', 'body must be a JSON object');
  const inner = root === '' ? outer : outer[root];
  if (root !== '') {
    for (const k of Object.keys(outer)) if (k !== root) throw new RackError('bad_request', `body has unknown field "${k.slice(0, 40)}"`);
  }
  if (typeof inner !== 'object' || inner === null || Array.isArray(inner)) throw new RackError('bad_request', `body.${root} must be an object`);
  for (const k of Object.keys(inner)) if (!allowed.includes(k)) throw new RackError('bad_request', `${root || 'body'} has unknown field "${k.slice(0, 40)}"`);
  return inner as Record<string, unknown>;
}

function isOctets(ctx: Context): boolean {
  return (ctx.req.headers['content-type'] ?? '').startsWith('application/octet-stream');
}

export function ipcRoutes(kernel: Kernel, ipc: Ipc): Route[] {
  const MSG = '/v1/groups/{gid}/processes/{pid}/messages';
  const SHM = '/v1/groups/{gid}/shm/{key}';
  return [
    // ---- messages ----
    {
      method: 'POST',
      path: MSG,
      handler: async (ctx) => {
        queryOf(ctx, []);
        const gid = gidOf(ctx);
        const pid = pidOf(ctx);
        const mid = (ctx.req.headers['idempotency-key'] as string | undefined) ?? null;
        let data: Buffer;
        let binary = false;
        if (isOctets(ctx)) {
          data = await rawBody(ctx, MAX_MESSAGE);
          binary = true;
        } else {
          const m = object(await readJson(ctx.req, MAX_MESSAGE + 1024), 'message', ['data']);
          if (!('data' in m)) throw new RackError('bad_request', 'message.data is required');
          data = Buffer.from(JSON.stringify(m.data));
        }
        return { status: 202, body: { seq: await ipc.messaging.send(ctx.who, gid, pid, data, binary, mid) } };
      },
    },
    {
      method: 'GET',
      path: MSG,
      handler: async (ctx) => {
        const q = queryOf(ctx, ['timeout']);
        const gid = gidOf(ctx);
        const pid = pidOf(ctx);
        const m = await ipc.messaging.next(ctx.who, gid, pid, parseSeconds(q.get('timeout'), 'timeout', 30, 300));
        if (m.binary) {
          ctx.res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': m.data.length, 'rack-seq': String(m.seq), 'rack-from': String(m.from) });
          ctx.res.end(m.data);
          return;
        }
        return { status: 200, body: { message: { seq: m.seq, from: m.from, data: JSON.parse(m.data.toString('utf8')) } } };
      },
    },
    {
      method: 'DELETE',
      path: `${MSG}/{seq}`,
      handler: async (ctx) => {
        await ipc.messaging.ack(ctx.who, gidOf(ctx), pidOf(ctx), parseId(ctx.params.seq, 'seq'));
        return { status: 204 };
      },
    },
    // ---- shared memory ----
    {
      method: 'GET',
      path: '/v1/groups/{gid}/shm',
      handler: async (ctx) => {
        const q = queryOf(ctx, ['prefix']);
        return { status: 200, body: await ipc.shm.keys(ctx.who, gidOf(ctx), q.get('prefix') ?? '') };
      },
    },
    {
      method: 'GET',
      path: SHM,
      handler: async (ctx) => ({ status: 200, body: await ipc.shm.get(ctx.who, gidOf(ctx), ctx.params.key!) }),
    },
    {
      method: 'PUT',
      path: SHM,
      handler: async (ctx) => {
        const gid = gidOf(ctx);
        const b = object(await readJson(ctx.req), '', ['value', 'ttl']);
        if (!('value' in b)) throw new RackError('bad_request', 'body.value is required');
        const ttl = b.ttl === undefined ? null : Number(b.ttl);
        if (ttl !== null && (!Number.isFinite(ttl) || ttl <= 0 || ttl > 31_536_000)) throw new RackError('bad_request', 'ttl must be seconds from 0 to 31536000');
        return { status: 200, body: await ipc.shm.set(ctx.who, gid, ctx.params.key!, b.value, ttl === null ? null : Math.round(ttl * 1000)) };
      },
    },
    {
      method: 'DELETE',
      path: SHM,
      handler: async (ctx) => ({ status: 200, body: await ipc.shm.delete(ctx.who, gidOf(ctx), ctx.params.key!) }),
    },
    {
      method: 'POST',
      path: `${SHM}/incr`,
      handler: async (ctx) => {
        const gid = gidOf(ctx);
        const hasBody = Number(ctx.req.headers['content-length'] ?? 0) > 0 || ctx.req.headers['transfer-encoding'] !== undefined;
        const b = hasBody ? object(await readJson(ctx.req), '', ['by']) : {};
        const by = b.by === undefined ? 1 : b.by;
        if (typeof by !== 'number') throw new RackError('bad_request', 'by must be an integer');
        return { status: 200, body: await ipc.shm.incr(ctx.who, gid, ctx.params.key!, by) };
      },
    },
    {
      method: 'POST',
      path: `${SHM}/cas`,
      handler: async (ctx) => {
        const gid = gidOf(ctx);
        const b = object(await readJson(ctx.req), '', ['expect', 'value']);
        if (!('expect' in b) || !('value' in b)) throw new RackError('bad_request', 'body needs expect and value');
        return { status: 200, body: await ipc.shm.cas(ctx.who, gid, ctx.params.key!, b.expect, b.value) };
      },
    },
    {
      method: 'POST',
      path: `${SHM}/push`,
      handler: async (ctx) => {
        const gid = gidOf(ctx);
        const b = object(await readJson(ctx.req), '', ['values', 'left']);
        return { status: 200, body: await ipc.shm.push(ctx.who, gid, ctx.params.key!, b.values, b.left === true) };
      },
    },
    {
      method: 'POST',
      path: `${SHM}/pop`,
      handler: async (ctx) => {
        const q = queryOf(ctx, ['timeout']);
        const gid = gidOf(ctx);
        const hasBody = Number(ctx.req.headers['content-length'] ?? 0) > 0;
        const b = hasBody ? object(await readJson(ctx.req), '', ['left']) : {};
        const timeoutMs = parseSeconds(q.get('timeout'), 'timeout', 0, 300);
        return { status: 200, body: await ipc.shm.pop(ctx.who, gid, ctx.params.key!, b.left !== false, timeoutMs) };
      },
    },
    {
      method: 'GET',
      path: `${SHM}/range`,
      handler: async (ctx) => {
        const q = queryOf(ctx, ['start', 'stop']);
        const int = (v: string | null, d: number, what: string): number => {
          if (v === null) return d;
          if (!/^-?[0-9]{1,10}$/.test(v)) throw new RackError('bad_request', `${what} must be an integer`);
          return Number(v);
        };
        return { status: 200, body: await ipc.shm.range(ctx.who, gidOf(ctx), ctx.params.key!, int(q.get('start'), 0, 'start'), int(q.get('stop'), -1, 'stop')) };
      },
    },
    // ---- pipes ----
    {
      method: 'POST',
      path: '/v1/groups/{gid}/pipes',
      handler: async (ctx) => ({ status: 201, body: { pipe: ipc.pipes.create(ctx.who, gidOf(ctx)) } }),
    },
    {
      method: 'PUT',
      path: '/v1/groups/{gid}/pipes/{id}',
      handler: async (ctx) => {
        const gid = gidOf(ctx);
        const id = pipeId(ipc, ctx, gid);
        const end = ipc.pipes.open(ctx.who, gid, id, 'w', ctx.req);
        try {
          let pending: Buffer = Buffer.alloc(0);
          for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
            pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
            while (pending.length >= MAX_WRITE) {
              await ipc.pipes.write(ctx.who, end, pending.subarray(0, MAX_WRITE));
              pending = pending.subarray(MAX_WRITE);
            }
          }
          if (pending.length) await ipc.pipes.write(ctx.who, end, pending);
        } finally {
          ipc.pipes.closeOwner(ctx.req);
        }
        return { status: 204 };
      },
    },
    {
      method: 'GET',
      path: '/v1/groups/{gid}/pipes/{id}',
      handler: async (ctx) => {
        const gid = gidOf(ctx);
        const id = pipeId(ipc, ctx, gid);
        const end = ipc.pipes.open(ctx.who, gid, id, 'r', ctx.req);
        ctx.res.writeHead(200, { 'content-type': 'application/octet-stream' });
        ctx.res.on('close', () => ipc.pipes.closeOwner(ctx.req));
        await new Promise<void>((resolve) => {
          const credit = 256 * 1024;
          const sink = {
            data: (chunk: Buffer) => {
              // HTTP's own flow control: more credit once the response has drained.
              const more = (): void => {
                if (!ctx.res.destroyed) ipc.pipes.read(ctx.who, end, chunk.length, sink, ctx.req);
              };
              if (ctx.res.write(chunk)) setImmediate(more);
              else ctx.res.once('drain', more);
            },
            eof: () => {
              ctx.res.end();
              resolve();
            },
          };
          ctx.res.once('close', () => resolve());
          ipc.pipes.read(ctx.who, end, credit, sink, ctx.req);
        });
      },
    },
    // ---- files ----
    {
      method: 'GET',
      path: '/v1/groups/{gid}/files',
      handler: async (ctx) => {
        const q = queryOf(ctx, ['prefix']);
        const gid = gidOf(ctx);
        await kernel.getGroup(ctx.who, gid);
        return { status: 200, body: { files: await ipc.files.list(gid, q.get('prefix') ?? '') } };
      },
    },
    {
      method: 'PUT',
      path: '/v1/groups/{gid}/files/{path}',
      handler: async (ctx) => {
        const gid = gidOf(ctx);
        const path = checkPath(ctx.params.path!);
        await kernel.getGroup(ctx.who, gid);
        return { status: 201, body: { file: await ipc.files.put(gid, path, ctx.req) } };
      },
    },
    {
      method: 'HEAD',
      path: '/v1/groups/{gid}/files/{path}',
      handler: async (ctx) => {
        const gid = gidOf(ctx);
        await kernel.getGroup(ctx.who, gid);
        const st = await ipc.files.stat(gid, checkPath(ctx.params.path!));
        ctx.res.writeHead(200, { 'content-length': st.size, etag: `"${st.etag}"`, 'last-modified': new Date(st.modified).toUTCString(), 'accept-ranges': 'bytes' });
        ctx.res.end();
      },
    },
    {
      method: 'GET',
      path: '/v1/groups/{gid}/files/{path}',
      handler: async (ctx) => {
        const gid = gidOf(ctx);
        const path = checkPath(ctx.params.path!);
        await kernel.getGroup(ctx.who, gid);
        const st = await ipc.files.stat(gid, path);
        const range = parseRange(ctx.req.headers.range, st.size);
        if (range === 'unsatisfiable') {
          ctx.res.writeHead(416, { 'content-range': `bytes */${st.size}`, 'content-type': 'application/json' });
          ctx.res.end(JSON.stringify({ error: { code: 'bad_request', message: `range not satisfiable for a file of ${st.size} bytes` } }));
          return;
        }
        const headers: Record<string, string | number> = { 'content-type': 'application/octet-stream', 'accept-ranges': 'bytes', etag: `"${st.etag}"` };
        if (range) {
          headers['content-range'] = `bytes ${range.start}-${range.end}/${st.size}`;
          headers['content-length'] = range.end - range.start + 1;
          ctx.res.writeHead(206, headers);
        } else {
          headers['content-length'] = st.size;
          ctx.res.writeHead(200, headers);
        }
        if (st.size === 0 || (range && range.end < range.start)) return void ctx.res.end();
        await pipeline(await ipc.files.get(gid, path, range ?? undefined), ctx.res).catch(() => ctx.res.destroy());
      },
    },
    {
      method: 'DELETE',
      path: '/v1/groups/{gid}/files/{path}',
      handler: async (ctx) => {
        const gid = gidOf(ctx);
        await kernel.getGroup(ctx.who, gid);
        await ipc.files.delete(gid, checkPath(ctx.params.path!));
        return { status: 204 };
      },
    },
  ];
}

function pipeId(ipc: Ipc, ctx: Context, gid: string): string {
  const id = ctx.params.id!;
  if (id.startsWith('fifo:')) return ipc.pipes.fifo(ctx.who, gid, id.slice(5));
  if (!/^[0-9a-f]{16}$/.test(id)) throw new RackError('bad_request', 'a pipe id is 16 hex digits, or fifo:NAME');
  return id;
}

/** One `bytes=` range (the only kind RACK serves); null for none, or unsatisfiable. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | null | 'unsatisfiable' {
  if (header === undefined) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return 'unsatisfiable';
  let start: number;
  let end: number;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0) return 'unsatisfiable';
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || start > end) return 'unsatisfiable';
  return { start, end };
}

