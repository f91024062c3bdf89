import type { IncomingMessage, ServerResponse } from 'node:http';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import type { Principal } from '../auth/auth.js';
import { requireAdmin, requireGroup, requireSelf } from '../auth/policy.js';
import { RackError, type ErrorCode } from '../common/errors.js';
import type { Answers } from './answers.js';
import type { Connection } from './connection.js';
import { COMPONENTS, type Schema } from './schemas.js';

/**
 * Who may call an operation, checked before its handler runs (what depends on the process tree
 * is the kernel's to check):
 * - any: any valid token;
 * - admin: the admin token only;
 * - group: the admin, or a process of the group the call names (`gid`, its own by default);
 * - self: the admin, or the process the call names itself (`pid`, or the op's `self` field);
 * - process: a process token only, acting as itself.
 */
export type Policy = 'any' | 'admin' | 'group' | 'self' | 'process';

export interface OpContext {
  who: Principal;
  /** The caller's id for this request (`rid` on the WebSocket, Idempotency-Key over REST), keyed to the caller. */
  rid: string | null;
  /** The group the call acts in ('' for ops outside any group). */
  gid: string;
  /** The WebSocket connection the call came on; null over REST. */
  conn: Connection | null;
  /** The HTTP exchange, for REST ops that stream their body or answer (files, pipes). */
  http: { req: IncomingMessage; res: ServerResponse } | null;
}

export interface RestBinding {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE';
  /** The path as in the OpenAPI document, e.g. `/v1/groups/{gid}/processes/{pid}`. */
  path: string;
  /** Success status (200 by default). */
  status?: number;
  /** Input fields taken from the query string. */
  query?: readonly string[];
  /**
   * Input fields in a JSON body, with the body's root key (`{"process": {...}}`) or '' for a flat
   * body. Without it the operation takes no body.
   */
  body?: { root: string; fields: readonly string[]; optional?: boolean };
  /** Path parameters named otherwise in the input (path name -> input field). */
  params?: Readonly<Record<string, string>>;
  /** Input fields from request headers (field -> header name). */
  headers?: Readonly<Record<string, string>>;
  /** The REST answer is `{[wrap]: result}`. */
  wrap?: string;
  /** An application/octet-stream body of at most this many bytes is taken whole as the input's `$payload`. */
  payload?: number;
  /** The handler streams the request body and/or writes the answer itself (ctx.http): files, pipes. */
  raw?: boolean;
  /** Content types of a raw operation's body and answer, for the OpenAPI document. */
  rawRequest?: string;
  rawResponse?: string;
  /** Other answers a raw handler writes itself (status -> description, an octet-stream body). */
  also?: Readonly<Record<string, string>>;
}

export interface Operation<I = any, O = any> {
  /** The WebSocket op name, e.g. `fork`, `shm.set`. */
  name: string;
  summary: string;
  policy: Policy;
  /** The input's properties and required ones: a WebSocket frame's fields; path + query + body over REST. */
  input: { properties: Record<string, Schema>; required?: readonly string[] };
  /** The result (WebSocket `result`; the REST body, wrapped when `rest.wrap` says so). */
  output?: Schema;
  /** Answers beyond 400/401/403 that this op can give. */
  errors?: readonly ErrorCode[];
  /** For `self`: the field naming the process (default `pid`); a process token's own pid fills it in. */
  self?: string;
  /**
   * Whether doing it twice changes nothing. A client sends every call whose answer was lost
   * again, with the same request id: for the others the kernel keeps the first answer (in
   * memory, or in the store when `durable`) and gives it again instead of doing it twice.
   */
  idempotent: boolean;
  /** The store keeps this op's answer by request id, in the same step as its change (it survives a restart). */
  durable?: boolean;
  /**
   * It acts on the calling connection (a pipe end it opens or reads): sent again on another
   * connection it would be another request, so clients do not resend it; they take the end up
   * again with pipe.attach instead.
   */
  connection?: boolean;
  /** A guest agent's token may call it (for its own process only): its channel, its reports (app state, status, usage), its self-kill. */
  agent?: boolean;
  /** Over REST; null when it exists only on a WebSocket (say why in `wsOnly`). */
  rest: RestBinding | null;
  /** Why there is no REST route (a connection-bound op). */
  wsOnly?: string;
  /** false when it exists only over REST (a streamed body). */
  ws?: boolean;
  handler(ctx: OpContext, input: I): Promise<O>;
}

