import { RackError } from './errors.js';

/** Anything with on/off: Node's EventEmitter, typed or not. */
export interface Listenable {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  on(event: any, listener: (...args: any[]) => void): unknown;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  off(event: any, listener: (...args: any[]) => void): unknown;
}

export interface UntilOptions<T> {
  /** What the wait answers at its deadline; by default it rejects with a `timeout` RackError. */
  onTimeout?: () => T;
  /** The default rejection's message. */
  timeoutMessage?: string;
  /**
   * Checks again every this many ms even without an event: where events come from other kernels
   * (src/bus), one may be lost, and the store is still the truth.
   */
  recheckMs?: number;
}

/**
 * "Listen, check, wait until a deadline", written once: resolves with the first non-null answer
 * of `check`, asked at once and again after every `event` whose arguments `match`, until
 * `deadline` (epoch ms). Listening starts before the first check, so a change between a check and
 * the next event is never missed; checks never overlap (an event during a check asks once more
 * when it is done); a check that throws ends the wait with its error.
 */
export function until<T, A extends unknown[]>(
  emitter: Listenable,
  event: string,
  match: (...args: A) => boolean,
  check: () => T | null | Promise<T | null>,
  deadline: number,
  opts: UntilOptions<T> = {},
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let dirty = true;
    let running = false;
    let finished = false;
    let expired = false;
    const finish = (err: unknown, value?: T): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      if (recheck) clearInterval(recheck);
      emitter.off(event, onEvent as (...args: unknown[]) => void);
      if (err) reject(err);
      else resolve(value as T);
    };
    const run = async (): Promise<void> => {
      if (running || finished) return;
      running = true;
      try {
        while (dirty && !finished) {
          dirty = false;
          const found = await check();
          if (found !== null && found !== undefined) return finish(null, found);
        }
      } catch (err) {
        finish(err);
      } finally {
        running = false;
      }
      if (expired) timeout();
    };
    const onEvent = (...args: A): void => {
      if (finished || !match(...args)) return;
      dirty = true;
      void run();
    };
    // At the deadline a check under way still counts: the wait ends with its answer, if any.
    const timeout = (): void => {
      if (finished) return;
      if (!opts.onTimeout) return finish(new RackError('timeout', opts.timeoutMessage ?? 'timed out waiting; call again to keep waiting'));
      try {
        finish(null, opts.onTimeout());
      } catch (err) {
        finish(err);
      }
    };
    const timer = setTimeout(() => {
      expired = true;
      if (!running) timeout();
    }, Math.max(0, deadline - Date.now()));
    const recheck = opts.recheckMs
      ? setInterval(() => {
          dirty = true;
          void run();
        }, opts.recheckMs)
      : null;
    emitter.on(event, onEvent as (...args: unknown[]) => void);
    void run();
  });
}
