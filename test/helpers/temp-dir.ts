import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const created: string[] = [];

/** A fresh directory for one test; removed after the run unless KEEP_TEST_DIRS is set. */
export function makeTempDir(prefix = 'logagg-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  created.push(dir);
  return dir;
}

process.on('exit', () => {
  if (process.env.KEEP_TEST_DIRS) return;
  for (const dir of created) fs.rmSync(dir, { recursive: true, force: true });
});
