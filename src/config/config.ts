import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Every setting of the service, validated once at startup and frozen. Only this module
 * (and the CLI) reads `process.env`; everything else receives a Config.
 */
export interface Config {
  port: number;
  host: string;
  dataDir: string;
  walDir: string;
  databasePath: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /**
   * LOG_FORMAT: `json` (one JSON object a line), `pretty` (pino-pretty, for people), or
   * `auto` (default: pretty when stdout is a terminal, else json). Optional so that
   * hand-built configs (tests) need not name it; absent means auto.
   */
  logFormat?: 'auto' | 'json' | 'pretty';
  /** Events accepted but not yet indexed; above it /publish answers 503 backlog_full and writes nothing. */
  queueMaxSize: number;
  /** Request body bytes after gzip inflation; above it 413 body_too_large. */
  bodyBytesMax: number;
  /** Events in one request; above it 413 batch_too_large. */
  batchEventsMax: number;
  /** Bytes of one event's payload as JSON; above it 400 validation_failed. */
  payloadBytesMax: number;
  /** Nesting depth of a payload; above it 400 validation_failed. */
  payloadDepthMax: number;
  /** A log segment is closed and a new one started once it would pass this size. */
  segmentBytesMax: number;
  /** Events the consumer writes to the index in one transaction. */
  indexBatchMax: number;
  /**
   * Bytes of segments the log keeps (RETENTION_BYTES); the oldest closed segments are deleted
   * past it. 0 = keep everything (default). Optional so that hand-built configs (tests) need not name it.
   */
  retentionBytes?: number;
  /** A closed segment whose newest event was received longer ago than this is deleted (RETENTION_MS); 0 = off (default). */
  retentionMs?: number;
  /**
   * Read worker threads (READ_WORKERS, default 1): GET /events, its histogram and the live
   * tail's catch-up read the index there, never on the thread that acknowledges publishes;
   * 0 reads inline (the comparison of the reads benchmark). Optional so that hand-built configs (tests) need not name it; absent means 1.
   */
  readWorkers?: number;
  /** Reads waiting for a read worker; one more answers 503 reads_busy. Absent means 64. */
  readQueueMax?: number;
  /** Bound on one read on a worker; past it 503 read_failed and the worker is replaced. Absent means 10000. */
  readTimeoutMs?: number;
  /**
   * Bytes of the in-memory dedup key filter (fixed: memory does not grow with history);
   * past about bytes*8/10 keys more lookups go to the keys table. Optional (tests); absent: the default.
   */
  dedupFilterBytes?: number;
  /** How long a key stays known after retention deleted its event; 0 = forever. Optional (tests); absent: 0. */
  dedupHorizonMs?: number;
  /** Keys of the dedup key store's newest generation, the B-tree that inserts touch. Optional (tests); absent: 262144. */
  dedupGenerationKeys?: number;
  /** Whole-request bound (Node's server.requestTimeout); the socket is closed with 408. */
  requestTimeoutMs: number;
  /** Bound on receiving request headers (Node's server.headersTimeout). */
  headersTimeoutMs: number;
  /** Idle keep-alive connections are closed after this. */
  keepAliveTimeoutMs: number;
  /** SIGTERM drain bound; past it the process exits 1 and recovery finishes the work. */
  shutdownTimeoutMs: number;
  /** Seconds announced in Retry-After on every 503. */
  retryAfterSeconds: number;
  /**
   * SHA-256 digests (hex) of the API keys of each scope; the keys themselves are not kept.
   * A scope with no keys is open (the seed's behaviour); see src/http/auth.ts.
   */
  apiKeyDigests: Readonly<Record<ApiScope, readonly string[]>>;
  /** Bytes of event JSON in one GET /events page; past it the page ends early and next_cursor goes on from there. */
  pageBytesMax: number;
  /** Requests per second per API key (or client address without keys); past it 429 rate_limited. 0 = off (default). */
  rateLimitPerSecond: number;
  /**
   * DATABASE_URL (postgres://...): cluster mode, the shared index in PostgreSQL (src/cluster/);
   * null or absent: the embedded SQLite index. Optional so that hand-built configs need not name it.
   */
  databaseUrl?: string | null;
  /** Connections of this instance's PostgreSQL pool (cluster mode). */
  databasePoolMax?: number;
  /** Bound on connecting to PostgreSQL and on each statement; past it 503 database_unavailable. */
  databaseTimeoutMs?: number;
  /** Requests a client may send at once before the rate applies (the bucket's size); defaults to the rate. */
  rateLimitBurst: number;
  /** Clients (keys or addresses) the rate limiter tracks; past it the least recently seen is forgotten. */
  rateLimitClientsMax: number;
  /** TLS certificate chain (PEM) and its key: with both set the service speaks HTTPS only; null for plain HTTP. */
  tlsCertFile: string | null;
  tlsKeyFile: string | null;
  /** Open GET /events/stream connections; past it 503 subscribers_full. */
  streamSubscribersMax: number;
  /** A comment line is sent on an idle live-tail stream this often, so proxies keep it open. */
  streamHeartbeatMs: number;
  /** Unsent bytes one live-tail client may hold; past it the stream stops pushing and catches up from the index once drained. */
  streamBufferBytesMax: number;
  /** Topic of OTLP log records whose resource has no `service.name`. */
  otlpTopicDefault: string;
  /** Loki stream labels tried in order for an entry's topic. */
  lokiTopicLabels: readonly string[];
  /** Topic of Loki entries whose stream has none of lokiTopicLabels. */
  lokiTopicDefault: string;
}

