import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { RackError } from '../../common/errors.js';

/** Where `scripts/guest-image.sh` puts images unless RACK_IMAGES says otherwise. */
export const DEFAULT_IMAGE_STORE = '/var/lib/rack/images';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * A template name -> the root filesystem of the image the operator registered under that name
 * (`<store>/<name>/rootfs`, made by scripts/guest-image.sh). Callers name images; they never give
 * a host path, so a process cannot boot a VM from an arbitrary directory of the host.
 */
export function resolveImage(stores: string[], template: string): string {
  if (!NAME.test(template)) {
    throw new RackError('bad_request', `template "${template.slice(0, 60)}" is not an image name (letters, digits, . _ -; no paths)`);
  }
  for (const store of stores) {
    const rootfs = join(store, template, 'rootfs');
    if (existsSync(join(store, template, 'image.json')) && existsSync(rootfs) && statSync(rootfs).isDirectory()) return rootfs;
  }
  throw new RackError('bad_request', `no image "${template}" in ${stores.join(', ')} (build one with scripts/guest-image.sh)`);
}
