import { parseArgs } from 'node:util';
import { INSTANT_SYNTAX, parseInstant } from '../query/instant';

/**
 * Typed option specs: one declaration per flag, from which parsing (node:util parseArgs plus
 * value checks), the typed values a command reads, `--help` and the docs tables are all
 * derived. It knows nothing of logagg: `npm run chaos` and `npm run bench` use it too.
 */

/** A bad command line: the program prints the message on one line and exits 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** What every kind of option declares. */
interface OptionBase {
  /** One line for --help and the docs: what the flag does. */
  description: string;
  /** A one-letter alias, e.g. `f` for `-f`. */
  short?: string;
  /** The word --help shows for the value (`N`, `URL`, `FILE`). */
  placeholder?: string;
  /** The --help section the flag is listed under (default "Options"). */
  group?: string;
  /** What --help says about a default that is no constant (`$PORT, else 8080`, `from the clock`). */
  defaultText?: string;
}

/** A flag without a value; false when absent. */
export interface BooleanOption extends OptionBase {
  type: 'boolean';
}

/** One string value. */
export interface StringOption extends OptionBase {
  type: 'string';
  default?: string;
  required?: boolean;
  /** The only values accepted. */
  choices?: readonly string[];
  /** Longest value accepted, in characters; a longer or empty value is a usage error. */
  lengthMax?: number;
}

/** A repeatable string flag (`--topic a --topic b`); an empty list when absent. */
export interface StringListOption extends OptionBase {
  type: 'strings';
  /** Longest value accepted, in characters; a longer or empty value is a usage error. */
  lengthMax?: number;
}

/** A whole number within [min, max]. */
export interface IntOption extends OptionBase {
  type: 'int';
  default?: number;
  required?: boolean;
  min: number;
  max: number;
}

/** A decimal number within [min, max]. */
export interface NumberOption extends OptionBase {
  type: 'number';
  default?: number;
  required?: boolean;
  min: number;
  max: number;
}

/** An http(s) URL, returned without its trailing slashes. */
export interface UrlOption extends OptionBase {
  type: 'url';
  required?: boolean;
}

/** An RFC 3339 date-time with Z or an offset, or a time before now (`15m`), returned as epoch milliseconds. */
export interface TimeOption extends OptionBase {
  type: 'time';
}

/** The declaration of one flag. */
export type OptionSpec = BooleanOption | StringOption | StringListOption | IntOption | NumberOption | UrlOption | TimeOption;

/** A program's flags, keyed by camelCase name; the flag is its kebab-case form (`fromSeq` is `--from-seq`). */
export type OptionSpecs = Readonly<Record<string, OptionSpec>>;

/** Whether a spec always yields a value: it has a default or is required. */
type Always<S> = S extends { default: unknown } ? true : S extends { required: true } ? true : false;

/** The type a parsed flag has. */
export type OptionValue<S extends OptionSpec> = S extends BooleanOption
  ? boolean
  : S extends StringListOption
    ? string[]
    : S extends StringOption | UrlOption
      ? Always<S> extends true
        ? string
        : string | undefined
      : Always<S> extends true
        ? number
        : number | undefined;

/** The parsed flags of a program, each with its own type: a misspelt name does not compile. */
export type OptionValues<S extends OptionSpecs> = { -readonly [K in keyof S]: OptionValue<S[K]> };

/** Declares a set of specs, keeping their literal types (so `default` and `required` reach OptionValues). */
export function defineOptions<const S extends OptionSpecs>(specs: S): S {
  return specs;
}

/** The command-line flag of a spec key: `fromSeq` -> `from-seq`. */
export function flagName(key: string): string {
  return key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
}

/** Bound on the edit distance of a "did you mean" suggestion. */
const SUGGESTION_DISTANCE_MAX = 2;

/** The number of single-character edits (insert, delete, replace, swap) from a to b. */
function editDistance(a: string, b: string): number {
  const rows: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number): number => rows[i]?.[j] ?? Number.MAX_SAFE_INTEGER;
  for (let i = 1; i <= a.length; i += 1) {
    for (let j = 1; j <= b.length; j += 1) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, at(i - 2, j - 2) + 1);
      rows[i]![j] = best;
    }
  }
  return at(a.length, b.length);
}

/** The known name closest to `given` (a typo or a prefix of it), or null when none is close. */
export function closestName(given: string, known: readonly string[]): string | null {
  let best: { name: string; distance: number } | null = null;
  for (const name of known) {
    const distance = given.length >= 3 && name.startsWith(given) ? 1 : editDistance(given, name);
    if (
      distance <= Math.min(SUGGESTION_DISTANCE_MAX, Math.max(1, Math.floor(name.length / 3))) &&
      (best === null || distance < best.distance)
    ) {
      best = { name, distance };
    }
  }
  return best?.name ?? null;
}

