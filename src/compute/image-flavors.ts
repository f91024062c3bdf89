import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { RackError } from '../common/errors.js';
import type { FlavorSize } from '../protocol/resources.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * The flavors a local template (a directory standing for a VM image) declares in its
 * `image.yaml`, for the Resource Scheduler of drivers that have no flavor service of their own:
 *
 *     flavors:
 *       default: { vcpus: 1, ram_mb: 512 }   # what a fork without a flavor takes
 *       large: { vcpus: 2, ram_mb: 2048 }
 *
 * null when the template declares none. A bad declaration is a bad_request naming the file.
 */
export function imageFlavors(dir: string): Record<string, FlavorSize> | null {
  const file = join(dir, 'image.yaml');
  if (!existsSync(file)) return null;
  let doc: unknown;
  try {
    doc = yaml.load(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new RackError('bad_request', `${file}: not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  const flavors = (doc as { flavors?: unknown } | null)?.flavors;
  if (flavors === undefined) return null;
  if (typeof flavors !== 'object' || flavors === null || Array.isArray(flavors)) throw new RackError('bad_request', `${file}: flavors must be a mapping of name to { vcpus, ram_mb }`);
  const out: Record<string, FlavorSize> = {};
  for (const [name, v] of Object.entries(flavors)) {
    const f = v as Record<string, unknown> | null;
    const ok = NAME.test(name) && f && typeof f === 'object' && Object.keys(f).every((k) => k === 'vcpus' || k === 'ram_mb');
    const vcpus = f?.vcpus;
    const ram = f?.ram_mb;
    if (!ok || typeof vcpus !== 'number' || !(vcpus > 0 && vcpus <= 1024) || !Number.isInteger(ram) || !((ram as number) >= 0 && (ram as number) <= 16_777_216)) {
      throw new RackError('bad_request', `${file}: flavors.${name.slice(0, 64)} must be { vcpus: 0 < N <= 1024, ram_mb: integer MiB }`);
    }
    out[name] = { vcpus, ram_mb: ram as number };
  }
  return out;
}

/** The size of `flavor` (or of `default` when none is given) among the template's flavors. */
export function imageFlavor(dir: string, flavor: string | null): FlavorSize | null {
  const flavors = imageFlavors(dir);
  if (!flavors) return null;
  const name = flavor ?? 'default';
  const f = flavors[name];
  if (f) return f;
  if (flavor === null) return null;
  throw new RackError('bad_request', `the template declares no flavor "${name.slice(0, 64)}" (it has: ${Object.keys(flavors).join(', ')})`);
}
