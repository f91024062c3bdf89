import { RackError } from '../common/errors.js';
import type { PipeStore } from './store.js';

interface Buffered {
  /** Held by processes once: deleted when none holds it and no end is open. FIFOs never are. */
  owned: boolean;
  readonly owners: Set<number>;
  /** Open ends, by name. */
  readonly ends: Map<string, 'r' | 'w'>;
  readers: number;
  writers: number;
  everReader: boolean;
  everWriter: boolean;
  chunks: Buffer[];
  size: number;
}

/**
 * The pipes of a kernel alone, in its memory: the embedded default (SQLite holds no pipe state;
 * a pipe ends with its kernel, as a Unix pipe with its machine). Each call is synchronous
 * underneath; the async surface is the PipeStore's, which a shared engine needs.
 */
export class MemoryPipes implements PipeStore {
  private readonly groups = new Map<string, Map<string, Buffered>>();

  private pipe(gid: string, id: string): Buffered | undefined {
    return this.groups.get(gid)?.get(id);
  }

  private add(gid: string, id: string, max: number, owner: number | null): void {
    let pipes = this.groups.get(gid);
    if (!pipes) this.groups.set(gid, (pipes = new Map()));
    if (pipes.size >= max) throw new RackError('quota_exceeded', `quota: the group may have ${max} pipes open at once; it has ${pipes.size}`);
    const owners = new Set<number>(owner === null ? [] : [owner]);
    pipes.set(id, { owned: owner !== null, owners, ends: new Map(), readers: 0, writers: 0, everReader: false, everWriter: false, chunks: [], size: 0 });
  }

  private remove(gid: string, id: string): void {
    const pipes = this.groups.get(gid);
    pipes?.delete(id);
    if (pipes?.size === 0) this.groups.delete(gid);
  }

  /** An anonymous pipe that nobody holds and no end has open is of no more use. */
  private collect(gid: string, id: string, p: Buffered): void {
    if (p.owned && p.owners.size === 0 && p.ends.size === 0) this.remove(gid, id);
  }

  async create(gid: string, id: string, max: number, owner: number | null): Promise<void> {
    this.add(gid, id, max, owner);
  }

  async fifo(gid: string, id: string, max: number): Promise<void> {
    if (!this.pipe(gid, id)) this.add(gid, id, max, null);
  }

  async list(gid: string, pid: number): Promise<string[]> {
    return [...(this.groups.get(gid) ?? [])].filter(([, p]) => p.owners.has(pid)).map(([id]) => id);
  }

  async inherit(gid: string, ppid: number, pid: number): Promise<void> {
    for (const p of this.groups.get(gid)?.values() ?? []) if (p.owners.has(ppid)) p.owners.add(pid);
  }

  async open(gid: string, id: string, end: string, mode: 'r' | 'w'): Promise<boolean> {
    const p = this.pipe(gid, id);
    if (!p) return false;
    p.ends.set(end, mode);
    if (mode === 'r') {
      p.readers++;
      p.everReader = true;
    } else {
      p.writers++;
      p.everWriter = true;
    }
    return true;
  }

  async close(gid: string, id: string, end: string): Promise<void> {
    const p = this.pipe(gid, id);
    const mode = p?.ends.get(end);
    if (!p || !mode) return;
    p.ends.delete(end);
    if (mode === 'r') p.readers--;
    else p.writers--;
    this.collect(gid, id, p);
  }

  async write(gid: string, id: string, data: Buffer, capacity: number): Promise<'ok' | 'full' | 'epipe' | 'gone'> {
    const p = this.pipe(gid, id);
    if (!p) return 'gone';
    if (p.everReader && p.readers === 0) return 'epipe';
    if (p.size > 0 && p.size + data.length > capacity) return 'full';
    p.chunks.push(data);
    p.size += data.length;
    return 'ok';
  }

  async take(gid: string, id: string, max: number): Promise<{ data: Buffer; eof: boolean }> {
    const p = this.pipe(gid, id);
    if (!p) return { data: Buffer.alloc(0), eof: true };
    const parts: Buffer[] = [];
    let n = 0;
    while (n < max && p.chunks.length > 0) {
      const head = p.chunks[0]!;
      const want = max - n;
      if (head.length <= want) {
        parts.push(head);
        p.chunks.shift();
        n += head.length;
      } else {
        parts.push(head.subarray(0, want));
        p.chunks[0] = head.subarray(want);
        n += want;
      }
    }
    p.size -= n;
    const data = parts.length === 1 ? parts[0]! : Buffer.concat(parts, n);
    return { data, eof: p.size === 0 && p.everWriter && p.writers === 0 };
  }

  async release(gid: string, pid: number): Promise<void> {
    for (const [id, p] of this.groups.get(gid) ?? []) if (p.owners.delete(pid)) this.collect(gid, id, p);
  }

  async deleteGroup(gid: string): Promise<void> {
    this.groups.delete(gid);
  }

  async sweep(dead: (run: string) => Promise<boolean>): Promise<number> {
    let n = 0;
    for (const [gid, pipes] of [...this.groups]) {
      for (const [id, p] of [...pipes]) {
        for (const end of [...p.ends.keys()]) {
          if (!(await dead(end.slice(0, end.lastIndexOf('/'))))) continue;
          await this.close(gid, id, end);
          n++;
        }
      }
    }
    return n;
  }
}
