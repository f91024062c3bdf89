// Types of metadata-proxy.mjs (a plain ES module, shared with bench/).
export interface MetadataProxy {
  url: string;
  close(): Promise<void>;
}
export function startMetadataProxy(opts: { instance: string; tenant: string; secret: string; nova?: string; port?: number }): Promise<MetadataProxy>;
