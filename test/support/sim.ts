import { execFile } from 'node:child_process';

/** `npm run sim` as a user runs it (the built script), checked through its JSON report. */
/** `timeoutMs`: past it the sim gets TERM (it then stops every VM it started) and the answer is its exit. */
export function sim(args: string[], timeoutMs = 0): Promise<{ code: number; report: any; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['examples/csv-processing/dist/sim.js', ...args], { maxBuffer: 64 * 1024 * 1024, timeout: timeoutMs, killSignal: 'SIGTERM' }, (err, stdout, stderr) => {
      const last = stdout.trim().split('\n').pop() ?? '';
      let report: unknown = null;
      try {
        report = JSON.parse(last);
      } catch {
        /* no report */
      }
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, report, stderr });
    });
  });
}

