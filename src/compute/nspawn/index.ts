/** The nspawn compute driver: real systemd + cloud-init guests on one Linux machine. */
import type { Logger } from '../../common/log.js';
import { DEFAULT_IMAGE_STORE } from './images.js';
import { NspawnDriver } from './nspawn-driver.js';
import { nspawnPreflight } from './preflight.js';

export { NspawnDriver, readVm, type NspawnVm } from './nspawn-driver.js';
export { DEFAULT_IMAGE_STORE } from './images.js';
export { processesIn } from './machine.js';
export { NSPAWN_MIRROR_URL } from './nspawn-driver.js';

/** Checks the host, then starts the driver (its guest network and metadata service). */
export async function startNspawn(opts: { dataDir: string; kernelId: string; images: string[]; mirror?: string; log?: Logger }): Promise<NspawnDriver> {
  nspawnPreflight();
  const driver = new NspawnDriver({ ...opts, images: opts.images.length > 0 ? opts.images : [process.env.RACK_IMAGES || DEFAULT_IMAGE_STORE] });
  await driver.start();
  return driver;
}
