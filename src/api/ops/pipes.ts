import { RackError } from '../../common/errors.js';
import { MAX_CREDIT, MAX_WRITE, type Pipes } from '../../ipc/pipes.js';
import type { Kernel } from '../../kernel/kernel.js';
import type { Connection } from '../connection.js';
import { defineOp, type OpContext, type Operation } from '../operation.js';
import { empty, object, ref } from '../schemas.js';
import { connOf } from './session.js';
import type { Services } from './services.js';

const END = { type: 'integer', minimum: 0, maximum: 2147483647, description: 'a pipe end of this connection' };
const BYTES = { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER };
const PIPE_ID = { type: 'string', minLength: 1, maxLength: 140, description: 'a pipe id (16 hex digits), or fifo:NAME' };
const ENDS_BOUND = 'a pipe end belongs to the connection that opened it';

/** The pipe a REST call names: an anonymous pipe's id, or a FIFO by name (made on first use). */
async function pipeId(pipes: Pipes, kernel: Kernel, ctx: OpContext, id: string): Promise<string> {
  if (id.startsWith('fifo:')) return await pipes.fifo(ctx.gid, id.slice(5), (await kernel.quotas(ctx.gid)).pipes);
  if (!/^[0-9a-f]{16}$/.test(id)) throw new RackError('bad_request', 'a pipe id is 16 hex digits, or fifo:NAME');
  return id;
}

/** A connection's pipe ends are detached (resumable ones) or closed when it drops. */
function watch(pipes: Pipes, conn: Connection): void {
  if (conn.state.has('pipes')) return;
  conn.state.set('pipes', true);
  conn.onClose(() => void pipes.detachOwner(conn));
}

