import fs from 'node:fs';
import path from 'node:path';

/**
 * Reads `length` bytes at `position` of `fd` into the start of `buffer`, pread after pread,
 * stopping early only at the end of the file; returns the bytes read.
 */
export function preadFully(fd: number, buffer: Buffer, length: number, position: number): number {
  let filled = 0;
  while (filled < length) {
    const read = fs.readSync(fd, buffer, filled, length - filled, position + filled);
    if (read === 0) break;
    filled += read;
  }
  return filled;
}

/** An open file of the log, as handed out by a LogDisk. */
export type FileHandleId = number;

/**
 * A file open for reading: it reads the same file until closed, even once its name is
 * unlinked (retention deleting a segment a reader is in), as an open fd does in POSIX.
 */
export interface ReadHandle {
  /** Bytes of the file now. */
  size(): number;
  /** Reads up to `length` bytes at `position` (fewer at the end of the file). */
  read(position: number, length: number): Buffer;
  close(): void;
}

/**
 * The narrow file-system surface the log uses. The real one is NodeDisk; tests swap in a
 * disk that keeps written-but-unsynced bytes apart to simulate power loss. It promises
 * nothing about durability except through `fdatasync` and `fsyncDir`.
 */
export interface LogDisk {
  mkdirp(dir: string): void;
  listDir(dir: string): string[];
  exists(path: string): boolean;
  readFile(path: string): Buffer;
  /** Reads up to `length` bytes at `position` (fewer at the end of the file). */
  readRange(path: string, position: number, length: number): Buffer;
  /** Opens a file for reading in ranges; ENOENT when it is gone. */
  openForRead(path: string): ReadHandle;
  fileSize(path: string): number;
  /** Opens (creating if needed) a file for positional writes. */
  openForWrite(path: string): FileHandleId;
  /** Writes all of `data` at `position`; may throw after writing part of it. */
  write(handle: FileHandleId, data: Buffer, position: number): Promise<void>;
  fdatasync(handle: FileHandleId): Promise<void>;
  truncate(handle: FileHandleId, size: number): Promise<void>;
  close(handle: FileHandleId): void;
  /** Truncates a closed file (a torn-tail cut), then fsyncs it: the new size is durable on return. */
  truncateFileDurably(path: string, size: number): void;
  /** Makes a directory entry (a new segment's name) durable. */
  fsyncDir(dir: string): void;
  /**
   * Creates or replaces a file with `data` (one buffer, or chunks written in turn so that a
   * big copy holds one chunk at a time), then fsyncs it. Its name is durable only once the
   * directory is fsynced (fsyncDir).
   */
  writeFileDurably(path: string, data: Buffer | Iterable<Buffer>): void;
  /** Puts `from` in place of `to` in one step (rename(2)); durable once the directory is fsynced. */
  renameSync(from: string, to: string): void;
  /** Removes a file's name (unlink(2)); the removal is durable once the directory is fsynced. */
  unlink(path: string): void;
  /** The file's last modification time, epoch milliseconds (retention's fallback age). */
  modifiedAtMs(path: string): number;
}

function writeAll(fd: number, data: Buffer, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (written: number): void => {
      if (written >= data.length) {
        resolve();
        return;
      }
      fs.write(fd, data, written, data.length - written, position + written, (err, bytes) => {
        if (err) reject(err);
        else step(written + bytes);
      });
    };
    step(0);
  });
}

function writeAllSync(fd: number, data: Buffer): void {
  for (let written = 0; written < data.length;) written += fs.writeSync(fd, data, written, data.length - written);
}

/**
 * Creates `dir` and its missing parents so that their names survive power loss: the
 * parent of every directory it creates is fsynced. It does nothing for a directory that exists.
 */
export function makeDirDurable(disk: LogDisk, dir: string): void {
  const missing: string[] = [];
  for (let at = path.resolve(dir); !disk.exists(at); at = path.dirname(at)) {
    missing.push(at);
    if (path.dirname(at) === at) break;
  }
  if (missing.length === 0) return;
  disk.mkdirp(dir);
  // A new directory's name lives in its parent: fsync each parent, deepest first.
  for (const created of missing) disk.fsyncDir(path.dirname(created));
}

/** The real disk: node:fs with fdatasync and directory fsync. */
export class NodeDisk implements LogDisk {
  mkdirp(dir: string): void {
    fs.mkdirSync(dir, { recursive: true });
  }

  listDir(dir: string): string[] {
    return fs.readdirSync(dir);
  }

  exists(path: string): boolean {
    return fs.existsSync(path);
  }

  readFile(path: string): Buffer {
    return fs.readFileSync(path);
  }

  readRange(path: string, position: number, length: number): Buffer {
    const handle = this.openForRead(path);
    try {
      return handle.read(position, length);
    } finally {
      handle.close();
    }
  }

  openForRead(path: string): ReadHandle {
    const fd = fs.openSync(path, 'r');
    return {
      size: () => fs.fstatSync(fd).size,
      read: (position, length) => {
        const buffer = Buffer.allocUnsafe(length);
        const filled = preadFully(fd, buffer, length, position);
        return filled === length ? buffer : buffer.subarray(0, filled);
      },
      close: () => fs.closeSync(fd),
    };
  }

  fileSize(path: string): number {
    return fs.statSync(path).size;
  }

  openForWrite(path: string): FileHandleId {
    // 'a+' would ignore positions on Linux; 'r+' after creating keeps pwrite semantics.
    if (!fs.existsSync(path)) fs.closeSync(fs.openSync(path, 'wx'));
    return fs.openSync(path, 'r+');
  }

  write(handle: FileHandleId, data: Buffer, position: number): Promise<void> {
    return writeAll(handle, data, position);
  }

  fdatasync(handle: FileHandleId): Promise<void> {
    return new Promise((resolve, reject) => fs.fdatasync(handle, (err) => (err ? reject(err) : resolve())));
  }

  truncate(handle: FileHandleId, size: number): Promise<void> {
    return new Promise((resolve, reject) => fs.ftruncate(handle, size, (err) => (err ? reject(err) : resolve())));
  }

  close(handle: FileHandleId): void {
    fs.closeSync(handle);
  }

  truncateFileDurably(path: string, size: number): void {
    const fd = fs.openSync(path, 'r+');
    try {
      fs.ftruncateSync(fd, size);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  fsyncDir(dir: string): void {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  writeFileDurably(path: string, data: Buffer | Iterable<Buffer>): void {
    const fd = fs.openSync(path, 'w');
    try {
      for (const chunk of Buffer.isBuffer(data) ? [data] : data) writeAllSync(fd, chunk);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  renameSync(from: string, to: string): void {
    fs.renameSync(from, to);
  }

  unlink(path: string): void {
    fs.unlinkSync(path);
  }

  modifiedAtMs(path: string): number {
    return fs.statSync(path).mtimeMs;
  }
}
