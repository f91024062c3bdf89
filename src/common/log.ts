import { createRequire } from 'node:module';
import { pino, type Logger, type LoggerOptions } from 'pino';

// pino-pretty is loaded only when a person is watching: daemons (dckinit in a VM) stay lean.
const require = createRequire(import.meta.url);

export type { Logger };

/** Keys whose values must never reach a log line, wherever they appear in a logged object. */
const REDACT = [
  'token',
  '*.token',
  'rack_token',
  '*.rack_token',
  'meta.rack_token',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  'password',
  '*.password',
];

export interface LogOptions {
  name: string;
  level?: string;
  /** Force pretty (true) or JSON (false); default: pretty only when stderr is a TTY. */
  pretty?: boolean;
  destination?: NodeJS.WritableStream;
}

/**
 * One logger factory for every part: JSON lines (one event a line) by default, human-readable when
 * a person is watching. Child loggers add `gid` / `pid` fields.
 */
export function createLogger(opts: LogOptions): Logger {
  const level = opts.level ?? process.env.RACK_LOG_LEVEL ?? 'info';
  const options: LoggerOptions = {
    name: opts.name,
    level,
    redact: { paths: REDACT, censor: '[redacted]' },
    base: { name: opts.name },
  };
  const usePretty = opts.pretty ?? Boolean(process.stderr.isTTY);
  const dest = opts.destination ?? process.stderr;
  if (usePretty) {
    const pretty = require('pino-pretty') as (o: Record<string, unknown>) => NodeJS.WritableStream;
    return pino(options, pretty({ destination: dest as never, colorize: Boolean(process.stderr.isTTY), ignore: 'hostname', sync: true }));
  }
  return pino(options, dest as never);
}

/** A logger that drops everything (tests and library code that was given none). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
