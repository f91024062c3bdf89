import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../common/log.js';
import { readInstanceData } from './source.js';

const META = { uuid: 'u-1', name: 'vm', meta: { rack_gid: 'g', rack_pid: '101', rack_ppid: '100' } };

let servers: Server[] = [];
afterEach(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
  servers = [];
});

/** A metadata service whose meta_data.json answer is decided per request by `answer`. */
async function service(answer: (n: number, res: ServerResponse) => void): Promise<string> {
  let n = 0;
  const s = createServer((req, res) => {
    if (req.url === '/openstack') return void res.end('2013-04-04\n2018-08-27\nlatest');
    if (req.url === '/openstack/2018-08-27/user_data') {
      res.statusCode = 404;
      return void res.end();
    }
    if (req.url === '/openstack/2018-08-27/meta_data.json') return answer(++n, res);
    res.statusCode = 404;
    res.end();
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

const opts = (urls: string[], deadlineMs = 5000) => ({
  urls,
  configDrive: null,
  deadlineMs,
  backoffMs: 50,
  limits: { timeoutMs: 1000, maxBytes: 1024 * 1024 },
  log: silentLogger(),
});

describe('metadata source policy', () => {
  it('reads meta_data.json at the newest version the service offers', async () => {
    const url = await service((_n, res) => res.end(JSON.stringify(META)));
    const d = await readInstanceData(opts([url]));
    expect(d).toMatchObject({ uuid: 'u-1', meta: { rack_pid: '101' }, userData: null, source: url });
  });

  it('retries 500s with backoff and succeeds', async () => {
    const url = await service((n, res) => {
      if (n <= 3) {
        res.statusCode = 500;
        return void res.end('busy');
      }
      res.end(JSON.stringify(META));
    });
    const d = await readInstanceData(opts([url]));
    expect(d.meta.rack_pid).toBe('101');
  });

  it('many retries leave no listener behind (no MaxListenersExceededWarning)', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.name);
    process.on('warning', onWarning);
    try {
      const url = await service((n, res) => {
        if (n <= 12) {
          res.statusCode = 500;
          return void res.end('busy');
        }
        res.end(JSON.stringify(META));
      });
      const d = await readInstanceData({ ...opts([url], 30_000), backoffMs: 1 });
      expect(d.meta.rack_pid).toBe('101');
      await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
      expect(warnings).not.toContain('MaxListenersExceededWarning');
    } finally {
      process.off('warning', onWarning);
    }
  }, 40_000);

  it('an unreachable service ends with a clear error by the deadline', async () => {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as AddressInfo).port;
    await new Promise((r) => s.close(r));
    const t0 = Date.now();
    await expect(readInstanceData(opts([`http://127.0.0.1:${port}`], 1500))).rejects.toThrow(/no metadata: .*ECONNREFUSED/);
    expect(Date.now() - t0).toBeLessThan(4000);
  });

  it('invalid JSON is a definite error, not retried', async () => {
    let calls = 0;
    const url = await service((_n, res) => {
      calls++;
      res.end('{"uuid": ');
    });
    await expect(readInstanceData(opts([url]))).rejects.toThrow(/not valid JSON/);
    expect(calls).toBe(1);
  });

  it('a 5 MiB body is refused', async () => {
    const url = await service((_n, res) => res.end(Buffer.alloc(5 * 1024 * 1024, 'a')));
    await expect(readInstanceData(opts([url]))).rejects.toThrow(/over the 1048576-byte limit/);
  });

  it('a body trickling one byte a second ends in bounded time', async () => {
    const url = await service((_n, res) => {
      res.writeHead(200, { 'content-length': '1000' });
      const t = setInterval(() => res.write('x'), 1000);
      res.on('close', () => clearInterval(t));
    });
    const t0 = Date.now();
    await expect(readInstanceData(opts([url], 2500))).rejects.toThrow(/gave up after 2500 ms and \d+ attempts/);
    expect(Date.now() - t0).toBeLessThan(6000);
  });

  it('tries services concurrently: a dead one does not delay a live one', async () => {
    const live = await service((_n, res) => res.end(JSON.stringify(META)));
    const t0 = Date.now();
    const d = await readInstanceData(opts(['http://127.0.0.1:9', live], 10_000));
    expect(d.source).toBe(live);
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('falls back to a config drive', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'config-2-'));
    mkdirSync(join(dir, 'openstack', 'latest'), { recursive: true });
    writeFileSync(join(dir, 'openstack', 'latest', 'meta_data.json'), JSON.stringify(META));
    writeFileSync(join(dir, 'openstack', 'latest', 'user_data'), '#cloud-config\n');
    const d = await readInstanceData({ ...opts(['http://127.0.0.1:9'], 500), configDrive: dir });
    expect(d).toMatchObject({ source: `config-drive:${dir}`, meta: { rack_pid: '101' }, userData: '#cloud-config\n' });
  });
});
