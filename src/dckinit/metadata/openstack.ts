import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fetchText, MetadataError, type FetchLimits } from './http-reader.js';

/** What the agent needs of the OpenStack metadata: meta_data.json and user_data. */
export interface InstanceData {
  source: string;
  uuid: string;
  name: string;
  meta: Record<string, string>;
  userData: string | null;
}

/** Versions we understand, newest first; `latest` is the fallback (as cloud-init does). */
const KNOWN = ['2018-08-27', '2017-02-22', '2016-10-06', '2016-06-30', '2015-10-15', '2013-10-17', '2013-04-04', '2012-08-10'];

function parseMetaData(text: string, where: string): Omit<InstanceData, 'source' | 'userData'> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new MetadataError(`${where}: meta_data.json is not valid JSON (${(err as Error).message})`, false);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new MetadataError(`${where}: meta_data.json is not a JSON object`, false);
  const d = doc as Record<string, unknown>;
  const meta = d.meta ?? {};
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) throw new MetadataError(`${where}: "meta" is not an object`, false);
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(meta as Record<string, unknown>)) {
    if (typeof v !== 'string') throw new MetadataError(`${where}: meta.${k} is not a string`, false);
    clean[k] = v;
  }
  return { uuid: typeof d.uuid === 'string' ? d.uuid : '', name: typeof d.name === 'string' ? d.name : '', meta: clean };
}

/** Reads from a metadata service at `base` (e.g. http://169.254.169.254), choosing the version through /openstack. */
export async function readService(base: string, limits: FetchLimits, signal?: AbortSignal): Promise<InstanceData> {
  const root = base.replace(/\/+$/, '');
  const listing = await fetchText(`${root}/openstack`, limits, signal);
  if (listing === null) throw new MetadataError(`${root}/openstack: not found (is this an OpenStack metadata service?)`, false);
  const offered = new Set(listing.split('\n').map((l) => l.trim()));
  const version = KNOWN.find((v) => offered.has(v)) ?? 'latest';
  const metaText = await fetchText(`${root}/openstack/${version}/meta_data.json`, limits, signal);
  if (metaText === null) throw new MetadataError(`${root}/openstack/${version}/meta_data.json: not found`, false);
  const userData = await fetchText(`${root}/openstack/${version}/user_data`, limits, signal);
  return { source: root, ...parseMetaData(metaText, root), userData };
}

/** Reads a config drive's files (a mounted `config-2` filesystem, or a directory with the same layout). */
export async function readConfigDrive(dir: string): Promise<InstanceData> {
  const read = async (name: string): Promise<string | null> => {
    try {
      return await readFile(join(dir, 'openstack', 'latest', name), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new MetadataError(`${dir}: ${(err as Error).message}`, false);
    }
  };
  const metaText = await read('meta_data.json');
  if (metaText === null) throw new MetadataError(`${dir}: no openstack/latest/meta_data.json`, false);
  if (metaText.length > 1024 * 1024) throw new MetadataError(`${dir}: meta_data.json is over 1 MiB`, false);
  return { source: `config-drive:${dir}`, ...parseMetaData(metaText, dir), userData: await read('user_data') };
}
