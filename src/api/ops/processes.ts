import { RackError } from '../../common/errors.js';
import { PROCESS_FIELDS, PROCESS_STATUSES, type ProcessField, type ProcessStatus, type SignalName } from '../../protocol/process.js';
import { defineOp, type Operation } from '../operation.js';
import { MAX_GRACE_SECONDS, MAX_WAIT_SECONDS, empty, object, processesOut, processListOut, processOut, ref } from '../schemas.js';
import type { Services } from './services.js';

const MAX_CONSOLE_LINES = 10_000;
/** A queued fork waits at most a week. */
const MAX_QUEUE_SECONDS = 7 * 24 * 3600;
const seconds = (max: number, description: string) => ({ type: 'number', minimum: 0, maximum: max, description });

/** A fork's `userdata` (base64, as in Nova's API) -> the raw text. */
export function decodeUserdata(b64: string | undefined): string | undefined {
  if (b64 === undefined) return undefined;
  const buf = Buffer.from(b64, 'base64');
  if (buf.toString('base64').replace(/=+$/, '') !== b64.replace(/=+$/, '')) throw new RackError('bad_request', '"userdata" must be base64');
  return buf.toString('utf8');
}

/** Process Management: the process table's system calls. */
export function processOps({ kernel }: Services): Operation[] {
  const P = '/v1/groups/{gid}/processes';
  const target = { gid: ref('Gid'), pid: ref('Pid') };
  return [
    defineOp({
      name: 'self',
      summary: 'The calling process (process token only)',
      policy: 'process',
      input: { properties: { gid: ref('Gid'), pid: ref('Pid') } },
      output: processOut,
      idempotent: true,
      rest: { method: 'GET', path: '/v1/self' },
      handler: async (ctx, input: { pid: number }) => ({ process: await kernel.getProcess(ctx.gid, input.pid) }),
    }),
    defineOp({
      name: 'list',
      summary: 'List processes',
      policy: 'group',
      input: {
        properties: {
          gid: ref('Gid'),
          ppid: ref('Pid'),
          status: { type: 'array', items: { type: 'string', enum: PROCESS_STATUSES }, maxItems: PROCESS_STATUSES.length, description: 'comma-separated statuses' },
          fields: {
            type: 'array',
            items: { type: 'string', enum: PROCESS_FIELDS },
            minItems: 1,
            maxItems: PROCESS_FIELDS.length,
            uniqueItems: true,
            description: 'comma-separated: only these fields of each process, in their usual order (default all; `rack ps` asks for the ones it shows)',
          },
        },
        required: ['gid'],
      },
      output: processListOut,
      errors: ['not_found'],
      idempotent: true,
      rest: { method: 'GET', path: P, query: ['ppid', 'status', 'fields'] },
      handler: async (ctx, input: { ppid?: number; status?: ProcessStatus[]; fields?: ProcessField[] }) => ({
        processes: await kernel.listProcessesText(ctx.gid, { ppid: input.ppid, status: input.status }, input.fields),
      }),
    }),
    defineOp({
      name: 'fork',
      summary: 'Fork: boot a root process (admin), or count children of ppid',
      policy: 'group',
      input: {
        properties: {
          gid: ref('Gid'),
          ppid: { type: ['integer', 'null'], minimum: 0, maximum: 2147483647 },
          name: ref('Name'),
          template: ref('Name'),
          flavor: ref('Name'),
          args: ref('Args'),
          userdata: ref('UserData'),
          count: { type: 'integer', minimum: 1 },
          priority: { type: 'integer', minimum: -1000, maximum: 1000, description: 'queue order when the pools are full: higher boots first (default 0)' },
          timeout: seconds(MAX_QUEUE_SECONDS, 'how long a QUEUED process waits for capacity before it ends in ERROR (default: as long as it takes)'),
          no_queue: { type: 'boolean', description: 'fail with no_capacity instead of queueing' },
          wait_running: seconds(MAX_WAIT_SECONDS, 'answer only once every new app runs (seconds to wait)'),
          wait_ready: seconds(MAX_WAIT_SECONDS, 'answer only once every new app is ready (READY=1 on its NOTIFY_SOCKET, or started when its template does not use readiness)'),
        },
        required: ['gid'],
      },
      output: processesOut,
      errors: ['not_found', 'conflict', 'payload_too_large', 'timeout', 'quota_exceeded', 'no_capacity', 'compute_error'],
      idempotent: false,
      durable: true,
      rest: { method: 'POST', path: P, status: 202, query: ['wait_running', 'wait_ready'], body: { root: 'process', fields: ['ppid', 'name', 'template', 'flavor', 'args', 'userdata', 'count', 'priority', 'timeout', 'no_queue'] } },
      handler: async (ctx, input: { gid: string; wait_running?: number; wait_ready?: number; userdata?: string; timeout?: number; no_queue?: boolean }) => {
        const { gid: _gid, wait_running, wait_ready, userdata, timeout, no_queue, ...rest } = input;
        const created = await kernel.fork(ctx.who, ctx.gid, { ...rest, userdata: decodeUserdata(userdata), timeoutMs: timeout === undefined ? undefined : Math.round(timeout * 1000), noQueue: no_queue }, ctx.rid);
        const wait = wait_ready ?? wait_running;
        if (wait === undefined) return { processes: created };
        return { processes: await kernel.waitRunning(ctx.gid, created.map((c) => c.pid), wait * 1000, wait_ready !== undefined) };
      },
    }),
    defineOp({
      name: 'show',
      summary: 'Show a process',
      policy: 'group',
      input: { properties: target, required: ['gid', 'pid'] },
      output: processOut,
      errors: ['not_found'],
      idempotent: true,
      rest: { method: 'GET', path: `${P}/{pid}` },
      handler: async (ctx, input: { pid: number }) => ({ process: await kernel.getProcess(ctx.gid, input.pid) }),
    }),
    defineOp({
      name: 'status',
      summary: "Set the app's status text (the process itself)",
      policy: 'self',
      input: { properties: { ...target, app_status: ref('Text') }, required: ['gid', 'app_status'] },
      output: processOut,
      errors: ['not_found'],
      idempotent: true,
      // The guest agent relays the app's sd_notify STATUS= lines.
      agent: true,
      rest: { method: 'PUT', path: `${P}/{pid}`, body: { root: 'process', fields: ['app_status'] } },
      handler: async (ctx, input: { pid: number; app_status: string }) => ({ process: await kernel.setAppStatus(ctx.gid, input.pid, input.app_status) }),
    }),
    defineOp({
      name: 'kill',
      summary: 'Kill the process and its descendants, deepest first (TERM with a grace period, or KILL)',
      policy: 'group',
      input: {
        properties: {
          ...target,
          signal: { type: 'string', enum: ['TERM', 'KILL'], default: 'TERM', description: 'other signals: the signal operation' },
          grace: seconds(MAX_GRACE_SECONDS, 'seconds before TERM turns into destroy'),
        },
        required: ['gid', 'pid'],
      },
      output: object({ pids: { type: 'array', items: { type: 'integer' } } }, ['pids']),
      errors: ['not_found'],
      idempotent: true,
      agent: true,
      rest: { method: 'DELETE', path: `${P}/{pid}`, status: 202, query: ['signal', 'grace'], wrap: 'kill' },
      handler: async (ctx, input: { pid: number; signal?: 'TERM' | 'KILL'; grace?: number }) => ({
        pids: await kernel.kill(ctx.who, ctx.gid, input.pid, { signal: input.signal ?? 'TERM', graceMs: input.grace === undefined ? undefined : Math.round(input.grace * 1000) }),
      }),
    }),
    defineOp({
      name: 'signal',
      summary: "Deliver a signal to the process's app",
      policy: 'group',
      input: { properties: { ...target, name: ref('Signal') }, required: ['gid', 'pid', 'name'] },
      output: empty,
      errors: ['not_found', 'conflict'],
      idempotent: false,
      rest: { method: 'POST', path: `${P}/{pid}/signal`, status: 202, body: { root: 'signal', fields: ['name'] } },
      handler: async (ctx, input: { pid: number; name: Exclude<SignalName, 'KILL'> }) => {
        await kernel.signal(ctx.who, ctx.gid, input.pid, input.name);
        return {};
      },
    }),
    defineOp({
      name: 'exit',
      summary: "Report the app's exit code (the process itself, usually its agent)",
      policy: 'self',
      input: { properties: { ...target, code: { type: 'integer', minimum: 0, maximum: 255 } }, required: ['gid', 'code'] },
      output: processOut,
      errors: ['not_found'],
      idempotent: true,
      rest: { method: 'POST', path: `${P}/{pid}/exit`, body: { root: 'exit', fields: ['code'] } },
      handler: async (ctx, input: { pid: number; code: number }) => ({ process: await kernel.exit(ctx.gid, input.pid, input.code) }),
    }),
    defineOp({
      name: 'wait',
      summary: 'Wait for a child of ppid to end (long-poll)',
      policy: 'self',
      self: 'ppid',
      input: {
        properties: { gid: ref('Gid'), ppid: ref('Pid'), pid: { ...ref('Pid'), description: 'the child; default any child' }, timeout: seconds(MAX_WAIT_SECONDS, 'seconds, default 30') },
        required: ['gid'],
      },
      output: ref('WaitResult'),
      errors: ['not_found', 'no_child', 'timeout'],
      idempotent: false,
      durable: true,
      rest: { method: 'GET', path: `${P}/{ppid}/wait`, query: ['pid', 'timeout'], wrap: 'wait' },
      handler: async (ctx, input: { ppid: number; pid?: number; timeout?: number }) =>
        kernel.wait(ctx.gid, input.ppid, { pid: input.pid, timeoutMs: Math.round((input.timeout ?? 30) * 1000), rid: ctx.rid }),
    }),
    defineOp({
      name: 'running',
      summary: "Wait until the process's app reports running, or with ready=true until it is ready (long-poll)",
      policy: 'group',
      input: { properties: { ...target, timeout: seconds(MAX_WAIT_SECONDS, 'seconds, default 30'), ready: { type: 'boolean', description: 'wait until the app is ready (default: running)' } }, required: ['gid', 'pid'] },
      output: processOut,
      errors: ['not_found', 'timeout', 'conflict'],
      idempotent: true,
      rest: { method: 'GET', path: `${P}/{pid}/running`, query: ['timeout', 'ready'] },
      handler: async (ctx, input: { pid: number; timeout?: number; ready?: boolean }) => {
        await kernel.getProcess(ctx.gid, input.pid);
        const [p] = await kernel.waitRunning(ctx.gid, [input.pid], Math.round((input.timeout ?? 30) * 1000), input.ready ?? false);
        return { process: p };
      },
    }),
    defineOp({
      name: 'console',
      summary: "The tail of the process's VM console (its guest agent's log, with its app's output), as nova console-log shows it",
      policy: 'group',
      input: { properties: { ...target, lines: { type: 'integer', minimum: 1, maximum: MAX_CONSOLE_LINES, description: 'how many of the last lines, default 100' } }, required: ['gid', 'pid'] },
      output: object({ output: { type: 'string' } }, ['output']),
      errors: ['not_found'],
      idempotent: true,
      rest: { method: 'GET', path: `${P}/{pid}/console`, query: ['lines'], wrap: 'console' },
      handler: async (ctx, input: { pid: number; lines?: number }) => ({ output: await kernel.console(ctx.who, ctx.gid, input.pid, input.lines ?? 100) }),
    }),
  ];
}
