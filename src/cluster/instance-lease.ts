import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { Pool } from 'pg';
import { LEASE_LOST_MESSAGE } from './pg-schema';

/** How often the holder renews its lease. */
export const LEASE_HEARTBEAT_MS = 1000;

/**
 * A lease not renewed for this long (by the database's clock) may be taken over by another
 * process. A start that finds a fresh lease held elsewhere watches it this long: renewed
 * meanwhile means a live holder (refused), not renewed means a dead one (taken over).
 */
export const LEASE_TTL_MS = 5000;

/** Another live process holds this instance id: a copied data dir, or a second copy running. */
export class InstanceLeaseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InstanceLeaseError';
  }
}

/** The database's clock in epoch ms: one clock for every host, whatever their skew. */
const NOW_MS = `(extract(epoch from clock_timestamp()) * 1000)::bigint`;

interface Holder {
  token: string;
  host: string;
  data_dir: string;
  pid: number;
  heartbeat_ms: string;
  now_ms: string;
}

/**
 * This process's claim on its instance id in the shared database (table logagg_leases): a
 * random token per process, renewed every LEASE_HEARTBEAT_MS. Decisions go through
 * logagg_decide_leased, which refuses a token that is not the row's, so two processes with
 * one instance id (a copied data dir) never both decide: the second is refused at start, or,
 * if the first stalled past LEASE_TTL_MS, takes over and the first fails on its next decision
 * or renewal. It does not stop a stalled holder from serving reads until then.
 */
export class InstanceLease {
  readonly token = randomUUID();
  private timer: NodeJS.Timeout | null = null;
  private lostError: InstanceLeaseError | null = null;

  constructor(
    private readonly pool: Pool,
    private readonly instanceId: string,
    private readonly dataDir: string,
  ) {}

  /** Set once another process holds the lease (a renewal found another token). */
  get lost(): InstanceLeaseError | null {
    return this.lostError;
  }

  /**
   * Takes the lease, or throws InstanceLeaseError when a live process holds it. A holder on
   * this host with this data dir is dead (this process holds the data-dir lock), so it is
   * taken over at once; any other holder is watched for up to LEASE_TTL_MS. Database errors
   * are thrown as they are (the caller retries while the database is away).
   */
  async acquire(): Promise<void> {
    const host = os.hostname();
    let watched: Holder | null = null;
    for (;;) {
      const holder = await this.holder();
      if (holder === null) {
        const inserted = await this.pool.query(
          `INSERT INTO logagg_leases (instance_id, token, host, data_dir, pid, heartbeat_ms)
           VALUES ($1, $2, $3, $4, $5, ${NOW_MS}) ON CONFLICT (instance_id) DO NOTHING`,
          [this.instanceId, this.token, host, this.dataDir, process.pid],
        );
        if (inserted.rowCount === 1) return;
        continue;
      }
      const expired = Number(holder.now_ms) - Number(holder.heartbeat_ms) > LEASE_TTL_MS;
      const deadHere = holder.host === host && holder.data_dir === this.dataDir;
      if (watched !== null && holder.heartbeat_ms !== watched.heartbeat_ms && holder.token === watched.token && !deadHere) {
        throw new InstanceLeaseError(
          `instance id ${this.instanceId} is in use by pid ${holder.pid} on ${holder.host} (data dir ${holder.data_dir}), ` +
            `which renewed its lease while this process waited: two data dirs share DATA_DIR/instance-id (a copied data dir?). ` +
            `Give this data dir its own identity (remove its instance-id file only if its log was never used by a running instance) or stop the other process`,
        );
      }
      if (expired || deadHere) {
        // Compare-and-swap on the old token: of two processes taking over at once, one wins.
        const taken = await this.pool.query(
          `UPDATE logagg_leases SET token = $3, host = $4, data_dir = $5, pid = $6, heartbeat_ms = ${NOW_MS}
           WHERE instance_id = $1 AND token = $2`,
          [this.instanceId, holder.token, this.token, host, this.dataDir, process.pid],
        );
        if (taken.rowCount === 1) return;
        continue;
      }
      watched ??= holder;
      await sleep(LEASE_HEARTBEAT_MS / 2);
    }
  }

  /** Renews the lease every LEASE_HEARTBEAT_MS; `onLost` is called once if another process took it. */
  startRenewing(onLost: (err: InstanceLeaseError) => void): void {
    const renew = async (): Promise<void> => {
      try {
        const renewed = await this.pool.query(`UPDATE logagg_leases SET heartbeat_ms = ${NOW_MS} WHERE instance_id = $1 AND token = $2`, [
          this.instanceId,
          this.token,
        ]);
        if (renewed.rowCount === 0) {
          this.lostError = new InstanceLeaseError(
            `instance id ${this.instanceId} was taken over by another process (this one did not renew its lease within ${LEASE_TTL_MS} ms, ` +
              `and another data dir with the same instance-id started): stopping`,
          );
          this.stop();
          onLost(this.lostError);
        }
      } catch {
        // The database is away: decisions fail meanwhile, and the next renewal tries again.
      }
    };
    this.timer = setInterval(() => void renew(), LEASE_HEARTBEAT_MS);
    this.timer.unref();
  }

  /** Stops renewing and gives the lease up (a clean stop lets the next start take it at once). */
  async release(): Promise<void> {
    this.stop();
    if (this.lostError !== null) return;
    await this.pool
      .query('DELETE FROM logagg_leases WHERE instance_id = $1 AND token = $2', [this.instanceId, this.token])
      .catch(() => undefined);
  }

  private stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private async holder(): Promise<Holder | null> {
    const result = await this.pool.query<Holder>(
      `SELECT token, host, data_dir, pid, heartbeat_ms, ${NOW_MS} AS now_ms FROM logagg_leases WHERE instance_id = $1`,
      [this.instanceId],
    );
    return result.rows[0] ?? null;
  }
}

/** True when a decision failed because this process no longer holds its instance's lease. */
export function isLeaseLost(err: unknown): boolean {
  const message = (err as { message?: unknown } | null)?.message;
  return typeof message === 'string' && message.includes(LEASE_LOST_MESSAGE);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
