import path from 'node:path';
import { dataDirPaths, FIXED_LIMITS } from '../config/config';
import { defineOptions, formatHelp, parseOptions, type HelpText, type OptionSpecs, type OptionValues } from './options';

export { UsageError } from './options';

/** Exit codes of every subcommand: fine, a problem was found (or an operation failed), usage error. */
export const EXIT_OK = 0;
export const EXIT_PROBLEM = 1;
export const EXIT_USAGE = 2;

/** Flags every subcommand takes. */
export const COMMON_OPTIONS = defineOptions({
  dataDir: {
    type: 'string',
    placeholder: 'DIR',
    description: 'data directory',
    defaultText: '$DATA_DIR, else ./data',
    group: 'Common options',
  },
  json: { type: 'boolean', description: 'machine-readable output', group: 'Common options' },
  progress: { type: 'boolean', description: 'show progress bars even when stderr is not a terminal', group: 'Common options' },
  help: { type: 'boolean', short: 'h', description: 'this help', group: 'Common options' },
});

/** The lines every subcommand's help ends with. */
export const COMMON_FOOTER = `Environment: LOGAGG_API_KEY  sent as "Authorization: Bearer <key>" to a server with API keys.
Exit codes: 0 fine, 1 a problem was found or an operation failed, 2 usage error.`;

/** What a subcommand receives: its parsed flags (typed by its specs), the environment, and the shared settings. */
export interface CommandContext<V> {
  /** The command's own flags, by camelCase name. */
  options: V;
  env: NodeJS.ProcessEnv;
  /** `--data-dir`, else DATA_DIR, else ./data; absolute. */
  dataDir: string;
  /** `--json`: machine-readable output on stdout. */
  json: boolean;
  /** Progress bars on stderr: when stderr is a TTY, or forced with `--progress`. */
  progress: boolean;
}

/** A subcommand as it declares itself: help text, typed flags and what it does. */
export interface CommandDefinition<S extends OptionSpecs> extends HelpText {
  name: string;
  /** Its own flags; the common ones (COMMON_OPTIONS) are added to every command. */
  options: S;
  run(context: CommandContext<OptionValues<S>>): Promise<number>;
}

/** A subcommand as the dispatcher runs it: its specs and help for docs, and one entry point. */
export interface Command {
  name: string;
  /** Every flag it takes, common ones included, in --help order. */
  options: OptionSpecs;
  help: HelpText;
  /** The full --help text. */
  helpText(): string;
  /** Parses argv (a UsageError on a bad one) and runs the command; resolves with the exit code. */
  invoke(argv: readonly string[], env: NodeJS.ProcessEnv, stderrIsTty: boolean): Promise<number>;
}

/** Builds a Command from its definition: parsing and --help both come from `definition.options`. */
export function defineCommand<const S extends OptionSpecs>(definition: CommandDefinition<S>): Command {
  const specs = { ...definition.options, ...COMMON_OPTIONS };
  const help: HelpText = {
    usage: definition.usage,
    description: definition.description,
    examples: definition.examples,
    footer: COMMON_FOOTER,
  };
  const helpText = (): string => formatHelp(help, specs);
  return {
    name: definition.name,
    options: specs,
    help,
    helpText,
    async invoke(argv, env, stderrIsTty) {
      const { values, help: wantsHelp } = parseOptions(specs, argv, { helpFlag: 'help' });
      if (wantsHelp) {
        process.stdout.write(`${helpText()}\n`);
        return EXIT_OK;
      }
      const dataDirRaw = values.dataDir ?? (env.DATA_DIR !== undefined && env.DATA_DIR.trim() !== '' ? env.DATA_DIR : 'data');
      return definition.run({
        options: values,
        env,
        dataDir: path.resolve(dataDirRaw),
        json: values.json,
        progress: values.progress || stderrIsTty,
      });
    },
  };
}

/** Where the log and the index of a data dir are (`--index`, else DATABASE_PATH as the server honours it). */
export function dataPaths(context: CommandContext<unknown>, indexFile?: string): { dataDir: string; walDir: string; databasePath: string } {
  const fromEnv =
    context.env.DATABASE_PATH !== undefined && context.env.DATABASE_PATH.trim() !== '' ? context.env.DATABASE_PATH : undefined;
  return { dataDir: context.dataDir, ...dataDirPaths(context.dataDir, indexFile ?? fromEnv) };
}

/** The `--index` flag of commands that read or write the index. */
export const INDEX_OPTIONS = defineOptions({
  index: { type: 'string', placeholder: 'FILE', description: 'the SQLite index', defaultText: '$DATABASE_PATH, else DATA_DIR/index.db' },
});

/** Which events a command reads; every part optional, combined with AND. */
export interface EventFilter {
  topics?: string[];
  source?: string;
  sinceMs?: number;
  untilMs?: number;
  /** Only events with seq >= fromSeq. */
  fromSeq?: number;
}

const FILTERS = 'Filters (combined with AND)';

/** The filter flags of export, replay and tail. */
export const FILTER_OPTIONS = defineOptions({
  topic: { type: 'strings', placeholder: 'T', lengthMax: FIXED_LIMITS.fieldLengthMax, description: 'only this topic', group: FILTERS },
  source: { type: 'string', placeholder: 'S', description: 'only this source', group: FILTERS },
  since: {
    type: 'time',
    placeholder: 'TIME',
    description: 'only events with timestamp >= TIME (RFC 3339, e.g. 2025-10-23T10:00:00Z, or 15m, 2h, 7d before now)',
    group: FILTERS,
  },
  until: { type: 'time', placeholder: 'TIME', description: 'only events with timestamp <  TIME', group: FILTERS },
  fromSeq: {
    type: 'int',
    placeholder: 'N',
    min: 1,
    max: Number.MAX_SAFE_INTEGER,
    description: 'only events with seq >= N',
    group: FILTERS,
  },
});

/** The filter an invocation's filter flags describe (already checked by the option specs). */
export function parseFilter(values: OptionValues<typeof FILTER_OPTIONS>): EventFilter {
  const filter: EventFilter = {};
  if (values.topic.length > 0) filter.topics = values.topic;
  if (values.source !== undefined) filter.source = values.source;
  if (values.since !== undefined) filter.sinceMs = values.since;
  if (values.until !== undefined) filter.untilMs = values.until;
  if (values.fromSeq !== undefined) filter.fromSeq = values.fromSeq;
  return filter;
}

/** True when the filter needs only the seq (no parsing of the event). */
export function filterIsSeqOnly(filter: EventFilter): boolean {
  return filter.topics === undefined && filter.source === undefined && filter.sinceMs === undefined && filter.untilMs === undefined;
}
