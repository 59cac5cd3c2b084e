import type { Request, RequestHandler, Response } from 'express';
import type { Config } from '../config/config';
import { AppError } from '../errors';
import type { IndexRow } from '../index/store';
import type { SnapshotPage } from '../index/read-pool';
import type { Pipeline } from '../ingest/pipeline';
import { compileRowMatcher, type EventFilter, type FilterableRow } from '../query/event-filter';
import { parseEventsQuery } from '../query/parse-query';
import { eventJsonWithSeq } from '../wal/record';

/** The settings of the live tail. */
export type StreamLimits = Pick<Config, 'streamSubscribersMax' | 'streamHeartbeatMs' | 'streamBufferBytesMax' | 'retryAfterSeconds'>;

/** Rows read from the index per event-loop turn while a subscriber catches up. */
const CATCH_UP_ROWS = 500;

/** What an SSE client is told to wait before reconnecting (the `retry:` field). */
const RECONNECT_DELAY_MS = 1000;

/**
 * One open stream. It is in one of two modes: `catching_up` reads the index after the last
 * seq it sent (backfill, and again whenever the client is slower than the log), `live`
 * writes the rows the consumer announces. The reads run on a read worker, so rows are
 * announced while one is in flight: they are kept (up to streamBufferBytesMax) and, when the
 * read comes back short, those past its snapshot are sent before going live. Every row
 * announced before the read was sent is in its snapshot, so none falls between the two: no
 * gap, and rows at or below the last seq sent or covered are never resent.
 */
class Subscriber {
  private mode: 'catching_up' | 'live' | 'closed' = 'catching_up';
  /** Set when rows were announced during a catch-up read (which may or may not hold them). */
  private lastSeq: number;
  /** True while a catch-up read is on its way (at most one per stream). */
  private reading = false;
  /** Matching rows announced during the read in flight; null when none is, or they passed the buffer bound. */
  private announced: IndexRow[] | null = null;
  private announcedBytes = 0;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly unsubscribe: () => void;
  private readonly matches: (row: FilterableRow) => boolean;

  constructor(
    private readonly aggregator: Pipeline,
    private readonly res: Response,
    private readonly filter: EventFilter,
    afterSeq: number,
    private readonly limits: StreamLimits,
    private readonly onClose: (subscriber: Subscriber) => void,
  ) {
    this.lastSeq = afterSeq;
    this.matches = compileRowMatcher(filter);
    this.unsubscribe = aggregator.onIndexed((rows) => this.pushLive(rows));
    // Comment lines keep idle proxies and load balancers from closing the stream.
    this.heartbeat = setInterval(() => this.res.write(': heartbeat\n\n'), limits.streamHeartbeatMs);
    this.heartbeat.unref();
    res.on('close', () => this.close());
    this.catchUp();
  }

  /**
   * Ends the stream (shutdown, or an index that cannot be read); the client reconnects with
   * Last-Event-ID. At shutdown the server closes the connection once the end is written
   * (see stop() in src/server.ts).
   */
  end(): void {
    if (this.mode === 'closed') return;
    this.close();
    this.res.end();
  }

  private close(): void {
    if (this.mode === 'closed') return;
    this.mode = 'closed';
    clearInterval(this.heartbeat);
    this.unsubscribe();
    this.onClose(this);
  }

  /** Over the bound and waiting for 'drain' (checked together, so that 'drain' is sure to come). */
  private overBuffer(): boolean {
    return this.res.writableNeedDrain && this.res.writableLength > this.limits.streamBufferBytesMax;
  }

  private send(seq: number, body: string, receivedMs: number | null): void {
    this.res.write(`id: ${seq}\ndata: ${eventJsonWithSeq(seq, body, receivedMs)}\n\n`);
    this.lastSeq = seq;
  }

  /** Reads the index after lastSeq, a chunk per read, until it is exhausted; then goes live. */
  private catchUp(): void {
    if (this.mode === 'closed' || this.reading) return;
    this.mode = 'catching_up';
    this.reading = true;
    this.announced = [];
    this.announcedBytes = 0;
    const query = { ...this.filter, afterSeq: this.lastSeq, limit: CATCH_UP_ROWS };
    this.aggregator.readPage(query).then(
      (page) => {
        this.reading = false;
        this.afterRead(page);
      },
      (err: unknown) => {
        this.reading = false;
        this.announced = null;
        // A busy or replaced read worker: read again shortly. Else the index is closed
        // (shutdown) or failing: end the stream; the client reconnects with Last-Event-ID.
        if (err instanceof AppError && (err.code === 'reads_busy' || err.code === 'read_failed')) {
          setTimeout(() => this.catchUp(), RECONNECT_DELAY_MS).unref();
        } else this.end();
      },
    );
  }

  /** Sends a catch-up page; reads on, waits for drain, or goes live when the index is exhausted. */
  private afterRead({ rows, nextCursor, snapshotSeq }: SnapshotPage): void {
    if (this.mode === 'closed') return;
    const announced = this.announced;
    this.announced = null;
    for (const row of rows) {
      if (row.seq <= this.lastSeq) continue;
      if (this.overBuffer()) {
        this.res.once('drain', () => this.catchUp());
        return;
      }
      this.send(row.seq, row.body, row.receivedMs);
    }
    // A filtered read that reached its scan bound has examined everything up to its cursor.
    if (rows.length < CATCH_UP_ROWS && nextCursor !== null) this.lastSeq = nextCursor;
    if (nextCursor !== null || this.overBuffer() || announced === null) {
      // More to read, a client to wait for, or too much announced meanwhile to hold: read again.
      if (this.overBuffer()) this.res.once('drain', () => this.catchUp());
      else setImmediate(() => this.catchUp());
      return;
    }
    // The read examined every row up to its snapshot; what was announced past it goes out now.
    this.lastSeq = Math.max(this.lastSeq, snapshotSeq);
    this.mode = 'live';
    this.pushLive(announced);
  }

