import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../common/log.js';
import type { ComputeDriver } from '../compute/driver.js';
import { NovaDriver } from '../compute/nova/nova-driver.js';
import { SimDriver } from '../compute/sim/sim-driver.js';
import type { FileBackend } from '../files/backend.js';
import { SwiftFiles } from '../files/swift/swift-files.js';
import { loadCloudConfig } from '../openstack/cloud-config.js';
import { KeystoneSession } from '../openstack/keystone.js';

/** Which compute driver and file system a kernel uses, and the driver's own settings. */
export interface DriverConfig {
  driver?: 'sim' | 'nova';
  /** Where group files live: DATA/files (local, the default) or Swift (the OS_CLOUD / OS_* cloud). */
  files?: 'local' | 'swift';
  /** Directories the sim driver searches for template names. */
  templates?: string[];
  /** A ready-made compute driver (tests, embedding); overrides `driver`. */
  compute?: ComputeDriver;
}

/** The compute driver a kernel config names (sim by default). */
export async function createCompute(cfg: DriverConfig, dataDir: string, log: Logger): Promise<ComputeDriver> {
  if (cfg.compute) return cfg.compute;
  if ((cfg.driver ?? 'sim') === 'nova') {
    // A stable id for this kernel's servers, so a restart finds them and no other kernel's.
    const idFile = join(dataDir, 'kernel-id');
    if (!existsSync(idFile)) writeFileSync(idFile, randomUUID() + '\n', { mode: 0o600 });
    const session = new KeystoneSession(loadCloudConfig());
    return NovaDriver.create({ session, kernelId: readFileSync(idFile, 'utf8').trim(), log: log.child({ component: 'nova' }) }).catch(async (err: unknown) => {
      await session.close();
      throw err;
    });
  }
  const sim = new SimDriver({ dataDir, templates: cfg.templates ?? [], log: log.child({ component: 'sim' }) });
  await sim.start();
  return sim;
}

/** The group file system a kernel config names; undefined: the default, local files in DATA/files. */
export async function createFiles(cfg: DriverConfig, log: Logger): Promise<FileBackend | undefined> {
  if ((cfg.files ?? 'local') === 'local') return undefined;
  return SwiftFiles.create({ session: new KeystoneSession(loadCloudConfig()), log: log.child({ component: 'swift' }) });
}
