import fs from 'node:fs';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import type { DedupKey } from './key-hash';

/** Bit positions set per key: the optimum for about 10 bits a key (0.8 % false positives). */
const FILTER_HASHES = 7;
const FILE_MAGIC = 'LAGKEYF\n';
const FILE_VERSION = 1;
/** magic(8) version(4) hashes(4) bytes(8) coveredSeq(8) indexId(8) bitsCrc(4) headerCrc(4). */
const HEADER_BYTES = 48;

/**
 * A Bloom filter over dedup keys with a fixed size (DEDUP_FILTER_BYTES): "certainly new"
 * or "maybe stored". It never grows; past about bytes*8/10 keys its false-positive rate
 * rises and more lookups go on to the key table, which stays exact. It never forgets a key
 * (swept keys stay as false positives until a rebuild).
 */
export class KeyFilter {
  readonly bits: Buffer;
  private readonly bitCount: number;
  constructor(bytes: number, bits?: Buffer) {
    this.bits = bits ?? Buffer.alloc(bytes);
    this.bitCount = bytes * 8;
  }

  /** Size of the bit array in bytes. */
  get bytes(): number {
    return this.bits.length;
  }

  /** Records a key; later `mayContain` is true for it. */
  add(key: DedupKey): void {
    const { bits, bitCount } = this;
    const a = key.readUInt32LE(8);
    const b = (key.readUInt32LE(12) | 1) >>> 0;
    for (let i = 0; i < FILTER_HASHES; i += 1) {
      const bit = (a + i * b) % bitCount;
      bits[bit >>> 3]! |= 1 << (bit & 7);
    }
  }

  /** False when the key was certainly never added; true when it may have been. */
  mayContain(key: DedupKey): boolean {
    const { bits, bitCount } = this;
    const a = key.readUInt32LE(8);
    const b = (key.readUInt32LE(12) | 1) >>> 0;
    for (let i = 0; i < FILTER_HASHES; i += 1) {
      const bit = (a + i * b) % bitCount;
      if ((bits[bit >>> 3]! & (1 << (bit & 7))) === 0) return false;
    }
    return true;
  }

  /**
   * The file image of a filter's bits, as covering every key of seq <= coveredSeq of the
   * index named `indexId` (a save at a clean stop; saveLiveInBackground writes the same file).
   */
  static encode(bits: Buffer, coveredSeq: number, indexId: number): Buffer[] {
    return [KeyFilter.header(bits.length, coveredSeq, indexId, crc32(bits)), bits];
  }

  /** The file header of a filter of `bytes` bytes whose bits have crc32 `bitsCrc`. */
  private static header(bytes: number, coveredSeq: number, indexId: number, bitsCrc: number): Buffer {
    const header = Buffer.alloc(HEADER_BYTES);
    header.write(FILE_MAGIC, 0, 'latin1');
    header.writeUInt32LE(FILE_VERSION, 8);
    header.writeUInt32LE(FILTER_HASHES, 12);
    header.writeDoubleLE(bytes, 16);
    header.writeDoubleLE(coveredSeq, 24);
    header.writeDoubleLE(indexId, 32);
    header.writeUInt32LE(bitsCrc, 40);
    header.writeUInt32LE(crc32(header.subarray(0, 44)), 44);
    return header;
  }

