import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../common/log.js';
import type { ComputeDriver } from '../compute/driver.js';
import { NovaDriver } from '../compute/nova/nova-driver.js';
import { startNspawn } from '../compute/nspawn/index.js';
import { SimDriver } from '../compute/sim/sim-driver.js';

/** Which compute driver a kernel uses, and the driver's own settings. */
export interface DriverConfig {
  driver?: 'sim' | 'nova' | 'nspawn';
  /** Directories the sim driver searches for template names (nspawn: image stores). */
  templates?: string[];
  /** A ready-made compute driver (tests, embedding); overrides `driver`. */
  compute?: ComputeDriver;
}

/** The compute driver a kernel config names (sim by default). */
export async function createCompute(cfg: DriverConfig, dataDir: string, log: Logger): Promise<ComputeDriver> {
  if (cfg.compute) return cfg.compute;
  // A stable id for this kernel's VMs, so a restart finds them and no other kernel's.
  const idFile = join(dataDir, 'kernel-id');
  if (cfg.driver === 'nova' || cfg.driver === 'nspawn') {
    if (!existsSync(idFile)) writeFileSync(idFile, randomUUID() + '\n', { mode: 0o600 });
  }
  if (cfg.driver === 'nova') return NovaDriver.fromEnv({ kernelId: readFileSync(idFile, 'utf8').trim(), log: log.child({ component: 'nova' }) });
  if (cfg.driver === 'nspawn') {
    const mirror = process.env.RACK_NSPAWN_MIRROR || undefined;
    return startNspawn({ dataDir, kernelId: readFileSync(idFile, 'utf8').trim(), images: cfg.templates ?? [], mirror, log: log.child({ component: 'nspawn' }) });
  }
  const sim = new SimDriver({ dataDir, templates: cfg.templates ?? [], log: log.child({ component: 'sim' }) });
  await sim.start();
  return sim;
}
