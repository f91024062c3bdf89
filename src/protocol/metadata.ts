/**
 * The keys RACK puts into a VM's Nova metadata (`meta` of meta_data.json). The guest agent reads
 * them; the kernel writes them through the compute driver. User args sit beside them under their
 * own names, which therefore may not start with `rack_`. Nothing here authenticates: the process
 * token travels in user_data (see user-data.ts).
 */
export const META = {
  gid: 'rack_gid',
  pid: 'rack_pid',
  ppid: 'rack_ppid',
  url: 'rack_url',
  role: 'rack_role',
} as const;

export const RESERVED_META_PREFIX = 'rack_';