export function defineOp<I = any, O = any>(op: Operation<I, O>): Operation<I, O> {
  return op;
}

// verbose: errors carry their schema, so a message can name both bounds of a range.
const ajv = new Ajv2020({ allErrors: false, strict: false, verbose: true });
// The shared schemas are compiled once, and every operation's input refers to them.
const DEFS = 'rack:defs';
ajv.addSchema({ $id: DEFS, $defs: COMPONENTS });

export interface CompiledOp {
  op: Operation;
  /** The input's validator, compiled on first use (a kernel starts without compiling fifty). */
  readonly validate: ValidateFunction;
  /** Coerces a path or query string to the type the input schema wants (strictly: digits are digits). */
  coerce(field: string, raw: string): unknown;
}

/** The input's full schema: an object of exactly these fields, the shared schemas as $defs. */
export function inputSchema(op: Operation): Schema {
  return {
    type: 'object',
    additionalProperties: false,
    properties: op.input.properties,
    ...(op.input.required?.length ? { required: op.input.required } : {}),
  };
}

export function compile(op: Operation): CompiledOp {
  let validate: ValidateFunction | null = null;
  const typeOf = (field: string): string => {
    let s = op.input.properties[field] as Schema | undefined;
    if (s && typeof s.$ref === 'string') s = (COMPONENTS as Record<string, Schema>)[s.$ref.replace('#/$defs/', '')];
    const t = s?.type;
    return typeof t === 'string' ? t : Array.isArray(t) ? String(t.find((x) => x !== 'null')) : 'string';
  };
  return {
    op,
    get validate(): ValidateFunction {
      return (validate ??= ajv.compile(JSON.parse(JSON.stringify(inputSchema(op)).replaceAll('"#/$defs/', `"${DEFS}#/$defs/`)) as Schema));
    },
    coerce(field, raw) {
      switch (typeOf(field)) {
        case 'integer':
          return /^-?[0-9]{1,16}$/.test(raw) ? Number(raw) : raw;
        case 'number':
          return /^-?[0-9]{1,16}(\.[0-9]{1,9})?$/.test(raw) ? Number(raw) : raw;
        case 'boolean':
          return raw === 'true' ? true : raw === 'false' ? false : raw;
        case 'array':
          return raw === '' ? [] : raw.split(',');
        default:
          return raw;
      }
    },
  };
}

/** `/messages/0/to` -> `messages[0].to`. */
function fieldPath(pointer: string): string {
  return pointer
    .slice(1)
    .split('/')
    .filter(Boolean)
    .map((seg, i) => (/^[0-9]+$/.test(seg) ? `[${seg}]` : i === 0 ? seg : `.${seg}`))
    .join('');
}

/** A range as words: "from 0 to 300", "at least 1", "at most 255". */
function range(lo: unknown, hi: unknown): string {
  if (typeof lo === 'number' && typeof hi === 'number') return `from ${lo} to ${hi}`;
  if (typeof lo === 'number') return `at least ${lo}`;
  return `at most ${String(hi)}`;
}

