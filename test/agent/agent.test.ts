import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '../../src/common/until.js';
import { appStarted, type Process } from '../../src/protocol/process.js';
import { untilFile, untilGone } from '../support/files.js';
import { osProcessesOfVm, startTestKernel, untilProcess, type TestKernel } from '../support/kernel.js';

describe('dckinit in sim VMs, against the kernel', () => {
  const out = mkdtempSync(join(tmpdir(), 'rack-agent-out-'));
  const dataDir = mkdtempSync(join(tmpdir(), 'rack-agent-data-'));
  let k: TestKernel;
  let gid: string;
  let root: Process;
  let port: number;

  beforeAll(async () => {
    k = await startTestKernel({}, dataDir);
    port = Number(new URL(k.url).port);
    gid = (await k.call('POST', '/v1/groups', { group: { name: 'agents', template: 'agent-app', args: { out } } })).body.group.gid;
    const r = await k.call('POST', `/v1/groups/${gid}/processes`, { process: { name: 'parent' } });
    root = await untilProcess(k, gid, r.body.processes[0].pid, (p) => appStarted(p.app_state));
  });
  afterAll(async () => {
    await k.call('DELETE', `/v1/groups/${gid}`);
    await k.cleanup();
    rmSync(out, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('the root VM launches the parent role with the RACK_* environment', async () => {
    const env = await untilFile(join(out, `${root.pid}.env`), (t) => t.includes('RACK_TOKEN='));
    expect(env).toContain(`RACK_GID=${gid}`);
    expect(env).toContain(`RACK_PID=${root.pid}`);
    expect(env).toMatch(/^RACK_PPID=$/m);
    expect(env).toContain('RACK_ROLE=parent');
    expect(env).toContain(`RACK_URL=${k.url}`);
    expect(env).toContain(`RACK_ARG_OUT=${out}`);
    expect(root.status).toBe('ACTIVE');
    // The app's output reaches the VM console with its pid, and the console never shows the token.
    await untilFile(join(dataDir, 'vms', root.compute_id!, 'console.log'), (t) => t.includes(`app of parent ${root.pid} running`));
    const token = k.tokenOf(root);
    const c = await k.call('GET', `/v1/groups/${gid}/processes/${root.pid}/console?lines=500`, undefined, token);
    expect(c.status).toBe(200);
    const line = c.body.console.output.split('\n').find((l: string) => l.includes(`app of parent ${root.pid} running`));
    expect(JSON.parse(line)).toMatchObject({ pid: root.pid, gid, stream: 'stdout' });
    expect(c.body.console.output).not.toContain(token);
  });

  it("a child launches the child role; its exit code reaches the parent's wait; its VM is gone after", async () => {
    const t = k.tokenOf(root);
    const res = await k.call('POST', `/v1/groups/${gid}/processes`, { process: { args: { mode: 'exit', code: '7' } } }, t);
    const child = res.body.processes[0] as Process;
    const waited = await k.call('GET', `/v1/groups/${gid}/processes/${root.pid}/wait?pid=${child.pid}&timeout=60`, undefined, t);
    expect(waited.body.wait).toMatchObject({ pid: child.pid, status: 'exited', code: 7 });
    const env = await untilFile(join(out, `${child.pid}.env`));
    expect(env).toContain('RACK_ROLE=child');
    expect(env).toContain(`RACK_PPID=${root.pid}`);
    expect(env).toContain('RACK_ARG_CODE=7');
    // kill-on-exit: the agent asked the kernel to destroy its VM.
    const ended = (await k.kernel.getProcess(gid, child.pid))!;
    await untilGone(join(dataDir, 'vms', ended.compute_id!));
    expect(osProcessesOfVm(ended.compute_id!)).toEqual([]);
  });

  it('signals reach the app; TERM through kill reaches it as SIGTERM, KILL destroys the VM', async () => {
    const t = k.tokenOf(root);
    const [a, b] = (await k.call('POST', `/v1/groups/${gid}/processes`, { process: { count: 2 } }, t)).body.processes as Process[];
    await untilProcess(k, gid, a!.pid, (p) => appStarted(p.app_state));
    await untilProcess(k, gid, b!.pid, (p) => appStarted(p.app_state));
    // "running" means started; the app has its signal handlers once it has written its env file.
    await untilFile(join(out, `${a!.pid}.env`));
    expect((await k.call('POST', `/v1/groups/${gid}/processes/${a!.pid}/signal`, { signal: { name: 'USR1' } }, t)).status).toBe(202);
    await untilFile(join(out, `${a!.pid}.signals`), (s) => s.includes('USR1'));
    expect((await k.call('DELETE', `/v1/groups/${gid}/processes/${a!.pid}?grace=10`, undefined, t)).status).toBe(202);
    await untilFile(join(out, `${a!.pid}.signals`), (s) => s.includes('TERM'));
    const endedA = await untilProcess(k, gid, a!.pid, (p) => p.status !== 'ACTIVE');
    expect(['EXITED', 'KILLED']).toContain(endedA.status);
    const bVm = (await k.kernel.getProcess(gid, b!.pid))!.compute_id!;
    await k.call('DELETE', `/v1/groups/${gid}/processes/${b!.pid}?signal=KILL`, undefined, t);
    const endedB = await untilProcess(k, gid, b!.pid, (p) => p.status === 'KILLED');
    expect(endedB.signal).toBe('KILL');
    expect(osProcessesOfVm(bVm)).toEqual([]);
  });

  it('survives a kernel stopped for 30 s, while its app runs and after it has ended: the agents reconnect, signals and kills still arrive', async () => {
    const t = k.tokenOf(root);
    const [c] = (await k.call('POST', `/v1/groups/${gid}/processes`, { process: {} }, t)).body.processes as Process[];
    // A root process whose app exits at once: its agent stays (on_exit: stay) with nothing left to do but wait.
    const [done] = (await k.call('POST', `/v1/groups/${gid}/processes`, { process: { name: 'done', args: { mode: 'exit', code: '3' } } })).body.processes as Process[];
    await untilProcess(k, gid, c!.pid, (p) => appStarted(p.app_state));
    const ended = await untilProcess(k, gid, done!.pid, (p) => p.status === 'EXITED');
    expect(ended.exit_code).toBe(3);
    const vm = (await k.kernel.getProcess(gid, c!.pid))!.compute_id!;
    const doneVm = ended.compute_id!;
    await k.close();
    await new Promise((r) => setTimeout(r, 30_000)); // the outage itself is what is under test
    expect(osProcessesOfVm(vm).length).toBeGreaterThan(0);
    expect(osProcessesOfVm(doneVm).length).toBeGreaterThan(0);
    k = await startTestKernel({ listen: `127.0.0.1:${port}` }, dataDir);
    // Both agents come back and say hello.
    await until(k.kernel.events, 'agent', () => true, () => (k.kernel.agentConnected(gid, c!.pid) && k.kernel.agentConnected(gid, done!.pid) ? true : null), Date.now() + 30_000);
    // A signal sent now reaches the running app.
    expect((await k.call('POST', `/v1/groups/${gid}/processes/${c!.pid}/signal`, { signal: { name: 'HUP' } }, t)).status).toBe(202);
    await untilFile(join(out, `${c!.pid}.signals`), (s) => s.includes('HUP'));
    expect((await k.call('GET', `/v1/groups/${gid}/processes/${c!.pid}`)).body.process.status).toBe('ACTIVE');
    // The ended one's VM is still there, still controlled: a kill destroys it.
    expect((await k.call('DELETE', `/v1/groups/${gid}/processes/${done!.pid}?signal=KILL`)).status).toBe(202);
    await untilGone(join(dataDir, 'vms', doneVm));
    expect(osProcessesOfVm(doneVm)).toEqual([]);
  }, 120_000);
});
