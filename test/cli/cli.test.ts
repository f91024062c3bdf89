import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Process } from '../../src/protocol/process.js';
import { cloudConfigs, credentialsOf } from '../../src/protocol/user-data.js';
import { startTestKernel, untilProcess, type TestKernel } from '../support/kernel.js';
import { freePort } from '../support/kernel-process.js';

describe('rack CLI', () => {
  let k: TestKernel;
  let gid: string;
  let root: Process;
  const dir = mkdtempSync(join(tmpdir(), 'rack-cli-'));

  /** Runs `rack ARGS` asynchronously (the kernel lives in this process) with the admin token. */
  const rack = (args: string[], env: Record<string, string> = {}, input?: string): Promise<{ code: number; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      const child = execFile(process.execPath, ['dist/cli/main.js', ...args], { env: { ...process.env, RACK_URL: k.url, RACK_TOKEN: k.adminToken, RACK_GID: gid, ...env } }, (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
      if (input !== undefined) child.stdin!.end(input);
      else child.stdin!.end();
    });

  beforeAll(async () => {
    k = await startTestKernel();
    gid = (await k.call('POST', '/v1/groups', { group: { name: 'cli', template: 'idle' } })).body.group.gid;
    const r = await rack(['fork', '--json']);
    root = await untilProcess(k, gid, JSON.parse(r.stdout)[0].pid, (p) => p.compute_id !== null);
  });
  afterAll(() => k.cleanup());

  it('rack top draws plain frames when not on a terminal; rack pool sets and shows the pool', async () => {
    const top = await rack(['top', '--iterations', '1']);
    expect(top.code, top.stderr).toBe(0);
    expect(top.stdout).toMatch(/^rack top /);
    expect(top.stdout).toContain(`group cli (${gid.slice(0, 8)})`);
    expect(top.stdout).toMatch(new RegExp(`^ +${root.pid} +- (BUILD|ACTIVE) `, 'm'));
    expect((await rack(['top', '--sort', 'colour'])).code).toBe(2);
    const pool = await rack(['pool', '--set', 'instances=5,vcpus=none']);
    expect(pool.code, pool.stderr).toBe(0);
    expect(pool.stdout).toMatch(/^group +[0-9]+\/5 +[0-9.]+\/∞ /m);
    expect((await rack(['pool', '--clear', '--json'])).stdout).toContain('"capacity":{"instances":null');
  });

  it('bad usage: one line saying what is wrong, exit 2', async () => {
    for (const args of [['nonsense'], ['kill'], ['kill', '-5'], ['ps', '--bogus'], ['shm', 'get'], ['fork', '--count', 'many'], ['console', '100', '--lines', '0'], ['file', 'put', 'x', '/no/such/file']]) {
      const r = await rack(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^rack: /);
    }
    expect((await rack(['ps'], { RACK_URL: '' })).stderr).toMatch(/set RACK_URL/);
    const v = await rack(['--version']);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/^rack [0-9]+\.[0-9]+\.[0-9]+\n$/);
  });

  it('every command answers --help with its own usage, exit 0', async () => {
    for (const cmd of ['kernel', 'group', 'ps', 'top', 'pool', 'fork', 'kill', 'signal', 'wait', 'console', 'status', 'send', 'recv', 'shm', 'file', 'pipe']) {
      const r = await rack([cmd, '--help'], { RACK_URL: '' });
      expect(r.code, cmd).toBe(0);
      expect(r.stdout, cmd).toMatch(new RegExp(`^rack ${cmd}: .*\n\nusage: rack ${cmd}`));
    }
  });

  it('RACK_URL may list several kernels: a command goes to the first that can be reached (calls and file streams)', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const env = { RACK_URL: `${dead}, ${k.url}` };
    const ps = await rack(['ps', '--json'], env);
    expect(ps.code, ps.stderr).toBe(0);
    expect(JSON.parse(ps.stdout).map((p: Process) => p.pid)).toContain(root.pid);
    const src = join(dir, 'listed.txt');
    writeFileSync(src, 'through the list\n');
    const put = await rack(['file', 'put', 'listed.txt', src], env);
    expect(put.code, put.stderr).toBe(0);
    expect((await rack(['file', 'get', 'listed.txt', '-'], env)).stdout).toBe('through the list\n');
    // None reachable: one line naming the last kernel tried, exit 1.
    const none = await rack(['ps'], { RACK_URL: `${dead},${dead}` });
    expect([none.code, none.stderr.trim().split('\n').length]).toEqual([1, 1]);
    expect(none.stderr).toContain(`cannot reach the kernel at ${dead}`);
  });

  it('rack kernel refuses --files-dir beside --files swift with one line, before it starts anything', async () => {
    const r = await rack(['kernel', '--files', 'swift', '--files-dir', dir], { RACK_URL: '' });
    expect([r.code, r.stderr.trim()]).toEqual([2, expect.stringMatching(/^rack: --files-dir is for --files local\b/)]);
  });

  it('--user-data FILE: a group\'s default for its forks, or one fork\'s own; the token is added beside it', async () => {
    const groupData = join(dir, 'group.yaml');
    const forkData = join(dir, 'fork.sh');
    writeFileSync(groupData, '#cloud-config\npackages: [curl]\n');
    writeFileSync(forkData, '#!/bin/sh\necho fork\n');
    const g = (await rack(['group', 'create', 'ud', '--template', 'idle', '--user-data', groupData])).stdout.trim();
    const userDataOf = async (pid: number): Promise<string> => {
      const p = await untilProcess(k, g, pid, (x) => x.compute_id !== null);
      return JSON.parse(readFileSync(join(k.dataDir, 'vms', p.compute_id!, 'vm.json'), 'utf8')).userData as string;
    };
    const [first] = JSON.parse((await rack(['fork', '--json'], { RACK_GID: g })).stdout) as Process[];
    const inherited = await userDataOf(first!.pid);
    expect(cloudConfigs(inherited)).toContain('#cloud-config\npackages: [curl]\n');
    expect(credentialsOf(inherited)!.token).toBe(k.tokenOf(first!));
    const [second] = JSON.parse((await rack(['fork', '--json', '--user-data', forkData], { RACK_GID: g })).stdout) as Process[];
    const own = await userDataOf(second!.pid);
    expect(own).toContain('Content-Type: text/x-shellscript');
    expect(own).toContain('echo fork');
    expect(own).not.toContain('packages: [curl]');
    // The group does not show its user_data to anyone.
    expect(JSON.stringify((await k.call('GET', `/v1/groups/${g}`)).body)).not.toContain('curl');
    const missing = await rack(['fork', '--user-data', join(dir, 'nope')], { RACK_GID: g });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--user-data .*nope: no such file/);
  });

  it('a refusal or an unreachable kernel: exit 1 with the reason', async () => {
    const r = await rack(['kill', '999']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no process 999 .*\(not_found\)/);
    const down = await rack(['ps'], { RACK_URL: 'http://127.0.0.1:9' });
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/cannot reach the kernel/);
  });

  it('fork, wait (exit status of the child), ps --json', async () => {
    const f = await rack(['fork', '--ppid', String(root.pid), '--count', '2', '--arg', 'x=1']);
    const [a, b] = f.stdout.trim().split('\n').map(Number);
    await k.call('POST', `/v1/groups/${gid}/processes/${a}/exit`, { exit: { code: 5 } });
    const w = await rack(['wait', String(a), '--ppid', String(root.pid)]);
    expect(w.code).toBe(5);
    expect(w.stdout).toMatch(new RegExp(`^${a} exited 5`));
    await rack(['kill', String(b), '--signal', 'KILL']);
    const wk = await rack(['wait', String(b), '--ppid', String(root.pid), '--json']);
    expect(wk.code).toBe(137);
    expect(JSON.parse(wk.stdout)).toMatchObject({ status: 'killed', signal: 'KILL' });
    const ps = JSON.parse((await rack(['ps', '--json'])).stdout);
    expect(ps.map((p: Process) => p.pid)).toEqual([root.pid, a, b]);
  });

  it('messages, shared memory', async () => {
    expect((await rack(['send', String(root.pid), '{"n": 1}'])).code).toBe(0);
    expect((await rack(['send', String(root.pid), 'plain text'])).code).toBe(0);
    const r = await rack(['recv', '--pid', String(root.pid), '--count', '2']);
    expect(r.stdout).toBe('{"n":1}\nplain text\n');
    expect((await rack(['recv', '--pid', String(root.pid), '--timeout', '0.2'])).code).toBe(124);
    await rack(['shm', 'set', 'greeting', '"hi"']);
    expect((await rack(['shm', 'get', 'greeting'])).stdout.trim()).toBe('"hi"');
    expect((await rack(['shm', 'incr', 'c', '5'])).stdout.trim()).toBe('5');
    expect((await rack(['shm', 'keys'])).stdout.trim().split('\n')).toEqual(['c', 'greeting']);
    expect((await rack(['shm', 'get', 'absent'])).code).toBe(1);
  });

  it('files and pipes', async () => {
    const src = join(dir, 'in.txt');
    writeFileSync(src, 'file body\n');
    expect((await rack(['file', 'put', 'docs/in.txt', src])).code).toBe(0);
    expect((await rack(['file', 'ls', 'docs/'])).stdout).toMatch(/10 {2}docs\/in\.txt/);
    const out = join(dir, 'out.txt');
    await rack(['file', 'get', 'docs/in.txt', out]);
    expect(readFileSync(out, 'utf8')).toBe('file body\n');
    expect((await rack(['file', 'put', '../x', src])).code).toBe(2);
    expect((await rack(['file', 'rm', 'docs/in.txt'])).code).toBe(0);
    const id = (await rack(['pipe', 'create'])).stdout.trim();
    // The reader must have opened its end before the writer closes: hear of it from the kernel.
    const readerOpened = new Promise<void>((resolve) => {
      const onOpen = (e: { pipe: string; mode: string }): void => {
        if (e.pipe !== id || e.mode !== 'r') return;
        k.services.pipes.off('opened', onOpen);
        resolve();
      };
      k.services.pipes.on('opened', onOpen);
    });
    const reader = new Promise<string>((resolve) => {
      const child = spawn(process.execPath, ['dist/cli/main.js', 'pipe', 'read', id], { env: { ...process.env, RACK_URL: k.url, RACK_TOKEN: k.adminToken, RACK_GID: gid } });
      let text = '';
      child.stdout.on('data', (d) => (text += d));
      child.on('exit', () => resolve(text));
    });
    await readerOpened;
    expect((await rack(['pipe', 'write', id], {}, 'through the pipe\n')).code).toBe(0);
    expect(await reader).toBe('through the pipe\n');
  });
});
