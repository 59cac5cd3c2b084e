import path from 'node:path';
import type { FileHandleId, LogDisk, ReadHandle } from '../../src/wal/disk';

/**
 * How the written-but-unsynced changes of one file fare in a simulated power loss
 * (after SQLite's crash tests): all lost, all kept, kept up to a byte somewhere in the
 * middle (a torn write), or torn with the last bytes before the tear turned to garbage.
 */
export type CrashModel = 'drop' | 'keep' | 'torn' | 'garble';

/** The operation a fault applies to. */
export type DiskOperation =
  | 'write'
  | 'fdatasync'
  | 'truncate'
  | 'openForWrite'
  | 'fsyncDir'
  | 'writeFileDurably'
  | 'truncateFileDurably'
  | 'mkdirp'
  | 'renameSync'
  | 'unlink';

/** Thrown by every synchronous call after the simulated power went out. */
export class SimulatedPowerLoss extends Error {
  constructor() {
    super('simulated power loss');
    this.name = 'SimulatedPowerLoss';
  }
}

/** A source of randomness (so a failing seed can be replayed). */
export interface RandomSource {
  next(): number;
}

/** An error with an errno code, as node:fs throws them. */
export function errnoError(code: string, message: string): NodeJS.ErrnoException {
  const err = new Error(`${code}: ${message}`) as NodeJS.ErrnoException;
  err.code = code;
  return err;
}

type UnsyncedChange = { kind: 'write'; position: number; data: Buffer } | { kind: 'truncate'; size: number };

interface SimFile {
  /** What a power loss leaves for sure: the content at the last fsync. */
  synced: Buffer;
  /** What reads see now. */
  current: Buffer;
  /** Changes since the last fsync, in order. */
  changes: UnsyncedChange[];
}

interface SimDir {
  /** Names that reads see. */
  entries: Set<string>;
  /** Names made durable by an fsync of this directory. */
  durable: Set<string>;
  /** Renames inside this directory since its last fsync, in order. */
  renames: PendingRename[];
  /** Files unlinked since its last fsync: a power loss may bring each back. */
  unlinked: Array<{ name: string; file: SimFile }>;
}

/** A rename a power loss may undo: `to` named `replaced` (or nothing) before, `from` named `moved`. */
interface PendingRename {
  from: string;
  to: string;
  moved: SimFile;
  replaced: SimFile | undefined;
}

/**
 * An in-memory LogDisk that keeps written-but-unsynced bytes apart from synced ones and
 * can simulate a power loss: `crash()` applies a CrashModel to each file's unsynced
 * changes and forgets directory entries that were never fsynced. It also injects faults
 * (`failNext`). Everything under `root` is simulated; `root` itself always exists.
 */