/** What an API key may do: `publish` (POST /publish) or `read` (GET /events, /stats, /metrics). */
export type ApiScope = 'publish' | 'read';

/** The scopes, in the order they are reported. */
export const API_SCOPES: readonly ApiScope[] = ['publish', 'read'];

/** Bounds on one API key: long enough not to be guessed, printable ASCII without spaces or commas. */
export const API_KEY_LIMITS = { lengthMin: 16, lengthMax: 512, pattern: /^[\x21-\x2b\x2d-\x7e]+$/ } as const;

/** Limits that are part of the API contract rather than settings. */
export const FIXED_LIMITS = {
  /** topic, event_id and source: 1..255 characters (seed schema). */
  fieldLengthMax: 255,
  /** timestamp strings longer than this cannot be RFC 3339 and are rejected early. */
  timestampLengthMax: 64,
  /** GET /events limit: default page and the largest page. */
  queryLimitDefault: 100,
  queryLimitMax: 1000,
  /** Words and quoted phrases in `q`, and its length; past either 400 invalid_query. */
  queryWordsMax: 16,
  queryTextLengthMax: 1024,
  /** `payload.<path>=` filters in one query, and the dots in one path; past either 400 invalid_query. */
  queryFieldFiltersMax: 16,
  queryFieldDepthMax: 16,
  /** `topic` given several times: at most this many; past it 400 invalid_query. */
  queryTopicsMax: 32,
  /**
   * Rows one GET /events request may examine when a filter is not served by an index (q,
   * payload.*, source, since, until): past it the page ends short, with a next_cursor to go
   * on from, so a rare match cannot hold the event loop (and the publishes behind it).
   */
  queryScanRowsMax: 20_000,
  /** GET /events/histogram: buckets by default and at most (more: 400 invalid_query). */
  histogramBucketsDefault: 60,
  histogramBucketsMax: 1000,
  /** Rows the histogram counts per event-loop turn; it yields in between, so publishes go on. */
  histogramChunkRows: 20_000,
  /**
   * Seqs whose index rows retention deletes in one transaction; a bigger segment is dropped
   * in several, with a turn of the event loop between them, so publishes are not held up.
   */
  retentionDropSeqsMax: 5000,
  /** How often retention checks its bounds without a poke (RETENTION_MS needs a clock). */
  retentionCheckMs: 1000,
} as const;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const LOG_FORMATS: readonly string[] = ['auto', 'json', 'pretty'];

