import type { Pool } from 'pg';

/**
 * The cluster's PostgreSQL schema, versioned. Text columns that hold a client's strings
 * (topic, event_id, source) store them JSON-encoded: PostgreSQL's text refuses U+0000 and
 * lone surrogates, which the API accepts, and JSON's escapes keep every string exact and distinct.
 */
export const CLUSTER_SCHEMA_VERSION = 2;

/**
 * The advisory lock key (any constant bigint) that serialises migrations at start-up, and,
 * as a transaction-level lock, every decision: global seqs then become visible in the order
 * they were assigned, so a reader that has seen seq N has seen every seq below it.
 */
export const MIGRATION_LOCK_KEY = 7_347_110_001;
export const DECIDE_LOCK_KEY = 7_347_110_002;

/** The text of the error a decision raises when this process no longer holds its instance's lease. */
export const LEASE_LOST_MESSAGE = 'logagg lease lost';

/** How a decision names the original of a key whose event retention deleted: its body's md5, not the body. */
export const EXPIRED_BODY_PREFIX = 'md5:';

/** The channel on which every decision that stored events is announced (after its commit). */
export const EVENTS_CHANNEL = 'logagg_events';

/** How logagg_decide records each candidate's outcome, before retention (schema version 1). */
const DECIDED = `
        SELECT i.ord,
          coalesce(ins.seq, e.seq),
          CASE
            WHEN ins.seq IS NOT NULL THEN 'accepted'
            WHEN e.instance_id = p_instance AND e.local_seq = i.local_seq THEN 'accepted_before'
            WHEN e.body = i.body THEN 'duplicate'
            ELSE 'conflict'
          END,
          CASE WHEN ins.seq IS NULL THEN e.body END,
          i.topic_json
        FROM input i
        LEFT JOIN inserted ins ON ins.topic_json = i.topic_json AND ins.event_id_json = i.event_id_json
        LEFT JOIN logagg_events e ON ins.seq IS NULL AND e.topic_json = i.topic_json AND e.event_id_json = i.event_id_json;`;

/**
 * The same with the keys of events retention deleted (schema version 2): such a key is a
 * duplicate (same body digest) or a conflict, with the original's seq, and its original
 * body is answered as `md5:<digest>` (the body itself is gone).
 */
const DECIDED_WITH_EXPIRED = `
        SELECT i.ord,
          coalesce(ins.seq, e.seq, k.seq),
          CASE
            WHEN ins.seq IS NOT NULL THEN 'accepted'
            WHEN e.seq IS NULL THEN CASE WHEN k.body_md5 = md5(i.body) THEN 'duplicate' ELSE 'conflict' END
            WHEN e.instance_id = p_instance AND e.local_seq = i.local_seq THEN 'accepted_before'
            WHEN e.body = i.body THEN 'duplicate'
            ELSE 'conflict'
          END,
          CASE WHEN ins.seq IS NOT NULL THEN NULL WHEN e.seq IS NULL THEN '${EXPIRED_BODY_PREFIX}' || k.body_md5 ELSE e.body END,
          i.topic_json
        FROM input i
        LEFT JOIN inserted ins ON ins.topic_json = i.topic_json AND ins.event_id_json = i.event_id_json
        LEFT JOIN logagg_events e ON ins.seq IS NULL AND e.topic_json = i.topic_json AND e.event_id_json = i.event_id_json
        LEFT JOIN logagg_expired_keys k ON ins.seq IS NULL AND e.seq IS NULL
          AND k.topic_json = i.topic_json AND k.event_id_json = i.event_id_json;`;

