import fs from 'node:fs';
import path from 'node:path';

/** The lock file maintenance commands hold in a data dir while they change it. */
export const LOCK_FILE = 'logagg.lock';

/** Another maintenance command holds the data dir. */
export class DataDirLockedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataDirLockedError';
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes `DATA_DIR/logagg.lock` (created exclusively, holding pid and command) so that two
 * `repair`/`rebuild` runs never change one data dir at once; a lock left by a dead process
 * is taken over. It does not stop a running server: the server takes no lock, so the
 * operator must stop it first (the README says so). Returns the release function.
 */
export function lockDataDir(dataDir: string, command: string): () => void {
  fs.mkdirSync(dataDir, { recursive: true });
  const file = path.join(dataDir, LOCK_FILE);
  const content = JSON.stringify({ pid: process.pid, command, started_at: new Date().toISOString() });
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      fs.writeFileSync(file, content, { flag: 'wx' });
      let released = false;
      const release = (): void => {
        if (released) return;
        released = true;
        fs.rmSync(file, { force: true });
      };
      process.once('exit', release);
      return release;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let holder: { pid?: number; command?: string } = {};
      try {
        holder = JSON.parse(fs.readFileSync(file, 'utf8')) as typeof holder;
      } catch {
        // unreadable: treat as stale
      }
      if (typeof holder.pid === 'number' && holder.pid !== process.pid && processAlive(holder.pid)) {
        throw new DataDirLockedError(`${file} is held by pid ${holder.pid} (logagg ${holder.command ?? '?'}); wait for it to finish`);
      }
      fs.rmSync(file, { force: true });
    }
  }
  throw new DataDirLockedError(`could not take ${file}`);
}
