import path from 'node:path';
import { isMainThread, parentPort, threadId, Worker, workerData } from 'node:worker_threads';
import { AppError } from '../errors';
import { countHistogram, type Histogram } from '../query/histogram';
import type { EventFilter } from '../query/event-filter';
import { IndexStore, type EventPage, type EventQuery, type PageRow } from './store';

/**
 * The options the main store was opened with; each worker opens its connection with them,
 * overriding only what makes it a reader (readonly, no key table), so it reads the file the
 * way the main thread does.
 */
export type ReadStoreOptions = NonNullable<ConstructorParameters<typeof IndexStore>[1]>;

/** One read the pool runs: a page of GET /events (or the stream's catch-up), or a histogram. */
export type ReadRequest = { op: 'page'; query: EventQuery } | { op: 'histogram'; filter: EventFilter; buckets: number; chunkRows: number };

/**
 * A page with the snapshot it was read from: `snapshotSeq` is the index checkpoint inside the
 * same read transaction, so every row with seq <= snapshotSeq was visible to the read (the
 * live tail uses it to switch to the consumer's announcements without a gap).
 */
export interface SnapshotPage extends EventPage {
  snapshotSeq: number;
  /** The thread that read it (0 = the main thread, i.e. inline reads). */
  threadId: number;
}

/** The read pool's bounds (READ_WORKERS, READ_QUEUE_MAX, READ_TIMEOUT_MS). */
export interface ReadPoolOptions {
  databasePath: string;
  storeOptions?: ReadStoreOptions;
  /** Worker threads, each with its own read-only connection; at least 1. */
  workers: number;
  /** Reads waiting for a worker; one more is refused with 503 reads_busy. */
  queueMax: number;
  /** A read that runs longer fails with 503 read_failed and its worker is replaced. */
  timeoutMs: number;
  retryAfterSeconds: number;
  /** Told when a worker died and was replaced (logs). */
  onWorkerExit?: (reason: string) => void;
}

/** A page's rows packed for postMessage: one string and typed arrays, not thousands of objects. */
interface PackedPage {
  text: string;
  lengths: Uint32Array;
  seqs: Float64Array;
  receivedMs: Float64Array;
  nextCursor: number | null;
  snapshotSeq: number;
}

type WorkerMessage = { id: number; request: ReadRequest } | { cancel: number } | { close: true };

type WorkerAnswer =
  | { ready: true }
  | { id: number; threadId: number; page: PackedPage }
  | { id: number; threadId: number; histogram: Histogram }
  | { id: number; threadId: number; error: { message: string; code?: string } };

/** A read waiting for, or running on, a worker. */
interface Task {
  id: number;
  request: ReadRequest;
  resolve: (answer: WorkerAnswer) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout | null;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | null;
}

/** One worker thread and the read it runs (one at a time: SQLite reads are synchronous). */
interface Slot {
  worker: Worker;
  task: Task | null;
  /** True once the worker has opened its connection (a read's time starts when it is sent to a ready worker). */
  ready: boolean;
  dead: boolean;
}

/** How long a worker that died before it could open the index waits before it is started again. */
const RESPAWN_DELAY_MS = 1000;

/**
 * Runs index reads on worker threads, each with its own read-only connection to the index
 * file (WAL mode: they read a snapshot while the consumer commits), so no query of any filter
 * shape holds the thread that acknowledges publishes. The queue of waiting reads is bounded
 * (past it 503 reads_busy); a read is bounded in time (past it 503 read_failed, the worker is
 * replaced); a worker that dies fails the read it held with read_failed and is replaced.
 */
