import Database from 'better-sqlite3';
import path from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

/**
 * Moves the index's WAL checkpoints off the thread that acknowledges publishes. SQLite runs
 * an automatic checkpoint inside the commit that crosses `wal_autocheckpoint` pages: it
 * copies the WAL into the database file and fsyncs it, and on this machine that held the
 * publish thread for 40 to 130 ms every few seconds under load (every request waited behind
 * it; docs/performance.md, "What held since/until, desc and RSS back at 10M"). Here a
 * worker thread with its own connection runs a PASSIVE checkpoint every
 * CHECKPOINT_INTERVAL_MS: PASSIVE never waits for readers or the writer, and a small
 * backfill often keeps the WAL short (the writer starts it over once every frame is copied). The main connection keeps its
 * automatic checkpoint as a backstop (a dead or stalled worker), which then finds little or
 * nothing left to copy. Durability does not depend on it: a commit is durable by the WAL's
 * own fsync (see IndexStore.dropThrough), a checkpoint only folds it into the file.
 */
export const CHECKPOINT_INTERVAL_MS = 250;
/** How long a worker that died waits before it is started again. */
const RESPAWN_DELAY_MS = 1000;

export interface CheckpointerOptions {
  databasePath: string;
  intervalMs?: number;
  /** Told when the worker died and was replaced (logs). */
  onWorkerExit?: (reason: string) => void;
}

interface CheckpointerData {
  checkpointer: true;
  databasePath: string;
  intervalMs: number;
}

/** What the worker reports after a checkpoint that copied frames. */
interface CheckpointReport {
  frames: number;
}

/** The checkpoint worker; see CHECKPOINT_INTERVAL_MS. */
export class Checkpointer {
  private worker: Worker | null = null;
  private closed = false;
  /** Checkpoints that copied frames, and the frames copied (tests read them). */
  checkpoints = 0;
  framesCopied = 0;

  constructor(private readonly options: CheckpointerOptions) {
    this.spawn();
  }

  private spawn(): void {
    const data: CheckpointerData = {
      checkpointer: true,
      databasePath: this.options.databasePath,
      intervalMs: this.options.intervalMs ?? CHECKPOINT_INTERVAL_MS,
    };
    // Its heap holds a handful of objects: small limits keep its memory small.
    const worker = new Worker(path.join(__dirname, 'checkpointer.js'), {
      workerData: data,
      resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 16 },
    });
    worker.on('message', (report: CheckpointReport) => {
      this.checkpoints += 1;
      this.framesCopied += report.frames;
    });
    worker.on('error', (err) => this.replace(worker, `crashed: ${err.message}`));
    worker.on('exit', (code) => this.replace(worker, `exited with code ${code}`));
    // A finished process must not wait for it (tests, `logagg` tools).
    worker.unref();
    this.worker = worker;
  }

  private replace(worker: Worker, reason: string): void {
    if (this.worker !== worker || this.closed) return;
    this.worker = null;
    this.options.onWorkerExit?.(reason);
    setTimeout(() => {
      if (!this.closed) this.spawn();
    }, RESPAWN_DELAY_MS).unref();
  }

  /** Stops the worker and waits until its connection is closed (the main one must close last: it removes the WAL). */
  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = null;
    if (worker === null) return;
    worker.ref();
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    worker.postMessage('close');
    await exited;
  }
}

function runCheckpoints(): void {
  const { databasePath, intervalMs } = workerData as CheckpointerData;
  const db = new Database(databasePath, { fileMustExist: true });
  // As the main connection: the database file is fsynced after each checkpoint.
  db.pragma('synchronous = NORMAL');
  // Frames of the current WAL backfilled so far (SQLite reports the running total; it starts over with the WAL).
  let backfilled = 0;
  const timer = setInterval(() => {
    const [result] = db.pragma('wal_checkpoint(PASSIVE)') as Array<{ busy: number; log: number; checkpointed: number }>;
    if (result === undefined || result.checkpointed < 0) return;
    const copied = result.checkpointed >= backfilled ? result.checkpointed - backfilled : result.checkpointed;
    backfilled = result.checkpointed;
    if (copied > 0) parentPort!.postMessage({ frames: copied } satisfies CheckpointReport);
  }, intervalMs);
  parentPort!.on('message', (message: unknown) => {
    if (message !== 'close') return;
    clearInterval(timer);
    db.close();
    parentPort!.close();
  });
}

if (!isMainThread && parentPort !== null && (workerData as { checkpointer?: boolean } | null)?.checkpointer === true) runCheckpoints();
