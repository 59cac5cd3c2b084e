import fs from 'node:fs';
import path from 'node:path';
import { makeTempDir } from './temp-dir';

/** The repository's fixtures folder (tests run from dist/test/...). */
export const FIXTURES_DIR = path.resolve(__dirname, '../../../fixtures');

/** Copies `fixtures/wal/<name>` into a fresh data dir as its `wal/` and returns the data dir. */
export function dataDirFromWalFixture(name: string): string {
  const dataDir = makeTempDir();
  fs.cpSync(path.join(FIXTURES_DIR, 'wal', name), path.join(dataDir, 'wal'), { recursive: true });
  fs.rmSync(path.join(dataDir, 'wal', 'README.md'), { force: true });
  return dataDir;
}

/** Overwrites bytes of a file at an offset. */
export function setBytes(file: string, offset: number, bytes: Buffer): void {
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, bytes, 0, bytes.length, offset);
  } finally {
    fs.closeSync(fd);
  }
}

/** Flips one bit of the byte at `offset`. */
export function flipBit(file: string, offset: number, bit = 0): void {
  const data = fs.readFileSync(file);
  setBytes(file, offset, Buffer.from([data[offset]! ^ (1 << bit)]));
}

/** Cuts a file to `size` bytes. */
export function cutTo(file: string, size: number): void {
  fs.truncateSync(file, size);
}
