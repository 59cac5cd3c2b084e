import pg from 'pg';

/** The machine's PostgreSQL (trust auth); PGHOST/PGPORT/PGUSER override it. */
export const PG_HOST = process.env.PGHOST ?? '127.0.0.1';
export const PG_PORT = Number(process.env.PGPORT ?? 5432);
const PG_USER = process.env.PGUSER ?? 'postgres';

/** A database of its own for one test, dropped by `drop()`. */
export interface TestDatabase {
  name: string;
  /** The URL at the real server. */
  url: string;
  /** The URL of the same database through a proxy listening on `port` (127.0.0.1). */
  urlAt(port: number): string;
  /** A short query on the database (checks in tests). */
  query<R extends pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<R[]>;
  drop(): Promise<void>;
}

async function admin<T>(run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ host: PG_HOST, port: PG_PORT, user: PG_USER, database: 'test' });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

/** Creates a fresh, uniquely named database on the machine's PostgreSQL. */
export async function createTestDatabase(prefix = 'logagg_test'): Promise<TestDatabase> {
  const name = `${prefix}_${process.pid}_${Date.now()}_${Math.floor(Math.random() * 1e6)}`;
  await admin((client) => client.query(`CREATE DATABASE ${name}`));
  const urlAt = (port: number, host = '127.0.0.1'): string => `postgres://${PG_USER}@${host}:${port}/${name}`;
  return {
    name,
    url: urlAt(PG_PORT, PG_HOST),
    urlAt,
    async query<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<R[]> {
      const client = new pg.Client({ host: PG_HOST, port: PG_PORT, user: PG_USER, database: name });
      await client.connect();
      try {
        return (await client.query<R>(sql, params)).rows;
      } finally {
        await client.end();
      }
    },
    drop: () => admin((client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined),
  };
}
