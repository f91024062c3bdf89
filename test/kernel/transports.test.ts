import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { operations, type Services } from '../../src/api/ops/index.js';
import { startTestKernel, untilProcess, type TestKernel } from '../support/kernel.js';
import { RawClient } from '../support/ws-client.js';

/** One operation table: the same input gets the same answer over REST and over the WebSocket. */
describe('REST and WebSocket agree', () => {
  let k: TestKernel;
  let gid: string;
  let ws: RawClient;
  let root: number;

  beforeAll(async () => {
    k = await startTestKernel();
    gid = (await k.call('POST', '/v1/groups', { group: { name: 'same', template: 'idle' } })).body.group.gid;
    root = (await k.call('POST', `/v1/groups/${gid}/processes`, { process: {} })).body.processes[0].pid;
    await untilProcess(k, gid, root, (p) => p.compute_id !== null);
    ws = await RawClient.connect(k.url, k.adminToken, 'admin');
  });
  afterAll(async () => {
    await ws.close();
    await k.cleanup();
  });

  // Cases where the two copies of an operation used to disagree.
  const cases: Array<[string, () => [string, string, unknown], () => [string, object]]> = [
    ['wait timeout over 300 s', () => ['GET', `/v1/groups/${gid}/processes/${root}/wait?timeout=301`, undefined], () => ['wait', { gid, ppid: root, timeout: 301 }]],
    ['wait_running over 300 s', () => ['POST', `/v1/groups/${gid}/processes?wait_running=301`, { process: {} }], () => ['fork', { gid, wait_running: 301 }]],
    ['shm.pop timeout over 300 s', () => ['POST', `/v1/groups/${gid}/shm/q/pop?timeout=301`, undefined], () => ['shm.pop', { gid, key: 'q', timeout: 301 }]],
    ['shm.set with ttl 0', () => ['PUT', `/v1/groups/${gid}/shm/k`, { value: 1, ttl: 0 }], () => ['shm.set', { gid, key: 'k', value: 1, ttl: 0 }]],
    ['a malformed gid', () => ['GET', '/v1/groups/not%20a%20gid!/processes', undefined], () => ['list', { gid: 'not a gid!' }]],
    ['an unknown field', () => ['PUT', `/v1/groups/${gid}/shm/k`, { value: 1, colour: 'red' }], () => ['shm.set', { gid, key: 'k', value: 1, colour: 'red' }]],
    ['count over the fork limit', () => ['POST', `/v1/groups/${gid}/processes`, { process: { count: 5000 } }], () => ['fork', { gid, count: 5000 }]],
  ];
  for (const [name, rest, socket] of cases) {
    it(name, async () => {
      const [method, path, body] = rest();
      const r = await k.call(method, path, body);
      const [op, params] = socket();
      const w = await ws.call(op, params);
      expect(r.status).toBeGreaterThanOrEqual(400);
      expect(w.ok).toBe(false);
      expect(w.error).toEqual(r.body.error);
    });
  }

  it('every operation exists on both transports, or says why not', () => {
    for (const op of operations({} as Services)) {
      if (!op.rest) expect(op.wsOnly, `${op.name} has no REST route and no reason`).toMatch(/./);
      if (op.ws === false) expect(op.rest?.raw, `${op.name} is REST-only but does not stream`).toBe(true);
    }
  });
});
