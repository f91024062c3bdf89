import type { Logger } from '../common/log.js';
import { kernelId } from './data-dir.js';
import type { ComputeDriver } from '../compute/driver.js';
import { NovaDriver } from '../compute/nova/nova-driver.js';
import { startNspawn } from '../compute/nspawn/index.js';
import { SimDriver } from '../compute/sim/sim-driver.js';
import type { FileBackend } from '../files/backend.js';
import { SwiftFiles } from '../files/swift/swift-files.js';
import { loadCloudConfig } from '../openstack/cloud-config.js';
import { KeystoneSession } from '../openstack/keystone.js';

/** Which compute driver and file system a kernel uses, and the driver's own settings. */
export interface DriverConfig {
  driver?: 'sim' | 'nova' | 'nspawn';
  /** Where group files live: DATA/files (local, the default) or Swift (the OS_CLOUD / OS_* cloud). */
  files?: 'local' | 'swift';
  /**
   * Local files: the directory they live in instead of DATA/files. Kernels on one store share
   * group files by sharing it (a shared filesystem when they run on several machines).
   */
  filesDir?: string;
  /** Directories the sim driver searches for template names (nspawn: image stores). */
  templates?: string[];
  /** A ready-made compute driver (tests, embedding); overrides `driver`. */
  compute?: ComputeDriver;
}

/** The compute driver a kernel config names (sim by default). */
export async function createCompute(cfg: DriverConfig, dataDir: string, log: Logger): Promise<ComputeDriver> {
  if (cfg.compute) return cfg.compute;
  // A stable id for this kernel's VMs, so a restart finds them and no other kernel's.
  if (cfg.driver === 'nova') {
    const session = new KeystoneSession(loadCloudConfig());
    return NovaDriver.create({ session, kernelId: kernelId(dataDir), log: log.child({ component: 'nova' }) }).catch(async (err: unknown) => {
      await session.close();
      throw err;
    });
  }
  if (cfg.driver === 'nspawn') {
    const mirror = process.env.RACK_NSPAWN_MIRROR || undefined;
    return startNspawn({ dataDir, kernelId: kernelId(dataDir), images: cfg.templates ?? [], mirror, log: log.child({ component: 'nspawn' }) });
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
