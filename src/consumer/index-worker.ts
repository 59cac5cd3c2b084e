import path from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { IndexStore, type IndexCounters, type IndexRow } from '../index/store';

/**
 * A batch for the worker: rows whose keys the ingest path proved new, plus counter deltas.
 * Rows travel packed (one string, numbers in transferred typed arrays): cloning one string
 * is a copy, cloning thousands of small objects costs the HTTP thread far more.
 */
interface ApplyMessage {
  id: number;
  /** topic, event_id, source and body of every row, concatenated. */
  text: string;
  /** Four lengths per row, in the order of `text`. */
  lengths: Uint32Array;
  /** seq, tsMs, receivedMs (NaN for null), log segment, offset, length per row (the worker computes each key from topic and event_id). */
  numbers: Float64Array;
  duplicates: number;
  conflicts: number;
}

/** Numbers packed per row: seq, tsMs, receivedMs, and the log position (segment, offset, length; NaN when unknown). */
const NUMBERS_PER_ROW = 6;

/** Packs rows for postMessage; the typed arrays' buffers are meant to be transferred. */
export function packRows(rows: IndexRow[]): Pick<ApplyMessage, 'text' | 'lengths' | 'numbers'> {
  const parts: string[] = new Array<string>(rows.length * 4);
  const lengths = new Uint32Array(rows.length * 4);
  const numbers = new Float64Array(rows.length * NUMBERS_PER_ROW);
  rows.forEach((row, i) => {
    parts[i * 4] = row.topic;
    parts[i * 4 + 1] = row.eventId;
    parts[i * 4 + 2] = row.source;
    parts[i * 4 + 3] = row.body;
    lengths[i * 4] = row.topic.length;
    lengths[i * 4 + 1] = row.eventId.length;
    lengths[i * 4 + 2] = row.source.length;
    lengths[i * 4 + 3] = row.body.length;
    numbers[i * NUMBERS_PER_ROW] = row.seq;
    numbers[i * NUMBERS_PER_ROW + 1] = row.tsMs;
    numbers[i * NUMBERS_PER_ROW + 2] = row.receivedMs ?? Number.NaN;
    numbers[i * NUMBERS_PER_ROW + 3] = row.position?.segment ?? Number.NaN;
    numbers[i * NUMBERS_PER_ROW + 4] = row.position?.offset ?? Number.NaN;
    numbers[i * NUMBERS_PER_ROW + 5] = row.position?.length ?? Number.NaN;
  });
  return { text: parts.join(''), lengths, numbers };
}

/** The inverse of packRows. */
export function unpackRows(packed: Pick<ApplyMessage, 'text' | 'lengths' | 'numbers'>): IndexRow[] {
  const { text, lengths, numbers } = packed;
  const rows: IndexRow[] = new Array<IndexRow>(numbers.length / NUMBERS_PER_ROW);
  let offset = 0;
  const take = (length: number): string => {
    const value = text.slice(offset, offset + length);
    offset += length;
    return value;
  };
  for (let i = 0; i < rows.length; i += 1) {
    const topic = take(lengths[i * 4]!);
    const eventId = take(lengths[i * 4 + 1]!);
    const source = take(lengths[i * 4 + 2]!);
    const body = take(lengths[i * 4 + 3]!);
    const at = i * NUMBERS_PER_ROW;
    const receivedMs = numbers[at + 2]!;
    const row: IndexRow = {
      seq: numbers[at]!,
      tsMs: numbers[at + 1]!,
      receivedMs: Number.isNaN(receivedMs) ? null : receivedMs,
      topic,
      eventId,
      source,
      body,
    };
    if (!Number.isNaN(numbers[at + 3]!)) row.position = { segment: numbers[at + 3]!, offset: numbers[at + 4]!, length: numbers[at + 5]! };
    rows[i] = row;
  }
  return rows;
}

