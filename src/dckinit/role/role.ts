import { META } from '../../protocol/metadata.js';

/**
 * The seed's rule: "IF PPID == NULL: I'm the parent process, ELSE: I'm a child". An explicit
 * `rack_role` in the metadata names a role instead, so one image can hold several apps.
 */
export function decideRole(meta: Record<string, string>): string {
  const explicit = meta[META.role];
  if (explicit) return explicit;
  return (meta[META.ppid] ?? '') === '' ? 'parent' : 'child';
}
