import { RackError } from '../../common/errors.js';
import { MAX_MESSAGE, type OutgoingMessage } from '../../ipc/messaging.js';
import type { StoredMessage } from '../../store/store.js';
import { defineOp, type Operation } from '../operation.js';
import { empty, object, ref } from '../schemas.js';
import { connOf } from './session.js';
import type { Services } from './services.js';

const MAX_BATCH = 1000;
const MID = { type: 'string', minLength: 1, maxLength: 64, description: "the sender's id for this message: a resend with the same id is stored once" };

/** A message as JSON text: stored JSON goes out as it is, never parsed and encoded again. */
function messageJson(m: StoredMessage): string {
  return `{"seq":${m.seq},"from":${m.from},"data":${m.data.toString('utf8')}}`;
}

/**
 * The pushed message event as the frame's bytes, in one buffer: the stored JSON bytes are copied
 * in as they are (not decoded into a string, concatenated, and encoded again by the socket).
 */
function messageEvent(m: StoredMessage): Buffer {
  const head = `{"event":"message","seq":${m.seq},"from":${m.from},"data":`;
  const out = Buffer.allocUnsafe(head.length + m.data.length + 1);
  out.write(head, 0, 'latin1'); // digits and ASCII only: one byte per character
  m.data.copy(out, head.length);
  out[out.length - 1] = 0x7d; // }
  return out;
}

/** Mailboxes (the seed's Signal): durable messages between the processes of a group. */
export function messageOps({ messaging }: Services): Operation[] {
  const MSG = '/v1/groups/{gid}/processes/{pid}/messages';
  const seqOut = object({ seq: { type: 'integer' } }, ['seq']);
  return [
    defineOp({
      name: 'send',
      summary: "Send a message to a process's mailbox (JSON data, or bytes: a binary frame, or application/octet-stream)",
      policy: 'group',
      input: { properties: { gid: ref('Gid'), to: ref('Pid'), data: {}, mid: MID, $payload: { description: 'the bytes of a binary message' } }, required: ['gid', 'to'] },
      output: seqOut,
      errors: ['not_found', 'conflict', 'payload_too_large', 'mailbox_full'],
      idempotent: true,
      rest: { method: 'POST', path: MSG, status: 202, params: { pid: 'to' }, headers: { mid: 'idempotency-key' }, body: { root: 'message', fields: ['data'] }, payload: MAX_MESSAGE },
      handler: async (ctx, input: { to: number; data?: unknown; mid?: string; $payload?: Buffer }) => {
        const binary = input.$payload !== undefined;
        if (!binary && !('data' in input)) throw new RackError('bad_request', '"data" is required');
        const data = binary ? input.$payload! : Buffer.from(JSON.stringify(input.data));
        return { seq: await messaging.send(ctx.who, ctx.gid, input.to, data, binary, input.mid ?? null) };
      },
    }),
    defineOp({
      name: 'send.batch',
      summary: 'Send several JSON messages in one step and one commit; each has its own answer, in order',
      policy: 'group',
      input: {
        properties: {
          gid: ref('Gid'),
          messages: {
            type: 'array',
            minItems: 1,
            maxItems: MAX_BATCH,
            items: object({ to: ref('Pid'), data: {}, mid: MID }, ['to', 'data']),
          },
        },
        required: ['gid', 'messages'],
      },
      output: object({ results: { type: 'array', items: { type: 'object' } } }, ['results']),
      errors: ['payload_too_large'],
      idempotent: true,
      rest: { method: 'POST', path: '/v1/groups/{gid}/messages', status: 202, body: { root: '', fields: ['messages'] } },
      handler: async (ctx, input: { messages: Array<{ to: number; data: unknown; mid?: string }> }) => {
        const items: OutgoingMessage[] = input.messages.map((m) => ({ to: m.to, data: Buffer.from(JSON.stringify(m.data)), binary: false, mid: m.mid ?? null }));
        const results = await messaging.sendMany(ctx.who, ctx.gid, items);
        return { results: results.map((r) => (typeof r === 'number' ? { seq: r } : { error: r.toJSON() })) };
      },
    }),
    defineOp({
      name: 'recv',
      summary: 'The oldest unacknowledged message (long-poll; the process itself)',
      policy: 'self',
      input: { properties: { gid: ref('Gid'), pid: ref('Pid'), timeout: { ...ref('Seconds'), description: 'seconds, default 30' } }, required: ['gid'] },
      output: object({ message: object({ seq: { type: 'integer' }, from: { type: 'integer' }, data: {} }, ['seq', 'from', 'data']) }, ['message']),
      errors: ['not_found', 'timeout'],
      idempotent: true,
      rest: { method: 'GET', path: MSG, query: ['timeout'], raw: true, rawResponse: 'application/octet-stream' },
      handler: async (ctx, input: { pid: number; timeout?: number }) => {
        const m = await messaging.next(ctx.gid, input.pid, Math.round((input.timeout ?? 30) * 1000));
        const res = ctx.http?.res;
        if (m.binary) {
          if (!res) return { message: { seq: m.seq, from: m.from }, $payload: m.data };
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': m.data.length, 'rack-seq': String(m.seq), 'rack-from': String(m.from) });
          res.end(m.data);
          return undefined;
        }
        const text = `{"message":${messageJson(m)}}`;
        if (!res) return JSON.parse(text);
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
        res.end(text);
        return undefined;
      },
    }),
    defineOp({
      name: 'ack',
      summary: 'Acknowledge every message up to and including seq (the process itself)',
      policy: 'self',
      input: { properties: { gid: ref('Gid'), pid: ref('Pid'), seq: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER } }, required: ['gid', 'seq'] },
      output: empty,
      idempotent: true,
      rest: { method: 'DELETE', path: `${MSG}/{seq}`, status: 204 },
      handler: async (ctx, input: { pid: number; seq: number }) => {
        await messaging.ack(ctx.gid, input.pid, input.seq);
        return {};
      },
    }),
    defineOp({
      name: 'recv.start',
      summary: "Push this process's messages to the connection, a window of unacknowledged ones at a time",
      policy: 'process',
      input: { properties: { gid: ref('Gid'), pid: ref('Pid'), window: { type: 'integer', minimum: 1, maximum: 10_000 } } },
      output: empty,
      errors: ['not_found'],
      idempotent: true,
      rest: null,
      wsOnly: 'messages are pushed on the connection',
      handler: async (ctx, input: { pid: number; window?: number }) => {
        const conn = connOf(ctx);
        (conn.state.get('receiver') as { close(): void } | undefined)?.close();
        const r = await messaging.receive(ctx.gid, input.pid, (m) => {
          if (m.binary) conn.pushBinary({ event: 'message', seq: m.seq, from: m.from }, m.data);
          else conn.pushText(messageEvent(m));
        }, input.window ?? 256);
        conn.state.set('receiver', r);
        conn.onClose(() => r.close());
        return {};
      },
    }),
  ];
}
