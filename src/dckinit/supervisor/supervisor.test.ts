import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import type { RoleConfig } from '../config/config.js';
import { Supervisor, type AppExit } from './supervisor.js';

/** A logger whose lines are kept, to see what the supervisor logged and in which order. */
function capture(): { log: ReturnType<typeof createLogger>; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { log: createLogger({ name: 'test', level: 'debug', pretty: false, destination }), lines };
}

function role(command: string, more: Partial<RoleConfig> = {}): RoleConfig {
  return { command: ['/bin/sh', '-c', command], shell: false, workdir: null, user: null, environment: {}, restart: { policy: 'never', max: 0, backoff: 0 }, on_exit: null, stop_grace: 5, ready: 'started', ...more };
}

/** Runs the role to its final exit; the states it went through. */
async function run(s: Supervisor): Promise<{ exit: AppExit; states: string[] }> {
  const states: string[] = [];
  s.on('state', (st: string) => states.push(st));
  const exit = new Promise<AppExit>((resolve) => s.once('exit', resolve));
  s.start();
  return { exit: await exit, states };
}

describe('Supervisor', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('runs the app with its environment, logs its output lines, and reports its exit code', async () => {
    const { log, lines } = capture();
    const s = new Supervisor(role('echo "out $RACK_PID $EXTRA"; echo err >&2; exit 3', { environment: { EXTRA: 'x-${RACK_PID}' } }), { RACK_PID: '105' }, log);
    const { exit, states } = await run(s);
    expect(exit).toEqual({ code: 3, signal: null });
    expect(states).toEqual(['starting', 'running']);
    const out = lines.filter((l) => l.stream !== undefined).map((l) => `${String(l.stream)}: ${String(l.msg)}`);
    expect(out.sort()).toEqual(['stderr: err', 'stdout: out 105 x-105']);
  });

  it('an app that cannot start exits 127 and never runs', async () => {
    const { log, lines } = capture();
    const { exit, states } = await run(new Supervisor({ ...role(''), command: ['/nonexistent/app'] }, {}, log));
    expect(exit).toEqual({ code: 127, signal: null });
    expect(states).toEqual(['starting']);
    expect(lines.find((l) => l.msg === 'app could not start')?.err).toMatch(/ENOENT/);
  });

  it('reports the exit after the output of what the app left behind, which holds its pipes', async () => {
    const { log, lines } = capture();
    const exited = new Promise<number>((resolve) => {
      const s = new Supervisor(role('echo first; (sleep 0.3; echo late) & exit 0'), {}, log);
      s.once('exit', () => resolve(lines.length));
      s.start();
    });
    const at = await exited;
    expect(lines.slice(0, at).map((l) => l.msg)).toContain('late');
  });

  it('stop() signals the whole process group: a process the app started ends with it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rack-supervisor-'));
    dirs.push(dir);
    const { log } = capture();
    // The shell records its child's PID, then waits; TERM reaches both.
    const s = new Supervisor(role(`sleep 30 & echo $! > ${dir}/child; echo started; wait`), {}, log);
    const started = new Promise<void>((resolve) => s.on('state', (st: string) => st === 'running' && resolve()));
    s.start();
    await started;
    const pid = await new Promise<number>((resolve) => {
      const look = (): void => {
        try {
          const text = readFileSync(join(dir, 'child'), 'utf8');
          if (text.endsWith('\n')) return resolve(Number(text));
        } catch {
          // not written yet
        }
        setImmediate(look);
      };
      look();
    });
    expect(await s.stop(5000)).toEqual({ code: null, signal: 'TERM' });
    // Its output pipe has closed, so it has ended: gone, or a zombie until init reaps it.
    const state = ((): string => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      } catch {
        return 'gone';
      }
    })();
    expect(['gone', 'Z', 'X']).toContain(state);
  });

  it('restarts a failing app by policy, then reports its last exit', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rack-supervisor-'));
    dirs.push(dir);
    const { log } = capture();
    const { exit, states } = await run(new Supervisor(role(`echo run >> ${dir}/runs; exit 2`, { restart: { policy: 'on-failure', max: 2, backoff: 0 } }), {}, log));
    expect(exit).toEqual({ code: 2, signal: null });
    expect(readFileSync(join(dir, 'runs'), 'utf8')).toBe('run\nrun\nrun\n');
    expect(states).toEqual(['starting', 'running', 'starting', 'running', 'starting', 'running']);
  });
});
