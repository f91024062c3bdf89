import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { kernelUrls } from '../client/kernel-urls.js';
import { restError } from '../client/rest-error.js';
import { isRackError, RackError } from '../common/errors.js';
import { checkPath } from '../protocol/file-path.js';
import { caOf, client, gidOf, int, parse, print, seconds, UsageError, type Command } from './args.js';
import { progress } from './progress.js';

function selfPid(values: Record<string, unknown>): number {
  const raw = (values.pid as string | undefined) ?? process.env.RACK_PID;
  if (raw === undefined) throw new UsageError('whose mailbox? pass --pid N or set RACK_PID');
  return int(raw, '--pid');
}

function parseValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text; // not JSON: a plain string
  }
}

/** Streams a body to or from the kernel (files, pipes) with the CLI's token (undici, loaded only here). */
/**
 * A streamed request (a file's or a pipe's bytes) to the first kernel of `urls` that can be
 * reached: a refused connection never read the body, so the next kernel may have it.
 */
async function stream(method: 'GET' | 'PUT', urls: string, path: string, token: string, ca: string | undefined, body?: NodeJS.ReadableStream) {
  const [{ request }, { dispatcherFor }] = await Promise.all([import('undici'), import('../client/trust.js')]);
  const list = kernelUrls(urls);
  for (let i = 0; ; i++) {
    // A fresh wrapper each attempt: undici ends the body of a failed request, and a refused
    // connection never started this one, which leaves the source unread for the next kernel.
    const once = body && Readable.from((async function* () {
      for await (const chunk of body) yield chunk as Buffer;
    })(), { objectMode: false });
    try {
      const res = await request(`${list[i]}${path}`, { method, body: once, dispatcher: dispatcherFor(ca), headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' }, bodyTimeout: 0, headersTimeout: 60_000 });
      if (res.statusCode >= 400) throw restError(res.statusCode, await res.body.text());
      return res;
    } catch (err) {
      if (isRackError(err)) throw err;
      const code = (err as NodeJS.ErrnoException).code ?? ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code;
      if (code === 'ECONNREFUSED' && i + 1 < list.length) continue;
      throw new RackError('unavailable', `cannot reach the kernel: ${(err as Error).message}`);
    }
  }
}

const connection = (values: Record<string, unknown>) => ({ url: (values.url as string | undefined) ?? process.env.RACK_URL!, token: (values.token as string | undefined) ?? process.env.RACK_TOKEN!, ca: caOf(values) });

/** Messages, shared memory, files and pipes for operators and scripts. */
export function ipcCommands(): Record<string, Command> {
  return {
    send: {
      summary: 'send a message (JSON, or text) to a process',
      usage: 'rack send PID DATA [--gid GID]',
      async run(argv) {
        const { values, positionals } = parse(argv, { gid: { type: 'string' } }, 2);
        const pid = int(positionals[0], 'PID');
        if (positionals[1] === undefined) throw new UsageError('rack send needs PID and DATA');
        const r = await client(values).call<{ seq: number }>('POST', `/v1/groups/${encodeURIComponent(gidOf(values))}/processes/${pid}/messages`, { message: { data: parseValue(positionals[1]) } });
        print(values.json as boolean, r, () => String(r.seq));
        return 0;
      },
    },
    recv: {
      summary: "receive (and remove) messages from a process's mailbox",
      usage: 'rack recv [--pid N] [--gid GID] [--timeout SECONDS] [--count N]',
      async run(argv) {
        const { values } = parse(argv, { gid: { type: 'string' }, pid: { type: 'string' }, timeout: { type: 'string' }, count: { type: 'string' } });
        const c = client(values);
        const base = `/v1/groups/${encodeURIComponent(gidOf(values))}/processes/${selfPid(values)}/messages`;
        const count = values.count === undefined ? 1 : int(values.count as string, '--count');
        const timeout = seconds(values.timeout as string | undefined, '--timeout') ?? 30;
        for (let i = 0; i < count; i++) {
          let r;
          try {
            r = await c.call<{ message: { seq: number; from: number; data: unknown } }>('GET', `${base}?timeout=${Math.min(timeout, 300)}`, undefined, timeout * 1000 + 10_000);
          } catch (err) {
            if (err instanceof RackError && err.code === 'timeout') {
              process.stderr.write('rack: no message arrived in time\n');
              return 124;
            }
            throw err;
          }
          print(values.json as boolean, r.message, () => (typeof r.message.data === 'string' ? r.message.data : JSON.stringify(r.message.data)));
          await c.call('DELETE', `${base}/${r.message.seq}`);
        }
        return 0;
      },
    },
    shm: {
      summary: 'shared memory of a group: get, set, del, incr, keys',
      usage: 'rack shm get KEY | set KEY VALUE [--ttl S] | del KEY | incr KEY [BY] | keys [PREFIX]  [--gid GID]',
      async run(argv) {
        const [sub, ...rest] = argv;
        const { values, positionals } = parse(rest, { gid: { type: 'string' }, ttl: { type: 'string' } }, 2);
        const c = client(values);
        const g = `/v1/groups/${encodeURIComponent(gidOf(values))}/shm`;
        const key = (): string => {
          if (!positionals[0]) throw new UsageError(`rack shm ${sub} needs a KEY`);
          return encodeURIComponent(positionals[0]);
        };
        switch (sub) {
          case 'get': {
            const r = await c.call<{ value: unknown }>('GET', `${g}/${key()}`);
            print(values.json as boolean, r, () => JSON.stringify(r.value));
            return r.value === null ? 1 : 0;
          }
          case 'set': {
            if (positionals[1] === undefined) throw new UsageError('rack shm set needs KEY and VALUE');
            const ttl = seconds(values.ttl as string | undefined, '--ttl');
            await c.call('PUT', `${g}/${key()}`, { value: parseValue(positionals[1]), ...(ttl === undefined ? {} : { ttl }) });
            return 0;
          }
          case 'del': {
            const r = await c.call<{ deleted: boolean }>('DELETE', `${g}/${key()}`);
            print(values.json as boolean, r, () => (r.deleted ? 'deleted' : 'absent'));
            return 0;
          }
          case 'incr': {
            const by = positionals[1] === undefined ? 1 : Number(positionals[1]);
            if (!Number.isSafeInteger(by)) throw new UsageError(`BY must be an integer, got "${positionals[1]}"`);
            const r = await c.call<{ value: number }>('POST', `${g}/${key()}/incr`, { by });
            print(values.json as boolean, r, () => String(r.value));
            return 0;
          }
          case 'keys': {
            const r = await c.call<{ keys: string[] }>('GET', `${g}?prefix=${encodeURIComponent(positionals[0] ?? '')}`);
            print(values.json as boolean, r.keys, () => r.keys.join('\n'));
            return 0;
          }
          default:
            throw new UsageError('rack shm needs get, set, del, incr or keys');
        }
      },
    },
    file: {
      summary: 'the group file system: put, get, ls, rm',
      usage: 'rack file put PATH [FILE|-] | get PATH [FILE|-] | ls [PREFIX] | rm PATH  [--gid GID]',
      async run(argv) {
        const [sub, ...rest] = argv;
        const { values, positionals } = parse(rest, { gid: { type: 'string' } }, 2);
        const { url, token, ca } = connection(values);
        const c = client(values);
        const g = `/v1/groups/${encodeURIComponent(gidOf(values))}/files`;
        const path = (): string => {
          if (!positionals[0]) throw new UsageError(`rack file ${sub} needs a PATH`);
          try {
            return checkPath(positionals[0]).split('/').map(encodeURIComponent).join('/');
          } catch (err) {
            throw new UsageError((err as Error).message);
          }
        };
        switch (sub) {
          case 'put': {
            const p = path();
            const fromStdin = !positionals[1] || positionals[1] === '-';
            let size: number | null = null;
            if (!fromStdin) {
              try {
                size = (await stat(positionals[1]!)).size;
              } catch (err) {
                throw new UsageError(`cannot read ${positionals[1]}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
              }
            }
            const src = (fromStdin ? process.stdin : createReadStream(positionals[1]!)).pipe(progress(`put ${positionals[0]}`, size));
            const res = await stream('PUT', url, `${g}/${p}`, token, ca, src);
            const info = ((await res.body.json()) as { file: unknown }).file;
            print(values.json as boolean, info, () => `stored ${positionals[0]}`);
            return 0;
          }
          case 'get': {
            const p = path();
            const res = await stream('GET', url, `${g}/${p}`, token, ca);
            const length = Number(res.headers['content-length'] ?? NaN);
            await pipeline(
              res.body,
              progress(`get ${positionals[0]}`, Number.isFinite(length) ? length : null),
              !positionals[1] || positionals[1] === '-' ? process.stdout : createWriteStream(positionals[1]),
            );
            return 0;
          }
          case 'ls': {
            const r = await c.call<{ files: Array<{ path: string; size: number }> }>('GET', `${g}?prefix=${encodeURIComponent(positionals[0] ?? '')}`);
            print(values.json as boolean, r.files, () => r.files.map((f) => `${String(f.size).padStart(12)}  ${f.path}`).join('\n'));
            return 0;
          }
          case 'rm':
            await c.call('DELETE', `${g}/${path()}`);
            return 0;
          default:
            throw new UsageError('rack file needs put, get, ls or rm');
        }
      },
    },
    pipe: {
      summary: 'pipes: create one, write stdin into one, read one to stdout (ID or fifo:NAME)',
      usage: 'rack pipe create | write ID | read ID  [--gid GID]',
      async run(argv) {
        const [sub, ...rest] = argv;
        const { values, positionals } = parse(rest, { gid: { type: 'string' } }, 1);
        const { url, token, ca } = connection(values);
        const g = `/v1/groups/${encodeURIComponent(gidOf(values))}/pipes`;
        if (sub === 'create') {
          const r = await client(values).call<{ pipe: string }>('POST', g);
          print(values.json as boolean, r, () => r.pipe);
          return 0;
        }
        if (!positionals[0]) throw new UsageError(`rack pipe ${sub ?? ''} needs an ID`);
        const id = encodeURIComponent(positionals[0]);
        if (sub === 'write') {
          const res = await stream('PUT', url, `${g}/${id}`, token, ca, process.stdin.pipe(progress(`pipe write ${positionals[0]}`, null)));
          await res.body.dump();
          return 0;
        }
        if (sub === 'read') {
          const res = await stream('GET', url, `${g}/${id}`, token, ca);
          await pipeline(res.body, progress(`pipe read ${positionals[0]}`, null), process.stdout);
          return 0;
        }
        throw new UsageError('rack pipe needs create, write or read');
      },
    },
  };
}
