import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKernel, type TestKernel } from '../support/kernel.js';

/** The live view's transport, without a browser: its files, and the token in the WebSocket subprotocol. */
describe('live view: page and WebSocket token', () => {
  let k: TestKernel;
  beforeAll(async () => {
    k = await startTestKernel();
  });
  afterAll(() => k.cleanup());

  const open = (protocols: string[]): Promise<{ ws: WebSocket; protocol: string } | { status: number }> =>
    new Promise((resolve) => {
      const ws = new WebSocket(k.url.replace(/^http/, 'ws') + '/v1/ws', protocols);
      ws.once('open', () => resolve({ ws, protocol: ws.protocol }));
      ws.once('unexpected-response', (_req, res) => resolve({ status: res.statusCode ?? 0 }));
    });

  it('serves its page with strict headers, and nothing else under /ui', async () => {
    const page = await fetch(`${k.url}/ui`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('content-security-policy')).toContain("connect-src 'self'");
    expect(await page.text()).toContain('<script src="/ui/ui.js"></script>');
    expect((await fetch(`${k.url}/ui/ui.js`)).headers.get('content-type')).toMatch(/javascript/);
    expect((await fetch(`${k.url}/ui/nothing.js`)).status).toBe(404);
  });

  it('accepts the token as a subprotocol and answers with rack.v1 only; a wrong token is 401', async () => {
    const ok = await open(['rack.v1', `rack.bearer.${k.adminToken}`]);
    expect('protocol' in ok && ok.protocol).toBe('rack.v1');
    if ('ws' in ok) {
      const answer = await new Promise<any>((resolve) => {
        ok.ws.once('message', (d) => resolve(JSON.parse(d.toString())));
        ok.ws.send(JSON.stringify({ id: 1, op: 'hello' }));
      });
      expect(answer).toMatchObject({ id: 1, ok: true });
      ok.ws.close();
    }
    expect(await open(['rack.v1', 'rack.bearer.wrong-token-0123456789'])).toEqual({ status: 401 });
    expect(await open(['rack.v1'])).toEqual({ status: 401 });
  });

  it("a process's token makes the page's calls in its own group only", async () => {
    const mine = (await k.call('POST', '/v1/groups', { group: { name: 'mine', template: 'idle' } })).body.group.gid;
    const other = (await k.call('POST', '/v1/groups', { group: { name: 'other', template: 'idle' } })).body.group.gid;
    const p = (await k.call('POST', `/v1/groups/${mine}/processes`, { process: {} })).body.processes[0];
    const opened = await open(['rack.v1', `rack.bearer.${k.tokenOf(p)}`]);
    if (!('ws' in opened)) throw new Error(`refused: ${opened.status}`);
    const ws = opened.ws;
    let id = 0;
    const call = (op: string, params: Record<string, unknown> = {}): Promise<any> =>
      new Promise((resolve) => {
        const n = ++id;
        const on = (d: WebSocket.RawData): void => {
          const m = JSON.parse(d.toString());
          if (m.id !== n) return;
          ws.off('message', on);
          resolve(m);
        };
        ws.on('message', on);
        ws.send(JSON.stringify({ id: n, op, ...params }));
      });
    try {
      expect((await call('hello')).ok).toBe(true);
      expect((await call('group.list')).result.groups.map((g: { gid: string }) => g.gid)).toEqual([mine]);
      for (const op of ['subscribe', 'usage.subscribe', 'list', 'usage.group', 'pool.show']) {
        expect((await call(op, { gid: mine })).ok, op).toBe(true);
        expect((await call(op, { gid: other })).error?.code, op).toBe('forbidden');
      }
    } finally {
      ws.close();
    }
  });
});
