import type { GroupInput } from '../../kernel/kernel.js';
import { defineOp, type Operation } from '../operation.js';
import { decodeUserdata } from './processes.js';
import { empty, object, ref } from '../schemas.js';
import type { Services } from './services.js';

/** Groups: the unit of isolation; an operator creates and deletes them. */
export function groupOps({ kernel }: Services): Operation[] {
  const groupOut = object({ group: ref('Group') }, ['group']);
  return [
    defineOp({
      name: 'group.list',
      summary: 'List groups (a process sees only its own)',
      policy: 'any',
      input: { properties: {} },
      output: object({ groups: { type: 'array', items: ref('Group') } }, ['groups']),
      idempotent: true,
      rest: { method: 'GET', path: '/v1/groups' },
      handler: async (ctx) => ({ groups: await kernel.listGroups(ctx.who) }),
    }),
    defineOp({
      name: 'group.create',
      summary: 'Create a group (admin)',
      policy: 'admin',
      input: {
        properties: { name: ref('Name'), description: ref('Text'), template: ref('Name'), flavor: ref('Name'), args: ref('Args'), quotas: ref('Quotas'), userdata: { ...ref('UserData'), description: 'base64 user_data every fork of the group gets unless it gives its own (never shown again)' } },
        required: ['name'],
      },
      output: groupOut,
      errors: ['payload_too_large'],
      idempotent: false,
      rest: { method: 'POST', path: '/v1/groups', status: 201, body: { root: 'group', fields: ['name', 'description', 'template', 'flavor', 'args', 'quotas', 'userdata'] } },
      handler: async (_ctx, input: { userdata?: string }) => ({ group: await kernel.createGroup({ ...(input as GroupInput), userdata: decodeUserdata(input.userdata) }) }),
    }),
    defineOp({
      name: 'group.show',
      summary: 'Show a group',
      policy: 'group',
      input: { properties: { gid: ref('Gid') }, required: ['gid'] },
      output: groupOut,
      errors: ['not_found'],
      idempotent: true,
      rest: { method: 'GET', path: '/v1/groups/{gid}' },
      handler: async (ctx) => ({ group: await kernel.getGroup(ctx.gid) }),
    }),
    defineOp({
      name: 'group.delete',
      summary: 'Kill every process of the group (KILL) and delete it (admin)',
      policy: 'admin',
      input: { properties: { gid: ref('Gid') }, required: ['gid'] },
      output: empty,
      errors: ['not_found'],
      idempotent: false,
      rest: { method: 'DELETE', path: '/v1/groups/{gid}', status: 204 },
      handler: async (ctx) => {
        await kernel.deleteGroup(ctx.gid);
        return {};
      },
    }),
  ];
}
