import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** The lock file a server or a maintenance command holds in a data dir while it uses it. */
export const LOCK_FILE = 'logagg.lock';

/** Another process holds the data dir. */
export class DataDirLockedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataDirLockedError';
  }
}

interface LockHolder {
  pid?: number;
  command?: string;
  started_at?: string;
  /** Linux: the holder's start time in clock ticks since boot (/proc/PID/stat field 22). */
  proc_start?: string;
  /** Tells this holder's file from a later one written by the same process. */
  token?: string;
}

/**
 * A process's start time and whether it has exited (a zombie not yet reaped), from
 * /proc/PID/stat; null where there is no /proc. The command name (field 2) may hold
 * spaces and parentheses, so the fields are counted after its last ')'.
 */
function procStat(pid: number): { start: string; zombie: boolean } | null {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); field 22 (starttime) is fields[19].
  return { start: fields[19] ?? '', zombie: fields[0] === 'Z' || fields[0] === 'X' };
}

/**
 * True while the process that wrote `holder` still runs. A pid alone can be reused (after
 * a reboot, or by a restarted container whose processes get the same small pids), so
 * where /proc gives start times the holder's must match too.
 */
function holderAlive(holder: LockHolder): boolean {
  const { pid } = holder;
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const stat = procStat(pid);
  if (stat === null) return true;
  if (stat.zombie) return false;
  return holder.proc_start === undefined || holder.proc_start === stat.start;
}

/**
 * Takes `DATA_DIR/logagg.lock` (created exclusively; it holds pid, command and start time)
 * so that one process at a time uses a data dir: the server for as long as it runs,
 * `logagg repair`/`rebuild` while they change it. A lock left by a process that is gone
 * (kill -9, power loss) is taken over; one held by this very process is too, so a test
 * may abandon a service and start another in its place. Returns the release function,
 * which removes the file only while it is still this holder's.
 *
 * Two processes that both find the same stale lock at the same instant can both take it
 * (one removes the other's fresh file); starting two servers on one data dir at once,
 * after a crash, is not guarded against.
 */
export function lockDataDir(dataDir: string, command: string): () => void {
  fs.mkdirSync(dataDir, { recursive: true });
  const file = path.join(dataDir, LOCK_FILE);
  const holder: LockHolder = { pid: process.pid, command, started_at: new Date().toISOString(), token: randomUUID() };
  const start = procStat(process.pid)?.start;
  if (start !== undefined) holder.proc_start = start;
  const content = JSON.stringify(holder);
  for (let attempt = 0; attempt < 2; attempt += 1) {
    let written = content;
    let heldByOther = false;
    try {
      fs.writeFileSync(file, content, { flag: 'wx' });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // A full disk creates the file but not its content: the lock is then an empty file (which
      // a later process would take for stale), so that a server can start read-only until space returns.
      if ((code === 'ENOSPC' || code === 'EDQUOT') && fs.existsSync(file) && fs.statSync(file).size === 0) written = '';
      else if (code === 'EEXIST') heldByOther = true;
      else throw err;
    }
    if (heldByOther) {
      let other: LockHolder = {};
      try {
        other = JSON.parse(fs.readFileSync(file, 'utf8')) as LockHolder;
      } catch {
        // unreadable or half-written by a process that died: stale
      }
      if (holderAlive(other)) {
        const what = other.command === 'serve' ? 'a running server' : `logagg ${other.command ?? '?'}`;
        throw new DataDirLockedError(`${dataDir} is in use: ${file} is held by pid ${other.pid} (${what}); stop it first`);
      }
      fs.rmSync(file, { force: true });
      continue;
    }
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      process.off('exit', release);
      try {
        if (fs.readFileSync(file, 'utf8') === written) fs.rmSync(file, { force: true });
      } catch {
        // already gone
      }
    };
    process.once('exit', release);
    return release;
  }
  throw new DataDirLockedError(`could not take ${file}: another process took it at the same time`);
}
