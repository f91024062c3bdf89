import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { RackError } from '../../common/errors.js';
import type { KeystoneSession, ServiceRequest, ServiceResponse } from '../../openstack/keystone.js';

/** An object of a container listing, checked field by field. */
export interface ListedObject {
  name: string;
  bytes: number;
  /** The object's ETag: for an SLO manifest its slo_etag (what a HEAD answers), else the MD5. */
  etag: string;
  lastModified: string;
}

export interface ObjectHead {
  size: number;
  etag: string;
  lastModified: string;
  /** An SLO manifest (its segments live elsewhere). */
  slo: boolean;
  /** The sha256 RACK stored with the object (X-Object-Meta-Rack-Sha256), if any. */
  sha256?: string;
}

/** A segment of an SLO manifest, as `multipart-manifest=put` takes it. */
export interface SloSegment {
  path: string;
  etag: string;
  size_bytes: number;
}

const LISTING_PAGE = 10_000;

function objectPath(container: string, name: string, query = ''): string {
  return `/${encodeURIComponent(container)}/${name.split('/').map(encodeURIComponent).join('/')}${query}`;
}

function unquote(etag: unknown): string {
  return String(etag ?? '').replace(/^"|"$/g, '');
}

/**
 * The Object Storage API calls the swift file backend makes, each answer checked; refusals become
 * RackErrors. What is stored where (containers, segments, manifests) is in swift-files.ts.
 */
export class SwiftApi {
  constructor(private readonly session: KeystoneSession) {}

  private async call(req: ServiceRequest): Promise<ServiceResponse> {
    return this.session.request('object-store', req);
  }

  private async fail(res: ServiceResponse, what: string): Promise<never> {
    const text = (await res.body.text()).slice(0, 300).replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim();
    throw new RackError(res.status === 413 ? 'payload_too_large' : 'unavailable', `Swift could not ${what}: HTTP ${res.status}${text ? ` ${text}` : ''}`);
  }

  /** HEAD of the account: is the object store there and are we allowed in? */
  async checkAccount(): Promise<void> {
    const res = await this.call({ method: 'HEAD', path: '' });
    await res.body.dump();
    if (res.status >= 300) throw new RackError('unavailable', `Swift refused access to the project's account: HTTP ${res.status}`);
  }

  async createContainer(container: string): Promise<void> {
    const res = await this.call({ method: 'PUT', path: `/${encodeURIComponent(container)}` });
    if (res.status !== 201 && res.status !== 202) return this.fail(res, `create container ${container}`);
    await res.body.dump();
  }

  /** Deletes an empty container; false when it is not empty (409), true when gone. */
  async deleteContainer(container: string): Promise<boolean> {
    const res = await this.call({ method: 'DELETE', path: `/${encodeURIComponent(container)}` });
    if (res.status === 409) {
      await res.body.dump();
      return false;
    }
    if (res.status !== 204 && res.status !== 404) return this.fail(res, `delete container ${container}`);
    await res.body.dump();
    return true;
  }

  /**
   * PUT an object from a buffer or a stream (sent chunked). `md5`, when known, makes Swift check
   * the body; the answer's ETag is returned. A missing container answers null.
   */
  async putObject(container: string, name: string, body: Buffer | Readable, headers: Record<string, string> = {}, query = ''): Promise<string | null> {
    const res = await this.call({ method: 'PUT', path: objectPath(container, name, query), body, headers: { 'content-type': 'application/octet-stream', ...headers }, timeoutMs: 120_000 });
    if (res.status === 404) {
      await res.body.dump();
      return null;
    }
    if (res.status !== 201) return this.fail(res, `store ${container}/${name}`);
    await res.body.dump();
    return unquote(res.headers.etag);
  }

  async headObject(container: string, name: string): Promise<ObjectHead | null> {
    const res = await this.call({ method: 'HEAD', path: objectPath(container, name) });
    await res.body.dump();
    if (res.status === 404) return null;
    if (res.status !== 200) throw new RackError('unavailable', `Swift could not show ${container}/${name}: HTTP ${res.status}`);
    return headOf(res.headers, `${container}/${name}`);
  }

