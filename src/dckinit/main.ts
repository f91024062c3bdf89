#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { createLogger } from '../common/log.js';
import { packageVersion } from '../common/package-info.js';
import { NotifyRelay } from './notify/relay.js';

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
  // The app's NOTIFY_SOCKET helper is a python3 process: started first, it comes up while the rest
  // of the agent loads and reads its metadata, where after them it was the longest step between a
  // sim VM's start and its app's. It is closed here when the agent is done (by the agent sooner,
  // when there is no app to run).
  const relay = NotifyRelay.start(log);
  const [{ runAgent }, { ConfigError }, { MetadataError }] = await Promise.all([import('./agent.js'), import('./config/config.js'), import('./metadata/http-reader.js')]);
  try {
    const r = await runAgent({ configFile: values.config, metadataUrl: values['metadata-url'], log, relay });
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
  } finally {
    (await relay)?.close();
  }
}

void main().then((code) => {
  process.exitCode = code;
  // Timers and sockets of the agent must not keep a finished agent alive.
  setTimeout(() => process.exit(code), 200).unref();
});