export class ReadPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Task[] = [];
  private nextId = 1;
  private closed = false;
  private readonly readyOnce: Promise<void>;
  private markReady: () => void = noop;

  constructor(private readonly options: ReadPoolOptions) {
    this.readyOnce = new Promise((resolve) => (this.markReady = resolve));
    for (let i = 0; i < Math.max(1, options.workers); i += 1) this.slots.push(this.spawn());
  }

  /** Resolves once every first worker has opened its connection (reads sent before wait in the queue). */
  get ready(): Promise<void> {
    return this.readyOnce;
  }

  /** Reads waiting for a worker right now (for /metrics and tests). */
  get queued(): number {
    return this.queue.length;
  }

  /** The thread ids of the live workers (tests prove reads leave the main thread). */
  get threadIds(): number[] {
    return this.slots.filter((s) => !s.dead).map((s) => s.worker.threadId);
  }

  /** One page of GET /events (see IndexStore.readPage), with the snapshot it was read from. */
  async readPage(query: EventQuery): Promise<SnapshotPage> {
    const answer = await this.run({ op: 'page', query });
    if (!('page' in answer)) throw new Error('read pool: a page read answered something else');
    return { ...unpackPage(answer.page), threadId: answer.threadId };
  }

  /** The histogram of GET /events/histogram (see countHistogram); `signal` stops it early. */
  async histogram(filter: EventFilter, buckets: number, chunkRows: number, signal?: AbortSignal): Promise<Histogram> {
    const answer = await this.run({ op: 'histogram', filter, buckets, chunkRows }, signal);
    if (!('histogram' in answer)) throw new Error('read pool: a histogram read answered something else');
    return answer.histogram;
  }

  /**
   * Ends a worker as a crash would (tests, and the timeout): its read fails with read_failed
   * and a new worker takes its place.
   */
  async killWorker(index = 0): Promise<void> {
    const slot = this.slots[index];
    if (slot === undefined) return;
    await slot.worker.terminate();
  }

  /** Fails every waiting read and ends the threads; later reads fail with shutting_down. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const task of this.queue.splice(0)) this.fail(task, this.shuttingDown());
    await Promise.all(
      this.slots.map(async (slot) => {
        if (slot.dead) return;
        slot.dead = true;
        // Held alive until the worker is gone: else a process with nothing else to do would end mid-stop.
        slot.worker.ref();
        const exited = new Promise<void>((resolve) => slot.worker.once('exit', () => resolve()));
        slot.worker.postMessage({ close: true } satisfies WorkerMessage);
        await exited;
      }),
    );
  }

  private run(request: ReadRequest, signal?: AbortSignal): Promise<WorkerAnswer> {
    if (this.closed) return Promise.reject(this.shuttingDown());
    const { queueMax, retryAfterSeconds } = this.options;
    const idle = this.slots.find((s) => s.ready && s.task === null && !s.dead);
    if (idle === undefined && this.queue.length >= queueMax) {
      return Promise.reject(
        new AppError('reads_busy', `${this.queue.length} reads are waiting for a read worker, READ_QUEUE_MAX=${queueMax}`, {
          retryAfterSeconds,
        }),
      );
    }
    return new Promise<WorkerAnswer>((resolve, reject) => {
      const task: Task = { id: this.nextId, request, resolve, reject, timer: null, signal, onAbort: null };
      this.nextId += 1;
      if (signal !== undefined) {
        task.onAbort = () => this.abort(task);
        signal.addEventListener('abort', task.onAbort, { once: true });
      }
      if (idle !== undefined) this.dispatch(idle, task);
      else this.queue.push(task);
    });
  }

  private dispatch(slot: Slot, task: Task): void {
    slot.task = task;
    task.timer = setTimeout(() => {
      // The worker is busy in SQLite or a long count: end it, so the next read gets a fresh one.
      this.fail(task, this.readFailed(`a read ran longer than READ_TIMEOUT_MS=${this.options.timeoutMs}`));
      void slot.worker.terminate();
    }, this.options.timeoutMs);
    task.timer.unref();
    slot.worker.postMessage({ id: task.id, request: task.request } satisfies WorkerMessage);
  }

  /** A client went away: a waiting read leaves the queue, a running one is asked to stop. */
  private abort(task: Task): void {
    const queued = this.queue.indexOf(task);
    if (queued >= 0) this.queue.splice(queued, 1);
    else {
      const slot = this.slots.find((s) => s.task === task);
      if (slot !== undefined) slot.worker.postMessage({ cancel: task.id } satisfies WorkerMessage);
    }
    this.fail(task, task.signal?.reason instanceof Error ? task.signal.reason : new Error('read aborted'));
  }

  private spawn(): Slot {
    const worker = new Worker(path.join(__dirname, 'read-pool.js'), {
      workerData: { readPool: true, databasePath: this.options.databasePath, storeOptions: this.options.storeOptions ?? {} },
    });
    const slot: Slot = { worker, task: null, ready: false, dead: false };
    worker.on('message', (answer: WorkerAnswer) => {
      if ('ready' in answer) {
        slot.ready = true;
        if (this.slots.every((s) => s.ready)) this.markReady();
        this.next(slot);
        return;
      }
      const task = slot.task;
      if (task?.id !== answer.id) return;
      slot.task = null;
      if ('error' in answer) {
        const err = new Error(`read worker: ${answer.error.message}`) as Error & { code?: string };
        err.code = answer.error.code;
        this.fail(task, err);
      } else this.settle(task, answer);
      this.next(slot);
    });
    // An uncaught exception in the worker ends it: 'error' comes first, then 'exit'.
    worker.on('error', (err) => this.replace(slot, `crashed: ${err.message}`));
    worker.on('exit', (code) => this.replace(slot, `exited with code ${code}`));
    // The pool must not keep a finished process alive (tests, `logagg` tools).
    worker.unref();
    return slot;
  }

  /** Fails the read a dead worker held (never a hang) and starts another in its place. */
  private replace(slot: Slot, reason: string): void {
    if (slot.dead) return;
    slot.dead = true;
    const task = slot.task;
    slot.task = null;
    if (task !== null) this.fail(task, this.readFailed(`the read worker ${reason}`));
    if (this.closed) return;
    this.options.onWorkerExit?.(reason);
    if (!slot.ready) {
      // It could not even open the index: fail what waits rather than let it wait on a loop of crashes.
      for (const waiting of this.queue.splice(0)) this.fail(waiting, this.readFailed(`the read worker ${reason}`));
      setTimeout(() => this.respawn(slot), RESPAWN_DELAY_MS).unref();
      return;
    }
    this.respawn(slot);
  }

  private respawn(slot: Slot): void {
    if (this.closed) return;
    this.slots[this.slots.indexOf(slot)] = this.spawn();
  }

  private next(slot: Slot): void {
    const task = this.queue.shift();
    if (task !== undefined) this.dispatch(slot, task);
  }

  private settle(task: Task, answer: WorkerAnswer): void {
    const resolve = task.resolve;
    this.finish(task);
    resolve(answer);
  }

  private fail(task: Task, err: Error): void {
    const reject = task.reject;
    this.finish(task);
    reject(err);
  }

  /** Clears a task's timer and abort listener; a task settles once (later answers are dropped). */
  private finish(task: Task): void {
    if (task.timer !== null) clearTimeout(task.timer);
    task.timer = null;
    if (task.onAbort !== null) task.signal?.removeEventListener('abort', task.onAbort);
    task.onAbort = null;
    task.resolve = noop;
    task.reject = noop;
  }

  private readFailed(message: string): AppError {
    return new AppError('read_failed', message, { retryAfterSeconds: this.options.retryAfterSeconds });
  }

  private shuttingDown(): AppError {
    return new AppError('shutting_down', 'the service is shutting down', { retryAfterSeconds: this.options.retryAfterSeconds });
  }
}