export class PowerLossDisk implements LogDisk {
  private readonly root: string;
  private readonly files = new Map<string, SimFile>();
  private readonly dirs = new Map<string, SimDir>();
  private readonly handles = new Map<FileHandleId, { path: string; generation: number }>();
  private readonly mtimes = new Map<string, number>();
  private nextHandle = 1;
  private generation = 1;
  private operations = 0;
  private crashAtOperation: number | null = null;
  private onCrash: (() => void) | null = null;
  /** True from the power loss until `reboot`. */
  powerLost = false;
  /** When set, each call asks it for an error to throw instead of (or, for writes, after part of) the operation. */
  failNext: ((operation: DiskOperation, file: string) => NodeJS.ErrnoException | null) | null = null;
  /** For mutation checks: when false, fdatasync pretends and syncs nothing. */
  honourFdatasync = true;
  /** For mutation checks: when false, fsyncDir pretends and syncs nothing. */
  honourFsyncDir = true;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.dirs.set(this.root, { entries: new Set(), durable: new Set(), renames: [], unlinked: [] });
  }

  /** Operations performed so far (each call counts one). */
  get operationCount(): number {
    return this.operations;
  }

  /** The power goes out when the `afterOperations`-th next call starts; `onCrash` runs synchronously then. */
  armCrash(afterOperations: number, onCrash: () => void): void {
    this.crashAtOperation = this.operations + Math.max(1, afterOperations);
    this.onCrash = onCrash;
  }

  /** Cancels an armed crash that has not happened yet. */
  disarmCrash(): void {
    this.crashAtOperation = null;
    this.onCrash = null;
  }

  /** The power goes out now (between two operations). */
  crashNow(): void {
    if (this.powerLost) return;
    this.powerLost = true;
    this.crashAtOperation = null;
    const onCrash = this.onCrash;
    this.onCrash = null;
    onCrash?.();
  }

  /**
   * Applies the power loss to the stored bytes and powers up again: every open handle is
   * gone, each file keeps its synced bytes plus what `model` lets survive of its unsynced
   * changes, each rename not fsynced survives with probability 1/2 (in order: once one is
   * undone, so are the later ones), and each directory entry never fsynced survives with
   * probability 1/2.
   */
  reboot(
    random: RandomSource,
    model: CrashModel | ((file: string) => CrashModel),
  ): { filesChanged: number; entriesLost: number; unlinksUndone: number } {
    this.powerLost = true;
    let unlinksUndone = 0;
    let filesChanged = 0;
    let entriesLost = 0;
    for (const [dirPath, dir] of this.dirs) {
      const firstUndone = dir.renames.findIndex(() => random.next() >= 0.5);
      const undone = firstUndone === -1 ? [] : dir.renames.slice(firstUndone);
      for (const rename of undone.reverse()) {
        const to = path.join(dirPath, rename.to);
        if (rename.replaced === undefined) {
          this.files.delete(to);
          dir.entries.delete(rename.to);
        } else {
          this.files.set(to, rename.replaced);
        }
        this.files.set(path.join(dirPath, rename.from), rename.moved);
        dir.entries.add(rename.from);
      }
      dir.renames = [];
      // An unlink never made durable by a directory fsync may be undone (the file returns with its synced bytes).
      for (const { name, file } of dir.unlinked) {
        if (random.next() >= 0.5 || dir.entries.has(name)) continue;
        unlinksUndone += 1;
        file.current = Buffer.from(file.synced);
        file.changes = [];
        this.files.set(path.join(dirPath, name), file);
        dir.entries.add(name);
        dir.durable.add(name);
      }
      dir.unlinked = [];
    }
    // Directory entries first: a file whose name was lost is gone with all its bytes.
    for (const [dirPath, dir] of [...this.dirs]) {
      if (!this.dirs.has(dirPath)) continue;
      for (const name of [...dir.entries]) {
        if (dir.durable.has(name) || random.next() < 0.5) continue;
        entriesLost += 1;
        this.removeTree(path.join(dirPath, name));
        dir.entries.delete(name);
      }
      dir.durable = new Set(dir.entries);
    }
    for (const [filePath, file] of this.files) {
      if (file.changes.length === 0) continue;
      filesChanged += 1;
      file.current = survivingBytes(file, typeof model === 'function' ? model(filePath) : model, random);
      file.synced = Buffer.from(file.current);
      file.changes = [];
    }
    this.handles.clear();
    this.generation += 1;
    this.powerLost = false;
    this.crashAtOperation = null;
    return { filesChanged, entriesLost, unlinksUndone };
  }

  /** The bytes a reader would see now (for assertions). */
  peek(file: string): Buffer | null {
    return this.files.get(path.resolve(file))?.current ?? null;
  }

  mkdirp(dir: string): void {
    this.step('mkdirp', dir);
    const target = this.inside(dir);
    const missing: string[] = [];
    for (let at = target; !this.dirs.has(at); at = path.dirname(at)) {
      if (this.files.has(at)) throw errnoError('EEXIST', `mkdir ${at}`);
      missing.unshift(at);
    }
    for (const created of missing) {
      this.dirs.get(path.dirname(created))!.entries.add(path.basename(created));
      this.dirs.set(created, { entries: new Set(), durable: new Set(), renames: [], unlinked: [] });
    }
  }

  listDir(dir: string): string[] {
    this.step(null, dir);
    const found = this.dirs.get(this.inside(dir));
    if (found === undefined) throw errnoError('ENOENT', `scandir ${dir}`);
    return [...found.entries].sort();
  }

  exists(file: string): boolean {
    this.step(null, file);
    const target = this.inside(file);
    return this.files.has(target) || this.dirs.has(target);
  }

  readFile(file: string): Buffer {
    this.step(null, file);
    const found = this.files.get(this.inside(file));
    if (found === undefined) throw errnoError('ENOENT', `open ${file}`);
    return Buffer.from(found.current);
  }

  readRange(file: string, position: number, length: number): Buffer {
    this.step(null, file);
    const found = this.files.get(this.inside(file));
    if (found === undefined) throw errnoError('ENOENT', `open ${file}`);
    return Buffer.from(found.current.subarray(position, position + length));
  }

  openForRead(file: string): ReadHandle {
    this.step(null, file);
    const found = this.files.get(this.inside(file));
    if (found === undefined) throw errnoError('ENOENT', `open ${file}`);
    // The handle keeps the file it opened, as an fd does after unlink; each call is a step
    // (a crash point), and a power loss ends the handle like every other.
    // Opening counts as the step a size check was before: a read of N chunks stays N + 1 steps.
    const generation = this.generation;
    const use = (step: boolean): SimFile => {
      if (step) this.step(null, file);
      if (generation !== this.generation) throw errnoError('EBADF', `read ${file}: handle from before a power loss`);
      return found;
    };
    return {
      size: () => use(false).current.length,
      read: (position, length) => Buffer.from(use(true).current.subarray(position, position + length)),
      close: () => undefined,
    };
  }

  fileSize(file: string): number {
    this.step(null, file);
    const found = this.files.get(this.inside(file));
    if (found === undefined) throw errnoError('ENOENT', `stat ${file}`);
    return found.current.length;
  }

  openForWrite(file: string): FileHandleId {
    this.step('openForWrite', file);
    const target = this.inside(file);
    if (!this.files.has(target)) this.createFile(target);
    const handle = this.nextHandle;
    this.nextHandle += 1;
    this.handles.set(handle, { path: target, generation: this.generation });
    return handle;
  }

  write(handle: FileHandleId, data: Buffer, position: number): Promise<void> {
    if (this.crashesAtNextOperation()) {
      // The power goes out during this write: its bytes are in flight, the crash model decides their fate.
      const open = this.handles.get(handle);
      if (open?.generation === this.generation)
        applyChange(this.files.get(open.path)!, { kind: 'write', position, data: Buffer.from(data) });
    }
    return this.stepAsync(() => {
      const file = this.fileOf(handle);
      const fault = this.failNext?.('write', this.handles.get(handle)!.path) ?? null;
      if (fault !== null) {
        // A failing write may have written part of its bytes first (as ENOSPC does).
        const partial = data.subarray(0, Math.floor(data.length / 2));
        if (partial.length > 0) applyChange(file, { kind: 'write', position, data: Buffer.from(partial) });
        throw fault;
      }
      applyChange(file, { kind: 'write', position, data: Buffer.from(data) });
      this.mtimes.set(this.handles.get(handle)!.path, Date.now());
    });
  }

  fdatasync(handle: FileHandleId): Promise<void> {
    return this.stepAsync(() => {
      const file = this.fileOf(handle);
      const fault = this.failNext?.('fdatasync', this.handles.get(handle)!.path) ?? null;
      if (fault !== null) throw fault;
      if (this.honourFdatasync) syncFile(file);
    });
  }

  truncate(handle: FileHandleId, size: number): Promise<void> {
    return this.stepAsync(() => {
      const file = this.fileOf(handle);
      const fault = this.failNext?.('truncate', this.handles.get(handle)!.path) ?? null;
      if (fault !== null) throw fault;
      applyChange(file, { kind: 'truncate', size });
    });
  }

  close(handle: FileHandleId): void {
    this.step(null, String(handle));
    this.handles.delete(handle);
  }

  truncateFileDurably(file: string, size: number): void {
    this.step('truncateFileDurably', file);
    const found = this.files.get(this.inside(file));
    if (found === undefined) throw errnoError('ENOENT', `open ${file}`);
    applyChange(found, { kind: 'truncate', size });
    syncFile(found);
  }

  fsyncDir(dir: string): void {
    this.step('fsyncDir', dir);
    const found = this.dirs.get(this.inside(dir));
    if (found === undefined) throw errnoError('ENOENT', `open ${dir}`);
    if (this.honourFsyncDir) {
      found.durable = new Set(found.entries);
      found.renames = [];
      found.unlinked = [];
    }
  }

  writeFileDurably(file: string, chunks: Buffer | Iterable<Buffer>): void {
    const target = this.inside(file);
    const data = Buffer.isBuffer(chunks) ? chunks : Buffer.concat([...chunks]);
    if (this.crashesAtNextOperation()) {
      // The power goes out during this call: the file is already opened (truncated) and its
      // bytes are in flight; the crash model decides their fate.
      if (!this.files.has(target) && this.dirs.has(path.dirname(target))) this.createFile(target);
      const found = this.files.get(target);
      if (found !== undefined) {
        applyChange(found, { kind: 'truncate', size: 0 });
        applyChange(found, { kind: 'write', position: 0, data: Buffer.from(data) });
      }
    }
    this.step('writeFileDurably', file);
    if (!this.files.has(target)) this.createFile(target);
    const found = this.files.get(target)!;
    applyChange(found, { kind: 'truncate', size: 0 });
    applyChange(found, { kind: 'write', position: 0, data: Buffer.from(data) });
    syncFile(found);
  }

  renameSync(from: string, to: string): void {
    this.step('renameSync', from);
    const source = this.inside(from);
    const target = this.inside(to);
    const dir = this.dirs.get(path.dirname(source));
    if (path.dirname(target) !== path.dirname(source) || dir === undefined)
      throw new Error(`PowerLossDisk: only renames inside one directory are simulated (${from} -> ${to})`);
    const moved = this.files.get(source);
    if (moved === undefined) throw errnoError('ENOENT', `rename ${from}`);
    dir.renames.push({ from: path.basename(source), to: path.basename(target), moved, replaced: this.files.get(target) });
    this.files.delete(source);
    this.files.set(target, moved);
    dir.entries.delete(path.basename(source));
    dir.entries.add(path.basename(target));
  }

  unlink(file: string): void {
    this.step('unlink', file);
    const target = this.inside(file);
    const found = this.files.get(target);
    const dir = this.dirs.get(path.dirname(target));
    if (found === undefined || dir === undefined) throw errnoError('ENOENT', `unlink ${file}`);
    this.files.delete(target);
    dir.entries.delete(path.basename(target));
    // A name never made durable is simply gone; a durable one may come back until the directory is fsynced.
    if (dir.durable.has(path.basename(target))) dir.unlinked.push({ name: path.basename(target), file: found });
    dir.durable.delete(path.basename(target));
  }

  modifiedAtMs(file: string): number {
    this.step(null, file);
    if (!this.files.has(this.inside(file))) throw errnoError('ENOENT', `stat ${file}`);
    return this.mtimes.get(this.inside(file)) ?? 0;
  }

  /** Sets what modifiedAtMs answers for a file (tests of RETENTION_MS's mtime fallback). */
  setModifiedAtMs(file: string, ms: number): void {
    this.mtimes.set(this.inside(file), ms);
  }

  /** True when the next call is the one an armed crash lands on. */
  private crashesAtNextOperation(): boolean {
    return !this.powerLost && this.crashAtOperation !== null && this.operations + 1 >= this.crashAtOperation;
  }

  /** Counts one call, trips an armed crash, and refuses every call once the power is out. */
  private step(operation: DiskOperation | null, file: string): void {
    if (!this.powerLost) {
      this.operations += 1;
      if (this.crashAtOperation !== null && this.operations >= this.crashAtOperation) this.crashNow();
    }
    if (this.powerLost) throw new SimulatedPowerLoss();
    if (operation !== null && operation !== 'write' && operation !== 'fdatasync' && operation !== 'truncate') {
      const fault = this.failNext?.(operation, file) ?? null;
      if (fault !== null) throw fault;
    }
  }

  /** An asynchronous call: it runs on a later turn; after a power loss it never settles. */
  private stepAsync(run: () => void): Promise<void> {
    try {
      this.step(null, '');
    } catch (err) {
      if (err instanceof SimulatedPowerLoss) return new Promise<void>(() => undefined);
      throw err;
    }
    const generation = this.generation;
    return new Promise<void>((resolve, reject) => {
      setImmediate(() => {
        // The power went out while the call was in flight: it never returns.
        if (this.powerLost || generation !== this.generation) return;
        try {
          run();
          resolve();
        } catch (err) {
          reject(err);
        }
      });
    });
  }

  private fileOf(handle: FileHandleId): SimFile {
    const open = this.handles.get(handle);
    if (open?.generation !== this.generation) throw errnoError('EBADF', `bad file handle ${handle}`);
    return this.files.get(open.path)!;
  }

  private createFile(target: string): void {
    const dir = this.dirs.get(path.dirname(target));
    if (dir === undefined) throw errnoError('ENOENT', `open ${target}`);
    dir.entries.add(path.basename(target));
    this.files.set(target, { synced: Buffer.alloc(0), current: Buffer.alloc(0), changes: [] });
    this.mtimes.set(target, Date.now());
  }

  private removeTree(target: string): void {
    this.files.delete(target);
    const dir = this.dirs.get(target);
    if (dir === undefined) return;
    for (const name of dir.entries) this.removeTree(path.join(target, name));
    this.dirs.delete(target);
  }

  private inside(file: string): string {
    const target = path.resolve(file);
    if (target !== this.root && !target.startsWith(this.root + path.sep)) throw new Error(`PowerLossDisk: ${file} is outside ${this.root}`);
    return target;
  }
}

