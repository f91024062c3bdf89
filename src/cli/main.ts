#!/usr/bin/env node
import { isRackError } from '../common/errors.js';
import { COMMANDS, UsageError, usage } from './commands.js';

/** `rack`: thin entry; each command lives in commands.ts. */
async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (!command) throw new UsageError(`unknown command "${name}"; run "rack --help" for the list`);
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
