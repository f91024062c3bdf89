/**
 * The JSON Schemas every operation is built from: named once here, referenced by the operations
 * (`ref('Process')`), compiled for validation, and emitted as `components.schemas` of the OpenAPI
 * document. This file and the operations are the one source of truth; openapi.yaml is generated.
 */
import { APP_STATES, PROCESS_STATUSES, QUOTA_NAMES, SIGNALS } from '../protocol/process.js';

export type Schema = Record<string, unknown>;

/** A reference to a named schema below. */
export function ref(name: keyof typeof COMPONENTS): Schema {
  return { $ref: `#/$defs/${name}` };
}

const ID = { type: 'integer', minimum: 0, maximum: 2147483647 } as const;

/** Long polls are bounded by the HTTP server's idle timeout, on both transports alike. */
export const MAX_WAIT_SECONDS = 300;
export const MAX_GRACE_SECONDS = 3600;
export const MAX_TTL_SECONDS = 31_536_000;

/** A process as the API shows it: all of these (Process), or some (ProcessFields, the list with `fields`). */
const PROCESS_PROPERTIES: Record<string, Schema> = {
  gid: { type: 'string' },
  pid: { type: 'integer' },
  ppid: { type: ['integer', 'null'] },
  name: { type: 'string' },
  template: { type: ['string', 'null'] },
  flavor: { type: ['string', 'null'] },
  args: { type: 'object', additionalProperties: { type: 'string' } },
  status: { type: 'string', enum: PROCESS_STATUSES },
  app_state: { type: 'string', enum: APP_STATES },
  app_status: { type: 'string' },
  exit_code: { type: ['integer', 'null'] },
  signal: { type: ['string', 'null'] },
  error: { type: ['string', 'null'] },
  compute_id: { type: ['string', 'null'] },
  created_at: { type: 'string' },
  updated_at: { type: 'string' },
  ended_at: { type: ['string', 'null'] },
};