function noop(): void {
  // A settled task ignores what comes after.
}

/**
 * Runs one read on `store` on this thread: the worker's handler, and the inline path
 * (READ_WORKERS=0, the comparison the reads benchmark makes). A page and its snapshotSeq come
 * from one read transaction.
 */
export async function readInline(
  store: IndexStore,
  request: ReadRequest,
  signal?: AbortSignal,
): Promise<{ page: SnapshotPage } | { histogram: Histogram }> {
  if (request.op === 'page') {
    const page = store.withSnapshot(() => ({ ...store.readPage(request.query), snapshotSeq: store.readCounters().checkpointSeq }));
    return { page: { ...page, threadId } };
  }
  return {
    histogram: await countHistogram(store, request.filter, request.buckets, { chunkRows: request.chunkRows, signal }),
  };
}

function packPage(page: EventPage & { snapshotSeq: number }): PackedPage {
  const lengths = new Uint32Array(page.rows.length);
  const seqs = new Float64Array(page.rows.length);
  // NaN stands for a version-1 record's unknown acceptance time.
  const receivedMs = new Float64Array(page.rows.length);
  page.rows.forEach((row, i) => {
    lengths[i] = row.body.length;
    seqs[i] = row.seq;
    receivedMs[i] = row.receivedMs ?? Number.NaN;
  });
  return {
    text: page.rows.map((r) => r.body).join(''),
    lengths,
    seqs,
    receivedMs,
    nextCursor: page.nextCursor,
    snapshotSeq: page.snapshotSeq,
  };
}

function unpackPage(packed: PackedPage): EventPage & { snapshotSeq: number } {
  const rows = new Array<PageRow>(packed.seqs.length);
  let offset = 0;
  for (let i = 0; i < rows.length; i += 1) {
    const length = packed.lengths[i]!;
    const receivedMs = packed.receivedMs[i]!;
    rows[i] = {
      seq: packed.seqs[i]!,
      body: packed.text.slice(offset, offset + length),
      receivedMs: Number.isNaN(receivedMs) ? null : receivedMs,
    };
    offset += length;
  }
  return { rows, nextCursor: packed.nextCursor, snapshotSeq: packed.snapshotSeq };
}

/** The worker thread's side: one read-only IndexStore, one read at a time. */
function serveReads(): void {
  const { databasePath, storeOptions } = workerData as { databasePath: string; storeOptions: ReadStoreOptions };
  const store = new IndexStore(databasePath, { ...storeOptions, readonly: true, loadKeys: false, withoutSpace: false });
  const running = new Map<number, AbortController>();
  parentPort!.postMessage({ ready: true } satisfies WorkerAnswer);
  parentPort!.on('message', (message: WorkerMessage) => {
    if ('close' in message) {
      store.close();
      parentPort!.close();
      return;
    }
    if ('cancel' in message) {
      running.get(message.cancel)?.abort(new Error('read cancelled'));
      return;
    }
    const { id, request } = message;
    const controller = new AbortController();
    running.set(id, controller);
    const answer = async (): Promise<WorkerAnswer> => {
      try {
        const result = await readInline(store, request, controller.signal);
        if ('page' in result) {
          const packed = packPage(result.page);
          return { id, threadId, page: packed };
        }
        return { id, threadId, histogram: result.histogram };
      } catch (err) {
        const e = err as Error & { code?: string };
        return { id, threadId, error: { message: e.message, code: e.code } };
      } finally {
        running.delete(id);
      }
    };
    void answer().then((reply) => {
      if ('page' in reply)
        parentPort!.postMessage(reply, [
          reply.page.lengths.buffer as ArrayBuffer,
          reply.page.seqs.buffer as ArrayBuffer,
          reply.page.receivedMs.buffer as ArrayBuffer,
        ]);
      else parentPort!.postMessage(reply);
    });
  });
}

if (!isMainThread && parentPort !== null && (workerData as { readPool?: boolean } | null)?.readPool === true) serveReads();
