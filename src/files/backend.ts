import type { Readable } from 'node:stream';
import type { FileInfo } from '../protocol/files.js';

/**
 * Where a group's files live (the seed's File System). The embedded default is a directory
 * (`local.ts`); an object store such as Swift fits the same shape: put a stream, get a range,
 * list a prefix.
 */
export interface FileBackend {
  /**
   * Stores a file whole or not at all. The group's files may hold `maxBytes` in all: a put that
   * would take them past it fails with quota_exceeded (as soon as it has, mid-stream) and leaves
   * the old file, if any, as it was.
   */
  put(gid: string, path: string, body: Readable, maxBytes: number): Promise<FileInfo>;
  /** The bytes the group's files hold. */
  usage(gid: string): Promise<number>;
  /** `end` is inclusive, as in HTTP ranges. */
  get(gid: string, path: string, range?: { start: number; end: number }): Promise<Readable>;
  stat(gid: string, path: string): Promise<FileInfo>;
  list(gid: string, prefix: string): Promise<FileInfo[]>;
  delete(gid: string, path: string): Promise<void>;
  deleteGroup(gid: string): Promise<void>;
}
