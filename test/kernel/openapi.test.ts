import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import yaml from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openApiYaml, operationsMarkdown } from '../../src/api/openapi.js';
import { startTestKernel, untilProcess, type TestKernel } from '../support/kernel.js';

const METHODS = ['get', 'head', 'post', 'put', 'delete', 'patch'];
const YAML_FILE = new URL('../../src/api/openapi.yaml', import.meta.url);
const OPENAPI_DOC = yaml.load(readFileSync(YAML_FILE, 'utf8')) as { paths: Record<string, Record<string, unknown>>; components: Record<string, unknown> };

/** The OpenAPI document and the server must agree: same endpoints, and real answers fit the schemas. */
describe('openapi.yaml matches the server', () => {
  let k: TestKernel;
  const ajv = new Ajv2020({ strict: false });
  ajv.addSchema(OPENAPI_DOC, 'doc');

  beforeAll(async () => {
    k = await startTestKernel();
  });
  afterAll(() => k.cleanup());

  it('is generated from the operation table and up to date (npm run openapi), as is docs/operations.md', () => {
    expect(readFileSync(YAML_FILE, 'utf8')).toBe(openApiYaml());
    expect(readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8')).toBe(operationsMarkdown());
  });

  it('documents exactly the routes the server has', () => {
    const documented = Object.entries(OPENAPI_DOC.paths)
      .flatMap(([path, ops]) => Object.keys(ops).filter((m) => METHODS.includes(m)).map((m) => `${m.toUpperCase()} ${path}`))
      .sort();
    const served = [...k.api.router.routes.map((r) => `${r.method} ${r.path}`), 'GET /healthz', 'GET /metrics'].sort();
    expect(served).toEqual(documented);
  });

  it('every answer has a documented status and fits its schema', async () => {
    const checked: string[] = [];
    const check = async (method: string, docPath: string, path: string, body?: unknown, token?: string): Promise<any> => {
      const res = await k.call(method, path, body, token);
      const op = (OPENAPI_DOC.paths[docPath] as any)[method.toLowerCase()];
      const documented = op.responses[String(res.status)];
      expect(documented, `${method} ${docPath} answered ${res.status}, which is not documented`).toBeDefined();
      const ptr = `doc#/paths/${docPath.replaceAll('~', '~0').replaceAll('/', '~1')}/${method.toLowerCase()}/responses/${res.status}`;
      const content = documented.$ref ? OPENAPI_DOC.components : documented.content;
      if (content && res.status !== 204 && docPath !== '/metrics') {
        const schemaRef = documented.$ref
          ? `doc#/components/schemas/Error`
          : `${ptr}/content/application~1json/schema`;
        const validate = ajv.getSchema(schemaRef)!;
        expect(validate(res.body), `${method} ${path} -> ${res.status}: ${JSON.stringify(validate.errors)}`).toBe(true);
      }
      checked.push(`${method} ${docPath} ${res.status}`);
      return res.body;
    };
    const G = '/v1/groups/{gid}';
    const P = `${G}/processes`;
    const PP = `${P}/{pid}`;
    await check('GET', '/healthz', '/healthz');
    await check('GET', '/metrics', '/metrics');
    const gid = (await check('POST', '/v1/groups', '/v1/groups', { group: { name: 'doc', template: 'idle', args: { a: 'b' } } })).group.gid;
    await check('POST', '/v1/groups', '/v1/groups', { group: {} });
    await check('GET', '/v1/groups', '/v1/groups');
    await check('GET', G, `/v1/groups/${gid}`);
    await check('GET', G, '/v1/groups/unknown');
    const [root] = (await check('POST', P, `/v1/groups/${gid}/processes`, { process: {} })).processes;
    await untilProcess(k, gid, root.pid, (p) => p.status === 'ACTIVE');
    const token = k.tokenOf((await k.kernel.getProcess(gid, root.pid))!);
    await check('GET', '/v1/self', '/v1/self', undefined, token);
    await check('GET', '/v1/self', '/v1/self');
    const [child] = (await check('POST', P, `/v1/groups/${gid}/processes`, { process: {} }, token)).processes;
    await check('POST', P, `/v1/groups/${gid}/processes`, { process: { ppid: 12345 } });
    await check('GET', P, `/v1/groups/${gid}/processes?ppid=${root.pid}`);
    await check('GET', P, `/v1/groups/${gid}/processes?fields=status,pid`);
    await check('GET', PP, `/v1/groups/${gid}/processes/${child.pid}`);
    await check('PUT', PP, `/v1/groups/${gid}/processes/${root.pid}`, { process: { app_status: 'hi' } }, token);
    await check('POST', `${PP}/signal`, `/v1/groups/${gid}/processes/${child.pid}/signal`, { signal: { name: 'USR1' } });
    await check('GET', `${PP}/running`, `/v1/groups/${gid}/processes/${child.pid}/running?timeout=0.1`);
    await check('GET', `${PP}/console`, `/v1/groups/${gid}/processes/${root.pid}/console?lines=5`, undefined, token);
    await check('GET', `${PP}/console`, `/v1/groups/${gid}/processes/${root.pid}/console?lines=0`);
    await check('POST', `${PP}/exit`, `/v1/groups/${gid}/processes/${child.pid}/exit`, { exit: { code: 1 } });
    await check('GET', `${P}/{ppid}/wait`, `/v1/groups/${gid}/processes/${root.pid}/wait?pid=${child.pid}`, undefined, token);
    await check('GET', `${P}/{ppid}/wait`, `/v1/groups/${gid}/processes/${root.pid}/wait?timeout=0.1`, undefined, token);
    await check('DELETE', PP, `/v1/groups/${gid}/processes/${root.pid}?signal=KILL`, undefined, token);
    await check('DELETE', G, `/v1/groups/${gid}`);
    expect(checked.length).toBeGreaterThan(20);
  });

  it('/metrics speaks the Prometheus text format', async () => {
    const res = await fetch(`${k.url}/metrics`);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    expect(text).toMatch(/^# TYPE rack_http_requests_total counter$/m);
    expect(text).toMatch(/^rack_processes\{status="KILLED"\} \d+$/m);
    expect(text).toMatch(/^rack_websocket_connections 0$/m);
  });
});
