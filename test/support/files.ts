import { existsSync, readFileSync, watch } from 'node:fs';
import { dirname } from 'node:path';

/** Resolves with the file's text once `pred` holds for it; woken by changes in its directory. */
export function untilFile(path: string, pred: (text: string) => boolean = () => true, ms = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      if (!existsSync(path)) return false;
      const text = readFileSync(path, 'utf8');
      if (!pred(text)) return false;
      finish(null, text);
      return true;
    };
    const watcher = watch(dirname(path), () => void check());
    const timer = setTimeout(() => finish(new Error(`${path} did not reach the expected content in ${ms} ms`)), ms);
    const finish = (err: Error | null, text?: string): void => {
      clearTimeout(timer);
      watcher.close();
      if (err) reject(err);
      else resolve(text!);
    };
    check();
  });
}

/** Resolves once `path` no longer exists; woken by changes in its parent directory. */
export function untilGone(path: string, ms = 30_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const watcher = watch(dirname(path), () => void check());
    const timer = setTimeout(() => finish(new Error(`${path} still exists after ${ms} ms`)), ms);
    const finish = (err: Error | null): void => {
      clearTimeout(timer);
      watcher.close();
      if (err) reject(err);
      else resolve();
    };
    const check = (): void => {
      if (!existsSync(path)) finish(null);
    };
    check();
  });
}
