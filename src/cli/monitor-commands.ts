import type { Group } from '../protocol/process.js';
import type { Capacity, PoolView, QueuedFork } from '../protocol/resources.js';
import { client, gidOf, int, parse, print, seconds, UsageError, type Command } from './args.js';
import type { RestClient } from './client.js';
import { formatBound } from './format.js';
import { frame, snapshot, SORT_KEYS, type SortKey } from './top.js';

/** The groups a command looks at: --gid / RACK_GID, else every group the token sees. */
async function groupsOf(c: RestClient, values: Record<string, unknown>): Promise<Group[]> {
  if (values.gid !== undefined || process.env.RACK_GID) {
    const gid = gidOf(values);
    return [(await c.call<{ group: Group }>('GET', `/v1/groups/${encodeURIComponent(gid)}`)).group];
  }
  return (await c.call<{ groups: Group[] }>('GET', '/v1/groups')).groups;
}

/** `rack top`: redraws in place on a terminal (keys change the sort), plain frames elsewhere. */
async function top(c: RestClient, values: Record<string, unknown>): Promise<number> {
  const every = (seconds(values.interval as string | undefined, '--interval') ?? 2) * 1000;
  if (every < 200) throw new UsageError('--interval must be at least 0.2 seconds');
  let sort = (values.sort as string | undefined) ?? 'cpu';
  if (!SORT_KEYS.includes(sort as SortKey)) throw new UsageError(`--sort must be one of ${SORT_KEYS.join(', ')}, got "${sort}"`);
  const iterations = values.iterations === undefined ? Infinity : int(values.iterations as string, '--iterations');
  const out = process.stdout;
  const tty = Boolean(out.isTTY) && !values.json;
  let stop = false;
  let wake: (() => void) | null = null;
  const cleanup = (): void => {
    if (!tty) return;
    out.write('\x1b[?25h\x1b[?1049l');
    if (process.stdin.isTTY) process.stdin.setRawMode(false);
    process.stdin.pause();
  };
  if (tty) {
    out.write('\x1b[?1049h\x1b[?25l');
    if (process.stdin.isTTY) {
      process.stdin.setRawMode(true);
      process.stdin.resume();
      process.stdin.on('data', (d: Buffer) => {
        const k = d.toString();
        if (k === 'q' || k === '\x03') stop = true;
        const s = { c: 'cpu', m: 'mem', p: 'pid', n: 'net' }[k];
        if (s) sort = s;
        wake?.();
      });
    }
    out.on('resize', () => wake?.());
  }
  const onSignal = (): void => {
    stop = true;
    wake?.();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    for (let n = 0; n < iterations && !stop; n++) {
      const snaps = await Promise.all((await groupsOf(c, values)).map((g) => snapshot(c, g)));
      if (values.json) out.write(JSON.stringify(snaps) + '\n');
      else {
        const lines = frame(snaps, sort as SortKey, tty ? out.columns || 120 : 200);
        if (tty) out.write('\x1b[H' + lines.slice(0, Math.max(1, (out.rows || 40) - 1)).map((l) => l + '\x1b[K').join('\n') + '\x1b[J');
        else out.write(lines.join('\n') + '\n\n');
      }
      if (n + 1 >= iterations || stop) break;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, every);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      wake = null;
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    cleanup();
  }
  return 0;
}

function poolLines(gid: string, pool: { kernel: PoolView; group: PoolView; queue: QueuedFork[] }): string {
  const row = (name: string, v: PoolView): string =>
    `${name.padEnd(8)} ${formatBound(v.used.instances, v.capacity.instances).padStart(9)} ${formatBound(v.used.vcpus, v.capacity.vcpus).padStart(9)} ${formatBound(v.used.ram_mb, v.capacity.ram_mb).padStart(13)} ${String(v.queued).padStart(6)}`;
  const lines = [`group ${gid}`, `${'POOL'.padEnd(8)} ${'INSTANCES'.padStart(9)} ${'VCPUS'.padStart(9)} ${'RAM MIB'.padStart(13)} ${'QUEUED'.padStart(6)}`, row('group', pool.group), row('kernel', pool.kernel)];
  for (const q of pool.queue) lines.push(`  queued #${q.position}: pid ${q.pid}, priority ${q.priority}, waits for the ${q.waiting_for === 'group' ? "group's" : 'kernel-wide'} pool${q.deadline ? `, until ${q.deadline}` : ''}`);
  return lines.join('\n');
}

/** NAME=N[,NAME=N...] -> a Capacity; "none" clears a bound. */
function capacityOf(text: string): Capacity {
  const out: Capacity = {};
  for (const part of text.split(',')) {
    const m = /^(instances|vcpus|ram_mb)=([0-9]+(\.[0-9]+)?|none)$/.exec(part.trim());
    if (!m) throw new UsageError(`--set takes instances=N,vcpus=N,ram_mb=N (or =none), got "${part}"`);
    out[m[1] as keyof Capacity] = m[2] === 'none' ? null : Number(m[2]);
  }
  return out;
}

/** Resource Monitoring and the Resource Scheduler for operators. */
export const MONITOR_COMMANDS: Record<string, Command> = {
  top: {
    summary: 'a live view of groups and processes, sorted by CPU, memory, PID or network (like top)',
    usage: 'rack top [--gid GID] [--sort cpu|mem|pid|net] [--interval SECONDS] [--iterations N] [--json]',
    async run(argv) {
      const { values } = parse(argv, { gid: { type: 'string' }, sort: { type: 'string' }, interval: { type: 'string' }, iterations: { type: 'string' } });
      return top(client(values), values);
    },
  },
  pool: {
    summary: "the resource pools a group's forks are scheduled against, and its queued forks; --set bounds the group's pool (admin)",
    usage: 'rack pool [--gid GID] [--set instances=N,vcpus=N,ram_mb=N | --clear] [--json]',
    async run(argv) {
      const { values } = parse(argv, { gid: { type: 'string' }, set: { type: 'string' }, clear: { type: 'boolean', default: false } });
      const c = client(values);
      const gid = gidOf(values);
      const path = `/v1/groups/${encodeURIComponent(gid)}/pool`;
      if (values.set !== undefined && values.clear) throw new UsageError('give --set or --clear, not both');
      if (values.set !== undefined || values.clear) {
        const capacity = values.clear ? null : capacityOf(values.set as string);
        await c.call('PUT', path, { pool: { capacity } });
      }
      const { pool } = await c.call<{ pool: { kernel: PoolView; group: PoolView; queue: QueuedFork[] } }>('GET', path);
      print(values.json as boolean, pool, () => poolLines(gid, pool));
      return 0;
    },
  },
};