/** A setting with a bad value; main prints its message as the one line and exits 2. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** One environment setting as operators see it; docs/operations.md is generated from SETTINGS. */
export interface SettingSpec {
  readonly name: string;
  /** The value that stands for "unset", as it would be written in the environment ('' = none). */
  readonly default: string;
  /** Whole-number settings only: the accepted range; a value outside it stops startup (exit 2). */
  readonly range?: { readonly min: number; readonly max: number };
  readonly meaning: string;
}

/**
 * Every variable loadConfig reads, with its default, range and meaning. It documents
 * loadConfig and does not drive it: test/config/settings.test.ts checks each entry against
 * loadConfig's behaviour (defaults, both ends of each range, no variable missing).
 */
export const SETTINGS: readonly SettingSpec[] = [
  { name: 'PORT', default: '8080', range: { min: 0, max: 65535 }, meaning: 'HTTP port (0: any free port)' },
  { name: 'HOST', default: '0.0.0.0', meaning: 'listen address' },
  { name: 'DATA_DIR', default: 'data', meaning: 'the log (`DATA_DIR/wal/`), the lock file and, by default, the index' },
  { name: 'DATABASE_PATH', default: '$DATA_DIR/index.db', meaning: 'the SQLite index file' },
  {
    name: 'LOG_LEVEL',
    default: 'info',
    meaning: `${LOG_LEVELS.map((level) => `\`${level}\``).join(', ')} (any case)`,
  },
  {
    name: 'LOG_FORMAT',
    default: 'auto',
    meaning: '`auto` (pino-pretty when stdout is a terminal, else JSON lines), `json` or `pretty` (any case)',
  },
  {
    name: 'QUEUE_MAX_SIZE',
    default: '100000',
    range: { min: 1, max: 10_000_000 },
    meaning: 'backlog bound: events accepted but not yet indexed; past it 503 `backlog_full`',
  },
  {
    name: 'BODY_BYTES_MAX',
    default: String(1024 * 1024),
    range: { min: 1024, max: 64 * 1024 * 1024 },
    meaning: 'request body bytes after gzip/deflate/br inflation; past it 413 `body_too_large`',
  },
  {
    name: 'BATCH_EVENTS_MAX',
    default: '1000',
    range: { min: 1, max: 100_000 },
    meaning: 'events in one request; past it 413 `batch_too_large`',
  },
  {
    name: 'PAYLOAD_BYTES_MAX',
    default: String(64 * 1024),
    range: { min: 2, max: 16 * 1024 * 1024 },
    meaning: 'one payload as JSON; past it 400 `validation_failed`',
  },
  {
    name: 'PAYLOAD_DEPTH_MAX',
    default: '32',
    range: { min: 1, max: 1000 },
    meaning: 'payload nesting depth; past it 400 `validation_failed`',
  },
  {
    name: 'DATABASE_URL',
    default: '',
    meaning:
      '`postgres://user@host:port/db`: cluster mode, several instances share this PostgreSQL (docs/scaling.md); unset: embedded SQLite',
  },
  {
    name: 'DATABASE_POOL_MAX',
    default: '4',
    range: { min: 1, max: 100 },
    meaning: 'cluster mode: PostgreSQL connections per instance (plus one for the live tail)',
  },
  {
    name: 'DATABASE_TIMEOUT_MS',
    default: '5000',
    range: { min: 100, max: 600_000 },
    meaning: 'cluster mode: bound on connecting and on each statement; past it 503 `database_unavailable` + `Retry-After`',
  },
  {
    name: 'PAGE_BYTES_MAX',
    default: String(4 * 1024 * 1024),
    range: { min: 64 * 1024, max: 256 * 1024 * 1024 },
    meaning: 'event JSON in one `GET /events` page; the page ends early (at least one event) with a `next_cursor`',
  },
  {
    name: 'SEGMENT_BYTES_MAX',
    default: String(64 * 1024 * 1024),
    range: { min: 4096, max: 1024 * 1024 * 1024 },
    meaning: 'log segment size; an append that would pass it starts a new segment',
  },
  {
    name: 'RETENTION_BYTES',
    default: '0',
    range: { min: 0, max: Number.MAX_SAFE_INTEGER },
    meaning: 'bytes of log segments kept; past it the oldest closed segments are deleted (0 = keep all; see docs/operations.md)',
  },
  {
    name: 'RETENTION_MS',
    default: '0',
    range: { min: 0, max: Number.MAX_SAFE_INTEGER },
    meaning: 'a closed segment whose newest event was received longer ago is deleted (0 = off)',
  },
  {
    name: 'INDEX_BATCH_MAX',
    default: '2000',
    range: { min: 1, max: 100_000 },
    meaning: 'events the consumer writes to the index in one transaction',
  },
  {
    name: 'READ_WORKERS',
    default: '1',
    range: { min: 0, max: 16 },
    meaning: 'worker threads that run index reads (GET /events, histogram, stream catch-up); `0`: on the main thread',
  },
  {
    name: 'READ_QUEUE_MAX',
    default: '64',
    range: { min: 1, max: 100_000 },
    meaning: 'reads waiting for a read worker; past it 503 `reads_busy`',
  },
  {
    name: 'READ_TIMEOUT_MS',
    default: '10000',
    range: { min: 100, max: 600_000 },
    meaning: 'bound on one read on a worker; past it 503 `read_failed` and the worker is replaced',
  },
  {
    name: 'DEDUP_FILTER_BYTES',
    default: String(32 * 1024 * 1024),
    range: { min: 1024 * 1024, max: 512 * 1024 * 1024 },
    meaning:
      'in-memory filter in front of the dedup keys table (about 10 bits a key at 1 % false positives: 32 MiB for ~27M keys); past that more lookups read the table (docs/operations.md)',
  },
  {
    name: 'DEDUP_GENERATION_KEYS',
    default: '262144',
    range: { min: 16, max: 16_777_216 },
    meaning:
      'keys of level 0 of the dedup key store (appended in seq order, indexed in memory at about 16 B a key) before it is sealed into a sorted generation, at most 262144 (values above act as 262144); 8 generations of a level are merged into one of the next level in the background (docs/operations.md)',
  },
  {
    name: 'DEDUP_HORIZON_MS',
    default: '0',
    range: { min: 0, max: 100 * 365 * 86_400_000 },
    meaning:
      'how long the key of an event deleted by retention stays known (a re-send is `duplicate`); past it a re-send is accepted again. `0`: forever',
  },
  {
    name: 'REQUEST_TIMEOUT_MS',
    default: '30000',
    range: { min: 1000, max: 600_000 },
    meaning: 'whole-request bound; the connection is closed (408)',
  },
  {
    name: 'HEADERS_TIMEOUT_MS',
    default: '10000',
    range: { min: 500, max: 600_000 },
    meaning: 'bound on receiving the headers; not above REQUEST_TIMEOUT_MS',
  },
  {
    name: 'KEEP_ALIVE_TIMEOUT_MS',
    default: '5000',
    range: { min: 100, max: 600_000 },
    meaning: 'idle keep-alive connections are closed after it',
  },
  {
    name: 'SHUTDOWN_TIMEOUT_MS',
    default: '10000',
    range: { min: 100, max: 600_000 },
    meaning: 'SIGTERM drain bound; past it the process exits 1 and recovery finishes on restart',
  },
  {
    name: 'RETRY_AFTER_SECONDS',
    default: '1',
    range: { min: 1, max: 3600 },
    meaning: 'the `Retry-After` value of every 503',
  },
  {
    name: 'API_KEYS_PUBLISH',
    default: '',
    meaning: 'comma-separated keys of scope `publish`; none: publishing is open',
  },
  { name: 'API_KEYS_READ', default: '', meaning: 'comma-separated keys of scope `read`; none: reading is open' },
  {
    name: 'API_KEYS_FILE',
    default: '',
    meaning: 'a file of keys, merged with the two above (format in docs/operations.md)',
  },
  {
    name: 'RATE_LIMIT_PER_SECOND',
    default: '0',
    range: { min: 0, max: 1_000_000 },
    meaning: 'requests per second per API key or client address (0: off); past it 429 `rate_limited`',
  },
  {
    name: 'RATE_LIMIT_BURST',
    default: '',
    range: { min: 1, max: 10_000_000 },
    meaning: 'size of each rate-limit token bucket (unset: RATE_LIMIT_PER_SECOND, at least 1)',
  },
  {
    name: 'RATE_LIMIT_CLIENTS_MAX',
    default: '100000',
    range: { min: 1, max: 10_000_000 },
    meaning: 'rate-limit buckets kept; past it the least recently seen client is forgotten',
  },
  {
    name: 'TLS_CERT_FILE',
    default: '',
    meaning: 'PEM certificate chain; with TLS_KEY_FILE the service speaks HTTPS only (none: plain HTTP)',
  },
  { name: 'TLS_KEY_FILE', default: '', meaning: 'PEM private key; set both TLS files or neither' },
  {
    name: 'STREAM_SUBSCRIBERS_MAX',
    default: '100',
    range: { min: 1, max: 100_000 },
    meaning: 'open `/events/stream` connections; past it 503 `subscribers_full`',
  },
  {
    name: 'STREAM_HEARTBEAT_MS',
    default: '15000',
    range: { min: 50, max: 600_000 },
    meaning: 'interval of `: heartbeat` comments on every live-tail stream',
  },
  {
    name: 'STREAM_BUFFER_BYTES_MAX',
    default: String(1024 * 1024),
    range: { min: 1024, max: 256 * 1024 * 1024 },
    meaning: 'unsent bytes one stream may hold; past it the stream catches up from the index',
  },
  {
    name: 'OTLP_TOPIC_DEFAULT',
    default: 'otlp',
    meaning: 'topic of OTLP log records whose resource has no `service.name` (1..255 characters)',
  },
  {
    name: 'LOKI_TOPIC_LABELS',
    default: 'topic,service_name,job',
    meaning: "Loki stream labels tried in order for an entry's topic (comma-separated label names)",
  },
  {
    name: 'LOKI_TOPIC_DEFAULT',
    default: 'loki',
    meaning: 'topic of Loki entries whose stream has none of LOKI_TOPIC_LABELS (1..255 characters)',
  },
];

