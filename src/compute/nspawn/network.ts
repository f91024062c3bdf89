import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { RackError } from '../../common/errors.js';

const run = promisify(execFile);

/** Metadata, as on every OpenStack cloud. */
export const METADATA_ADDRESS = '169.254.169.254';
/** The guests' network: private to this kernel's namespaces, never routed anywhere else. */
const PREFIX = '10.213';
export const GATEWAY = `${PREFIX}.0.1`;
const MASK = 16;
/** Addresses .0.2 to .255.254 of the /16. */
const FIRST = 2;
const LAST = 256 * 256 - 2;

async function ip(args: string[]): Promise<string> {
  try {
    return (await run('ip', args)).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new RackError('compute_error', `ip ${args.join(' ')}: ${(e.stderr ?? e.message).trim()}`);
  }
}

export function netnsExists(name: string): boolean {
  return existsSync(`/run/netns/${name}`);
}

/**
 * The guests' side of the world: a network namespace of this kernel's own holding a bridge with
 * the gateway address and 169.254.169.254, and one veth per VM from the bridge into that VM's
 * own namespace. Nothing here touches the host's network: the only way out of a guest is to what
 * this process serves on the bridge (metadata, the kernel relay, a mirror).
 */
export class GuestNetwork {
  constructor(
    /** The host-side namespace, e.g. `rack-1a2b3c4d`; VM namespaces are named after it. */
    readonly hostNetns: string,
  ) {}

  /** Makes the host-side namespace and its bridge, unless they are there (a restarted kernel). */
  async ensure(): Promise<void> {
    if (netnsExists(this.hostNetns)) return;
    await ip(['netns', 'add', this.hostNetns]);
    const n = ['-n', this.hostNetns];
    await ip([...n, 'link', 'set', 'lo', 'up']);
    await ip([...n, 'link', 'add', 'br0', 'type', 'bridge']);
    await ip([...n, 'addr', 'add', `${GATEWAY}/${MASK}`, 'dev', 'br0']);
    await ip([...n, 'addr', 'add', `${METADATA_ADDRESS}/32`, 'dev', 'br0']);
    await ip([...n, 'link', 'set', 'br0', 'up']);
  }

  /** The lowest guest address none of `used` holds. */
  static allocate(used: Iterable<string>): string {
    const taken = new Set(used);
    for (let i = FIRST; i <= LAST; i++) {
      const a = `${PREFIX}.${i >> 8}.${i & 255}`;
      if (!taken.has(a)) return a;
    }
    throw new RackError('no_capacity', `no free guest address in ${PREFIX}.0.0/${MASK}`);
  }

  vmNetns(vmKey: string): string {
    return `${this.hostNetns}-${vmKey}`;
  }

  /** A VM's namespace with `eth0` at `address`, cabled to the bridge, default route via the gateway. */
  async attach(vmKey: string, address: string): Promise<string> {
    const netns = this.vmNetns(vmKey);
    await ip(['netns', 'add', netns]);
    try {
      const host = `vh${vmKey.slice(0, 12)}`;
      await ip(['-n', this.hostNetns, 'link', 'add', host, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
      await ip(['-n', this.hostNetns, 'link', 'set', host, 'master', 'br0', 'up']);
      const v = ['-n', netns];
      // The guest has no CAP_NET_ADMIN in a namespace it did not make: even lo is set up here.
      await ip([...v, 'link', 'set', 'lo', 'up']);
      await ip([...v, 'addr', 'add', `${address}/${MASK}`, 'dev', 'eth0']);
      await ip([...v, 'link', 'set', 'eth0', 'up']);
      await ip([...v, 'route', 'add', 'default', 'via', GATEWAY]);
    } catch (err) {
      await this.detach(vmKey);
      throw err;
    }
    return netns;
  }

  /** Removes a VM's namespace; its veth pair goes with it. Idempotent. */
  async detach(vmKey: string): Promise<void> {
    const netns = this.vmNetns(vmKey);
    if (netnsExists(netns)) await ip(['netns', 'delete', netns]);
  }

  /** Removes the host-side namespace (when no VM is left). */
  async remove(): Promise<void> {
    if (netnsExists(this.hostNetns)) await ip(['netns', 'delete', this.hostNetns]);
  }
}
