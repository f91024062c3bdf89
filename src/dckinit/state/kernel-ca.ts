import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../common/log.js';

/**
 * Writes the CA an https kernel is signed by (from the VM's credentials) where the app can read
 * it, and answers its path (the app's RACK_CA; libdck, libdck.sh and the rack CLI read it). It
 * lives beside the agent's state, in the unit's StateDirectory=.
 */
export function saveKernelCa(pem: string, log: Logger, dir = process.env.STATE_DIRECTORY?.split(':')[0] || '/var/lib/dckinit'): string | undefined {
  const file = join(dir, 'kernel-ca.pem');
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(`${file}.tmp`, pem, { mode: 0o644 });
    renameSync(`${file}.tmp`, file);
    return file;
  } catch (err) {
    log.warn({ err: (err as Error).message, file }, 'cannot write the kernel CA for the app; it will not reach an https kernel');
    return undefined;
  }
}