type Env = Record<string, string | undefined>;

function readInt(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  if (!/^\d+$/.test(raw.trim())) {
    throw new ConfigError(`invalid setting ${name}=${JSON.stringify(raw)}: expected a whole number from ${min} to ${max}`);
  }
  const value = Number(raw.trim());
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(`invalid setting ${name}=${JSON.stringify(raw)}: expected a whole number from ${min} to ${max}`);
  }
  return value;
}

function readString(env: Env, name: string, fallback: string): string {
  const raw = env[name];
  if (raw === undefined) return fallback;
  if (raw.trim() === '') throw new ConfigError(`invalid setting ${name}: must not be empty`);
  return raw;
}

/** DATABASE_URL: unset or empty for the embedded index, else a postgres:// or postgresql:// URL. */
function readDatabaseUrl(env: Env): string | null {
  const raw = env.DATABASE_URL;
  if (raw === undefined || raw === '') return null;
  if (!/^postgres(ql)?:\/\/\S+$/.test(raw)) {
    // The URL may hold a password: name the setting and the rule, not the value.
    throw new ConfigError('invalid setting DATABASE_URL: expected postgres://user@host:port/database (or postgresql://)');
  }
  return raw;
}

/** A topic name: 1..255 characters, as the event schema requires. */
function readTopic(env: Env, name: string, fallback: string): string {
  const value = readString(env, name, fallback);
  if (value.length > FIXED_LIMITS.fieldLengthMax)
    throw new ConfigError(`invalid setting ${name}: a topic is at most ${FIXED_LIMITS.fieldLengthMax} characters`);
  return value;
}