function applyChange(file: SimFile, change: UnsyncedChange): void {
  file.current = changed(file.current, change);
  file.changes.push(change);
}

function changed(bytes: Buffer, change: UnsyncedChange): Buffer {
  if (change.kind === 'truncate') {
    if (change.size <= bytes.length) return Buffer.from(bytes.subarray(0, change.size));
    return Buffer.concat([bytes, Buffer.alloc(change.size - bytes.length)]);
  }
  const end = change.position + change.data.length;
  const out = Buffer.alloc(Math.max(bytes.length, end));
  bytes.copy(out);
  change.data.copy(out, change.position);
  return out;
}

function syncFile(file: SimFile): void {
  file.synced = Buffer.from(file.current);
  file.changes = [];
}

/** The bytes of a file after a power loss under `model`. */
function survivingBytes(file: SimFile, model: CrashModel, random: RandomSource): Buffer {
  if (model === 'drop') return Buffer.from(file.synced);
  if (model === 'keep') return Buffer.from(file.current);
  // Torn: the changes reached the platter in order up to a random byte of one of them.
  let bytes: Buffer = Buffer.from(file.synced);
  const kept = Math.floor(random.next() * (file.changes.length + 1));
  for (let i = 0; i < kept; i += 1) bytes = changed(bytes, file.changes[i]!);
  const tearing = file.changes[kept];
  if (tearing?.kind !== 'write') return bytes;
  const length = Math.floor(random.next() * tearing.data.length);
  const written = Buffer.from(tearing.data.subarray(0, length));
  if (model === 'garble' && length > 0) {
    // The last sectors before the tear hold garbage (random bytes or zeros).
    const garbled = 1 + Math.floor(random.next() * Math.min(length, 600));
    const zeros = random.next() < 0.3;
    for (let i = length - garbled; i < length; i += 1) written[i] = zeros ? 0 : Math.floor(random.next() * 256);
  }
  return changed(bytes, { kind: 'write', position: tearing.position, data: written });
}
