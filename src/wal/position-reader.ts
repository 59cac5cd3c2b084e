import fs from 'node:fs';
import path from 'node:path';
import { NodeDisk, preadFully, type LogDisk } from './disk';
import type { LogPosition } from './event-row';
import { decodeRecordAt } from './reader';
import type { WalRecord } from './record';
import { segmentName } from './segments';

/**
 * Segment files a reader keeps open at once (read pool worker, CLI tool, main thread). A page
 * reads a few neighbouring segments, so a handful is enough; past it the least recently used
 * handle is closed. Memory and file descriptors stay bounded whatever the log's length.
 */
export const POSITION_READER_HANDLES_MAX = 8;

/** Lines up to this size are read into one reused buffer; a longer line gets its own. */
const SCRATCH_BYTES = 64 * 1024;

/**
 * Bytes one read takes under withReadAhead: the line asked for and its neighbours in the
 * direction the reads go. A page of 100 events of about 300 bytes lies in one or two of these.
 */
export const READ_AHEAD_BYTES = 32 * 1024;

/**
 * The index points at a line that is not the record it names: a short file, a bad checksum,
 * another seq. It is never served as an event; the index disagrees with the log
 * (`logagg verify` tells, `logagg rebuild` mends it).
 */
export class PositionMismatchError extends Error {
  constructor(seq: number, position: LogPosition, problem: string) {
    super(
      `read seq ${seq} from the log: ${segmentName(position.segment)} at byte offset ${position.offset} (${position.length} bytes) ${problem}; ` +
        'the index disagrees with the log (run `logagg verify`, then `logagg rebuild`)',
    );
    this.name = 'PositionMismatchError';
  }
}

/**
 * The record of `seq` in the line at `start` of `bytes`, of which `available` bytes were read
 * there; throws PositionMismatchError when they are not that whole record.
 */
function checkedRecord(seq: number, position: LogPosition, bytes: Buffer, start: number, available: number): WalRecord {
  const decoded = available >= position.length ? decodeRecordAt(bytes, position.length, seq, start) : 'is not a whole line';
  if (typeof decoded === 'string') throw new PositionMismatchError(seq, position, decoded);
  return decoded;
}

/**
 * Reads records back from the log by the position the index keeps (pread on read-only
 * handles), checking each line's checksum and seq, so a wrong offset can never pass for an
 * event. It keeps at most `handlesMax` segment files open; a handle whose file retention has
 * unlinked is closed by releaseUnlinked (the disk space is freed then), and a segment already
 * gone reads as null (the event was deleted). It never writes.
 */
export class LogPositionReader {
  /** Open handles by segment first seq, least recently used first. */
  private readonly handles = new Map<number, number>();
  private readonly scratch = Buffer.allocUnsafe(SCRATCH_BYTES);
  /** Nesting depth of withReadAhead; the window is kept only while it is above 0. */
  private readAheadDepth = 0;
  /** The bytes the last read-ahead read: [start, end) of a segment, in windowBytes. */
  private window: { segment: number; start: number; end: number } | null = null;
  private windowBytes: Buffer | null = null;

  /** The simulated disk to read through, or null for the real file system (pread on cached handles). */
  private readonly disk: LogDisk | null;

  constructor(
    private readonly walDir: string,
    options: { disk?: LogDisk | undefined; handlesMax?: number } = {},
  ) {
    this.disk = options.disk === undefined || options.disk instanceof NodeDisk ? null : options.disk;
    this.handlesMax = Math.max(1, options.handlesMax ?? POSITION_READER_HANDLES_MAX);
  }

  private readonly handlesMax: number;

  /** Segment files open right now (tests check the bound). */
  get openHandles(): number {
    return this.handles.size;
  }