/** Pipes: byte streams between the processes of a group, with backpressure. */
export function pipeOps({ kernel, pipes }: Services): Operation[] {
  const pipeOut = object({ pipe: { type: 'string' } }, ['pipe']);
  return [
    defineOp({
      name: 'pipe.create',
      summary: 'Create an anonymous pipe (children forked afterwards inherit it)',
      policy: 'group',
      input: { properties: { gid: ref('Gid') }, required: ['gid'] },
      output: pipeOut,
      errors: ['quota_exceeded'],
      idempotent: false,
      rest: { method: 'POST', path: '/v1/groups/{gid}/pipes', status: 201 },
      handler: async (ctx) => ({ pipe: await pipes.create(ctx.who, ctx.gid, (await kernel.quotas(ctx.gid)).pipes) }),
    }),
    defineOp({
      name: 'pipe.list',
      summary: 'The anonymous pipes this process created or inherited',
      policy: 'process',
      input: { properties: { gid: ref('Gid'), pid: ref('Pid') } },
      output: object({ pipes: { type: 'array', items: { type: 'string' } } }, ['pipes']),
      idempotent: true,
      rest: { method: 'GET', path: '/v1/self/pipes' },
      handler: async (ctx, input: { pid: number }) => ({ pipes: await pipes.list(ctx.gid, input.pid) }),
    }),
    defineOp({
      name: 'fifo.open',
      summary: 'A named FIFO of the group, made on first use',
      policy: 'group',
      input: { properties: { gid: ref('Gid'), name: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,128}$' } }, required: ['gid', 'name'] },
      output: pipeOut,
      errors: ['quota_exceeded'],
      idempotent: true,
      rest: { method: 'PUT', path: '/v1/groups/{gid}/fifos/{name}' },
      handler: async (ctx, input: { name: string }) => ({ pipe: await pipes.fifo(ctx.gid, input.name, (await kernel.quotas(ctx.gid)).pipes) }),
    }),
    defineOp({
      name: 'pipe.open',
      summary: 'Open an end of a pipe on this connection (resumable ends outlive a reconnect for 30 s)',
      policy: 'group',
      input: { properties: { gid: ref('Gid'), pipe: PIPE_ID, mode: { type: 'string', enum: ['r', 'w'] }, resume: { type: 'boolean' } }, required: ['gid', 'pipe', 'mode'] },
      output: object({ end: { type: 'integer' } }, ['end']),
      errors: ['not_found'],
      idempotent: false,
      connection: true,
      rest: null,
      wsOnly: ENDS_BOUND,
      handler: async (ctx, input: { pipe: string; mode: 'r' | 'w'; resume?: boolean }) => {
        const conn = connOf(ctx);
        const end = await pipes.open(ctx.who, ctx.gid, input.pipe, input.mode, conn, input.resume === true);
        watch(pipes, conn);
        return { end };
      },
    }),
    defineOp({
      name: 'pipe.attach',
      summary: "Take a resumable end up again on this connection; a reader says how many bytes it has",
      policy: 'group',
      input: { properties: { end: END, received: BYTES }, required: ['end'] },
      output: object({ offset: { type: 'integer' } }, ['offset']),
      errors: ['not_found'],
      idempotent: true,
      rest: null,
      wsOnly: ENDS_BOUND,
      handler: async (ctx, input: { end: number; received?: number }) => {
        const conn = connOf(ctx);
        const r = pipes.attach(ctx.who, input.end, conn, input.received);
        watch(pipes, conn);
        return r;
      },
    }),
    defineOp({
      name: 'pipe.write',
      summary: 'Write bytes (a binary frame) at their offset in the stream; answered once they are in the pipe',
      policy: 'group',
      input: { properties: { end: END, offset: BYTES, $payload: { description: 'the bytes' } }, required: ['end', '$payload'] },
      output: empty,
      errors: ['not_found', 'epipe', 'payload_too_large'],
      idempotent: true,
      rest: null,
      wsOnly: ENDS_BOUND,
      handler: async (ctx, input: { end: number; offset?: number; $payload: Buffer }) => {
        const conn = connOf(ctx);
        pipes.adoptWriter(ctx.who, input.end, conn);
        watch(pipes, conn);
        await pipes.write(ctx.who, input.end, input.$payload, input.offset);
        return {};
      },
    }),
    defineOp({
      name: 'pipe.read',
      summary: 'Grant a reader end credit for bytes (pushed as pipe.data events, then pipe.eof)',
      policy: 'group',
      input: { properties: { end: END, bytes: { type: 'integer', minimum: 0, maximum: MAX_CREDIT }, received: BYTES }, required: ['end', 'bytes'] },
      output: empty,
      errors: ['not_found', 'conflict'],
      idempotent: false,
      connection: true,
      rest: null,
      wsOnly: ENDS_BOUND,
      handler: async (ctx, input: { end: number; bytes: number; received?: number }) => {
        const conn = connOf(ctx);
        const end = input.end;
        pipes.read(ctx.who, end, input.bytes, { data: (chunk) => conn.pushBinary({ event: 'pipe.data', end }, chunk), eof: () => conn.push({ event: 'pipe.eof', end }) }, conn, input.received);
        return {};
      },
    }),
    defineOp({
      name: 'pipe.close',
      summary: 'Close an end (closing a closed end is no error)',
      policy: 'group',
      input: { properties: { end: END }, required: ['end'] },
      output: empty,
      idempotent: true,
      rest: null,
      wsOnly: ENDS_BOUND,
      handler: async (ctx, input: { end: number }) => {
        await pipes.close(ctx.who, input.end);
        return {};
      },
    }),
    defineOp({
      name: 'pipe.put',
      summary: 'Write the request body into the pipe as one writer (closed at the body\'s end)',
      policy: 'group',
      input: { properties: { gid: ref('Gid'), id: PIPE_ID }, required: ['gid', 'id'] },
      errors: ['not_found', 'epipe'],
      idempotent: false,
      ws: false,
      rest: { method: 'PUT', path: '/v1/groups/{gid}/pipes/{id}', status: 204, raw: true, rawRequest: 'application/octet-stream' },
      handler: async (ctx, input: { id: string }) => {
        const req = ctx.http!.req;
        const end = await pipes.open(ctx.who, ctx.gid, await pipeId(pipes, kernel, ctx, input.id), 'w', req);
        try {
          let pending: Buffer = Buffer.alloc(0);
          for await (const chunk of req as AsyncIterable<Buffer>) {
            pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
            while (pending.length >= MAX_WRITE) {
              await pipes.write(ctx.who, end, pending.subarray(0, MAX_WRITE));
              pending = pending.subarray(MAX_WRITE);
            }
          }
          if (pending.length) await pipes.write(ctx.who, end, pending);
        } finally {
          await pipes.closeOwner(req);
        }
        return {};
      },
    }),
    defineOp({
      name: 'pipe.get',
      summary: 'Read the pipe as one reader, streamed until EOF',
      policy: 'group',
      input: { properties: { gid: ref('Gid'), id: PIPE_ID }, required: ['gid', 'id'] },
      errors: ['not_found'],
      idempotent: false,
      ws: false,
      rest: { method: 'GET', path: '/v1/groups/{gid}/pipes/{id}', raw: true, rawResponse: 'application/octet-stream' },
      handler: async (ctx, input: { id: string }) => {
        const { req, res } = ctx.http!;
        const end = await pipes.open(ctx.who, ctx.gid, await pipeId(pipes, kernel, ctx, input.id), 'r', req);
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.on('close', () => void pipes.closeOwner(req));
        await new Promise<void>((resolve) => {
          const sink = {
            data: (chunk: Buffer) => {
              // HTTP's own flow control: more credit once the response has drained.
              const more = (): void => {
                if (!res.destroyed) pipes.read(ctx.who, end, chunk.length, sink, req);
              };
              if (res.write(chunk)) setImmediate(more);
              else res.once('drain', more);
            },
            eof: () => {
              res.end();
              resolve();
            },
          };
          res.once('close', () => resolve());
          pipes.read(ctx.who, end, 256 * 1024, sink, req);
        });
      },
    }),
  ];
}
