import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../common/package-info.js';
import { nspawnPreflight } from '../compute/nspawn/preflight.js';

/**
 * For `--driver nspawn` in the demos: checks the host (root, systemd-nspawn), then builds the
 * baked image `name` from an app directory with scripts/guest-image.sh (the stock rootfs and an
 * unchanged image come from its cache), showing its progress on stderr. Throws with one line.
 */
export function buildGuestImage(name: string, appDir: string, modules: string[] = []): void {
  nspawnPreflight();
  const script = join(packageRoot(), 'scripts', 'guest-image.sh');
  const args = ['baked', name, '--app', appDir, ...(modules.length > 0 ? ['--modules', modules.join(',')] : [])];
  const r = spawnSync(script, args, { stdio: ['ignore', 'ignore', 'inherit'], cwd: packageRoot() });
  if (r.error || r.status !== 0) throw new Error(`building the ${name} image failed (${script} ${args.join(' ')})`);
}
