import { readFileSync } from 'node:fs';
import { RackError } from '../common/errors.js';

/**
 * Which certificates a client trusts for the kernel's TLS: the system's, plus the CA an operator
 * names (RACK_CA or --ca, a PEM file) or the one the kernel gave a VM with its credentials. There
 * is no way to turn verification off.
 */

/** The PEM text of a CA file, or undefined without one; a file that is not PEM is an error. */
export function readCa(file: string | undefined, what = 'RACK_CA'): string | undefined {
  if (file === undefined || file === '') return undefined;
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new RackError('bad_request', `${what}: cannot read "${file}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (!isPem(pem)) throw new RackError('bad_request', `${what}: "${file}" holds no PEM certificate`);
  return pem;
}

export function isPem(text: string): boolean {
  return /-----BEGIN CERTIFICATE-----[\s\S]+-----END CERTIFICATE-----/.test(text);
}
