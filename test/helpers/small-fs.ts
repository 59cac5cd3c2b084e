import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** A small filesystem of its own (tmpfs with a size limit) that a test can fill and free. */
export interface SmallFs {
  dir: string;
  /** Writes a filler file until the filesystem is full (ENOSPC). */
  fill(): void;
  /** Deletes the filler file: space returns. */
  free(): void;
  /** Unmounts; safe to call twice. */
  unmount(): void;
}

const mounted = new Set<string>();

/**
 * Mounts a tmpfs of `bytes` on a fresh directory, or returns null with the reason when this
 * machine does not allow it (not root, no mount in a container), so the test can skip.
 */
export function mountSmallFs(bytes: number): SmallFs | { skipReason: string } {
  // Not a makeTempDir: that one is removed at exit, perhaps before this is unmounted.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'logagg-smallfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    fs.rmdirSync(dir);
    return {
      skipReason: `cannot mount a tmpfs here (${String((err as { stderr?: Buffer }).stderr ?? err).trim()}); run as root to test a full disk`,
    };
  }
  mounted.add(dir);
  const filler = path.join(dir, 'filler');
  return {
    dir,
    fill: () => {
      const fd = fs.openSync(filler, 'a');
      try {
        for (let size = 1 << 20; size >= 512;) {
          try {
            fs.writeSync(fd, Buffer.alloc(size));
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
            size >>= 1;
          }
        }
      } finally {
        fs.closeSync(fd);
      }
    },
    free: () => fs.rmSync(filler, { force: true }),
    unmount: () => unmount(dir),
  };
}

function unmount(dir: string): void {
  if (!mounted.delete(dir)) return;
  try {
    execFileSync('umount', [dir], { stdio: 'pipe' });
  } catch {
    // Still busy (a server that did not exit): detach it lazily so nothing stays mounted.
    execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

// A failed or interrupted test run must not leave mounts behind.
process.on('exit', () => {
  for (const dir of [...mounted]) unmount(dir);
});