export const COMPONENTS = {
  Error: {
    type: 'object',
    required: ['error'],
    properties: {
      error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' } } },
    },
  },
  Gid: { type: 'string', pattern: '^[A-Za-z0-9-]{1,64}$', description: 'a group id' },
  Pid: { ...ID, description: 'a process id within its group' },
  Name: { type: 'string', minLength: 1, maxLength: 255 },
  Text: { type: 'string', maxLength: 255 },
  Seconds: { type: 'number', minimum: 0, maximum: MAX_WAIT_SECONDS, description: `seconds to wait, at most ${MAX_WAIT_SECONDS}` },
  Args: {
    type: 'object',
    maxProperties: 64,
    propertyNames: { pattern: '^(rack_role|(?![Rr][Aa][Cc][Kk]_)[A-Za-z_][A-Za-z0-9_]{0,63})$' },
    additionalProperties: { type: 'string', maxLength: 255 },
  },
  Signal: { type: 'string', enum: SIGNALS.filter((s) => s !== 'KILL') },
  UserData: {
    type: 'string',
    maxLength: 65535,
    pattern: '^[A-Za-z0-9+/]*={0,2}$',
    description: "base64 user_data, at most 64 KiB once encoded (Nova's limit); the process token is added to it",
  },
  ShmKey: { type: 'string', minLength: 1, maxLength: 255, pattern: '^[^\\u0000-\\u001f\\u007f]*$' },
  Prefix: { type: 'string', maxLength: 255 },
  Quotas: {
    type: 'object',
    additionalProperties: false,
    description: 'what the group may hold: live processes, forks in all, bytes of shared memory and of files, messages and bytes per mailbox, open pipes',
    properties: Object.fromEntries(QUOTA_NAMES.map((q) => [q, { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER }])),
  },
  Group: {
    type: 'object',
    required: ['gid', 'name', 'description', 'template', 'flavor', 'args', 'quotas', 'created_at'],
    properties: {
      gid: { type: 'string' },
      name: { type: 'string' },
      description: { type: 'string' },
      template: { type: ['string', 'null'] },
      flavor: { type: ['string', 'null'] },
      args: { type: 'object', additionalProperties: { type: 'string' } },
      quotas: { type: 'object', additionalProperties: { type: 'integer' } },
      created_at: { type: 'string' },
    },
  },
  Process: {
    type: 'object',
    required: ['gid', 'pid', 'ppid', 'name', 'template', 'flavor', 'args', 'status', 'app_state', 'app_status', 'exit_code', 'signal', 'error', 'compute_id', 'created_at', 'updated_at', 'ended_at'],
    properties: PROCESS_PROPERTIES,
  },
  ProcessFields: {
    type: 'object',
    description: 'Some fields of a process: what the process list answers with `fields`',
    additionalProperties: false,
    properties: PROCESS_PROPERTIES,
  },
  WaitResult: {
    type: 'object',
    required: ['gid', 'pid', 'ppid', 'status', 'code', 'signal', 'error'],
    properties: {
      gid: { type: 'string' },
      pid: { type: 'integer' },
      ppid: { type: ['integer', 'null'] },
      status: { type: 'string', enum: ['exited', 'killed', 'error'] },
      code: { type: ['integer', 'null'] },
      signal: { type: ['string', 'null'] },
      error: { type: ['string', 'null'] },
    },
  },
  Capacity: {
    type: 'object',
    additionalProperties: false,
    description: "a pool's bounds; a missing or null bound is none",
    properties: {
      instances: { type: ['integer', 'null'], minimum: 0, maximum: 1_000_000 },
      vcpus: { type: ['number', 'null'], minimum: 0, maximum: 10_000_000 },
      ram_mb: { type: ['integer', 'null'], minimum: 0, maximum: 1_099_511_627_776 },
    },
  },
  Resources: {
    type: 'object',
    required: ['instances', 'vcpus', 'ram_mb'],
    properties: { instances: { type: 'number' }, vcpus: { type: 'number' }, ram_mb: { type: 'number' } },
  },
  PoolView: {
    type: 'object',
    required: ['capacity', 'used', 'free', 'queued'],
    properties: {
      capacity: { type: 'object', description: 'null: unbounded' },
      used: { $ref: '#/$defs/Resources' },
      free: { type: 'object', description: 'null: unbounded' },
      queued: { type: 'integer' },
    },
  },
  QueuedFork: {
    type: 'object',
    required: ['gid', 'pid', 'position', 'priority', 'deadline', 'size', 'waiting_for'],
    properties: {
      gid: { type: 'string' },
      pid: { type: 'integer' },
      position: { type: 'integer', description: "1-based place in the group's queue" },
      priority: { type: 'integer' },
      deadline: { type: ['string', 'null'] },
      size: { $ref: '#/$defs/Resources' },
      waiting_for: { type: 'string', enum: ['group', 'kernel'] },
    },
  },
  Usage: {
    type: 'object',
    description: "a sample of the process's VM and app, as its guest agent took it, with the network rates since the one before",
    required: ['t', 'cpu_pct', 'cpus', 'load', 'mem_total', 'mem_available', 'disk_total', 'disk_used', 'net_rx', 'net_tx', 'app_procs', 'app_cpu_pct', 'app_rss'],
    properties: {
      t: { type: 'integer', description: 'epoch ms' },
      cpu_pct: { type: 'number', description: 'the VM: % of all its CPUs busy' },
      cpus: { type: 'integer' },
      load: { type: 'array', items: { type: 'number' } },
      mem_total: { type: 'integer' },
      mem_available: { type: 'integer' },
      disk_total: { type: 'integer' },
      disk_used: { type: 'integer' },
      net_rx: { type: 'integer' },
      net_tx: { type: 'integer' },
      net_rx_rate: { type: 'number' },
      net_tx_rate: { type: 'number' },
      app_procs: { type: 'integer' },
      app_cpu_pct: { type: 'number', description: "the app's process group: % of one CPU" },
      app_rss: { type: 'integer' },
    },
  },
  ProcessUsage: {
    type: 'object',
    required: ['gid', 'pid', 'latest', 'history'],
    properties: {
      gid: { type: 'string' },
      pid: { type: 'integer' },
      latest: { anyOf: [{ $ref: '#/$defs/Usage' }, { type: 'null' }] },
      history: { type: 'array', items: { $ref: '#/$defs/Usage' } },
    },
  },
  GroupUsage: {
    type: 'object',
    required: ['gid', 'reporting', 'app_cpu_pct', 'app_rss', 'mem_used', 'net_rx_rate', 'net_tx_rate', 'processes', 'ipc'],
    properties: {
      gid: { type: 'string' },
      reporting: { type: 'integer' },
      app_cpu_pct: { type: 'number' },
      app_rss: { type: 'number' },
      mem_used: { type: 'number' },
      net_rx_rate: { type: 'number' },
      net_tx_rate: { type: 'number' },
      processes: { type: 'array', items: { $ref: '#/$defs/ProcessUsage' } },
      ipc: {
        type: 'object',
        description: "the group's IPC operations since the kernel started",
        required: ['messages', 'shm', 'pipes', 'files'],
        properties: { messages: { type: 'integer' }, shm: { type: 'integer' }, pipes: { type: 'integer' }, files: { type: 'integer' } },
      },
    },
  },
  FileInfo: {
    type: 'object',
    required: ['path', 'size', 'etag', 'modified'],
    properties: { path: { type: 'string' }, size: { type: 'integer' }, etag: { type: 'string' }, modified: { type: 'string' } },
  },
} satisfies Record<string, Schema>;

/** An object schema: these properties, these required, nothing else. */
export function object(properties: Record<string, Schema>, required: string[] = []): Schema {
  return { type: 'object', additionalProperties: false, properties, ...(required.length ? { required } : {}) };
}

export const processOut = object({ process: ref('Process') }, ['process']);
export const processesOut = object({ processes: { type: 'array', items: ref('Process') } }, ['processes']);
/** The process list: whole processes, or (asked with `fields`) only those fields of each. */
export const processListOut = object({ processes: { type: 'array', items: { anyOf: [ref('Process'), ref('ProcessFields')] } } }, ['processes']);
export const empty = object({});
