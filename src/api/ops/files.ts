import { pipeline } from 'node:stream/promises';
import { checkPath } from '../../protocol/file-path.js';
import { defineOp, type Operation } from '../operation.js';
import { empty, object, ref } from '../schemas.js';
import type { Services } from './services.js';

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

const PATH = { type: 'string', minLength: 1, maxLength: 1024, description: 'a relative path; may hold "/"' };

/** The group File System: files streamed over HTTP (any size, ranges), listed and deleted over both transports. */
export function fileOps({ kernel, files }: Services): Operation[] {
  const FILE = '/v1/groups/{gid}/files/{path}';
  const at = { gid: ref('Gid'), path: PATH };
  return [
    defineOp({
      name: 'files.list',
      summary: 'List files by prefix',
      policy: 'group',
      input: { properties: { gid: ref('Gid'), prefix: { type: 'string', maxLength: 1024 } }, required: ['gid'] },
      output: object({ files: { type: 'array', items: ref('FileInfo') } }, ['files']),
      errors: ['not_found'],
      idempotent: true,
      rest: { method: 'GET', path: '/v1/groups/{gid}/files', query: ['prefix'] },
      handler: async (ctx, input: { prefix?: string }) => {
        await kernel.getGroup(ctx.gid);
        return { files: await files.list(ctx.gid, input.prefix ?? '') };
      },
    }),
    defineOp({
      name: 'files.put',
      summary: 'Store a file (streamed, any size)',
      policy: 'group',
      input: { properties: at, required: ['gid', 'path'] },
      output: object({ file: ref('FileInfo') }, ['file']),
      errors: ['not_found', 'conflict', 'quota_exceeded'],
      idempotent: true,
      ws: false,
      rest: { method: 'PUT', path: FILE, status: 201, raw: true, rawRequest: 'application/octet-stream' },
      handler: async (ctx, input: { path: string }) => {
        const { quotas } = await kernel.getGroup(ctx.gid);
        return { file: await files.put(ctx.gid, checkPath(input.path), ctx.http!.req, quotas.file_bytes) };
      },
    }),
    defineOp({
      name: 'files.stat',
      summary: 'Stat a file (size, etag, last-modified in headers)',
      policy: 'group',
      input: { properties: at, required: ['gid', 'path'] },
      errors: ['not_found'],
      idempotent: true,
      ws: false,
      rest: { method: 'HEAD', path: FILE, raw: true },
      handler: async (ctx, input: { path: string }) => {
        await kernel.getGroup(ctx.gid);
        const st = await files.stat(ctx.gid, checkPath(input.path));
        ctx.http!.res.writeHead(200, { 'content-length': st.size, etag: `"${st.etag}"`, 'last-modified': new Date(st.modified).toUTCString(), 'accept-ranges': 'bytes' });
        ctx.http!.res.end();
      },
    }),
    defineOp({
      name: 'files.get',
      summary: 'Read a file (streamed; Range bytes=a-b gives 206)',
      policy: 'group',
      input: { properties: at, required: ['gid', 'path'] },
      errors: ['not_found'],
      idempotent: true,
      ws: false,
      rest: { method: 'GET', path: FILE, raw: true, rawResponse: 'application/octet-stream', also: { '206': 'Part of the file (a Range request)', '416': 'The range is outside the file' } },
      handler: async (ctx, input: { path: string }) => {
        const { req, res } = ctx.http!;
        const path = checkPath(input.path);
        await kernel.getGroup(ctx.gid);
        const st = await files.stat(ctx.gid, path);
        const range = parseRange(req.headers.range, st.size);
        if (range === 'unsatisfiable') {
          res.writeHead(416, { 'content-range': `bytes */${st.size}`, 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: { code: 'bad_request', message: `range not satisfiable for a file of ${st.size} bytes` } }));
          return;
        }
        const headers: Record<string, string | number> = { 'content-type': 'application/octet-stream', 'accept-ranges': 'bytes', etag: `"${st.etag}"` };
        if (range) {
          headers['content-range'] = `bytes ${range.start}-${range.end}/${st.size}`;
          headers['content-length'] = range.end - range.start + 1;
          res.writeHead(206, headers);
        } else {
          headers['content-length'] = st.size;
          res.writeHead(200, headers);
        }
        if (st.size === 0) return void res.end();
        await pipeline(await files.get(ctx.gid, path, range ?? undefined), res).catch(() => res.destroy());
      },
    }),
    defineOp({
      name: 'files.delete',
      summary: 'Delete a file',
      policy: 'group',
      input: { properties: at, required: ['gid', 'path'] },
      output: empty,
      errors: ['not_found'],
      idempotent: false,
      rest: { method: 'DELETE', path: FILE, status: 204 },
      handler: async (ctx, input: { path: string }) => {
        await kernel.getGroup(ctx.gid);
        await files.delete(ctx.gid, checkPath(input.path));
        return {};
      },
    }),
  ];
}