/** A comma-separated list of Loki label names (letters, digits, underscores; not starting with a digit). */
function readLabelList(env: Env, name: string, fallback: string[]): readonly string[] {
  const raw = env[name];
  if (raw === undefined) return Object.freeze(fallback);
  const names = raw.split(',').map((part) => part.trim());
  if (names.some((label) => !/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(label))) {
    throw new ConfigError(
      `invalid setting ${name}=${JSON.stringify(raw)}: expected label names separated by commas (e.g. topic,service_name,job)`,
    );
  }
  return Object.freeze(names);
}

/** The SHA-256 digest (hex) by which a key is stored and compared. */
export function digestApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** Checks one key; the message names where it came from but never shows the key. */
function checkApiKey(key: string, where: string): void {
  if (key.length < API_KEY_LIMITS.lengthMin || key.length > API_KEY_LIMITS.lengthMax || !API_KEY_LIMITS.pattern.test(key)) {
    throw new ConfigError(
      `invalid setting ${where}: an API key must be ${API_KEY_LIMITS.lengthMin} to ${API_KEY_LIMITS.lengthMax} printable ASCII characters without spaces or commas (got one of ${key.length} characters; the key is not shown)`,
    );
  }
}

/** Parses an API_KEYS_FILE: JSON `{"publish": [...], "read": [...]}` or lines `<scope>[,<scope>] <key>` with # comments. */
export function parseApiKeysFile(text: string, file: string): Record<ApiScope, string[]> {
  const keys: Record<ApiScope, string[]> = { publish: [], read: [] };
  const where = `API_KEYS_FILE=${file}`;
  if (text.trimStart().startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      // JSON.parse's message quotes the text around the error, which would show part of a key.
      throw new ConfigError(`invalid setting ${where}: not valid JSON (the file's content is not shown)`);
    }
    for (const [scope, list] of Object.entries(parsed as Record<string, unknown>)) {
      if (!(API_SCOPES as readonly string[]).includes(scope)) {
        throw new ConfigError(`invalid setting ${where}: unknown scope ${JSON.stringify(scope)}; expected ${API_SCOPES.join(' or ')}`);
      }
      if (!Array.isArray(list) || list.some((key) => typeof key !== 'string')) {
        throw new ConfigError(`invalid setting ${where}: "${scope}" must be an array of key strings`);
      }
      for (const key of list as string[]) checkApiKey(key, `${where} (scope ${scope})`);
      keys[scope as ApiScope].push(...(list as string[]));
    }
    return keys;
  }
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const match = /^(\S+)\s+(\S+)$/.exec(line);
    if (match === null) throw new ConfigError(`invalid setting ${where}: line ${index + 1} must be "<scope>[,<scope>] <key>"`);
    const scopes = match[1]!.split(',');
    for (const scope of scopes) {
      if (!(API_SCOPES as readonly string[]).includes(scope)) {
        throw new ConfigError(
          `invalid setting ${where}: line ${index + 1} names unknown scope ${JSON.stringify(scope)}; expected ${API_SCOPES.join(' or ')}`,
        );
      }
    }
    checkApiKey(match[2]!, `${where} line ${index + 1}`);
    for (const scope of scopes) keys[scope as ApiScope].push(match[2]!);
  });
  return keys;
}

