import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** The file in DATA_DIR that names this instance in the shared database. */
export const INSTANCE_ID_FILE = 'instance-id';

/**
 * This data dir's stable identity in a cluster: read from DATA_DIR/instance-id, or created
 * there once (written, fsynced, renamed into place, directory fsynced) so that a crash never
 * leaves a half-written or forgotten name. Two data dirs must not share it (a copied data dir
 * would); the data-dir lock keeps two processes off one dir.
 */
export function loadInstanceId(dataDir: string): string {
  const file = path.join(dataDir, INSTANCE_ID_FILE);
  try {
    const text = fs.readFileSync(file, 'utf8').trim();
    if (!/^[0-9a-f-]{36}$/.test(text))
      throw new Error(`instance id: ${file} does not hold an instance id (${JSON.stringify(text.slice(0, 40))})`);
    return text;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const id = randomUUID();
  const temp = `${file}.tmp`;
  const fd = fs.openSync(temp, 'w');
  try {
    fs.writeSync(fd, `${id}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(temp, file);
  const dir = fs.openSync(dataDir, 'r');
  try {
    fs.fsyncSync(dir);
  } finally {
    fs.closeSync(dir);
  }
  return id;
}
