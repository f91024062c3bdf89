import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../common/log.js';
import type { ComputeDriver } from '../compute/driver.js';
import { NovaDriver } from '../compute/nova/nova-driver.js';
import { SimDriver } from '../compute/sim/sim-driver.js';

/** Which compute driver a kernel uses, and the driver's own settings. */
export interface DriverConfig {
  driver?: 'sim' | 'nova';
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
    return NovaDriver.fromEnv({ kernelId: readFileSync(idFile, 'utf8').trim(), log: log.child({ component: 'nova' }) });
  }
  const sim = new SimDriver({ dataDir, templates: cfg.templates ?? [], log: log.child({ component: 'sim' }) });
  await sim.start();
  return sim;
}
