import pg from 'pg';
import type { Logger } from 'pino';
import type { IndexRow } from '../index/store';
import type { PgIndex } from './pg-index';
import { EVENTS_CHANNEL } from './pg-schema';

/** Rows fetched per round trip when the feed catches up. */
const FEED_CHUNK_ROWS = 500;

/** The feed also looks every this often (and reconnects its listener): a lost notification costs at most this delay. */
export const FEED_POLL_MS = 1000;

/**
 * Announces every row stored by any instance, in global seq order and without gaps, to the
 * live tail: a LISTEN connection wakes it on each committed decision (NOTIFY is sent at
 * commit), and a timer polls as a safety net, so a lost connection delays rows by at most
 * FEED_POLL_MS after the database is back. Decisions commit in seq order (see
 * DECIDE_LOCK_KEY), so reading `seq > last seen` never skips a row. It does not keep rows.
 */
export class TailFeed {
  private client: pg.Client | null = null;
  private connecting = false;
  private fetching = false;
  private again = false;
  private closed = false;
  private readonly timer: NodeJS.Timeout;
  private readonly listeners = new Set<(rows: IndexRow[]) => void>();
  /** The last error of the listening connection; null while it listens. */
  error: string | null = 'not connected yet';

  constructor(
    private readonly index: PgIndex,
    private readonly options: { url: string; timeoutMs: number; logger: Logger },
    private lastSeq: number,
  ) {
    this.timer = setInterval(() => {
      if (this.client === null) void this.connect();
      this.kick();
    }, FEED_POLL_MS);
    this.timer.unref();
    void this.connect();
  }

  /** Calls `listener` with each batch of new rows, from now on; returns the unsubscribe function. */
  subscribe(listener: (rows: IndexRow[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Stops listening and polling. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => undefined);
  }

  /** Read through methods: they change while a query is awaited. */
  private isClosed(): boolean {
    return this.closed;
  }

  private listenerCount(): number {
    return this.listeners.size;
  }

  private async connect(): Promise<void> {
    if (this.connecting || this.closed) return;
    this.connecting = true;
    const client = new pg.Client({ connectionString: this.options.url, connectionTimeoutMillis: this.options.timeoutMs });
    client.on('notification', () => this.kick());
    client.on('error', (err) => {
      this.error = err.message;
      if (this.client === client) this.client = null;
      void client.end().catch(() => undefined);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${EVENTS_CHANNEL}`);
      if (this.isClosed()) {
        await client.end();
        return;
      }
      this.client = client;
      this.error = null;
      // Whatever was committed while not listening is fetched now.
      this.kick();
    } catch (err) {
      this.error = (err as Error).message;
      void client.end().catch(() => undefined);
    } finally {
      this.connecting = false;
    }
  }

  private kick(): void {
    if (this.closed) return;
    if (this.fetching) {
      this.again = true;
      return;
    }
    this.fetching = true;
    void this.fetch().finally(() => {
      this.fetching = false;
      if (this.again) {
        this.again = false;
        this.kick();
      }
    });
  }

  private async fetch(): Promise<void> {
    try {
      for (;;) {
        if (this.listeners.size === 0) {
          // Nobody follows: skip ahead, unless a subscriber arrived while asking (its catch-up
          // read may be older than the answer, and rows between the two must still be announced).
          const { lastSeq } = await this.index.counters();
          if (this.listenerCount() === 0) this.lastSeq = Math.max(this.lastSeq, lastSeq);
          return;
        }
        const rows = await this.index.rowsAfter(this.lastSeq, FEED_CHUNK_ROWS);
        if (rows.length === 0) return;
        this.lastSeq = rows[rows.length - 1]!.seq;
        for (const listener of this.listeners) {
          try {
            listener(rows);
          } catch (err) {
            this.options.logger.error({ err }, 'live tail: listener failed');
          }
        }
        if (rows.length < FEED_CHUNK_ROWS) return;
      }
    } catch (err) {
      // The database is away: the timer tries again.
      this.options.logger.debug({ err }, 'live tail: cannot read new rows');
    }
  }
}
