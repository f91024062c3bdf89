/** A file of a group's file system, as the REST API, libdck and the CLI show it. */
export interface FileInfo {
  path: string;
  size: number;
  /** sha256 of the content for files written through RACK, else size and mtime. */
  etag: string;
  modified: string;
}