/** The decision function's SQL; `expiredKeys`: it also knows the keys of events retention deleted. */
function decideFunctionSql(verb: 'CREATE FUNCTION' | 'CREATE OR REPLACE FUNCTION', expiredKeys: boolean): string {
  const expiredFresh = expiredKeys
    ? `
            AND NOT EXISTS (SELECT 1 FROM logagg_expired_keys k WHERE k.topic_json = i.topic_json AND k.event_id_json = i.event_id_json)`
    : '';
  return `
      -- One round trip decides a batch: candidates (distinct keys, in local seq order) are
      -- inserted with the next seqs unless their key exists; an existing row written by this very record
      -- (same instance and local seq: an earlier attempt whose answer was lost) counts as
      -- accepted before. Counters, the instance's confirmed local seq and the notification
      -- commit with the rows.
      ${verb} logagg_decide(
        p_instance text, p_last_local_seq bigint, p_now_ms bigint,
        p_local_seqs bigint[], p_topics text[], p_event_ids text[], p_sources text[],
        p_ts_ms bigint[], p_received_ms bigint[], p_bodies text[],
        p_extra_duplicates bigint, p_extra_conflicts bigint)
      RETURNS TABLE (ord bigint, seq bigint, outcome text, original_body text)
      LANGUAGE plpgsql AS $fn$
      DECLARE
        v_stored bigint;
        v_base bigint;
      BEGIN
        PERFORM pg_advisory_xact_lock(${DECIDE_LOCK_KEY});
        -- Under the lock, seqs are dense and committed in order: 1, 2, 3...
        ${
          expiredKeys
            ? // Retention may delete the newest rows: the last seq handed out is kept apart, never reused.
              'SELECT c.last_seq INTO v_base FROM logagg_counters c WHERE c.id = 1;'
            : 'SELECT coalesce(max(e.seq), 0) INTO v_base FROM logagg_events e;'
        }
        IF to_regclass('pg_temp.logagg_decided') IS NULL THEN
          CREATE TEMP TABLE logagg_decided (
            ord bigint, seq bigint, outcome text, original_body text, topic_json text
          ) ON COMMIT DELETE ROWS;
        END IF;
        WITH input AS (
          SELECT * FROM unnest(p_local_seqs, p_topics, p_event_ids, p_sources, p_ts_ms, p_received_ms, p_bodies)
            WITH ORDINALITY AS t(local_seq, topic_json, event_id_json, source_json, ts_ms, received_ms, body, ord)
        ), fresh AS (
          SELECT i.*, v_base + row_number() OVER (ORDER BY i.ord) AS new_seq FROM input i
          WHERE NOT EXISTS (SELECT 1 FROM logagg_events e WHERE e.topic_json = i.topic_json AND e.event_id_json = i.event_id_json)${expiredFresh}
        ), inserted AS (
          -- No ON CONFLICT: under the lock nothing else inserts, and should a key slip through
          -- the unique constraint fails the whole decision rather than store it twice.
          INSERT INTO logagg_events (seq, topic_json, event_id_json, source_json, ts_ms, received_ms, body, instance_id, local_seq)
          SELECT new_seq, topic_json, event_id_json, source_json, ts_ms, received_ms, body, p_instance, local_seq FROM fresh
          RETURNING logagg_events.seq, logagg_events.topic_json, logagg_events.event_id_json
        )
        INSERT INTO logagg_decided
${expiredKeys ? DECIDED_WITH_EXPIRED : DECIDED}
        UPDATE logagg_counters SET
          unique_total = unique_total + (SELECT count(*) FROM logagg_decided d WHERE d.outcome = 'accepted'),
          duplicates_total = duplicates_total + p_extra_duplicates
            + (SELECT count(*) FROM logagg_decided d WHERE d.outcome IN ('duplicate', 'conflict')),
          conflicts_total = conflicts_total + p_extra_conflicts
            + (SELECT count(*) FROM logagg_decided d WHERE d.outcome = 'conflict')${
              expiredKeys
                ? `,
          last_seq = last_seq + (SELECT count(*) FROM logagg_decided d WHERE d.outcome = 'accepted')`
                : ''
            }
        WHERE id = 1;
        INSERT INTO logagg_topics SELECT DISTINCT d.topic_json FROM logagg_decided d WHERE d.outcome = 'accepted'
          ON CONFLICT DO NOTHING;
        IF p_last_local_seq IS NOT NULL THEN
          INSERT INTO logagg_instances VALUES (p_instance, p_last_local_seq, p_now_ms)
            ON CONFLICT (instance_id) DO UPDATE SET
              confirmed_local_seq = greatest(logagg_instances.confirmed_local_seq, excluded.confirmed_local_seq),
              last_decided_ms = excluded.last_decided_ms;
        END IF;
        SELECT count(*) INTO v_stored FROM logagg_decided d WHERE d.outcome = 'accepted';
        IF v_stored > 0 THEN
          PERFORM pg_notify('${EVENTS_CHANNEL}', '');
        END IF;
        RETURN QUERY SELECT d.ord, d.seq, d.outcome, d.original_body FROM logagg_decided d ORDER BY d.ord;
      END
      $fn$;`;
}

