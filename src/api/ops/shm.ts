import type { ShmChange } from '../../ipc/shared-memory.js';
import { defineOp, type Operation } from '../operation.js';
import { MAX_TTL_SECONDS, empty, object, ref } from '../schemas.js';
import { connOf } from './session.js';
import type { Services } from './services.js';

const INDEX = { type: 'integer', minimum: Number.MIN_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER };

/** Shared Memory of a group: values, counters, compare-and-set, lists, watches. */
export function shmOps({ shm }: Services): Operation[] {
  const SHM = '/v1/groups/{gid}/shm/{key}';
  const at = { gid: ref('Gid'), key: ref('ShmKey') };
  const keyed = ['gid', 'key'];
  return [
    defineOp({
      name: 'shm.keys',
      summary: "Keys of the group's shared memory",
      policy: 'group',
      input: { properties: { gid: ref('Gid'), prefix: ref('Prefix') }, required: ['gid'] },
      output: object({ keys: { type: 'array', items: { type: 'string' } } }, ['keys']),
      idempotent: true,
      rest: { method: 'GET', path: '/v1/groups/{gid}/shm', query: ['prefix'] },
      handler: async (ctx, input: { prefix?: string }) => shm.keys(ctx.gid, input.prefix ?? ''),
    }),
    defineOp({
      name: 'shm.get',
      summary: 'Read a value (null and version 0 when absent)',
      policy: 'group',
      input: { properties: at, required: keyed },
      output: object({ value: {}, version: { type: 'integer' } }, ['value', 'version']),
      errors: ['conflict'],
      idempotent: true,
      rest: { method: 'GET', path: SHM },
      handler: async (ctx, input: { key: string }) => shm.getText(ctx.gid, input.key),
    }),
    defineOp({
      name: 'shm.set',
      summary: 'Set a value, optionally with a TTL in seconds',
      policy: 'group',
      input: { properties: { ...at, value: {}, ttl: { type: 'number', exclusiveMinimum: 0, maximum: MAX_TTL_SECONDS, description: 'seconds until the key expires' } }, required: [...keyed, 'value'] },
      output: object({ version: { type: 'integer' } }, ['version']),
      errors: ['payload_too_large', 'quota_exceeded'],
      idempotent: true,
      rest: { method: 'PUT', path: SHM, body: { root: '', fields: ['value', 'ttl'] } },
      handler: async (ctx, input: { key: string; value: unknown; ttl?: number }) =>
        shm.set(ctx.gid, input.key, input.value, input.ttl === undefined ? null : Math.round(input.ttl * 1000)),
    }),
    defineOp({
      name: 'shm.delete',
      summary: 'Delete a key',
      policy: 'group',
      input: { properties: at, required: keyed },
      output: object({ deleted: { type: 'boolean' } }, ['deleted']),
      idempotent: true,
      rest: { method: 'DELETE', path: SHM },
      handler: async (ctx, input: { key: string }) => shm.delete(ctx.gid, input.key),
    }),
    defineOp({
      name: 'shm.incr',
      summary: 'Atomic increment (a missing key counts as 0)',
      policy: 'group',
      input: { properties: { ...at, by: INDEX }, required: keyed },
      output: object({ value: { type: 'integer' } }, ['value']),
      errors: ['conflict', 'quota_exceeded'],
      idempotent: false,
      durable: true,
      rest: { method: 'POST', path: `${SHM}/incr`, body: { root: '', fields: ['by'], optional: true } },
      handler: async (ctx, input: { key: string; by?: number }) => shm.incr(ctx.gid, input.key, input.by ?? 1, ctx.rid),
    }),
    defineOp({
      name: 'shm.cas',
      summary: 'Compare-and-set (expect null = the key is absent)',
      policy: 'group',
      input: { properties: { ...at, expect: {}, value: {} }, required: [...keyed, 'expect', 'value'] },
      output: object({ ok: { type: 'boolean' }, value: {} }, ['ok', 'value']),
      errors: ['conflict', 'payload_too_large', 'quota_exceeded'],
      idempotent: false,
      durable: true,
      rest: { method: 'POST', path: `${SHM}/cas`, body: { root: '', fields: ['expect', 'value'] } },
      handler: async (ctx, input: { key: string; expect: unknown; value: unknown }) => shm.cas(ctx.gid, input.key, input.expect, input.value, ctx.rid),
    }),
    defineOp({
      name: 'shm.push',
      summary: 'Push values onto a list (right, or left)',
      policy: 'group',
      input: { properties: { ...at, values: { type: 'array', minItems: 1, maxItems: 10_000 }, left: { type: 'boolean' } }, required: [...keyed, 'values'] },
      output: object({ length: { type: 'integer' } }, ['length']),
      errors: ['conflict', 'payload_too_large', 'quota_exceeded'],
      idempotent: false,
      durable: true,
      rest: { method: 'POST', path: `${SHM}/push`, body: { root: '', fields: ['values', 'left'] } },
      handler: async (ctx, input: { key: string; values: unknown[]; left?: boolean }) => shm.push(ctx.gid, input.key, input.values, input.left === true, ctx.rid),
    }),
    defineOp({
      name: 'shm.pop',
      summary: 'Pop from a list (left by default); with a timeout, wait for a push',
      policy: 'group',
      input: { properties: { ...at, left: { type: 'boolean' }, timeout: ref('Seconds') }, required: keyed },
      output: object({ value: {} }, ['value']),
      errors: ['conflict'],
      idempotent: false,
      durable: true,
      rest: { method: 'POST', path: `${SHM}/pop`, query: ['timeout'], body: { root: '', fields: ['left'], optional: true } },
      handler: async (ctx, input: { key: string; left?: boolean; timeout?: number }) =>
        shm.pop(ctx.gid, input.key, input.left !== false, Math.round((input.timeout ?? 0) * 1000), ctx.rid),
    }),
    defineOp({
      name: 'shm.range',
      summary: 'Items of a list from start to stop (inclusive; negative counts from the end)',
      policy: 'group',
      input: { properties: { ...at, start: INDEX, stop: INDEX }, required: keyed },
      output: object({ values: { type: 'array' } }, ['values']),
      errors: ['conflict'],
      idempotent: true,
      rest: { method: 'GET', path: `${SHM}/range`, query: ['start', 'stop'] },
      handler: async (ctx, input: { key: string; start?: number; stop?: number }) => shm.range(ctx.gid, input.key, input.start ?? 0, input.stop ?? -1),
    }),
    defineOp({
      name: 'shm.len',
      summary: 'The length of a list (0 when absent)',
      policy: 'group',
      input: { properties: at, required: keyed },
      output: object({ length: { type: 'integer' } }, ['length']),
      errors: ['conflict'],
      idempotent: true,
      rest: { method: 'GET', path: `${SHM}/len` },
      handler: async (ctx, input: { key: string }) => shm.len(ctx.gid, input.key),
    }),
    defineOp({
      name: 'shm.watch',
      summary: 'Push an event to this connection when a key starting with prefix changes',
      policy: 'group',
      input: { properties: { gid: ref('Gid'), prefix: ref('Prefix') }, required: ['gid'] },
      output: empty,
      idempotent: true,
      rest: null,
      wsOnly: 'changes are pushed on the connection',
      handler: async (ctx, input: { prefix?: string }) => {
        const conn = connOf(ctx);
        conn.onClose(shm.watch(ctx.gid, input.prefix ?? '', (c: ShmChange) => conn.push({ event: 'shm', key: c.key, op: c.op })));
        return {};
      },
    }),
  ];
}
