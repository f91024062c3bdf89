import { RackError } from '../../common/errors.js';
import { APP_STATES, type AppState, type Process } from '../../protocol/process.js';
import type { Connection } from '../connection.js';
import { defineOp, type OpContext, type Operation } from '../operation.js';
import { empty, object, ref } from '../schemas.js';
import type { Services } from './services.js';

const CONNECTION_BOUND = 'it configures the WebSocket connection itself';

export function connOf(ctx: OpContext): Connection {
  if (!ctx.conn) throw new RackError('bad_request', 'this operation needs a WebSocket connection');
  return ctx.conn;
}

/** The WebSocket session: hello, heartbeats, event subscriptions, and the agent's state reports. */
export function sessionOps({ kernel }: Services): Operation[] {
  return [
    defineOp({
      name: 'hello',
      summary: 'Start the session: agent (the guest agent), app (libdck) or admin; answers the caller\'s process',
      policy: 'any',
      input: { properties: { role: { type: 'string', enum: ['agent', 'app', 'admin'] } } },
      output: object({ process: ref('Process') }),
      idempotent: true,
      agent: true,
      rest: null,
      wsOnly: CONNECTION_BOUND,
      handler: async (ctx, input: { role?: 'agent' | 'app' | 'admin' }) => {
        const conn = connOf(ctx);
        const who = ctx.who;
        const role = input.role ?? (who.kind === 'admin' ? 'admin' : who.role === 'agent' ? 'agent' : 'app');
        const tokenRole = who.kind === 'admin' ? 'admin' : who.role === 'agent' ? 'agent' : 'app';
        if (role !== tokenRole) throw new RackError('forbidden', `role ${role} does not match the token (a${tokenRole === 'app' ? 'n app' : tokenRole === 'admin' ? 'n admin' : 'n agent'} token)`);
        if (conn.role !== null && conn.role !== role) throw new RackError('conflict', `this connection is already an ${conn.role}`);
        const first = conn.role === null;
        conn.role = role;
        if (who.kind === 'admin') return {};
        const p = await kernel.getProcess(who.gid, who.pid);
        if (role === 'agent' && first) conn.onClose(kernel.attachAgent(who.gid, who.pid, { send: (ev) => conn.push(ev) }));
        return { process: p };
      },
    }),
    defineOp({
      name: 'heartbeat',
      summary: 'Keep the session alive (a WebSocket ping does as well, and costs the kernel less: the guest agent sends one every 15 s)',
      policy: 'any',
      input: { properties: {} },
      output: empty,
      idempotent: true,
      agent: true,
      rest: null,
      wsOnly: CONNECTION_BOUND,
      handler: async () => ({}),
    }),
    defineOp({
      name: 'subscribe',
      summary: "Push every state change of the group's processes to this connection",
      policy: 'group',
      input: { properties: { gid: ref('Gid') }, required: ['gid'] },
      output: empty,
      errors: ['not_found'],
      idempotent: true,
      rest: null,
      wsOnly: 'events are pushed on the connection',
      handler: async (ctx) => {
        const conn = connOf(ctx);
        await kernel.getGroup(ctx.gid);
        const key = `subscribe:${ctx.gid}`;
        if (conn.state.has(key)) return {};
        const listener = (p: Process): void => {
          if (p.gid === ctx.gid) conn.push({ event: 'process', process: p });
        };
        conn.state.set(key, listener);
        kernel.events.on('process', listener);
        conn.onClose(() => kernel.events.off('process', listener));
        return {};
      },
    }),
    defineOp({
      name: 'state',
      summary: "The guest agent reports its app's state; exited ends the process with the app's code or signal",
      policy: 'process',
      input: {
        properties: {
          gid: ref('Gid'),
          pid: ref('Pid'),
          state: { type: 'string', enum: APP_STATES },
          code: { type: ['integer', 'null'], minimum: 0, maximum: 255 },
          signal: { type: ['string', 'null'], minLength: 1, maxLength: 16 },
        },
        required: ['state'],
      },
      output: object({ process: ref('Process') }, ['process']),
      idempotent: true,
      agent: true,
      rest: null,
      wsOnly: 'only a guest agent, on its session, reports its app',
      handler: async (ctx, input: { pid: number; state: AppState; code?: number | null; signal?: string | null }) => {
        if (connOf(ctx).role !== 'agent') throw new RackError('forbidden', 'only a guest agent (hello role=agent) reports app state');
        return { process: await kernel.reportAppState(ctx.gid, input.pid, input.state, { code: input.code ?? null, signal: input.signal ?? null }) };
      },
    }),
  ];
}
