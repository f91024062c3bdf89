import { readFileSync } from 'node:fs';
import { SIGNAL_TABLE, type Group, type Process, type WaitResult } from '../protocol/process.js';
import { argsOf, client, gidOf, int, parse, print, quotasOf, seconds, UsageError, userDataOf, type Command } from './args.js';
import { gatherPs, psText, PS_FIELDS } from './ps.js';
import { checkStoreUrl, STORE_HELP } from '../store/open-store.js';

/** Shell convention: the exit code, or 128 + signal number for a killed child. */
export function shellStatus(w: WaitResult): number {
  if (w.status === 'exited') return w.code ?? 0;
  if (w.status === 'killed') return 128 + SIGNAL_TABLE[w.signal ?? 'KILL'].number;
  return 125;
}

/** --tls-cert and --tls-key (both or neither), and --tls-ca: PEM files, read and checked here. */
function tlsOf(values: Record<string, unknown>): { cert: string; key: string; ca?: string } | undefined {
  const [certFile, keyFile, caFile] = [values['tls-cert'], values['tls-key'], values['tls-ca']] as Array<string | undefined>;
  if (certFile === undefined && keyFile === undefined) {
    if (caFile !== undefined) throw new UsageError('--tls-ca goes with --tls-cert and --tls-key');
    return undefined;
  }
  if (certFile === undefined || keyFile === undefined) throw new UsageError('--tls-cert and --tls-key go together');
  const read = (file: string, flag: string, what: RegExp): string => {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new UsageError(`${flag}: cannot read "${file}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (!what.test(text)) throw new UsageError(`${flag}: "${file}" is not a PEM ${flag === '--tls-key' ? 'private key' : 'certificate'}`);
    return text;
  };
  const cert = read(certFile, '--tls-cert', /-----BEGIN CERTIFICATE-----/);
  const key = read(keyFile, '--tls-key', /-----BEGIN [A-Z ]*PRIVATE KEY-----/);
  const ca = caFile === undefined ? undefined : read(caFile, '--tls-ca', /-----BEGIN CERTIFICATE-----/);
  return { cert, key, ...(ca ? { ca } : {}) };
}

export const PROCESS_COMMANDS: Record<string, Command> = {
  kernel: {
    summary: 'run the RACK kernel',
    usage: 'rack kernel [--listen HOST:PORT] [--data DIR] [--store URL] [--driver sim|nova|nspawn] [--files local|swift] [--files-dir DIR] [--templates DIR]... [--public-url URL[,URL]...] [--fork-limit N] [--quota NAME=N]... [--max-instances N] [--max-vcpus N] [--max-ram-mb N] [--tls-cert FILE --tls-key FILE [--tls-ca FILE]]',
    details: `--store URL: where the kernel keeps its state: ${STORE_HELP}.\n--public-url: the URL VMs reach this kernel at; with several kernels over one store, every kernel's URL, comma-separated (each VM's agent and app move to the next when theirs goes away), or one load-balanced URL.\n--files-dir DIR: where local group files live (default DATA/files); kernels on one store share them by sharing DIR (on several machines, a shared filesystem), or use --files swift.`,
    async run(argv) {
      const { values } = parse(argv, {
        listen: { type: 'string', default: '127.0.0.1:8088' },
        data: { type: 'string', default: '.rack' },
        store: { type: 'string' },
        driver: { type: 'string', default: 'sim' },
        files: { type: 'string', default: 'local' },
        'files-dir': { type: 'string' },
        templates: { type: 'string', multiple: true },
        'public-url': { type: 'string' },
        'fork-limit': { type: 'string' },
        quota: { type: 'string', multiple: true },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'tls-ca': { type: 'string' },
        'max-instances': { type: 'string' },
        'max-vcpus': { type: 'string' },
        'max-ram-mb': { type: 'string' },
      });
      const tls = tlsOf(values);
      const bound = (flag: string): number | undefined => (values[flag] === undefined ? undefined : int(values[flag] as string, `--${flag}`));
      if (values.driver !== 'sim' && values.driver !== 'nova' && values.driver !== 'nspawn') throw new UsageError(`--driver must be sim, nova or nspawn, got "${String(values.driver)}"`);
      if (values.files !== 'local' && values.files !== 'swift') throw new UsageError(`--files must be local or swift, got "${String(values.files)}"`);
      if (values['files-dir'] !== undefined && values.files !== 'local') throw new UsageError('--files-dir is for --files local');
      const storeUrl = (values.store as string | undefined) ?? null;
      try {
        checkStoreUrl(storeUrl);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      const { startKernel } = await import('../server/start.js');
      const k = await startKernel({
        listen: values.listen as string,
        dataDir: values.data as string,
        storeUrl,
        driver: values.driver,
        files: values.files,
        filesDir: values['files-dir'] as string | undefined,
        templates: (values.templates as string[] | undefined) ?? [],
        publicUrl: values['public-url'] as string | undefined,
        forkLimit: values['fork-limit'] === undefined ? undefined : int(values['fork-limit'] as string, '--fork-limit'),
        quotas: quotasOf(values.quota as string[] | undefined),
        tls,
        pool: { instances: bound('max-instances'), vcpus: bound('max-vcpus'), ram_mb: bound('max-ram-mb') },
      });
      process.stdout.write(`RACK kernel at ${k.url} (admin token in ${k.dataDir}/admin-token unless RACK_ADMIN_TOKEN is set)\n`);
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          void k.close().then(resolve);
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
      return 0;
    },
  },

  group: {
    summary: 'create, list or delete groups (admin)',
    usage: 'rack group create NAME [--template T] [--flavor F] [--arg K=V]... [--user-data FILE] [--quota NAME=N]... | rack group ls | rack group rm GID',
    async run(argv) {
      const [sub, ...rest] = argv;
      if (sub === 'create') {
        const { values, positionals } = parse(rest, {
          template: { type: 'string' },
          flavor: { type: 'string' },
          description: { type: 'string' },
          arg: { type: 'string', multiple: true },
          'user-data': { type: 'string' },
          quota: { type: 'string', multiple: true },
        }, 1);
        if (!positionals[0]) throw new UsageError('rack group create needs a NAME');
        const group: Record<string, unknown> = { name: positionals[0] };
        for (const k of ['template', 'flavor', 'description']) if (values[k] !== undefined) group[k] = values[k];
        const userdata = userDataOf(values['user-data'] as string | undefined);
        if (userdata !== undefined) group.userdata = userdata;
        const quotas = quotasOf(values.quota as string[] | undefined);
        if (quotas) group.quotas = quotas;
        const args = argsOf(values.arg as string[] | undefined);
        if (args) group.args = args;
        const res = await client(values).call<{ group: Group }>('POST', '/v1/groups', { group });
        print(values.json as boolean, res.group, () => res.group.gid);
        return 0;
      }
      if (sub === 'ls') {
        const { values } = parse(rest, {});
        const res = await client(values).call<{ groups: Group[] }>('GET', '/v1/groups');
        print(values.json as boolean, res.groups, () => res.groups.map((g) => `${g.gid}  ${g.name}`).join('\n'));
        return 0;
      }
      if (sub === 'rm') {
        const { values, positionals } = parse(rest, {}, 1);
        if (!positionals[0]) throw new UsageError('rack group rm needs a GID');
        await client(values).call('DELETE', `/v1/groups/${encodeURIComponent(positionals[0])}`);
        return 0;
      }
      throw new UsageError('rack group needs create, ls or rm');
    },
  },

  ps: {
    summary: "list processes with their app's CPU and memory, and the fork queue; --tree draws the PPID tree",
    usage: 'rack ps [--gid GID] [--ppid N] [--tree] [--json]',
    async run(argv) {
      const { values } = parse(argv, { gid: { type: 'string' }, ppid: { type: 'string' }, tree: { type: 'boolean', default: false } });
      const c = client(values);
      const gids = values.gid !== undefined || process.env.RACK_GID ? [gidOf(values)] : (await c.call<{ groups: Group[] }>('GET', '/v1/groups')).groups.map((g) => g.gid);
      const q = values.ppid === undefined ? '' : `ppid=${int(values.ppid as string, '--ppid')}`;
      const { processes, queue } = await gatherPs(c, gids, q, values.json ? undefined : PS_FIELDS);
      print(values.json as boolean, processes, () => psText({ gids, processes, queue }, values.tree as boolean));
      return 0;
    },
  },

  fork: {
    summary: 'fork child processes (or boot a root process with the admin token)',
    usage: 'rack fork [--gid GID] [--ppid N] [--count N] [--template T] [--flavor F] [--name NAME] [--arg K=V]... [--user-data FILE] [--priority N] [--queue-timeout SECONDS] [--no-queue] [--wait-running SECONDS | --wait-ready SECONDS]',
    async run(argv) {
      const { values } = parse(argv, {
        gid: { type: 'string' },
        ppid: { type: 'string' },
        count: { type: 'string' },
        template: { type: 'string' },
        flavor: { type: 'string' },
        name: { type: 'string' },
        arg: { type: 'string', multiple: true },
        'user-data': { type: 'string' },
        'wait-running': { type: 'string' },
        'wait-ready': { type: 'string' },
        priority: { type: 'string' },
        'queue-timeout': { type: 'string' },
        'no-queue': { type: 'boolean', default: false },
      });
      if (values['wait-running'] !== undefined && values['wait-ready'] !== undefined) throw new UsageError('give --wait-running or --wait-ready, not both');
      const c = client(values);
      const gid = gidOf(values);
      const body: Record<string, unknown> = {};
      if (values.ppid !== undefined) body.ppid = int(values.ppid as string, '--ppid');
      else if (process.env.RACK_PID) body.ppid = int(process.env.RACK_PID, 'RACK_PID');
      if (values.count !== undefined) body.count = int(values.count as string, '--count');
      for (const k of ['template', 'flavor', 'name']) if (values[k] !== undefined) body[k] = values[k];
      const args = argsOf(values.arg as string[] | undefined);
      if (args) body.args = args;
      const userdata = userDataOf(values['user-data'] as string | undefined);
      if (userdata !== undefined) body.userdata = userdata;
      if (values.priority !== undefined) {
        if (!/^-?[0-9]{1,4}$/.test(values.priority as string) || Math.abs(Number(values.priority)) > 1000) throw new UsageError(`--priority must be an integer from -1000 to 1000, got "${String(values.priority)}"`);
        body.priority = Number(values.priority);
      }
      const queueTimeout = seconds(values['queue-timeout'] as string | undefined, '--queue-timeout');
      if (queueTimeout !== undefined) body.timeout = queueTimeout;
      if (values['no-queue']) body.no_queue = true;
      let { processes } = await c.call<{ processes: Process[] }>('POST', `/v1/groups/${encodeURIComponent(gid)}/processes`, { process: body });
      const ready = values['wait-ready'] !== undefined;
      const wait = seconds((values[ready ? 'wait-ready' : 'wait-running']) as string | undefined, ready ? '--wait-ready' : '--wait-running');
      if (wait !== undefined) {
        const deadline = Date.now() + wait * 1000;
        processes = await Promise.all(
          processes.map(async (p) => {
            const left = Math.max(0, (deadline - Date.now()) / 1000);
            const r = await c.call<{ process: Process }>('GET', `/v1/groups/${encodeURIComponent(gid)}/processes/${p.pid}/running?timeout=${left.toFixed(3)}${ready ? '&ready=true' : ''}`, undefined, left * 1000 + 10_000);
            return r.process;
          }),
        );
      }
      print(values.json as boolean, processes, () => processes.map((p) => String(p.pid)).join('\n'));
      return 0;
    },
  },

  kill: {
    summary: 'kill a process and its descendants (TERM with a grace period, or KILL)',
    usage: 'rack kill PID [--gid GID] [--signal TERM|KILL] [--grace SECONDS]',
    async run(argv) {
      const { values, positionals } = parse(argv, { gid: { type: 'string' }, signal: { type: 'string' }, grace: { type: 'string' } }, 1);
      const pid = int(positionals[0], 'PID');
      const q = new URLSearchParams();
      if (values.signal !== undefined) q.set('signal', String(values.signal).replace(/^SIG/, ''));
      const grace = seconds(values.grace as string | undefined, '--grace');
      if (grace !== undefined) q.set('grace', String(grace));
      const qs = q.size ? `?${q}` : '';
      const res = await client(values).call<{ kill: { pids: number[] } }>('DELETE', `/v1/groups/${encodeURIComponent(gidOf(values))}/processes/${pid}${qs}`);
      print(values.json as boolean, res.kill, () => res.kill.pids.join(' '));
      return 0;
    },
  },

  signal: {
    summary: "send a signal to a process's app (TERM INT HUP USR1 USR2 STOP CONT)",
    usage: 'rack signal PID NAME [--gid GID]',
    async run(argv) {
      const { values, positionals } = parse(argv, { gid: { type: 'string' } }, 2);
      const pid = int(positionals[0], 'PID');
      const name = (positionals[1] ?? '').replace(/^SIG/, '');
      if (!name) throw new UsageError('rack signal needs PID and a signal NAME');
      await client(values).call('POST', `/v1/groups/${encodeURIComponent(gidOf(values))}/processes/${pid}/signal`, { signal: { name } });
      return 0;
    },
  },

  console: {
    summary: "the tail of a process's VM console: its guest agent's log, with its app's output",
    usage: 'rack console PID [--gid GID] [--lines N]',
    async run(argv) {
      const { values, positionals } = parse(argv, { gid: { type: 'string' }, lines: { type: 'string' } }, 1);
      const pid = int(positionals[0], 'PID');
      const lines = values.lines === undefined ? 100 : int(values.lines as string, '--lines');
      if (lines < 1 || lines > 10_000) throw new UsageError(`--lines must be from 1 to 10000, got ${lines}`);
      const res = await client(values).call<{ console: { output: string } }>('GET', `/v1/groups/${encodeURIComponent(gidOf(values))}/processes/${pid}/console?lines=${lines}`);
      print(values.json as boolean, res.console, () => res.console.output.replace(/\n$/, ''));
      return 0;
    },
  },

  wait: {
    summary: "wait for a child to end; exits with the child's status (128+N when killed by signal N)",
    usage: 'rack wait [PID] [--gid GID] [--ppid N] [--timeout SECONDS]',
    async run(argv) {
      const { values, positionals } = parse(argv, { gid: { type: 'string' }, ppid: { type: 'string' }, timeout: { type: 'string' } }, 1);
      const ppidRaw = (values.ppid as string | undefined) ?? process.env.RACK_PID;
      if (ppidRaw === undefined) throw new UsageError('whose children? pass --ppid N or set RACK_PID');
      const ppid = int(ppidRaw, '--ppid');
      const q = new URLSearchParams();
      if (positionals[0] !== undefined) q.set('pid', String(int(positionals[0], 'PID')));
      const timeout = seconds(values.timeout as string | undefined, '--timeout') ?? 30;
      q.set('timeout', String(Math.min(timeout, 300)));
      const res = await client(values).call<{ wait: WaitResult }>('GET', `/v1/groups/${encodeURIComponent(gidOf(values))}/processes/${ppid}/wait?${q}`, undefined, timeout * 1000 + 10_000);
      print(values.json as boolean, res.wait, () => {
        const w = res.wait;
        return `${w.pid} ${w.status}${w.code !== null ? ` ${w.code}` : ''}${w.signal ? ` ${w.signal}` : ''}${w.error ? ` ${w.error}` : ''}`;
      });
      return shellStatus(res.wait);
    },
  },

  status: {
    summary: "set this process's app status (free text)",
    usage: 'rack status TEXT [--gid GID] [--pid N]',
    async run(argv) {
      const { values, positionals } = parse(argv, { gid: { type: 'string' }, pid: { type: 'string' } }, 1);
      const pidRaw = (values.pid as string | undefined) ?? process.env.RACK_PID;
      const pid = int(pidRaw, '--pid');
      await client(values).call('PUT', `/v1/groups/${encodeURIComponent(gidOf(values))}/processes/${pid}`, { process: { app_status: positionals[0] ?? '' } });
      return 0;
    },
  },
};