/** Keys of each scope from API_KEYS_PUBLISH / API_KEYS_READ (comma-separated) and API_KEYS_FILE, as digests. */
function readApiKeys(env: Env): Record<ApiScope, string[]> {
  const keys: Record<ApiScope, string[]> = { publish: [], read: [] };
  for (const scope of API_SCOPES) {
    const name = `API_KEYS_${scope.toUpperCase()}`;
    const raw = env[name];
    if (raw === undefined || raw.trim() === '') continue;
    raw.split(',').forEach((part, index) => {
      const key = part.trim();
      if (key === '') throw new ConfigError(`invalid setting ${name}: key ${index + 1} is empty (keys are separated by commas)`);
      checkApiKey(key, `${name} (key ${index + 1})`);
      keys[scope].push(key);
    });
  }
  const file = env.API_KEYS_FILE;
  if (file !== undefined && file.trim() !== '') {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(
        `invalid setting API_KEYS_FILE=${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      );
    }
    const fromFile = parseApiKeysFile(text, file);
    for (const scope of API_SCOPES) keys[scope].push(...fromFile[scope]);
  }
  const digests: Record<ApiScope, string[]> = { publish: [], read: [] };
  for (const scope of API_SCOPES) digests[scope] = [...new Set(keys[scope].map(digestApiKey))];
  return digests;
}

/**
 * Where a data dir keeps its log (DATA_DIR/wal) and its index (`databasePath` when given, else
 * DATA_DIR/index.db): the server's Config and every logagg command take their paths from here.
 */
export function dataDirPaths(dataDir: string, databasePath?: string): { walDir: string; databasePath: string } {
  return { walDir: path.join(dataDir, 'wal'), databasePath: path.resolve(databasePath ?? path.join(dataDir, 'index.db')) };
}

/** RATE_LIMIT_PER_SECOND (0 = off), RATE_LIMIT_BURST (default: the rate) and RATE_LIMIT_CLIENTS_MAX. */
function readRateLimit(env: Env): Pick<Config, 'rateLimitPerSecond' | 'rateLimitBurst' | 'rateLimitClientsMax'> {
  const rateLimitPerSecond = readInt(env, 'RATE_LIMIT_PER_SECOND', 0, 0, 1_000_000);
  return {
    rateLimitPerSecond,
    rateLimitBurst: readInt(env, 'RATE_LIMIT_BURST', Math.max(1, rateLimitPerSecond), 1, 10_000_000),
    rateLimitClientsMax: readInt(env, 'RATE_LIMIT_CLIENTS_MAX', 100_000, 1, 10_000_000),
  };
}

/** A setting's text, or null when it is unset or empty. */
function nonEmptyOrNull(text: string | undefined): string | null {
  return text === undefined || text === '' ? null : text;
}

/** TLS_CERT_FILE and TLS_KEY_FILE: both or neither, each a readable file; the contents are never shown. */
function readTlsFiles(env: Env): Pick<Config, 'tlsCertFile' | 'tlsKeyFile'> {
  const cert = nonEmptyOrNull(env.TLS_CERT_FILE?.trim());
  const key = nonEmptyOrNull(env.TLS_KEY_FILE?.trim());
  if ((cert === null) !== (key === null)) {
    throw new ConfigError(
      `invalid setting ${cert === null ? 'TLS_KEY_FILE' : 'TLS_CERT_FILE'}: TLS needs both TLS_CERT_FILE and TLS_KEY_FILE`,
    );
  }
  for (const [name, file] of [
    ['TLS_CERT_FILE', cert],
    ['TLS_KEY_FILE', key],
  ] as const) {
    if (file === null) continue;
    try {
      fs.accessSync(file, fs.constants.R_OK);
    } catch (err) {
      throw new ConfigError(
        `invalid setting ${name}=${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      );
    }
  }
  return { tlsCertFile: cert, tlsKeyFile: key };
}

