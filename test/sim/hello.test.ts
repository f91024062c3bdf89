import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';

function hello(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['examples/hello/run.mjs', ...args], (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('npm run hello (the quick start)', () => {
  it('the parent forks N children, each prints a line and exits with its own code, the parent prints the codes', async () => {
    const r = await hello(['--children', '4']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toMatch(/100 │ parent 100: forked 101, 102, 103, 104/);
    for (const pid of [101, 102, 103, 104]) expect(r.stdout).toContain(`${pid} │ hello from ${pid}, child of 100`);
    expect(r.stdout).toContain('100 │ parent 100: exit codes {"101":1,"102":2,"103":3,"104":4}');
    expect(r.stdout).toContain('no process left');
  }, 120_000);

  it('a bad --children: one line saying what is wrong, exit 2', async () => {
    const r = await hello(['--children', '0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^hello: --children must be an integer from 1 to 50, got "0"/);
  });
});