/** Migrations by the version they reach; each runs in one transaction with its version bump. */
const MIGRATIONS: ReadonlyArray<{ version: number; sql: string }> = [
  {
    version: 1,
    sql: `
      CREATE TABLE logagg_events (
        seq bigint PRIMARY KEY,
        topic_json text NOT NULL,
        event_id_json text NOT NULL,
        source_json text NOT NULL,
        ts_ms bigint NOT NULL,
        received_ms bigint NOT NULL,
        body text NOT NULL,
        instance_id text NOT NULL,
        local_seq bigint NOT NULL,
        CONSTRAINT logagg_events_key UNIQUE (topic_json, event_id_json)
      );
      CREATE INDEX logagg_events_by_topic ON logagg_events (topic_json, seq);
      CREATE TABLE logagg_topics (topic_json text PRIMARY KEY);
      CREATE TABLE logagg_counters (
        id integer PRIMARY KEY CHECK (id = 1),
        unique_total bigint NOT NULL,
        duplicates_total bigint NOT NULL,
        conflicts_total bigint NOT NULL
      );
      INSERT INTO logagg_counters VALUES (1, 0, 0, 0);
      CREATE TABLE logagg_instances (
        instance_id text PRIMARY KEY,
        confirmed_local_seq bigint NOT NULL,
        last_decided_ms bigint NOT NULL
      );
      ${decideFunctionSql('CREATE FUNCTION', false)}
    `,
  },
  {
    // Version 2: an instance's rows by local seq (verify), and one lease per instance id, so
    // that two processes never decide for one instance id (a copied data dir; see instance-lease.ts).
    version: 2,
    sql: `
      CREATE INDEX logagg_events_by_instance ON logagg_events (instance_id, local_seq);
      -- Retention: an instance deletes its own old rows; their keys stay here (with the body's
      -- digest and the original seq) until DEDUP_HORIZON_MS past their deletion.
      ALTER TABLE logagg_counters
        ADD COLUMN last_seq bigint NOT NULL DEFAULT 0,
        ADD COLUMN expired_total bigint NOT NULL DEFAULT 0,
        ADD COLUMN expired_keys bigint NOT NULL DEFAULT 0;
      UPDATE logagg_counters SET last_seq = (SELECT coalesce(max(seq), 0) FROM logagg_events);
      ALTER TABLE logagg_instances
        ADD COLUMN first_local_seq bigint NOT NULL DEFAULT 1,
        ADD COLUMN expired_events bigint NOT NULL DEFAULT 0,
        ADD COLUMN last_deletion_ms bigint;
      CREATE TABLE logagg_expired_keys (
        topic_json text NOT NULL,
        event_id_json text NOT NULL,
        seq bigint NOT NULL,
        body_md5 text NOT NULL,
        expired_ms bigint NOT NULL,
        PRIMARY KEY (topic_json, event_id_json)
      );
      CREATE INDEX logagg_expired_keys_by_time ON logagg_expired_keys (expired_ms);
      ${decideFunctionSql('CREATE OR REPLACE FUNCTION', true)}
      -- Retention's step a for one instance: its rows with local seq <= p_last_local_seq leave
      -- (their keys kept), with the counters, in one transaction under the decision lock (a
      -- decision sees a key either stored or expired, never neither). Idempotent: a repeat
      -- after a crash deletes nothing more.
      CREATE FUNCTION logagg_expire(p_token text, p_instance text, p_last_local_seq bigint, p_now_ms bigint)
      RETURNS bigint LANGUAGE plpgsql AS $fn$
      DECLARE
        v_gone bigint;
        v_kept bigint;
      BEGIN
        PERFORM 1 FROM logagg_leases l WHERE l.instance_id = p_instance AND l.token = p_token FOR SHARE;
        IF NOT FOUND THEN
          RAISE EXCEPTION '${LEASE_LOST_MESSAGE}: instance % is held by another process', p_instance;
        END IF;
        PERFORM pg_advisory_xact_lock(${DECIDE_LOCK_KEY});
        WITH gone AS (
          DELETE FROM logagg_events WHERE instance_id = p_instance AND local_seq <= p_last_local_seq
          RETURNING topic_json, event_id_json, seq, body
        ), kept AS (
          INSERT INTO logagg_expired_keys SELECT topic_json, event_id_json, seq, md5(body), p_now_ms FROM gone
          ON CONFLICT DO NOTHING RETURNING 1
        )
        SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM kept) INTO v_gone, v_kept;
        UPDATE logagg_counters SET expired_total = expired_total + v_gone, expired_keys = expired_keys + v_kept WHERE id = 1;
        UPDATE logagg_instances SET
          first_local_seq = greatest(first_local_seq, p_last_local_seq + 1),
          expired_events = expired_events + v_gone,
          last_deletion_ms = CASE WHEN v_gone > 0 THEN p_now_ms ELSE last_deletion_ms END
        WHERE instance_id = p_instance;
        RETURN v_gone;
      END
      $fn$;
      -- The horizon: keys deleted before p_before_ms leave, at most p_limit per call.
      CREATE FUNCTION logagg_sweep_keys(p_before_ms bigint, p_limit integer)
      RETURNS bigint LANGUAGE plpgsql AS $fn$
      DECLARE
        v_swept bigint;
      BEGIN
        PERFORM pg_advisory_xact_lock(${DECIDE_LOCK_KEY});
        WITH due AS (
          SELECT topic_json, event_id_json FROM logagg_expired_keys WHERE expired_ms < p_before_ms ORDER BY expired_ms LIMIT p_limit
        ), swept AS (
          DELETE FROM logagg_expired_keys k USING due
          WHERE k.topic_json = due.topic_json AND k.event_id_json = due.event_id_json RETURNING 1
        )
        SELECT count(*) INTO v_swept FROM swept;
        UPDATE logagg_counters SET expired_keys = expired_keys - v_swept WHERE id = 1;
        RETURN v_swept;
      END
      $fn$;
      CREATE TABLE logagg_leases (
        instance_id text PRIMARY KEY,
        token text NOT NULL,
        host text NOT NULL,
        data_dir text NOT NULL,
        pid integer NOT NULL,
        heartbeat_ms bigint NOT NULL
      );
      -- logagg_decide behind the lease: the row is locked FOR SHARE until the decision commits,
      -- so a process taking the lease over waits for it, and every later decision of the old
      -- holder fails with ${LEASE_LOST_MESSAGE}.
      CREATE FUNCTION logagg_decide_leased(
        p_token text, p_instance text, p_last_local_seq bigint, p_now_ms bigint,
        p_local_seqs bigint[], p_topics text[], p_event_ids text[], p_sources text[],
        p_ts_ms bigint[], p_received_ms bigint[], p_bodies text[],
        p_extra_duplicates bigint, p_extra_conflicts bigint)
      RETURNS TABLE (ord bigint, seq bigint, outcome text, original_body text)
      LANGUAGE plpgsql AS $fn$
      BEGIN
        PERFORM 1 FROM logagg_leases l WHERE l.instance_id = p_instance AND l.token = p_token FOR SHARE;
        IF NOT FOUND THEN
          RAISE EXCEPTION '${LEASE_LOST_MESSAGE}: instance % is held by another process', p_instance;
        END IF;
        RETURN QUERY SELECT * FROM logagg_decide(p_instance, p_last_local_seq, p_now_ms, p_local_seqs, p_topics,
          p_event_ids, p_sources, p_ts_ms, p_received_ms, p_bodies, p_extra_duplicates, p_extra_conflicts);
      END
      $fn$;
    `,
  },
];

