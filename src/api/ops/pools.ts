import type { Capacity } from '../../protocol/resources.js';
import { defineOp, type Operation } from '../operation.js';
import { empty, object, ref } from '../schemas.js';
import type { Services } from './services.js';

/** The Resource Scheduler: the pools a group's forks are scheduled against, and its queue. */
export function poolOps({ kernel }: Services): Operation[] {
  const path = '/v1/groups/{gid}/pool';
  return [
    defineOp({
      name: 'pool.show',
      summary: "The kernel-wide pool, the group's own pool (capacity, used, free) and its queued forks in boot order",
      policy: 'group',
      input: { properties: { gid: ref('Gid') }, required: ['gid'] },
      output: object({ kernel: ref('PoolView'), group: ref('PoolView'), queue: { type: 'array', items: ref('QueuedFork') } }, ['kernel', 'group', 'queue']),
      errors: ['not_found'],
      idempotent: true,
      rest: { method: 'GET', path, wrap: 'pool' },
      handler: async (ctx) => kernel.pool(ctx.gid),
    }),
    defineOp({
      name: 'pool.set',
      summary: "Set the group's own pool bounds (admin); null removes them. Queued forks that fit now boot",
      policy: 'admin',
      input: { properties: { gid: ref('Gid'), capacity: { anyOf: [ref('Capacity'), { type: 'null' }] } }, required: ['gid', 'capacity'] },
      output: empty,
      errors: ['not_found'],
      idempotent: true,
      rest: { method: 'PUT', path, body: { root: 'pool', fields: ['capacity'] } },
      handler: async (ctx, input: { capacity: Capacity | null }) => {
        await kernel.setPool(ctx.gid, input.capacity);
        return {};
      },
    }),
  ];
}
