import { spawnSync } from 'node:child_process';
import { RackError } from '../../common/errors.js';

/** What the nspawn driver needs of the host, each missing piece said in one line. */
export function nspawnPreflight(): void {
  if (process.getuid?.() !== 0) {
    throw new RackError('compute_error', 'the nspawn driver needs root (it makes network namespaces and boots systemd-nspawn machines)');
  }
  for (const [cmd, pkg] of [['systemd-nspawn', 'systemd-container'], ['nsenter', 'util-linux'], ['ip', 'iproute2']] as const) {
    if (spawnSync(cmd, ['--version'], { stdio: 'ignore' }).error) {
      throw new RackError('compute_error', `the nspawn driver needs ${cmd}, which is not installed (apt-get install ${pkg})`);
    }
  }
}
