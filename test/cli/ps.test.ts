import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drawTree } from '../../src/cli/tree.js';
import type { Process } from '../../src/protocol/process.js';
import type { QueuedFork, Usage } from '../../src/protocol/resources.js';

// `rack ps` against a stub kernel that answers the three calls it makes per group: every column's
// cases (usage, none yet, queued, exit code, signal, an app status, an orphan) in two groups. The
// expected text is what `rack ps` printed before it was made fast; it must not change.

const proc = (gid: string, pid: number, ppid: number | null, over: Partial<Process> = {}): Process => ({
  gid, pid, ppid, name: ppid === null ? 'root' : 'child', template: 'idle', flavor: null, args: {}, status: 'ACTIVE', app_state: 'running', app_status: '', exit_code: null, signal: null,
  error: null, compute_id: `vm-${pid}`, created_at: '2026-01-01T00:00:00.000Z', updated_at: '2026-01-01T00:00:00.000Z', ended_at: null, ...over,
});
const sample = (cpu: number, rss: number): Usage => ({
  t: 1, cpu_pct: 1, cpus: 1, load: [0, 0, 0], mem_total: 1, mem_available: 1, disk_total: 1, disk_used: 1, net_rx: 0, net_tx: 0, app_procs: 1, app_cpu_pct: cpu, app_rss: rss, net_rx_rate: 0, net_tx_rate: 0,
});
const queued = (gid: string, pid: number, priority: number, waiting_for: QueuedFork['waiting_for']): QueuedFork => ({
  gid, pid, position: 1, priority, deadline: null, size: { instances: 1, vcpus: 1, ram_mb: 512 }, waiting_for,
});
const GROUPS: Record<string, { processes: Process[]; usage: Array<[number, Usage | null]>; queue: QueuedFork[] }> = {
  'g-a': {
    processes: [
      proc('g-a', 100, null),
      proc('g-a', 101, 100, { status: 'EXITED', app_state: 'exited', exit_code: 0 }),
      proc('g-a', 102, 100, { status: 'KILLED', app_state: 'exited', signal: 'KILL' }),
      proc('g-a', 103, 101, { status: 'QUEUED', app_state: 'pending', compute_id: null }),
      proc('g-a', 104, 101, { app_status: 'sent 3/19 batches\nand a very long tail that does not fit on one line' }),
      proc('g-a', 105, 99, { name: 'orphan' }),
    ],
    usage: [[100, sample(12.345, 52428800)], [104, sample(0.05, 1536)], [101, null]],
    queue: [queued('g-a', 103, 7, 'kernel')],
  },
  'g-b': {
    processes: [proc('g-b', 200, null, { status: 'BUILD', app_state: 'pending' }), proc('g-b', 201, 200, { status: 'QUEUED', app_state: 'pending' })],
    usage: [],
    queue: [queued('g-b', 201, 0, 'group')],
  },
};

const TABLE = `PID    PPID   STATUS  APP      EXIT    CPU%    RSS NAME  "APP STATUS"
100    -      ACTIVE  running          12.3  50.0M root
101    100    EXITED  exited   0          -      - child
102    100    KILLED  exited   KILL       -      - child
103    101    QUEUED  pending            #1        child
104    101    ACTIVE  running           0.1   1.5K child  "sent 3/19 batches and a very long tail…"
105    99     ACTIVE  running             -      - orphan
200    -      BUILD   pending             -      - root
201    200    QUEUED  pending            #1        child
queue: 103 #1 (priority 7, waits for the kernel-wide pool), 201 #1 (priority 0, waits for the group's pool)
`;

const TREE = `group g-a
100 root  ACTIVE app:running cpu:12.3% rss:50.0M
├─ 101 child  EXITED app:exited exit:0
│  ├─ 103 child  QUEUED app:pending
│  └─ 104 child  ACTIVE app:running cpu:0.1% rss:1.5K  "sent 3/19 batches and a very long tail…"
└─ 102 child  KILLED app:exited
105 orphan  ACTIVE app:running
group g-b
200 root  BUILD app:pending
└─ 201 child  QUEUED app:pending
queue: 103 #1 (priority 7, waits for the kernel-wide pool), 201 #1 (priority 0, waits for the group's pool)
`;