/** One sentence naming the first offending field; the same over REST and WebSocket. */
export function describeError(e: ErrorObject | undefined): string {
  if (!e) return 'the input is invalid';
  const path = fieldPath(e.instancePath);
  const field = path === '' ? 'the input' : `"${path}"`;
  const p = e.params as Record<string, unknown>;
  const s = (e.parentSchema ?? {}) as Record<string, unknown>;
  const list = (): string => `${field} must be a list of ${range(s.minItems, s.maxItems)} items`;
  switch (e.keyword) {
    case 'additionalProperties':
      return `${path === '' ? '' : `${path}: `}unknown field "${String(p.additionalProperty).slice(0, 40)}"`;
    case 'required':
      return `${path === '' ? '' : `${path}: `}"${String(p.missingProperty)}" is required`;
    case 'enum':
      return `${field} must be one of ${(p.allowedValues as unknown[]).join(', ')}`;
    case 'propertyNames':
      return `${field} has a key that is not a valid name (letters, digits, _; not starting with a digit or rack_)`;
    case 'type':
      if (p.type === 'array' && (s.minItems !== undefined || s.maxItems !== undefined)) return list();
      return `${field} must be ${p.type === 'integer' ? 'an integer' : p.type === 'number' ? 'a number' : `of type ${String(p.type)}`}${
        s.minimum !== undefined || s.maximum !== undefined ? ` ${range(s.minimum, s.maximum)}` : ''
      }`;
    case 'minItems':
    case 'maxItems':
      return list();
    case 'minimum':
    case 'maximum':
      return `${field} must be ${range(s.minimum, s.maximum)}`;
    case 'exclusiveMinimum':
      return `${field} must be greater than ${String(s.exclusiveMinimum)}${s.maximum !== undefined ? ` and at most ${String(s.maximum)}` : ''}`;
    case 'minLength':
    case 'maxLength':
      return `${field} must be a string of ${range(s.minLength, s.maxLength)} characters`;
    case 'maxProperties':
      return `${field} has more than ${String(s.maxProperties)} keys`;
    case 'pattern':
      return `${field} has characters that are not allowed`;
    default:
      return `${field} ${e.message ?? 'is invalid'}`;
  }
}

/**
 * Runs an operation's handler, once per request id: a request sent again gets the first answer.
 * Idempotent ops just run again; `durable` ones are kept by the store itself.
 */
export function invoke(c: CompiledOp, ctx: OpContext, input: Record<string, unknown>, answers: Answers): Promise<unknown> {
  const run = (): Promise<unknown> => c.op.handler(ctx, input);
  if (ctx.rid === null || c.op.idempotent || c.op.durable || c.op.connection || c.op.rest?.raw) return run();
  return answers.once(ctx.rid, run);
}

/** Validates an assembled input, then applies the policy; answers the group the call acts in. */
export function admit(c: CompiledOp, who: Principal, input: Record<string, unknown>): string {
  const { op } = c;
  // A process token acts in its own group, and as itself where the op names a process.
  if (who.kind === 'process') {
    if ('gid' in op.input.properties && input.gid === undefined) input.gid = who.gid;
    const self = op.self ?? 'pid';
    if ((op.policy === 'self' || op.policy === 'process') && self in op.input.properties && input[self] === undefined) input[self] = who.pid;
  }
  if (!c.validate(input)) throw new RackError('bad_request', describeError(c.validate.errors?.[0]));
  if (who.kind === 'process' && who.role === 'agent' && (!op.agent || (typeof input.pid === 'number' && input.pid !== who.pid))) {
    throw new RackError('forbidden', `a guest agent's token may only keep its channel and report about its own process, not call ${op.name}`);
  }
  const gid = typeof input.gid === 'string' ? input.gid : '';
  switch (op.policy) {
    case 'admin':
      requireAdmin(who, op.name);
      break;
    case 'group':
      requireGroupOf(op, who, gid);
      break;
    case 'self':
    case 'process': {
      if (op.policy === 'process' && who.kind !== 'process') throw new RackError('bad_request', `${op.name} needs a process token`);
      requireGroupOf(op, who, gid);
      const self = op.self ?? 'pid';
      if (typeof input[self] === 'number') requireSelf(who, gid, input[self] as number, `call ${op.name}`);
      else if (who.kind === 'admin' && self in op.input.properties) throw new RackError('bad_request', `"${self}" is required`);
      break;
    }
  }
  return gid;
}

function requireGroupOf(op: Operation, who: Principal, gid: string): void {
  if (!('gid' in op.input.properties)) return;
  if (gid === '') throw new RackError('bad_request', '"gid" is required');
  requireGroup(who, gid);
}
