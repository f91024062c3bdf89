import { closeSync, openSync, readSync, watch, type FSWatcher } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';

export interface AppLine {
  gid: string;
  pid: number;
  stream: 'stdout' | 'stderr';
  text: string;
}

interface Followed {
  gid: string;
  pid: number;
  fd: number;
  offset: number;
  rest: string;
  decoder: StringDecoder;
  watcher: FSWatcher | null;
}

const CHUNK = 64 * 1024;
// Anything before journald's prefix is another writer's (a getty's `login: ` prompt).
const CONSOLE_LINE = /^(?:.*?\[\s*[0-9.]+\] [\w.@-]+\[[0-9]+\]: )?(\{.*)$/;

/**
 * Follows VM consoles (sim, or a real guest's) and hands on what the apps printed. dckinit logs each line of its app's
 * stdout/stderr as a JSON line with a `stream` field; everything else on the console (the agent's
 * own events) is left out. The file stays open from boot on, so lines written just before the VM
 * is destroyed (and its directory removed) are still read.
 */
export class ConsoleFollower {
  private readonly vms = new Map<string, Followed>();

  constructor(private readonly onLine: (line: AppLine) => void) {}

  follow(vmId: string, path: string, gid: string, pid: number): void {
    if (this.vms.has(vmId)) return;
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch {
      return; // already destroyed: nothing left to show
    }
    const f: Followed = { gid, pid, fd, offset: 0, rest: '', decoder: new StringDecoder('utf8'), watcher: null };
    this.vms.set(vmId, f);
    try {
      f.watcher = watch(path, () => this.drain(f));
    } catch {
      // The directory went away between open and watch; the final drain still reads the file.
    }
    this.drain(f);
  }

  /** Reads what is left and stops following (the VM has ended). */
  end(vmId: string): void {
    const f = this.vms.get(vmId);
    if (!f) return;
    this.vms.delete(vmId);
    this.drain(f);
    if (f.rest) this.emit(f, f.rest);
    f.watcher?.close();
    closeSync(f.fd);
  }

  close(): void {
    for (const id of [...this.vms.keys()]) this.end(id);
  }

  private drain(f: Followed): void {
    const buf = Buffer.allocUnsafe(CHUNK);
    for (;;) {
      let n: number;
      try {
        n = readSync(f.fd, buf, 0, CHUNK, f.offset);
      } catch {
        return; // fd closed by end()
      }
      if (n === 0) return;
      f.offset += n;
      const lines = (f.rest + f.decoder.write(buf.subarray(0, n))).split('\n');
      f.rest = lines.pop() ?? '';
      for (const l of lines) this.emit(f, l);
    }
  }

  private emit(f: Followed, raw: string): void {
    // A real guest's console is a terminal (lines end in CRLF) and journald puts a prefix before
    // each line: `[ 12.345678] dckinit[85]: `.
    const json = CONSOLE_LINE.exec(raw.replace(/\r$/, ''))?.[1];
    if (json === undefined) return;
    let rec: unknown;
    try {
      rec = JSON.parse(json);
    } catch {
      return;
    }
    const r = rec as { stream?: unknown; msg?: unknown };
    if ((r.stream === 'stdout' || r.stream === 'stderr') && typeof r.msg === 'string') {
      this.onLine({ gid: f.gid, pid: f.pid, stream: r.stream, text: r.msg });
    }
  }
}
