import { RackError } from '../../common/errors.js';
import type { IpcKind, Monitor } from '../../monitor/monitor.js';
import { isTerminal } from '../../protocol/process.js';
import type { UsageSample } from '../../protocol/resources.js';
import { defineOp, type Operation } from '../operation.js';
import { empty, object, ref } from '../schemas.js';
import { connOf } from './session.js';
import type { Services } from './services.js';

const BYTES = { type: 'integer', minimum: 0, maximum: 2 ** 53 - 1 } as const;
const PCT = (max: number) => ({ type: 'number', minimum: 0, maximum: max }) as const;
const HISTORY = { type: 'integer', minimum: 0, maximum: 720, description: 'how many earlier samples to include (default 0)' };

/** What a guest agent may send: every field bounded, nothing else. */
const SAMPLE = {
  t: { type: 'integer', minimum: 0, maximum: 2 ** 53 - 1 },
  cpu_pct: PCT(100),
  cpus: { type: 'integer', minimum: 1, maximum: 4096 },
  load: { type: 'array', minItems: 3, maxItems: 3, items: PCT(1_000_000) },
  mem_total: BYTES,
  mem_available: BYTES,
  disk_total: BYTES,
  disk_used: BYTES,
  net_rx: BYTES,
  net_tx: BYTES,
  app_procs: { type: 'integer', minimum: 0, maximum: 10_000_000 },
  app_cpu_pct: PCT(409_600),
  app_rss: BYTES,
};

/** Resource Monitoring: samples from guest agents, and what they show per process and per group. */
export function monitorOps({ kernel, monitor }: Services): Operation[] {
  const P = '/v1/groups/{gid}/processes/{pid}';
  return [
    defineOp({
      name: 'usage.report',
      summary: "The guest agent reports a sample of its VM and its app's process group",
      policy: 'process',
      input: { properties: { gid: ref('Gid'), pid: ref('Pid'), ...SAMPLE }, required: Object.keys(SAMPLE) },
      output: empty,
      // A sample that missed its moment is worth nothing: never sent again.
      idempotent: false,
      agent: true,
      rest: null,
      wsOnly: 'only a guest agent, on its session, reports samples',
      handler: async (ctx, input: UsageSample & { gid: string; pid: number }) => {
        if (connOf(ctx).role !== 'agent') throw new RackError('forbidden', 'only a guest agent (hello role=agent) reports usage');
        const p = await kernel.getProcess(ctx.gid, input.pid);
        // An ended process's track is gone and stays gone (bounded memory).
        if (isTerminal(p.status)) return {};
        const { gid: _g, pid, ...sample } = input;
        monitor.record(ctx.gid, pid, sample);
        return {};
      },
    }),
    defineOp({
      name: 'usage',
      summary: "A process's latest usage sample (its VM and its app) and, if asked, the ones before it",
      policy: 'group',
      input: { properties: { gid: ref('Gid'), pid: ref('Pid'), history: HISTORY }, required: ['gid', 'pid'] },
      output: ref('ProcessUsage'),
      errors: ['not_found'],
      idempotent: true,
      rest: { method: 'GET', path: `${P}/usage`, query: ['history'], wrap: 'usage' },
      handler: async (ctx, input: { pid: number; history?: number }) => {
        await kernel.getProcess(ctx.gid, input.pid);
        return monitor.process(ctx.gid, input.pid, input.history ?? 0);
      },
    }),
    defineOp({
      name: 'usage.group',
      summary: "The group's roll-up: sums of its processes' latest samples, each process's usage, its IPC counters",
      policy: 'group',
      input: { properties: { gid: ref('Gid'), history: HISTORY }, required: ['gid'] },
      output: ref('GroupUsage'),
      errors: ['not_found'],
      idempotent: true,
      rest: { method: 'GET', path: '/v1/groups/{gid}/usage', query: ['history'], wrap: 'usage' },
      handler: async (ctx, input: { history?: number }) => {
        await kernel.getGroup(ctx.gid);
        return monitor.group(ctx.gid, input.history ?? 0);
      },
    }),
    defineOp({
      name: 'usage.subscribe',
      summary: "Push every usage sample of the group's processes to this connection",
      policy: 'group',
      input: { properties: { gid: ref('Gid') }, required: ['gid'] },
      output: object({}),
      errors: ['not_found'],
      idempotent: true,
      rest: null,
      wsOnly: 'samples are pushed on the connection',
      handler: async (ctx) => {
        const conn = connOf(ctx);
        await kernel.getGroup(ctx.gid);
        const key = `usage:${ctx.gid}`;
        if (conn.state.has(key)) return {};
        const listener = (gid: string, pid: number, usage: unknown): void => {
          if (gid === ctx.gid) conn.push({ event: 'usage', gid, pid, usage });
        };
        conn.state.set(key, listener);
        monitor.on('sample', listener);
        conn.onClose(() => monitor.off('sample', listener));
        return {};
      },
    }),
  ];
}

/** Which IPC counter an operation adds to, and by how much (null: none). */
function ipcOf(name: string, input: Record<string, unknown>): [IpcKind, number] | null {
  if (name === 'send') return ['messages', 1];
  if (name === 'send.batch') return ['messages', Array.isArray(input.messages) ? input.messages.length : 0];
  if (name.startsWith('shm.') && name !== 'shm.watch') return ['shm', 1];
  if (name === 'pipe.write' || name === 'pipe.put') return ['pipes', 1];
  if (name.startsWith('files.')) return ['files', 1];
  return null;
}

/** The operation, counting its successful calls into the group's IPC counters. */
export function countingIpc(op: Operation, monitor: Monitor): Operation {
  if (!ipcOf(op.name, {})) return op;
  return {
    ...op,
    handler: async (ctx, input) => {
      const result = await op.handler(ctx, input);
      const c = ipcOf(op.name, input as Record<string, unknown>);
      if (c && ctx.gid) monitor.countIpc(ctx.gid, c[0], c[1]);
      return result;
    },
  };
}