/** The worker's answer to one ApplyMessage. */
type ApplyAnswer = { id: number; counters: IndexCounters; elapsedMs: number } | { id: number; error: { message: string; code?: string } };

/** An index write the worker could not commit (e.g. SQLITE_FULL); nothing of the batch is in the index. */
export class IndexWorkerError extends Error {
  readonly code: string | undefined;

  constructor(message: string, code?: string) {
    super(`index worker: ${message}`);
    this.name = 'IndexWorkerError';
    this.code = code;
  }
}

/**
 * The index writer on its own thread, so SQLite inserts (and the fsyncs of SQLite's own
 * checkpoints) use the second core and never block HTTP. It owns one write connection;
 * each `apply` is one transaction with the checkpoint, as IndexStore.appendNewRows does.
 * One batch is in flight at a time; callers queue behind it.
 */
export class IndexWorkerClient {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly waiting = new Map<
    number,
    { resolve: (answer: { counters: IndexCounters; elapsedMs: number }) => void; reject: (err: Error) => void }
  >();
  private exited: Error | null = null;

  constructor(databasePath: string) {
    this.worker = new Worker(path.join(__dirname, 'index-worker.js'), { workerData: { databasePath } });
    this.worker.on('message', (answer: ApplyAnswer) => {
      const waiter = this.waiting.get(answer.id);
      if (waiter === undefined) return;
      this.waiting.delete(answer.id);
      if ('error' in answer) waiter.reject(new IndexWorkerError(answer.error.message, answer.error.code));
      else waiter.resolve(answer);
    });
    this.worker.on('error', (err) => this.failAll(new IndexWorkerError(`crashed: ${err.message}`)));
    this.worker.on('exit', (code) => this.failAll(new IndexWorkerError(`exited with code ${code}`)));
  }

  /** True once the thread has died; a new client must be made to go on. */
  get dead(): boolean {
    return this.exited !== null;
  }

  /** Commits rows (proven new) and counter deltas in one transaction on the worker thread. */
  apply(rows: IndexRow[], duplicates: number, conflicts: number): Promise<{ counters: IndexCounters; elapsedMs: number }> {
    if (this.exited !== null) return Promise.reject(this.exited);
    const id = this.nextId;
    this.nextId += 1;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      const message: ApplyMessage = { id, ...packRows(rows), duplicates, conflicts };
      this.worker.postMessage(message, [message.lengths.buffer as ArrayBuffer, message.numbers.buffer as ArrayBuffer]);
    });
  }

  /** Closes the worker's connection and ends the thread. */
  async close(): Promise<void> {
    if (this.exited !== null) return;
    this.worker.postMessage({ id: 0, close: true });
    await new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
  }

  private failAll(err: Error): void {
    this.exited ??= err;
    const waiting = [...this.waiting.values()];
    this.waiting.clear();
    for (const waiter of waiting) waiter.reject(err);
  }
}

/** The worker thread's side: one IndexStore that only appends, answering each batch. */
function serveWorker(): void {
  const { databasePath } = workerData as { databasePath: string };
  const store = new IndexStore(databasePath, { loadKeys: false });
  parentPort!.on('message', (message: ApplyMessage & { close?: boolean }) => {
    if (message.close === true) {
      store.close();
      parentPort!.close();
      return;
    }
    const started = performance.now();
    let answer: ApplyAnswer;
    try {
      const counters = store.appendNewRows(unpackRows(message), message.duplicates, message.conflicts);
      answer = { id: message.id, counters, elapsedMs: performance.now() - started };
    } catch (err) {
      const e = err as Error & { code?: string };
      // The transaction rolled back: the store's counters are still those of the file.
      answer = { id: message.id, error: { message: e.message, code: e.code } };
    }
    parentPort!.postMessage(answer);
  });
}

if (!isMainThread && parentPort !== null && (workerData as { databasePath?: string } | null)?.databasePath !== undefined) serveWorker();
