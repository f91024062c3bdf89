import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RackError } from '../common/errors.js';

/**
 * One kernel per data dir: a second one on the same dir would corrupt the process table. A lock
 * left by a kernel that died (kill -9) names a dead pid and is taken over.
 */
export function lockDataDir(dataDir: string): () => void {
  const file = join(dataDir, 'kernel.pid');
  if (existsSync(file)) {
    const pid = Number(readFileSync(file, 'utf8').trim());
    let alive = false;
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid) {
      try {
        process.kill(pid, 0);
        alive = true;
      } catch (err) {
        alive = (err as NodeJS.ErrnoException).code === 'EPERM';
      }
    }
    if (alive) throw new RackError('conflict', `another kernel (pid ${pid}) uses ${dataDir}; stop it or choose another --data`);
  }
  writeFileSync(file, `${process.pid}\n`, { mode: 0o600 });
  return () => rmSync(file, { force: true });
}

/**
 * The kernel's id, the same across its restarts (DATA/kernel-id): its VMs on a cloud are tagged
 * with it, and among kernels on one store it names the leases it holds, so that a kernel back
 * after kill -9 finds its leases its own at once.
 */
export function kernelId(dataDir: string): string {
  const file = join(dataDir, 'kernel-id');
  if (!existsSync(file)) writeFileSync(file, randomUUID() + '\n', { mode: 0o600 });
  return readFileSync(file, 'utf8').trim();
}
