import { RackError } from '../common/errors.js';
import type { ForkInput, Kernel } from '../kernel/kernel.js';
import { PROCESS_STATUSES, type Args } from '../protocol/process.js';
import { parseId, parseSeconds } from './http.js';
import { validateBody } from './openapi.js';
import type { Context, Route } from './router.js';

const GID = /^[A-Za-z0-9-]{1,64}$/;

const MAX_CONSOLE_LINES = 10_000;

export function gidOf(ctx: Context): string {
  const gid = ctx.params.gid!;
  if (!GID.test(gid)) throw new RackError('bad_request', `gid must be 1-64 letters, digits or dashes, got "${gid.slice(0, 40)}"`);
  return gid;
}

export function pidOf(ctx: Context, name = 'pid'): number {
  return parseId(ctx.params[name], name);
}

/** Only the query parameters a route knows: a typo must not be ignored silently. */
export function queryOf(ctx: Context, allowed: readonly string[]): URLSearchParams {
  for (const key of ctx.url.searchParams.keys()) {
    if (!allowed.includes(key)) {
      throw new RackError('bad_request', `unknown query parameter "${key.slice(0, 40)}"; allowed: ${allowed.join(', ') || 'none'}`);
    }
  }
  return ctx.url.searchParams;
}

/** A fork body's `userdata` (base64, as in Nova's API) -> the raw text. */
export function decodeUserdata(b64: string | undefined): string | undefined {
  if (b64 === undefined) return undefined;
  const buf = Buffer.from(b64, 'base64');
  if (buf.toString('base64').replace(/=+$/, '') !== b64.replace(/=+$/, '')) {
    throw new RackError('bad_request', 'process.userdata must be base64');
  }
  return buf.toString('utf8');
}

export function groupRoutes(kernel: Kernel): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/groups',
      handler: async (ctx) => {
        queryOf(ctx, []);
        return { status: 200, body: { groups: await kernel.listGroups(ctx.who) } };
      },
    },
    {
      method: 'POST',
      path: '/v1/groups',
      handler: async (ctx) => {
        const body = validateBody<{ group: { name: string; description?: string; template?: string; flavor?: string; args?: Args } }>(
          'GroupCreate',
          await ctx.json(),
        );
        return { status: 201, body: { group: await kernel.createGroup(ctx.who, body.group) } };
      },
    },
    {
      method: 'GET',
      path: '/v1/groups/{gid}',
      handler: async (ctx) => ({ status: 200, body: { group: await kernel.getGroup(ctx.who, gidOf(ctx)) } }),
    },
    {
      method: 'DELETE',
      path: '/v1/groups/{gid}',
      handler: async (ctx) => {
        await kernel.deleteGroup(ctx.who, gidOf(ctx));
        return { status: 204 };
      },
    },
  ];
}

