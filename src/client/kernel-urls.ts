import { RackError } from '../common/errors.js';

/**
 * `http://a:8088, http://b:8088` -> each kernel URL; at least one. Several kernels on one store
 * are one service: a client given them all moves to the next when one cannot be reached.
 */
export function kernelUrls(list: string): string[] {
  const urls = list.split(',').map((u) => u.trim()).filter((u) => u !== '');
  if (urls.length === 0) throw new RackError('bad_request', 'no kernel URL');
  return urls;
}
