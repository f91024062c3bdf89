#!/usr/bin/env node
/**
 * csv-processing: the seed's commands for operators (slides 14-15), against a running kernel:
 *   csv-processing start-daemon            boots the File Catcher; prints its PID
 *   csv-processing put-file FILE [--pid N]  hands FILE to it; prints the job id
 *   csv-processing status JOB              prints the job's status as JSON
 * RACK_URL, RACK_TOKEN (admin) and RACK_GID say where.
 */
import { jobStatus, putFile, startDaemon, type Target } from './commands.js';

async function main(argv: string[]): Promise<number> {
  const { RACK_URL: url, RACK_TOKEN: token, RACK_GID: gid } = process.env;
  if (!url || !token || !gid) {
    process.stderr.write('csv-processing: set RACK_URL, RACK_TOKEN and RACK_GID (see `npm run sim -- --keep`)\n');
    return 2;
  }
  const t: Target = { url, token, gid };
  const [cmd, ...rest] = argv;
  if (cmd === 'start-daemon') {
    process.stdout.write(`${await startDaemon(t)}\n`);
    return 0;
  }
  if (cmd === 'put-file' && rest[0]) {
    const i = rest.indexOf('--pid');
    const pid = i >= 0 ? Number(rest[i + 1]) : 100;
    if (!Number.isInteger(pid)) throw new Error('--pid must be a number');
    process.stdout.write(`${await putFile(t, pid, rest[0])}\n`);
    return 0;
  }
  if (cmd === 'status' && rest[0]) {
    process.stdout.write(`${JSON.stringify(await jobStatus(t, rest[0]))}\n`);
    return 0;
  }
  process.stderr.write('usage: csv-processing start-daemon | put-file FILE [--pid N] | status JOB\n');
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (err: Error) => {
    process.stderr.write(`csv-processing: ${err.message}\n`);
    process.exitCode = 1;
  },
);