/** The one-line usage error for a flag parseArgs refused. */
function parseArgsProblem(err: Error & { code?: string }, specs: OptionSpecs): string {
  const flags = Object.keys(specs).map(flagName);
  // parseArgs quotes the flag as '--name', '-n' or '-n, --name <value>': name the long form.
  const quoted = /'(?:-[^-' ], )?(-{1,2}[^' =,]+)/.exec(err.message)?.[1];
  if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && quoted !== undefined) {
    const suggestion = quoted.startsWith('--') ? closestName(quoted.slice(2), flags) : null;
    return `unknown flag ${quoted}${suggestion === null ? '' : ` (did you mean --${suggestion}?)`}`;
  }
  if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && quoted !== undefined) {
    if (err.message.includes('does not take an argument')) return `${quoted} takes no value`;
    if (err.message.includes('ambiguous')) return `${quoted} needs a value; for a value that starts with '-', write ${quoted}=VALUE`;
    return `${quoted} needs a value`;
  }
  if (err.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    const word = /'([^']*)'/.exec(err.message)?.[1] ?? '';
    return `unexpected argument ${JSON.stringify(word)} (this command takes flags only)`;
  }
  return err.message;
}

function checkLength(flag: string, value: string, lengthMax: number | undefined): void {
  if (lengthMax !== undefined && (value.length === 0 || value.length > lengthMax))
    throw new UsageError(`--${flag} must be 1..${lengthMax} characters`);
}

/** Turns the raw text of one flag into its typed value, or throws a UsageError naming the flag. */
function convert(flag: string, spec: OptionSpec, raw: string): string | number {
  const got = JSON.stringify(raw);
  switch (spec.type) {
    case 'string':
      checkLength(flag, raw, spec.lengthMax);
      if (spec.choices !== undefined && !spec.choices.includes(raw))
        throw new UsageError(`--${flag} must be one of ${spec.choices.join(', ')}, got ${got}`);
      return raw;
    case 'int': {
      if (!/^\d{1,15}$/.test(raw) || Number(raw) < spec.min || Number(raw) > spec.max) {
        throw new UsageError(`--${flag} must be a whole number from ${spec.min} to ${spec.max}, got ${got}`);
      }
      return Number(raw);
    }
    case 'number': {
      const value = /^\d+(\.\d+)?$/.test(raw) ? Number(raw) : Number.NaN;
      if (!(value >= spec.min && value <= spec.max))
        throw new UsageError(`--${flag} must be a number from ${spec.min} to ${spec.max}, got ${got}`);
      return value;
    }
    case 'url': {
      let url: URL | null = null;
      try {
        url = new URL(raw);
      } catch {
        // reported below
      }
      if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:'))
        throw new UsageError(`--${flag} must be an http(s) URL, got ${got}`);
      return raw.replace(/\/+$/, '');
    }
    case 'time': {
      const ms = parseInstant(raw, Date.now());
      if (ms === null) throw new UsageError(`--${flag} must be ${INSTANT_SYNTAX}, got ${got}`);
      return ms;
    }
    case 'boolean':
    case 'strings':
      throw new Error(`convert: --${flag} is not a one-value flag`);
  }
}

/**
 * Parses `argv` against `specs` with node:util parseArgs (strict), then checks and converts
 * every value. Unknown flags (with a "did you mean" for a near miss), missing or malformed
 * values, missing required flags and unexpected positionals all throw a one-line UsageError.
 * When the boolean `helpFlag` is given, only unknown flags are errors: the caller prints help.
 */
