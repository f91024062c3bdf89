import type { ComputeDriver } from '../compute/driver.js';
import type { Resources } from '../protocol/resources.js';
import { DEFAULT_FLAVOR, vmOf } from './pool.js';

/** At most this many (template, flavor) sizes are remembered; past it the cache starts over. */
const MAX_CACHED = 256;

/**
 * What one VM of a (template, flavor) takes from a pool, asked of the compute driver once and
 * remembered (flavors do not change size: Nova makes a new flavor instead).
 */
export class FlavorSizes {
  private readonly cache = new Map<string, Resources>();

  constructor(private readonly compute: Pick<ComputeDriver, 'flavor'>) {}

  async of(template: string, flavor: string | null): Promise<Resources> {
    const key = `${template}\0${flavor ?? ''}`;
    const hit = this.cache.get(key);
    if (hit) return hit;
    const size = vmOf((await this.compute.flavor?.(template, flavor)) ?? DEFAULT_FLAVOR);
    if (this.cache.size >= MAX_CACHED) this.cache.clear();
    this.cache.set(key, size);
    return size;
  }
}