  /**
   * The record of `seq` at `position`, or null when its segment no longer exists (retention
   * deleted it after the caller's index snapshot listed the row). Throws PositionMismatchError
   * when the bytes there are not that record.
   */
  read(seq: number, position: LogPosition): WalRecord | null {
    const { offset, length } = position;
    if (this.readAheadDepth > 0 && this.disk === null && length <= READ_AHEAD_BYTES) return this.readAhead(seq, position);
    let buffer: Buffer;
    let read: number;
    if (this.disk !== null) {
      const file = path.join(this.walDir, segmentName(position.segment));
      if (!this.disk.exists(file)) return null;
      buffer = this.disk.readRange(file, offset, length);
      read = buffer.length;
    } else {
      const fd = this.handleOf(position.segment);
      if (fd === null) return null;
      buffer = length <= this.scratch.length ? this.scratch : Buffer.allocUnsafe(length);
      read = preadFully(fd, buffer, length, offset);
    }
    return checkedRecord(seq, position, buffer, 0, read);
  }

  /**
   * Runs `read` with read-ahead: a read by position takes READ_AHEAD_BYTES around its line
   * (forward, or backward when the reads go down the log, as in a newest-first page), and
   * the following reads whose lines lie in those bytes are decoded from them instead of one
   * pread each: the rows of a page in seq order lie side by side in the log. The bytes are
   * dropped when `read` returns, so they never outlive the index snapshot it reads under:
   * every position that snapshot names is durable and never rewritten, while the log's tail
   * past them may be (a write cut away after ENOSPC is written again at the same offset).
   * Every line is still checked (checksum and seq) as read does.
   */
  withReadAhead<T>(read: () => T): T {
    this.readAheadDepth += 1;
    try {
      return read();
    } finally {
      this.readAheadDepth -= 1;
      if (this.readAheadDepth === 0) this.window = null;
    }
  }

  /** read under withReadAhead: from the window when it holds the line, else one pread of a new window. */
  private readAhead(seq: number, position: LogPosition): WalRecord | null {
    const { segment, offset, length } = position;
    const bytes = (this.windowBytes ??= Buffer.allocUnsafe(READ_AHEAD_BYTES));
    let window = this.window;
    if (window?.segment !== segment || offset < window.start || offset + length > window.end) {
      const fd = this.handleOf(segment);
      if (fd === null) return null;
      const backward = window?.segment === segment && offset < window.start;
      const start = backward ? Math.max(0, offset + length - READ_AHEAD_BYTES) : offset;
      // Up to the window's size or the end of the file, whichever comes first.
      window = this.window = { segment, start, end: start + preadFully(fd, bytes, READ_AHEAD_BYTES, start) };
    }
    return checkedRecord(seq, position, bytes, offset - window.start, window.end - offset);
  }

  /**
   * Closes the handles of segments that were unlinked (retention), so their space is given
   * back; reads then find them gone. Cheap (one fstat per open handle): call it per page.
   */
  releaseUnlinked(): void {
    for (const [segment, fd] of this.handles) {
      let gone: boolean;
      try {
        gone = fs.fstatSync(fd).nlink === 0;
      } catch {
        gone = true;
      }
      if (gone) this.closeHandle(segment, fd);
    }
  }

  /** Closes every handle; the reader may be used again (it reopens what it needs). */
  close(): void {
    this.window = null;
    for (const [segment, fd] of this.handles) this.closeHandle(segment, fd);
  }

  private handleOf(segment: number): number | null {
    const cached = this.handles.get(segment);
    if (cached !== undefined) {
      // Most recently used goes last.
      this.handles.delete(segment);
      this.handles.set(segment, cached);
      return cached;
    }
    let fd: number;
    try {
      fd = fs.openSync(path.join(this.walDir, segmentName(segment)), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    if (this.handles.size >= this.handlesMax) {
      const [oldest, oldestFd] = this.handles.entries().next().value!;
      this.closeHandle(oldest, oldestFd);
    }
    this.handles.set(segment, fd);
    return fd;
  }

  private closeHandle(segment: number, fd: number): void {
    this.handles.delete(segment);
    if (this.window?.segment === segment) this.window = null;
    try {
      fs.closeSync(fd);
    } catch {
      // A handle that cannot be closed is gone already.
    }
  }
}