export function processRoutes(kernel: Kernel): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/self',
      handler: async (ctx) => {
        if (ctx.who.kind !== 'process') throw new RackError('forbidden', '/v1/self needs a process token');
        return { status: 200, body: { process: await kernel.getProcess(ctx.who, ctx.who.gid, ctx.who.pid) } };
      },
    },
    {
      method: 'GET',
      path: '/v1/groups/{gid}/processes',
      handler: async (ctx) => {
        const q = queryOf(ctx, ['ppid', 'status']);
        const filter: { ppid?: number; status?: string[] } = {};
        if (q.has('ppid')) filter.ppid = parseId(q.get('ppid'), 'ppid');
        if (q.has('status')) {
          filter.status = q.get('status')!.split(',');
          const bad = filter.status.find((s) => !(PROCESS_STATUSES as readonly string[]).includes(s));
          if (bad !== undefined) throw new RackError('bad_request', `status must be among ${PROCESS_STATUSES.join(', ')}, got "${bad.slice(0, 40)}"`);
        }
        return { status: 200, body: { processes: await kernel.listProcesses(ctx.who, gidOf(ctx), filter) } };
      },
    },
    {
      method: 'POST',
      path: '/v1/groups/{gid}/processes',
      handler: async (ctx) => {
        const gid = gidOf(ctx);
        const { process: p } = validateBody<{ process: ForkInput }>('ProcessCreate', await ctx.json());
        const processes = await kernel.fork(ctx.who, gid, { ...p, userdata: decodeUserdata(p.userdata) });
        return { status: 202, body: { processes } };
      },
    },
    {
      method: 'GET',
      path: '/v1/groups/{gid}/processes/{pid}',
      handler: async (ctx) => {
        queryOf(ctx, []);
        return { status: 200, body: { process: await kernel.getProcess(ctx.who, gidOf(ctx), pidOf(ctx)) } };
      },
    },
    {
      method: 'PUT',
      path: '/v1/groups/{gid}/processes/{pid}',
      handler: async (ctx) => {
        const gid = gidOf(ctx);
        const pid = pidOf(ctx);
        const body = validateBody<{ process: { app_status: string } }>('ProcessUpdate', await ctx.json());
        return { status: 200, body: { process: await kernel.setAppStatus(ctx.who, gid, pid, body.process.app_status) } };
      },
    },
    {
      method: 'DELETE',
      path: '/v1/groups/{gid}/processes/{pid}',
      handler: async (ctx) => {
        const q = queryOf(ctx, ['signal', 'grace']);
        const signal = q.get('signal') ?? 'TERM';
        if (signal !== 'TERM' && signal !== 'KILL') {
          throw new RackError('bad_request', `signal must be TERM or KILL, got "${signal.slice(0, 40)}"; other signals: POST .../signal`);
        }
        const graceMs = parseSeconds(q.get('grace'), 'grace', kernel.defaultGraceMs / 1000, 3600);
        const pids = await kernel.kill(ctx.who, gidOf(ctx), pidOf(ctx), { signal, graceMs });
        return { status: 202, body: { kill: { pids } } };
      },
    },
    {
      method: 'POST',
      path: '/v1/groups/{gid}/processes/{pid}/signal',
      handler: async (ctx) => {
        const gid = gidOf(ctx);
        const pid = pidOf(ctx);
        const body = validateBody<{ signal: { name: 'TERM' | 'INT' | 'HUP' | 'USR1' | 'USR2' | 'STOP' | 'CONT' } }>(
          'SignalRequest',
          await ctx.json(),
        );
        await kernel.signal(ctx.who, gid, pid, body.signal.name);
        return { status: 202, body: {} };
      },
    },
    {
      method: 'POST',
      path: '/v1/groups/{gid}/processes/{pid}/exit',
      handler: async (ctx) => {
        const gid = gidOf(ctx);
        const pid = pidOf(ctx);
        const body = validateBody<{ exit: { code: number } }>('ExitRequest', await ctx.json());
        return { status: 200, body: { process: await kernel.exit(ctx.who, gid, pid, body.exit.code) } };
      },
    },
    {
      method: 'GET',
      path: '/v1/groups/{gid}/processes/{ppid}/wait',
      handler: async (ctx) => {
        const q = queryOf(ctx, ['pid', 'timeout']);
        const gid = gidOf(ctx);
        const ppid = pidOf(ctx, 'ppid');
        const pid = q.has('pid') ? parseId(q.get('pid'), 'pid') : undefined;
        const timeoutMs = parseSeconds(q.get('timeout'), 'timeout', 30, 300);
        const result = await kernel.wait(ctx.who, gid, ppid, pid === undefined ? { timeoutMs } : { pid, timeoutMs });
        return { status: 200, body: { wait: result } };
      },
    },
    {
      method: 'GET',
      path: '/v1/groups/{gid}/processes/{pid}/console',
      handler: async (ctx) => {
        const q = queryOf(ctx, ['lines']);
        const lines = q.has('lines') ? parseId(q.get('lines'), 'lines') : 100;
        if (lines < 1 || lines > MAX_CONSOLE_LINES) throw new RackError('bad_request', `lines must be from 1 to ${MAX_CONSOLE_LINES}, got ${lines}`);
        const output = await kernel.console(ctx.who, gidOf(ctx), pidOf(ctx), lines);
        return { status: 200, body: { console: { output } } };
      },
    },
    {
      method: 'GET',
      path: '/v1/groups/{gid}/processes/{pid}/running',
      handler: async (ctx) => {
        const q = queryOf(ctx, ['timeout']);
        const gid = gidOf(ctx);
        const pid = pidOf(ctx);
        await kernel.getProcess(ctx.who, gid, pid);
        const [p] = await kernel.waitRunning(ctx.who, gid, [pid], parseSeconds(q.get('timeout'), 'timeout', 30, 300));
        return { status: 200, body: { process: p } };
      },
    },
  ];
}