export function parseOptions<const S extends OptionSpecs>(
  specs: S,
  argv: readonly string[],
  settings: { positionals?: boolean; helpFlag?: keyof S & string } = {},
): { values: OptionValues<S>; positionals: string[]; help: boolean } {
  const config: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const [key, spec] of Object.entries(specs)) {
    config[flagName(key)] = {
      type: spec.type === 'boolean' ? 'boolean' : 'string',
      ...(spec.short !== undefined ? { short: spec.short } : {}),
      ...(spec.type === 'strings' ? { multiple: true } : {}),
    };
  }
  let parsed: { values: Record<string, string | boolean | Array<string | boolean> | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({ args: [...argv], options: config, allowPositionals: settings.positionals === true, strict: true });
  } catch (err) {
    throw new UsageError(parseArgsProblem(err as Error, specs));
  }
  const help = settings.helpFlag !== undefined && parsed.values[flagName(settings.helpFlag)] === true;
  const values: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(specs)) {
    if (help) {
      values[key] = spec.type === 'boolean' ? parsed.values[flagName(key)] === true : undefined;
      continue;
    }
    const flag = flagName(key);
    const raw = parsed.values[flag];
    if (spec.type === 'boolean') {
      values[key] = raw === true;
    } else if (spec.type === 'strings') {
      const list = Array.isArray(raw) ? raw.map(String) : [];
      for (const item of list) checkLength(flag, item, spec.lengthMax);
      values[key] = list;
    } else if (typeof raw === 'string') {
      values[key] = convert(flag, spec, raw);
    } else if (spec.type !== 'time' && spec.required === true) {
      throw new UsageError(`--${flag}${spec.placeholder !== undefined ? ` ${spec.placeholder}` : ''} is required`);
    } else {
      values[key] = spec.type === 'time' || spec.type === 'url' ? undefined : spec.default;
    }
  }
  return { values: values as OptionValues<S>, positionals: parsed.positionals, help };
}

/** One row of a program's option table, as --help prints it and as the docs can render it. */
export interface OptionRow {
  /** `-f, --follow` or `--lines N`. */
  flags: string;
  description: string;
  group: string;
}

/** Longest list of choices the help line of a flag spells out; a longer one is left to the description. */
const CHOICES_LISTED_CHARS_MAX = 40;

/** The default and the bounds of a spec in words, e.g. `default 500; 1..10000`; empty when it has none. */
function notes(spec: OptionSpec): string {
  const parts: string[] = [];
  const fallback = spec.defaultText ?? ('default' in spec && spec.default !== undefined ? String(spec.default) : undefined);
  if (fallback !== undefined) parts.push(`default: ${fallback}`);
  if ((spec.type === 'int' || spec.type === 'number') && spec.max < Number.MAX_SAFE_INTEGER) parts.push(`${spec.min}..${spec.max}`);
  else if (spec.type === 'int' || spec.type === 'number') parts.push(`at least ${spec.min}`);
  // A long list of choices belongs in the command's description, not in one line of the table.
  if (spec.type === 'string' && spec.choices !== undefined && spec.choices.join(', ').length <= CHOICES_LISTED_CHARS_MAX) {
    parts.push(`one of ${spec.choices.join(', ')}`);
  }
  if ('required' in spec && spec.required === true) parts.push('required');
  if (spec.type === 'strings') parts.push('repeatable');
  return parts.length === 0 ? '' : ` (${parts.join('; ')})`;
}

/** The rows of an option table, in declaration order. */
export function optionRows(specs: OptionSpecs): OptionRow[] {
  return Object.entries(specs).map(([key, spec]) => {
    const value = spec.type === 'boolean' ? '' : ` ${spec.placeholder ?? 'VALUE'}`;
    return {
      flags: `${spec.short !== undefined ? `-${spec.short}, ` : ''}--${flagName(key)}${value}`,
      description: `${spec.description}${notes(spec)}`,
      group: spec.group ?? 'Options',
    };
  });
}

/** The option sections of --help: one per group, in order of first appearance, columns aligned. */
export function formatOptions(specs: OptionSpecs): string {
  const rows = optionRows(specs);
  const width = Math.max(0, ...rows.map((row) => row.flags.length)) + 2;
  const groups = [...new Set(rows.map((row) => row.group))];
  return groups
    .map((group) =>
      [`${group}:`, ...rows.filter((row) => row.group === group).map((row) => `  ${row.flags.padEnd(width)}${row.description}`)].join('\n'),
    )
    .join('\n\n');
}

/** What a program's --help is made of besides its flags. */
export interface HelpText {
  /** Synopsis lines, each printed after `Usage: ` (or aligned under the first). */
  usage: readonly string[];
  /** Paragraphs explaining what the program does. */
  description: string;
  examples?: readonly string[];
  /** Lines after everything else (environment, exit codes). */
  footer?: string;
}

/** The whole --help text of a program: usage, description, option sections, examples, footer. */
export function formatHelp(help: HelpText, specs: OptionSpecs): string {
  const usage = help.usage.map((line, i) => `${i === 0 ? 'Usage: ' : '       '}${line}`).join('\n');
  const parts = [usage, help.description, formatOptions(specs)];
  if (help.examples !== undefined && help.examples.length > 0)
    parts.push(['Examples:', ...help.examples.map((line) => `  ${line}`)].join('\n'));
  if (help.footer !== undefined) parts.push(help.footer);
  return parts.join('\n\n');
}
