import yaml from 'js-yaml';
import type { ErrorCode } from '../common/errors.js';
import { RackError } from '../common/errors.js';
import { inputSchema, type Operation } from './operation.js';
import { operations, type Services } from './ops/index.js';
import { COMPONENTS, type Schema } from './schemas.js';

/**
 * openapi.yaml's text: the document of the operation table. `npm run openapi` writes it to
 * src/api/openapi.yaml; a test checks that the committed file is up to date.
 */
export function openApiYaml(): string {
  // The table's definitions only: no handler runs, so no service is needed.
  const doc = openApiDocument(operations({} as Services));
  return `# Generated from the kernel's operation table (src/api/ops) by \`npm run openapi\`: do not edit.\n${yaml.dump(doc, { lineWidth: 120, noRefs: true })}`;
}

/** docs/operations.md's text: every operation, its WebSocket op, REST route and policy. */
export function operationsMarkdown(): string {
  const rows = operations({} as Services).map((op) => {
    const rest = op.rest ? `\`${op.rest.method} ${op.rest.path}\`${op.rest.query?.length ? ` ?${op.rest.query.join('&')}` : ''}` : `(WebSocket only: ${op.wsOnly})`;
    const ws = op.ws === false ? '(REST only: streamed)' : `\`${op.name}\``;
    const fields = Object.keys(op.input.properties).filter((f) => f !== '$payload');
    const twice = op.idempotent ? 'same' : op.durable ? 'first answer (stored)' : op.connection ? 'not resent' : 'first answer';
    return `| ${ws} | ${rest} | ${op.policy} | ${fields.join(', ')} | ${twice} | ${op.summary.replaceAll('|', '\\|')} |`;
  });
  return [
    '# Operations',
    '',
    "Generated from the kernel's operation table (src/api/ops) by `npm run openapi`: do not edit.",
    'Each operation has the same input fields and answers on both transports (see docs/protocol.md);',
    'over REST the fields come from the path, the query string and the body, and some answers are',
    'wrapped in a key (`{"kill": {...}}`) as openapi.yaml shows. Policy: who may call it (any token; admin; group:',
    'the admin or a process of the group; self: the admin or the process itself; process: a process',
    'token only). Sent twice: what the same request (the same `rid`, or Idempotency-Key over REST)',
    'does the second time: `same` (doing it again changes nothing), `first answer` (the kernel',
    "answers as the first time; `stored`: kept with the change, across a kernel restart), `not",
    "resent` (it acts on the calling connection; clients take a pipe end up again with pipe.attach).",
    '',
    '| WebSocket op | REST | policy | fields | sent twice | what it does |',
    '|---|---|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
}

/** `#/$defs/X` (how operations refer to shared schemas) -> `#/components/schemas/X`. */
function docRefs<T>(schema: T): T {
  return JSON.parse(JSON.stringify(schema).replaceAll('"#/$defs/', '"#/components/schemas/')) as T;
}

const errorRef = { $ref: '#/components/responses/Error' };

function statusOf(code: ErrorCode): number {
  return new RackError(code, '').status;
}

/** The OpenAPI 3.1 document of the REST API, made from the operation table. */
export function openApiDocument(operations: readonly Operation[]): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {
    '/healthz': {
      get: {
        security: [],
        summary: 'Liveness',
        responses: { '200': { description: 'The kernel is up', content: { 'application/json': { schema: { type: 'object', required: ['status'], properties: { status: { const: 'ok' } } } } } } },
      },
    },
    '/metrics': {
      get: {
        security: [],
        summary: 'Prometheus metrics (text format 0.0.4)',
        responses: { '200': { description: 'Metrics', content: { 'text/plain': { schema: { type: 'string' } } } } },
      },
    },
  };
  for (const op of operations) {
    if (!op.rest) continue;
    const rest = op.rest;
    const schema = inputSchema(op) as { properties: Record<string, Schema>; required?: string[] };
    const required = new Set(schema.required ?? []);
    const pathNames = [...rest.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
    const fieldOf = (name: string): string => rest.params?.[name] ?? name;
    const parameters = [
      ...pathNames.map((name) => ({ name, in: 'path', required: true, schema: op.input.properties[fieldOf(name)] })),
      ...(rest.query ?? []).map((name) => ({ name, in: 'query', schema: op.input.properties[name] })),
      ...Object.entries(rest.headers ?? {}).map(([field, header]) => ({ name: header, in: 'header', schema: op.input.properties[field] })),
    ];
    const content: Record<string, unknown> = {};
    if (rest.body) {
      const fields = Object.fromEntries(rest.body.fields.map((f) => [f, op.input.properties[f]]));
      const req = rest.body.fields.filter((f) => required.has(f));
      const inner = { type: 'object', additionalProperties: false, properties: fields, ...(req.length ? { required: req } : {}) };
      content['application/json'] = { schema: rest.body.root ? { type: 'object', additionalProperties: false, required: [rest.body.root], properties: { [rest.body.root]: inner } } : inner };
    }
    if (rest.payload !== undefined) content['application/octet-stream'] = { schema: { type: 'string', format: 'binary', maxLength: rest.payload } };
    if (rest.rawRequest) content[rest.rawRequest] = { schema: { type: 'string', format: 'binary' } };
    const status = String(rest.status ?? 200);
    const success: Record<string, unknown> = { description: op.summary };
    if (status !== '204') {
      const out = op.output ? (rest.wrap ? { type: 'object', required: [rest.wrap], properties: { [rest.wrap]: op.output } } : op.output) : undefined;
      const answer: Record<string, unknown> = {};
      if (out) answer['application/json'] = { schema: out };
      if (rest.rawResponse) answer[rest.rawResponse] = { schema: { type: 'string', format: 'binary' } };
      if (Object.keys(answer).length) success.content = answer;
    }
    const responses: Record<string, unknown> = { [status]: success, '400': errorRef, '401': errorRef, '403': errorRef };
    for (const code of op.errors ?? []) responses[String(statusOf(code))] = errorRef;
    for (const [code, description] of Object.entries(rest.also ?? {})) {
      responses[code] = code.startsWith('2') ? { description, content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } } : errorRef;
    }
    paths[rest.path] ??= {};
    paths[rest.path]![rest.method.toLowerCase()] = {
      operationId: op.name,
      summary: op.summary,
      'x-rack-policy': op.policy,
      ...(op.ws === false ? {} : { 'x-rack-websocket-op': op.name }),
      ...(parameters.length ? { parameters } : {}),
      ...(Object.keys(content).length ? { requestBody: { required: !rest.body?.optional, content } } : {}),
      responses,
    };
  }
  const wsOnly = operations.filter((op) => !op.rest).map((op) => `\`${op.name}\` (${op.wsOnly})`);
  return docRefs({
    openapi: '3.1.0',
    info: {
      title: 'RACK kernel API',
      version: 'v1',
      description:
        'Virtual machines behave like Linux processes: groups of processes with PIDs and PPIDs, fork / kill / wait, ' +
        'signals, messages, shared memory, pipes and files. Every call but /healthz and /metrics needs ' +
        '`Authorization: Bearer <token>` (the admin token, or a process token). Each operation is also a WebSocket op ' +
        '(x-rack-websocket-op) at /v1/ws with the same fields and answers (docs/protocol.md); these exist only there: ' +
        `${wsOnly.join(', ')}. This document is generated from the kernel's operation table (npm run openapi).`,
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      responses: { Error: { description: 'An error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } } },
      schemas: COMPONENTS,
    },
    security: [{ bearer: [] }],
    paths,
  });
}
