#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { createLogger } from '../common/log.js';
import { packageVersion } from '../common/package-info.js';
import { runAgent } from './agent.js';
import { ConfigError } from './config/config.js';
import { MetadataError } from './metadata/http-reader.js';

/** `dckinit`: the RACK guest agent. Thin entry: flags, logger, then the agent. */
const USAGE = 'usage: dckinit [--config FILE] [--metadata-url URL] [--version]';

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ options: { config: { type: 'string' }, 'metadata-url': { type: 'string' }, help: { type: 'boolean' }, version: { type: 'boolean' } }, strict: true }));
  } catch (err) {
    process.stderr.write(`dckinit: ${(err as Error).message.split('\n')[0]}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`dckinit ${packageVersion()}\n`);
    return 0;
  }
  const log = createLogger({ name: 'dckinit' });
  try {
    const r = await runAgent({ configFile: values.config, metadataUrl: values['metadata-url'], log });
    log.info({ code: r.code }, r.reason);
    return r.code;
  } catch (err) {
    if (err instanceof ConfigError || err instanceof MetadataError) {
      log.error(err.message);
      process.stderr.write(`dckinit: ${err.message}\n`);
      return 1;
    }
    log.error({ err }, 'dckinit failed');
    return 1;
  }
}

void main().then((code) => {
  process.exitCode = code;
  // Timers and sockets of the agent must not keep a finished agent alive.
  setTimeout(() => process.exit(code), 200).unref();
});
