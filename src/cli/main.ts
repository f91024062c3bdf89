#!/usr/bin/env -S node --max-semi-space-size=64
// A larger young generation: `rack ps` of 10,000 processes parses megabytes of JSON into objects,
// and with Node's default the collector took as long as the kernel's answer.
import { isRackError } from '../common/errors.js';
import { packageVersion } from '../common/package-info.js';
import { UsageError, type Command } from './args.js';
import { ipcCommands } from './ipc-commands.js';
import { MONITOR_COMMANDS } from './monitor-commands.js';
import { PROCESS_COMMANDS } from './process-commands.js';

const COMMANDS: Record<string, Command> = { ...PROCESS_COMMANDS, ...MONITOR_COMMANDS, ...ipcCommands() };


const CONNECTION_HELP = [
  'Connection: RACK_URL and RACK_TOKEN (or --url, --token); RACK_CA (or --ca FILE) names the CA of an',
  'https kernel; RACK_GID and RACK_PID set the group and the calling process inside a VM. --json',
  'prints machine-readable output.',
  'Exit status: 0 ok, 1 the kernel refused or could not be reached, 2 bad usage; rack wait exits',
  "with the child's status.",
  '',
].join('\n');

/** `rack`: thin entry; the commands live in process-commands.ts and ipc-commands.ts. */
function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  return [
    'rack: operate RACK, where VMs behave like processes',
    '',
    'Commands:',
    ...Object.entries(COMMANDS).map(([k, c]) => `  ${k.padEnd(width)}  ${c.summary}\n  ${' '.repeat(width)}  ${c.usage}`),
    '',
    CONNECTION_HELP,
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === 'version') {
    process.stdout.write(`rack ${packageVersion()}\n`);
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) throw new UsageError(`unknown command "${name}"; run "rack --help" for the list`);
  // Every command answers --help with its own usage, before it looks at anything else.
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`rack ${name}: ${command.summary}\n\nusage: ${command.usage}\n\n${command.details ? `${command.details}\n\n` : ''}${CONNECTION_HELP}`);
    return 0;
  }
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`rack: ${err.message}\n`);
      process.exitCode = 2;
    } else if (isRackError(err)) {
      process.stderr.write(`rack: ${err.message} (${err.code})\n`);
      process.exitCode = 1;
    } else {
      process.stderr.write(`rack: ${(err as Error)?.message ?? String(err)}\n`);
      process.exitCode = 1;
    }
  },
);