  /** The object's bytes (`end` inclusive), streamed; null when it does not exist. */
  async getObject(container: string, name: string, range?: { start: number; end: number }): Promise<Readable | null> {
    const res = await this.call({ method: 'GET', path: objectPath(container, name), headers: range ? { range: `bytes=${range.start}-${range.end}` } : {}, timeoutMs: 120_000 });
    if (res.status === 404) {
      await res.body.dump();
      return null;
    }
    if (res.status !== 200 && res.status !== 206) return this.fail(res, `read ${container}/${name}`);
    return res.body;
  }

  /** The segments an SLO manifest lists, as paths `container/object`. */
  async manifestSegments(container: string, name: string): Promise<string[]> {
    const res = await this.call({ method: 'GET', path: objectPath(container, name, '?multipart-manifest=get&format=raw'), headers: { accept: 'application/json' } });
    if (res.status === 404) {
      await res.body.dump();
      return [];
    }
    if (res.status !== 200) return this.fail(res, `read the manifest of ${container}/${name}`);
    let doc: unknown;
    try {
      doc = await res.body.json();
    } catch {
      throw new RackError('unavailable', `Swift answered a manifest of ${container}/${name} that is not JSON`);
    }
    if (!Array.isArray(doc)) throw new RackError('unavailable', `Swift answered a manifest of ${container}/${name} that is not a list`);
    return doc.map((s: { path?: unknown; name?: unknown }) => String(s?.path ?? s?.name ?? '').replace(/^\//, '')).filter(Boolean);
  }

  /** Deletes an object; false when it did not exist. */
  async deleteObject(container: string, name: string): Promise<boolean> {
    const res = await this.call({ method: 'DELETE', path: objectPath(container, name) });
    await res.body.dump();
    if (res.status === 404) return false;
    if (res.status !== 204 && res.status !== 200) throw new RackError('unavailable', `Swift could not delete ${container}/${name}: HTTP ${res.status}`);
    return true;
  }

  /** Objects whose names start with `prefix`, in name order, at most `max`; none when the container does not exist. */
  async listObjects(container: string, prefix: string, max: number): Promise<ListedObject[]> {
    const out: ListedObject[] = [];
    let marker = '';
    while (out.length < max) {
      const q = new URLSearchParams({ format: 'json', limit: String(Math.min(LISTING_PAGE, max - out.length)) });
      if (prefix) q.set('prefix', prefix);
      if (marker) q.set('marker', marker);
      const res = await this.call({ method: 'GET', path: `/${encodeURIComponent(container)}?${q}`, headers: { accept: 'application/json' } });
      if (res.status === 404) {
        await res.body.dump();
        return out;
      }
      if (res.status === 204) {
        await res.body.dump();
        return out;
      }
      if (res.status !== 200) return this.fail(res, `list container ${container}`);
      const page = (await res.body.json().catch(() => null)) as unknown;
      if (!Array.isArray(page)) throw new RackError('unavailable', `Swift answered a listing of ${container} that is not a list`);
      if (page.length === 0) return out;
      for (const o of page as Array<Record<string, unknown>>) {
        if (typeof o?.name !== 'string' || typeof o.bytes !== 'number') throw new RackError('unavailable', `Swift answered a listing of ${container} with an entry without name and bytes`);
        out.push({ name: o.name, bytes: o.bytes, etag: unquote(o.slo_etag ?? o.hash), lastModified: String(o.last_modified ?? '') });
      }
      marker = out.at(-1)!.name;
    }
    return out;
  }
}

function headOf(h: IncomingHttpHeaders, what: string): ObjectHead {
  const size = Number(h['content-length']);
  if (!Number.isSafeInteger(size) || size < 0) throw new RackError('unavailable', `Swift answered ${what} without a Content-Length`);
  const sha256 = h['x-object-meta-rack-sha256'];
  return {
    size,
    etag: unquote(h.etag),
    lastModified: String(h['last-modified'] ?? ''),
    slo: String(h['x-static-large-object'] ?? '').toLowerCase() === 'true',
    ...(typeof sha256 === 'string' && /^[0-9a-f]{64}$/.test(sha256) ? { sha256 } : {}),
  };
}
