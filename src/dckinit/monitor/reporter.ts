import type { KernelSocket } from '../../client/kernel-socket.js';
import type { Logger } from '../../common/log.js';
import { Sampler } from './sampler.js';

/**
 * Sends a usage sample of this VM and its app's process group to the kernel every `interval`
 * seconds while the channel is up. A sample the kernel misses (channel down, no answer in time)
 * is dropped: the next one is newer.
 */
export function startUsageReports(opts: { channel: KernelSocket; intervalS: number; appPgid: () => number | null; log: Logger }): () => void {
  if (opts.intervalS <= 0) return () => {};
  let sampler: Sampler;
  try {
    sampler = new Sampler();
  } catch (err) {
    opts.log.warn({ err: (err as Error).message }, 'no usage samples: cannot read /proc');
    return () => {};
  }
  let lastError = '';
  const timer = setInterval(() => {
    let sample;
    try {
      sample = sampler.take(opts.appPgid());
      lastError = '';
    } catch (err) {
      // Said once, not every period.
      if ((err as Error).message !== lastError) opts.log.warn({ err: (lastError = (err as Error).message) }, 'usage sample skipped');
      return;
    }
    if (!opts.channel.isUp) return;
    opts.channel.call('usage.report', { ...sample }, { timeoutMs: opts.intervalS * 1000 }).catch((err: Error) => opts.log.debug({ err: err.message }, 'usage report not taken'));
  }, opts.intervalS * 1000);
  timer.unref();
  return () => clearInterval(timer);
}
