import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { FIXED_LIMITS } from '../config/config';
import { INSTANT_SYNTAX, parseInstant } from '../query/instant';

/** Exit codes of every subcommand: fine, a problem was found (or an operation failed), usage error. */
export const EXIT_OK = 0;
export const EXIT_PROBLEM = 1;
export const EXIT_USAGE = 2;

/** A bad command line; the dispatcher prints it with a pointer to --help and exits 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;
export type OptionValues = Record<string, string | boolean | string[] | undefined>;

/** What a subcommand receives: parsed flags, the environment, and the shared settings. */
export interface CommandContext {
  values: OptionValues;
  positionals: string[];
  env: NodeJS.ProcessEnv;
  /** `--data-dir`, else DATA_DIR, else ./data; absolute. */
  dataDir: string;
  /** `--json`: machine-readable output on stdout. */
  json: boolean;
  /** Progress bars on stderr: when stderr is a TTY, or forced with `--progress`. */
  progress: boolean;
}

/** One subcommand: its flags, its help text and what it does. */
export interface Command {
  name: string;
  /** Help text after the common part: usage line, options, examples. */
  help: string;
  options: OptionSpec;
  positionals?: boolean;
  run(context: CommandContext): Promise<number>;
}

/** Flags every subcommand takes. */
export const COMMON_OPTIONS: OptionSpec = {
  help: { type: 'boolean', short: 'h' },
  'data-dir': { type: 'string' },
  json: { type: 'boolean' },
  progress: { type: 'boolean' },
};

/** Help lines of the common flags. */
export const COMMON_HELP = `Common options:
  --data-dir DIR   data directory (default: $DATA_DIR, else ./data)
  --json           machine-readable output
  --progress       show progress bars even when stderr is not a terminal
  -h, --help       this help
Environment: LOGAGG_API_KEY  sent as "Authorization: Bearer <key>" to a server with API keys.
Exit codes: 0 fine, 1 a problem was found or an operation failed, 2 usage error.`;

/** Parses a subcommand's argv with node:util parseArgs; a parse error becomes a UsageError. */
export function parseCommandArgs(command: Command, argv: string[], env: NodeJS.ProcessEnv, stderrIsTty: boolean): CommandContext & { help: boolean } {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...COMMON_OPTIONS, ...command.options }, allowPositionals: command.positionals === true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const values = parsed.values as OptionValues;
  const dataDirFlag = values['data-dir'];
  const dataDirRaw = typeof dataDirFlag === 'string' ? dataDirFlag : env.DATA_DIR !== undefined && env.DATA_DIR.trim() !== '' ? env.DATA_DIR : 'data';
  return {
    values,
    positionals: parsed.positionals,
    env,
    dataDir: path.resolve(dataDirRaw),
    json: values.json === true,
    progress: values.progress === true || stderrIsTty,
    help: values.help === true,
  };
}

/** A string flag, or undefined. */
export function stringFlag(values: OptionValues, name: string): string | undefined {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
}

/** A whole-number flag within [min, max], or the fallback when absent. */
export function intFlag(values: OptionValues, name: string, fallback: number, min: number, max: number): number {
  const raw = stringFlag(values, name);
  if (raw === undefined) return fallback;
  if (!/^\d{1,15}$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return Number(raw);
}

/** A decimal flag within [min, max], or the fallback when absent. */
export function numberFlag(values: OptionValues, name: string, fallback: number | undefined, min: number, max: number): number | undefined {
  const raw = stringFlag(values, name);
  if (raw === undefined) return fallback;
  const value = /^\d+(\.\d+)?$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(value >= min && value <= max)) throw new UsageError(`--${name} must be a number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  return value;
}

/** An http(s) URL flag without a trailing slash. */
export function urlFlag(values: OptionValues, name: string, required: boolean): string | undefined {
  const raw = stringFlag(values, name);
  if (raw === undefined) {
    if (required) throw new UsageError(`--${name} URL is required`);
    return undefined;
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`--${name} must be an http(s) URL, got ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--${name} must be an http(s) URL, got ${JSON.stringify(raw)}`);
  return raw.replace(/\/+$/, '');
}

/** Where the log and the index of a data dir are (DATABASE_PATH is honoured as the server does). */
export function dataPaths(context: CommandContext): { dataDir: string; walDir: string; databasePath: string } {
  const fromFlag = stringFlag(context.values, 'index');
  const fromEnv = context.env.DATABASE_PATH !== undefined && context.env.DATABASE_PATH.trim() !== '' ? context.env.DATABASE_PATH : undefined;
  return {
    dataDir: context.dataDir,
    walDir: path.join(context.dataDir, 'wal'),
    databasePath: path.resolve(fromFlag ?? fromEnv ?? path.join(context.dataDir, 'index.db')),
  };
}

/** The `--index` flag of commands that read or write the index. */
export const INDEX_OPTION: OptionSpec = { index: { type: 'string' } };
export const INDEX_HELP = '  --index FILE     the SQLite index (default: $DATABASE_PATH, else DATA_DIR/index.db)';

/** Which events a command reads; every part optional, combined with AND. */
export interface EventFilter {
  topics?: string[];
  source?: string;
  sinceMs?: number;
  untilMs?: number;
  /** Only events with seq >= fromSeq. */
  fromSeq?: number;
}

/** The filter flags of export, replay and tail. */
export const FILTER_OPTIONS: OptionSpec = {
  topic: { type: 'string', multiple: true },
  source: { type: 'string' },
  since: { type: 'string' },
  until: { type: 'string' },
  'from-seq': { type: 'string' },
};

export const FILTER_HELP = `Filters (combined with AND):
  --topic T        only this topic (repeat for several)
  --source S       only this source
  --since TIME     only events with timestamp >= TIME (RFC 3339, e.g. 2025-10-23T10:00:00Z, or 15m, 2h, 7d before now)
  --until TIME     only events with timestamp <  TIME
  --from-seq N     only events with seq >= N`;

function instantFlag(values: OptionValues, name: string): number | undefined {
  const raw = stringFlag(values, name);
  if (raw === undefined) return undefined;
  const ms = parseInstant(raw, Date.now());
  if (ms === null) throw new UsageError(`--${name} must be ${INSTANT_SYNTAX}, got ${JSON.stringify(raw)}`);
  return ms;
}

/** Reads the filter flags; throws UsageError on a malformed one. */
export function parseFilter(values: OptionValues): EventFilter {
  const filter: EventFilter = {};
  const topics = values.topic;
  if (Array.isArray(topics) && topics.length > 0) {
    for (const topic of topics) {
      if (topic.length === 0 || topic.length > FIXED_LIMITS.fieldLengthMax) throw new UsageError(`--topic must be 1..${FIXED_LIMITS.fieldLengthMax} characters`);
    }
    filter.topics = topics;
  }
  const source = stringFlag(values, 'source');
  if (source !== undefined) filter.source = source;
  const sinceMs = instantFlag(values, 'since');
  if (sinceMs !== undefined) filter.sinceMs = sinceMs;
  const untilMs = instantFlag(values, 'until');
  if (untilMs !== undefined) filter.untilMs = untilMs;
  const fromSeq = stringFlag(values, 'from-seq');
  if (fromSeq !== undefined) filter.fromSeq = intFlag(values, 'from-seq', 1, 1, Number.MAX_SAFE_INTEGER);
  return filter;
}

/** True when the filter needs only the seq (no parsing of the event). */
export function filterIsSeqOnly(filter: EventFilter): boolean {
  return filter.topics === undefined && filter.source === undefined && filter.sinceMs === undefined && filter.untilMs === undefined;
}
