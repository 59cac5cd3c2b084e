import path from 'node:path';
import { makeDirDurable, type LogDisk } from './disk';
import { readSegmentChunks, type SegmentInfo } from './segments';

/** Where bytes taken out of the log are kept (`wal/quarantine/`): nothing is deleted without a copy. */
export function quarantineDirOf(walDir: string): string {
  return path.join(walDir, 'quarantine');
}

/**
 * A path in `dir` that does not exist yet and was not handed out before (`taken`): a second
 * cut or repair never overwrites an earlier one's files. It adds `.1`, `.2`... to `name` as needed.
 */
export function freshPath(disk: LogDisk, dir: string, name: string, taken = new Set<string>()): string {
  let candidate = path.join(dir, name);
  for (let n = 1; disk.exists(candidate) || taken.has(candidate); n += 1) candidate = path.join(dir, `${name}.${n}`);
  taken.add(candidate);
  return candidate;
}

/**
 * Cuts the torn tail of a segment at `offset`: its bytes are first saved to
 * `wal/quarantine/<segment>.<offset>.torn` (fsynced, with the directory), then the segment is
 * truncated durably. A crash between the two leaves both copies. Recovery and repair both
 * cut this way. Returns where the bytes went and how many there were.
 */
export function cutTornTail(
  disk: LogDisk,
  walDir: string,
  segment: SegmentInfo,
  offset: number,
  taken?: Set<string>,
): { savedTo: string; bytesDropped: number } {
  const quarantineDir = quarantineDirOf(walDir);
  makeDirDurable(disk, quarantineDir);
  const savedTo = freshPath(disk, quarantineDir, `${segment.name}.${offset}.torn`, taken);
  const bytesDropped = disk.fileSize(segment.path) - offset;
  disk.writeFileDurably(savedTo, readSegmentChunks(disk, segment.path, undefined, offset));
  disk.fsyncDir(quarantineDir);
  disk.truncateFileDurably(segment.path, offset);
  return { savedTo, bytesDropped };
}
