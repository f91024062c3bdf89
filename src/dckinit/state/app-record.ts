import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../common/log.js';
import type { AppExit } from '../supervisor/supervisor.js';

/**
 * What the agent must remember across its own restarts: that its app has ended, and how. systemd
 * restarts an agent that died (Restart=); one whose app had exited must not run the app again
 * but report the same exit. The file lives in the unit's StateDirectory= ($STATE_DIRECTORY).
 */
export class AppRecord {
  private readonly file: string;

  constructor(
    private readonly gid: string,
    private readonly pid: number,
    private readonly log: Logger,
    dir = process.env.STATE_DIRECTORY?.split(':')[0] || '/var/lib/dckinit',
  ) {
    this.file = join(dir, 'app.json');
  }

  /** How the app of this very process ended, if it has. */
  exited(): AppExit | null {
    try {
      const r = JSON.parse(readFileSync(this.file, 'utf8')) as { gid?: unknown; pid?: unknown; exit?: AppExit };
      if (r.gid !== this.gid || r.pid !== this.pid || !r.exit) return null;
      return { code: typeof r.exit.code === 'number' ? r.exit.code : null, signal: typeof r.exit.signal === 'string' ? r.exit.signal : null };
    } catch {
      return null;
    }
  }

  save(exit: AppExit): void {
    try {
      mkdirSync(join(this.file, '..'), { recursive: true, mode: 0o700 });
      writeFileSync(`${this.file}.tmp`, JSON.stringify({ gid: this.gid, pid: this.pid, exit }), { mode: 0o600 });
      renameSync(`${this.file}.tmp`, this.file);
    } catch (err) {
      this.log.warn({ err: (err as Error).message, file: this.file }, 'cannot record the app exit; a restarted agent would run the app again');
    }
  }
}
