import type { Request, RequestHandler, Response } from 'express';
import type { Config } from '../config/config';
import { AppError } from '../errors';
import type { EventPage, IndexRow } from '../index/store';
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
 * writes the rows the consumer announces. The switch to live happens in the same
 * synchronous turn as the last index read that came back short, so no committed row can
 * fall between the two: no gap, and rows at or below the last sent seq are never resent.
 */
class Subscriber {
  private mode: 'catching_up' | 'live' | 'closed' = 'catching_up';
  /** Set when rows were announced during a catch-up read (which may or may not hold them). */
  private announcedWhileReading = false;
  private lastSeq: number;
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

  /**
   * Reads the index after lastSeq, a chunk per turn, until it is exhausted; then goes live.
   * A read may answer later (cluster mode): rows announced meanwhile are not lost, since a
   * short read that had announcements during it reads once more before going live.
   */
  private catchUp(): void {
    if (this.mode === 'closed') return;
    this.mode = 'catching_up';
    this.announcedWhileReading = false;
    const query = { ...this.filter, afterSeq: this.lastSeq, limit: CATCH_UP_ROWS };
    let read: EventPage | Promise<EventPage>;
    try {
      read = this.aggregator.readPage(query);
    } catch {
      // The index is closed (shutdown) or failing: end the stream; the client reconnects.
      this.end();
      return;
    }
    if (!(read instanceof Promise)) {
      this.afterRead(read);
      return;
    }
    read.then(
      (page) => this.afterRead(page),
      () => this.end(),
    );
  }

  private afterRead({ rows, nextCursor }: EventPage): void {
    if (this.mode === 'closed') return;
    for (const row of rows) {
      if (row.seq <= this.lastSeq) continue;
      if (this.overBuffer()) {
        this.res.once('drain', () => this.catchUp());
        return;
      }
      this.send(row.seq, row.body, row.receivedMs);
    }
    // A filtered read that reached its scan bound has examined everything up to its cursor.
    if (rows.length < CATCH_UP_ROWS && nextCursor !== null) this.lastSeq = Math.max(this.lastSeq, nextCursor);
    if (nextCursor !== null || this.overBuffer() || this.announcedWhileReading) {
      if (this.overBuffer()) this.res.once('drain', () => this.catchUp());
      else setImmediate(() => this.catchUp());
      return;
    }
    this.mode = 'live';
  }

  /** Writes newly indexed rows; a client too slow to take them falls back to catching up. */
  private pushLive(rows: IndexRow[]): void {
    if (this.mode === 'catching_up') this.announcedWhileReading = true;
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