describe('rack ps output', () => {
  let server: Server;
  let url: string;
  const asked: string[] = [];
  const queries: string[] = [];
  // A kernel from before the list's `fields`: it refuses the parameter, as any unknown one.
  const OLD = 'g-old';
  const old = { ...GROUPS['g-b']!, processes: GROUPS['g-b']!.processes.map((p) => ({ ...p, gid: OLD })), queue: GROUPS['g-b']!.queue.map((q) => ({ ...q, gid: OLD })) };

  beforeAll(async () => {
    server = createServer((req, res) => {
      const { pathname: path, searchParams } = new URL(req.url!, 'http://stub');
      asked.push(`${req.method} ${path}`);
      let body: unknown;
      const m = /^\/v1\/groups\/([^/]+)\/(processes|usage|pool)$/.exec(path);
      const gid = m ? decodeURIComponent(m[1]!) : '';
      const g = gid === OLD ? old : GROUPS[gid];
      if (m?.[2] === 'processes') queries.push(searchParams.toString());
      if (gid === OLD && searchParams.has('fields')) {
        res.writeHead(400, { 'content-type': 'application/json' });
        return void res.end(JSON.stringify({ error: { code: 'bad_request', message: 'unknown query parameter "fields"; allowed: ppid, status' } }));
      }
      if (path === '/v1/groups') body = { groups: Object.keys(GROUPS).map((gid) => ({ gid, name: gid })) };
      else if (g && m![2] === 'processes') body = { processes: g.processes };
      else if (g && m![2] === 'usage') body = { usage: { gid: m![1], reporting: 0, processes: g.usage.map(([pid, latest]) => ({ gid: m![1], pid, latest, history: [] })) } };
      else if (g && m![2] === 'pool') body = { pool: { queue: g.queue } };
      res.writeHead(body ? 200 : 404, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body ?? { error: { code: 'not_found', message: `no ${path}` } }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const rack = async (...args: string[]): Promise<string> =>
    (await promisify(execFile)(process.execPath, ['dist/cli/main.js', ...args], { env: { ...process.env, RACK_URL: url, RACK_TOKEN: 'stub', RACK_GID: '' }, encoding: 'utf8' })).stdout;

  it('the table, every group in order, the queue below', async () => {
    expect(await rack('ps')).toBe(TABLE);
  });

  it('--tree: each group drawn as its PPID tree, orphans as roots', async () => {
    expect(await rack('ps', '--tree')).toBe(TREE);
  });

  it('--json: every process with its latest usage sample, or null', async () => {
    const all = JSON.parse(await rack('ps', '--json')) as Array<Process & { usage: Usage | null }>;
    expect(all.map((p) => p.pid)).toEqual([100, 101, 102, 103, 104, 105, 200, 201]);
    expect(all[0]).toEqual({ ...GROUPS['g-a']!.processes[0], usage: sample(12.345, 52428800) });
    expect(all.filter((p) => p.usage !== null).map((p) => p.pid)).toEqual([100, 104]);
  });

  it('--gid asks for that group only', async () => {
    asked.length = 0;
    expect(await rack('ps', '--gid', 'g-b')).toBe(TABLE.split('\n').filter((l) => !/^10[0-9] /.test(l)).join('\n').replace(/^queue: .*$/m, "queue: 201 #1 (priority 0, waits for the group's pool)"));
    expect(asked.sort()).toEqual(['GET /v1/groups/g-b/pool', 'GET /v1/groups/g-b/processes', 'GET /v1/groups/g-b/usage']);
  });

  it('the table and the tree ask for the fields they show, --json for every field; a kernel that refuses fields is asked again without', async () => {
    queries.length = 0;
    await rack('ps', '--gid', 'g-b', '--ppid', '200');
    await rack('ps', '--gid', 'g-b', '--tree');
    await rack('ps', '--gid', 'g-b', '--json');
    const fields = 'fields=gid%2Cpid%2Cppid%2Cname%2Cstatus%2Capp_state%2Capp_status%2Cexit_code%2Csignal';
    expect(queries).toEqual([`ppid=200&${fields}`, fields, '']);
    const table = await rack('ps', '--gid', OLD);
    expect(table).toBe(TABLE.split('\n').filter((l) => !/^10[0-9] /.test(l)).join('\n').replace(/^queue: .*$/m, "queue: 201 #1 (priority 0, waits for the group's pool)"));
  });

  it('a short-lived command loads no HTTP library beyond Node its own, and no store engine', async () => {
    // undici took longer to load than `rack ps` of 10,000 processes to fetch; only file and pipe transfers use it.
    const script = `process.argv = [process.execPath, 'rack', 'ps']; await import('./dist/cli/main.js'); setTimeout(async () => { const { createRequire } = await import('node:module'); console.log(JSON.stringify(Object.keys(createRequire(process.cwd() + '/x.js').cache))); }, 500);`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, RACK_URL: url, RACK_TOKEN: 'stub', RACK_GID: '' }, encoding: 'utf8' });
    const loaded = JSON.parse(stdout.trim().split('\n').at(-1)!) as string[];
    expect(loaded.filter((f) => f.includes('/undici/'))).toEqual([]);
    // The kernel's stores are the kernel's: ioredis alone took ~90 ms of rack ps to load.
    expect(loaded.filter((f) => /\/(ioredis|better-sqlite3)\//.test(f))).toEqual([]);
  });
});

describe('drawTree', () => {
  const p = (pid: number, ppid: number | null): Process => proc('g', pid, ppid, { name: `p${pid}` });

  it('draws the same tree whatever order the processes come in', () => {
    const list = [p(100, null), p(101, 100), p(102, 100), p(103, 101), p(104, 102), p(105, 7)];
    const sorted = drawTree(list);
    expect(drawTree([...list].reverse())).toBe(sorted);
    expect(sorted.split('\n').map((l) => l.replace(/  ACTIVE.*$/, ''))).toEqual(['100 p100', '├─ 101 p101', '│  └─ 103 p103', '└─ 102 p102', '   └─ 104 p104', '105 p105']);
  });

  it('a chain of 3,000 generations draws (it ran out of stack)', () => {
    const chain = Array.from({ length: 3000 }, (_, i) => p(100 + i, i === 0 ? null : 99 + i));
    const lines = drawTree(chain).split('\n');
    expect(lines).toHaveLength(3000);
    expect(lines[2999]).toBe(`${'   '.repeat(2998)}└─ 3099 p3099  ACTIVE app:running`);
  });
});
