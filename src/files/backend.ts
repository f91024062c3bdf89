import type { Readable } from 'node:stream';
import type { FileInfo } from '../protocol/files.js';

/**
 * Where a group's files live (the seed's File System). The embedded default is a directory
 * (`local.ts`); an object store such as Swift fits the same shape: put a stream, get a range,
 * list a prefix.
 */
export interface FileBackend {
  put(gid: string, path: string, body: Readable): Promise<FileInfo>;
  /** `end` is inclusive, as in HTTP ranges. */
  get(gid: string, path: string, range?: { start: number; end: number }): Promise<Readable>;
  stat(gid: string, path: string): Promise<FileInfo>;
  list(gid: string, prefix: string): Promise<FileInfo[]>;
  delete(gid: string, path: string): Promise<void>;
  deleteGroup(gid: string): Promise<void>;
  /** Releases connections (a remote store); the kernel calls it last. */
  close?(): Promise<void>;
}