/** Builds the Config from environment variables; throws ConfigError naming the first bad one. */
export function loadConfig(env: Env = process.env): Readonly<Config> {
  const dataDir = path.resolve(readString(env, 'DATA_DIR', 'data'));
  const levelRaw = readString(env, 'LOG_LEVEL', 'info').toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(levelRaw)) {
    throw new ConfigError(`invalid setting LOG_LEVEL=${JSON.stringify(env.LOG_LEVEL)}: expected one of ${LOG_LEVELS.join(', ')}`);
  }
  const { walDir, databasePath } = dataDirPaths(
    dataDir,
    env.DATABASE_PATH === undefined ? undefined : readString(env, 'DATABASE_PATH', ''),
  );
  const formatRaw = readString(env, 'LOG_FORMAT', 'auto').toLowerCase();
  if (!LOG_FORMATS.includes(formatRaw)) {
    throw new ConfigError(`invalid setting LOG_FORMAT=${JSON.stringify(env.LOG_FORMAT)}: expected one of ${LOG_FORMATS.join(', ')}`);
  }
  const config: Config = {
    port: readInt(env, 'PORT', 8080, 0, 65535),
    host: readString(env, 'HOST', '0.0.0.0'),
    dataDir,
    walDir,
    databasePath,
    logLevel: levelRaw as Config['logLevel'],
    logFormat: formatRaw as NonNullable<Config['logFormat']>,
    queueMaxSize: readInt(env, 'QUEUE_MAX_SIZE', 100_000, 1, 10_000_000),
    bodyBytesMax: readInt(env, 'BODY_BYTES_MAX', 1024 * 1024, 1024, 64 * 1024 * 1024),
    batchEventsMax: readInt(env, 'BATCH_EVENTS_MAX', 1000, 1, 100_000),
    payloadBytesMax: readInt(env, 'PAYLOAD_BYTES_MAX', 64 * 1024, 2, 16 * 1024 * 1024),
    payloadDepthMax: readInt(env, 'PAYLOAD_DEPTH_MAX', 32, 1, 1000),
    segmentBytesMax: readInt(env, 'SEGMENT_BYTES_MAX', 64 * 1024 * 1024, 4096, 1024 * 1024 * 1024),
    indexBatchMax: readInt(env, 'INDEX_BATCH_MAX', 2000, 1, 100_000),
    retentionBytes: readInt(env, 'RETENTION_BYTES', 0, 0, Number.MAX_SAFE_INTEGER),
    retentionMs: readInt(env, 'RETENTION_MS', 0, 0, Number.MAX_SAFE_INTEGER),
    readWorkers: readInt(env, 'READ_WORKERS', 1, 0, 16),
    readQueueMax: readInt(env, 'READ_QUEUE_MAX', 64, 1, 100_000),
    readTimeoutMs: readInt(env, 'READ_TIMEOUT_MS', 10_000, 100, 600_000),
    dedupFilterBytes: readInt(env, 'DEDUP_FILTER_BYTES', 32 * 1024 * 1024, 1024 * 1024, 512 * 1024 * 1024),
    dedupHorizonMs: readInt(env, 'DEDUP_HORIZON_MS', 0, 0, 100 * 365 * 86_400_000),
    dedupGenerationKeys: readInt(env, 'DEDUP_GENERATION_KEYS', 262_144, 16, 16_777_216),
    requestTimeoutMs: readInt(env, 'REQUEST_TIMEOUT_MS', 30_000, 1000, 600_000),
    headersTimeoutMs: readInt(env, 'HEADERS_TIMEOUT_MS', 10_000, 500, 600_000),
    keepAliveTimeoutMs: readInt(env, 'KEEP_ALIVE_TIMEOUT_MS', 5_000, 100, 600_000),
    shutdownTimeoutMs: readInt(env, 'SHUTDOWN_TIMEOUT_MS', 10_000, 100, 600_000),
    retryAfterSeconds: readInt(env, 'RETRY_AFTER_SECONDS', 1, 1, 3600),
    apiKeyDigests: readApiKeys(env),
    pageBytesMax: readInt(env, 'PAGE_BYTES_MAX', 4 * 1024 * 1024, 64 * 1024, 256 * 1024 * 1024),
    databaseUrl: readDatabaseUrl(env),
    databasePoolMax: readInt(env, 'DATABASE_POOL_MAX', 4, 1, 100),
    databaseTimeoutMs: readInt(env, 'DATABASE_TIMEOUT_MS', 5000, 100, 600_000),
    ...readTlsFiles(env),
    ...readRateLimit(env),
    streamSubscribersMax: readInt(env, 'STREAM_SUBSCRIBERS_MAX', 100, 1, 100_000),
    streamHeartbeatMs: readInt(env, 'STREAM_HEARTBEAT_MS', 15_000, 50, 600_000),
    streamBufferBytesMax: readInt(env, 'STREAM_BUFFER_BYTES_MAX', 1024 * 1024, 1024, 256 * 1024 * 1024),
    otlpTopicDefault: readTopic(env, 'OTLP_TOPIC_DEFAULT', 'otlp'),
    lokiTopicLabels: readLabelList(env, 'LOKI_TOPIC_LABELS', ['topic', 'service_name', 'job']),
    lokiTopicDefault: readTopic(env, 'LOKI_TOPIC_DEFAULT', 'loki'),
  };
  if (config.headersTimeoutMs > config.requestTimeoutMs) {
    throw new ConfigError(
      `invalid setting HEADERS_TIMEOUT_MS=${config.headersTimeoutMs}: must not exceed REQUEST_TIMEOUT_MS=${config.requestTimeoutMs}`,
    );
  }
  Object.freeze(config.apiKeyDigests);
  return Object.freeze(config);
}