  /**
   * Reads a filter file written by encode: the filter and the seq it covers, or why it
   * cannot be used (missing, corrupt, another size, version or index); the caller rebuilds it then.
   */
  static load(file: string, bytes: number, indexId: number): { filter: KeyFilter; coveredSeq: number } | { problem: string } {
    let data: Buffer;
    try {
      data = fs.readFileSync(file);
    } catch (err) {
      return { problem: (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : `unreadable (${(err as Error).message})` };
    }
    if (data.length < HEADER_BYTES || data.toString('latin1', 0, 8) !== FILE_MAGIC) return { problem: 'not a key filter file' };
    if (crc32(data.subarray(0, 44)) !== data.readUInt32LE(44)) return { problem: 'header crc mismatch' };
    if (data.readUInt32LE(8) !== FILE_VERSION || data.readUInt32LE(12) !== FILTER_HASHES) return { problem: 'other version' };
    if (data.readDoubleLE(16) !== bytes) return { problem: `size ${data.readDoubleLE(16)} is not DEDUP_FILTER_BYTES=${bytes}` };
    if (data.readDoubleLE(32) !== indexId) return { problem: 'saved from another index file (rebuilt or replaced)' };
    const bits = data.subarray(HEADER_BYTES);
    if (bits.length !== bytes || crc32(bits) !== data.readUInt32LE(40)) return { problem: 'bits crc mismatch (torn or corrupt)' };
    return { filter: new KeyFilter(bytes, bits), coveredSeq: data.readDoubleLE(24) };
  }

  /**
   * Writes a filter image durably: a temp file, fsynced, renamed over `file`, then the
   * directory fsynced, so a crash leaves the old file or the new one, never a torn one.
   */
  static writeDurably(file: string, image: Buffer[]): void {
    const temp = `${file}.tmp`;
    const fd = fs.openSync(temp, 'w');
    try {
      try {
        for (const piece of imagePieces(image)) {
          for (let done = 0; done < piece.bytes.length;) {
            done += fs.writeSync(fd, piece.bytes, done, piece.bytes.length - done, piece.position + done);
          }
        }
        fs.ftruncateSync(fd, imageBytes(image));
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    } catch (err) {
      // A save that failed (a full disk) must not leave its partial image taking the space.
      fs.rmSync(temp, { force: true });
      throw err;
    }
    fs.renameSync(temp, file);
    syncDir(path.dirname(file));
  }

  /**
   * Saves the live filter's bits durably without copying them: they are read in chunks of
   * IMAGE_CHUNK_BYTES (each copied, added to the crc and written off this thread; all-zero
   * chunks stay holes), then the header with that crc, the fsync, the rename and the
   * directory fsync. Bits are only ever set, never cleared, so the file holds every key of
   * seq <= coveredSeq that was in the filter when the save began, plus maybe some later ones
   * (false positives at worst: the table decides, and the catch-up after coveredSeq adds them
   * again). A filter of 32 MiB so costs 64 KiB of memory to save, not a second 32 MiB.
   * `commit` is asked just before the rename (synchronously) and may refuse it (the store
   * closed and wrote a newer image meanwhile).
   */
  static async saveLiveInBackground(file: string, bits: Buffer, coveredSeq: number, indexId: number, commit: () => boolean): Promise<void> {
    const temp = `${file}.bg.tmp`;
    const handle = await fs.promises.open(temp, 'w');
    try {
      try {
        let crc = 0;
        for (let from = 0; from < bits.length; from += IMAGE_CHUNK_BYTES) {
          const chunk = Buffer.from(bits.subarray(from, Math.min(bits.length, from + IMAGE_CHUNK_BYTES)));
          crc = crc32(chunk, crc);
          if (chunk.equals(ZERO_CHUNK.subarray(0, chunk.length))) continue;
          await writeAll(handle, chunk, HEADER_BYTES + from);
        }
        await writeAll(handle, KeyFilter.header(bits.length, coveredSeq, indexId, crc), 0);
        await handle.truncate(HEADER_BYTES + bits.length);
        await handle.sync();
      } finally {
        await handle.close();
      }
    } catch (err) {
      // As in writeDurably: no partial image is left taking the space.
      fs.rmSync(temp, { force: true });
      throw err;
    }
    if (!commit()) {
      fs.rmSync(temp, { force: true });
      return;
    }
    fs.renameSync(temp, file);
    syncDir(path.dirname(file));
  }
}

/** Writes all of `bytes` at `position` of an open file. */
async function writeAll(handle: fs.promises.FileHandle, bytes: Buffer, position: number): Promise<void> {
  for (let done = 0; done < bytes.length;) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
}

/** Bytes of a filter file: its header and its bits. */
function imageBytes(image: Buffer[]): number {
  return image.reduce((sum, part) => sum + part.length, 0);
}

/** Bytes of the bits written at once; an all-zero run of this size is left as a hole. */
const IMAGE_CHUNK_BYTES = 64 * 1024;
const ZERO_CHUNK = Buffer.alloc(IMAGE_CHUNK_BYTES);

/**
 * The non-zero runs of a filter image and where they go in the file. Zero runs are left as
 * holes (the file is then truncated to its full size), so a filter that holds few keys takes
 * little disk: the default 32 MiB filter of a new data dir takes a few KiB, not 32 MiB.
 */
function* imagePieces(image: Buffer[]): Generator<{ bytes: Buffer; position: number }> {
  let position = 0;
  for (const part of image) {
    for (let from = 0; from < part.length; from += IMAGE_CHUNK_BYTES) {
      const bytes = part.subarray(from, Math.min(part.length, from + IMAGE_CHUNK_BYTES));
      // equals() is one memcmp: checking 32 MiB costs milliseconds.
      if (!bytes.equals(ZERO_CHUNK.subarray(0, bytes.length))) yield { bytes, position: position + from };
    }
    position += part.length;
  }
}

/** fsyncs a directory so a rename in it survives power loss. */
function syncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
