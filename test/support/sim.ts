import { execFile } from 'node:child_process';

/** `npm run sim` as a user runs it (the built script), checked through its JSON report. */
export function sim(args: string[]): Promise<{ code: number; report: any; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['examples/csv-processing/dist/sim.js', ...args], { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
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