/**
 * Brings the database to CLUSTER_SCHEMA_VERSION under a session advisory lock, so that
 * instances starting together migrate once; refuses a database of a newer version.
 * Returns the version found before. `upTo` stops at an older version (the upgrade tests
 * build a database as an earlier release left it).
 */
export async function migrateSchema(pool: Pool, upTo = CLUSTER_SCHEMA_VERSION): Promise<number> {
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      await client.query('CREATE TABLE IF NOT EXISTS logagg_schema (version integer NOT NULL)');
      const found = await client.query<{ version: number }>('SELECT version FROM logagg_schema');
      const before = found.rows[0]?.version ?? 0;
      if (before > CLUSTER_SCHEMA_VERSION) {
        throw new Error(`schema: the database has cluster schema version ${before}, newer than this build's ${CLUSTER_SCHEMA_VERSION}`);
      }
      for (const migration of MIGRATIONS) {
        if (migration.version <= before || migration.version > upTo) continue;
        await client.query('BEGIN');
        try {
          await client.query(migration.sql);
          await client.query('DELETE FROM logagg_schema');
          await client.query('INSERT INTO logagg_schema VALUES ($1)', [migration.version]);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK');
          throw new Error(`schema: migrate to version ${migration.version}: ${(err as Error).message}`, { cause: err });
        }
      }
      return before;
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
    }
  } finally {
    client.release();
  }
}
