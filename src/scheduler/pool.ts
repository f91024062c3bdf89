import { RESOURCES, type Capacity, type FlavorSize, type PoolView, type ResourceName, type Resources } from '../protocol/resources.js';

/** What a VM counts for when the compute service cannot tell its flavor's size (Nova's m1.tiny). */
export const DEFAULT_FLAVOR: FlavorSize = { vcpus: 1, ram_mb: 512 };

export function zero(): Resources {
  return { instances: 0, vcpus: 0, ram_mb: 0 };
}

/** One VM of the flavor. */
export function vmOf(f: FlavorSize): Resources {
  return { instances: 1, vcpus: f.vcpus, ram_mb: f.ram_mb };
}

export function add(a: Resources, b: Resources, times = 1): Resources {
  return { instances: a.instances + b.instances * times, vcpus: a.vcpus + b.vcpus * times, ram_mb: a.ram_mb + b.ram_mb * times };
}

/** The tightest of several bounds, resource by resource (null: unbounded). */
export function tightest(...caps: ReadonlyArray<Capacity | null | undefined>): Record<ResourceName, number | null> {
  const out = { instances: null, vcpus: null, ram_mb: null } as Record<ResourceName, number | null>;
  for (const c of caps) {
    if (!c) continue;
    for (const r of RESOURCES) {
      const v = c[r];
      if (v === null || v === undefined) continue;
      out[r] = out[r] === null ? v : Math.min(out[r]!, v);
    }
  }
  return out;
}

/** The first resource of which `need` more does not fit, or null when it fits. */
export function shortOf(capacity: Record<ResourceName, number | null>, used: Resources, need: Resources): ResourceName | null {
  for (const r of RESOURCES) {
    const cap = capacity[r];
    if (cap !== null && used[r] + need[r] > cap + 1e-9) return r;
  }
  return null;
}

export function poolView(capacity: Record<ResourceName, number | null>, used: Resources, queued: number): PoolView {
  const free = {} as Record<ResourceName, number | null>;
  for (const r of RESOURCES) free[r] = capacity[r] === null ? null : Math.max(0, capacity[r]! - used[r]);
  return { capacity, used, free, queued };
}

/** "2 instances, 2 vCPUs, 1024 MiB" for messages. */
export function describe(r: Resources): string {
  return `${r.instances} instance${r.instances === 1 ? '' : 's'}, ${r.vcpus} vCPU${r.vcpus === 1 ? '' : 's'}, ${r.ram_mb} MiB`;
}

const UNIT: Record<ResourceName, string> = { instances: 'instances', vcpus: 'vCPUs', ram_mb: 'MiB of RAM' };

/** "the group's pool has 1 of 3 instances free". */
export function describeShort(pool: string, r: ResourceName, capacity: Record<ResourceName, number | null>, used: Resources): string {
  return `${pool} has ${Math.max(0, capacity[r]! - used[r])} of ${capacity[r]} ${UNIT[r]} free`;
}