  /** Writes newly indexed rows; a client too slow to take them falls back to catching up. */
  private pushLive(rows: IndexRow[]): void {
    if (this.mode === 'catching_up' && this.announced !== null) {
      this.keepAnnounced(rows);
      return;
    }
    if (this.mode !== 'live') return;
    for (const row of rows) {
      if (row.seq <= this.lastSeq || !this.matches(row)) continue;
      if (this.overBuffer()) {
        // The index holds everything not sent: stop buffering and read it back once drained.
        this.mode = 'catching_up';
        this.res.once('drain', () => this.catchUp());
        return;
      }
      this.send(row.seq, row.body, row.receivedMs ?? null);
    }
  }

  /** Keeps matching rows announced during a catch-up read, up to the stream's buffer bound. */
  private keepAnnounced(rows: IndexRow[]): void {
    const kept = this.announced!;
    for (const row of rows) {
      if (row.seq <= this.lastSeq || !this.matches(row)) continue;
      kept.push(row);
      this.announcedBytes += row.body.length;
      if (this.announcedBytes > this.limits.streamBufferBytesMax) {
        // Too many to hold: drop them; the read after this one finds them in the index.
        this.announced = null;
        return;
      }
    }
  }
}

/**
 * GET /events/stream?topic= as Server-Sent Events: each event's SSE id is its seq; a
 * client reconnecting with `Last-Event-ID` (or `?after=`) gets every later event once.
 * It bounds the number of open streams and ends them all on shutdown.
 */
export class StreamHub {
  private readonly subscribers = new Set<Subscriber>();
  private closing = false;

  constructor(
    private readonly aggregator: Pipeline,
    private readonly limits: StreamLimits,
  ) {}

  /** Open streams right now. */
  get size(): number {
    return this.subscribers.size;
  }

  /** Ends every open stream and refuses new ones (graceful shutdown must not wait on them). */
  closeAll(): void {
    this.closing = true;
    for (const subscriber of [...this.subscribers]) subscriber.end();
  }

  /** The handler of GET /events/stream: opens one stream per request. */
  handler(): RequestHandler {
    return (req, res) => this.open(req, res);
  }

  private open(req: Request, res: Response): void {
    const { retryAfterSeconds } = this.limits;
    const { filter, afterSeq } = parseStreamQuery(req);
    if (this.closing || this.aggregator.state === 'stopping' || this.aggregator.state === 'stopped') {
      throw new AppError('shutting_down', 'the service is shutting down', { retryAfterSeconds });
    }
    if (this.aggregator.state !== 'ready') {
      // During recovery rows reach the index without being announced: a stream would miss them.
      throw new AppError('recovering', 'recovery is replaying the log; the live tail opens when it is done', { retryAfterSeconds });
    }
    if (this.subscribers.size >= this.limits.streamSubscribersMax) {
      throw new AppError(
        'subscribers_full',
        `${this.subscribers.size} live-tail streams are open, STREAM_SUBSCRIBERS_MAX=${this.limits.streamSubscribersMax}`,
        {
          retryAfterSeconds,
        },
      );
    }
    res.status(200);
    res.set({ 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache, no-transform', 'X-Accel-Buffering': 'no' });
    // HEAD (express routes it here) gets the headers only, never a subscription.
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    res.flushHeaders();
    res.write(`retry: ${RECONNECT_DELAY_MS}\n: stream after seq ${afterSeq}\n\n`);
    // Resuming before the oldest kept event: say that retention deleted the events in between
    // (an `expired` event, no id, so the client's Last-Event-ID is kept), then go on from the first kept one.
    const firstSeq = this.aggregator.firstSeq;
    if (afterSeq + 1 < firstSeq && afterSeq > 0) {
      res.write(
        `: events after seq ${afterSeq} up to seq ${firstSeq - 1} were deleted by retention\n` +
          `event: expired\ndata: ${JSON.stringify({ after: afterSeq, first_seq: firstSeq })}\n\n`,
      );
    }
    const subscriber = new Subscriber(this.aggregator, res, filter, afterSeq, this.limits, (closed) => this.subscribers.delete(closed));
    if (!res.writableEnded && !res.destroyed) this.subscribers.add(subscriber);
  }
}

/**
 * Reads the filter GET /events takes (topic, source, since, until, q, payload.*; relative
 * times resolved once, at connect) and the resume point (Last-Event-ID header, else
 * `after`); throws 400 invalid_query. limit and order mean nothing here and are ignored.
 */
function parseStreamQuery(req: Request): { filter: EventFilter; afterSeq: number } {
  const { afterSeq: _cursor, limit: _limit, order: _order, ...filter } = parseEventsQuery(req.query);
  const header = req.get('last-event-id');
  const after = req.query.after;
  const raw = header !== undefined && header.trim() !== '' ? header.trim() : after;
  let afterSeq = 0;
  if (raw !== undefined) {
    if (typeof raw !== 'string' || !/^\d{1,15}$/.test(raw)) {
      throw new AppError('invalid_query', 'Last-Event-ID / after must be a seq (a whole number)', {
        details: [{ index: -1, path: header !== undefined ? 'Last-Event-ID' : 'after', message: 'must be a whole number' }],
      });
    }
    afterSeq = Number(raw);
  }
  return { filter, afterSeq };
}
