import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { SETTINGS, type SettingSpec } from '../../src/config/config';
import { ERROR_CATALOGUE } from '../../src/errors';
import type { MetricObject } from 'prom-client';
import { ServiceMetrics } from '../../src/http/metrics';
import { LIMITS } from '../../src/limits';
import { COMMANDS } from '../../src/cli/logagg';

/**
 * The docs generator behind `npm run docs`: it rewrites every region between
 * `<!-- generated:NAME -->` and `<!-- /generated:NAME -->` in README.md and docs/*.md from
 * the code's own tables (settings, limits, error codes, metrics, `logagg --help`).
 * test/docs/docs.test.ts fails when a region differs from what this would write.
 */

/** The command that rewrites the generated regions; the test names it when they are stale. */
export const DOCS_COMMAND = 'npm run docs';

const REPO_ROOT = path.resolve(__dirname, '../../..');
const CLI_JS = path.join(REPO_ROOT, 'dist/src/cli/logagg.js');
const REGION = /<!-- generated:([a-z0-9-]+) -->\n([\s\S]*?)<!-- \/generated:\1 -->/g;

/** The files whose regions are generated: README.md and docs/*.md (not docs/pending/). */
export function docFiles(): string[] {
  const docsDir = path.join(REPO_ROOT, 'docs');
  const docs = fs.existsSync(docsDir)
    ? fs
        .readdirSync(docsDir)
        .filter((name) => name.endsWith('.md'))
        .sort()
        .map((name) => path.join(docsDir, name))
    : [];
  return [path.join(REPO_ROOT, 'README.md'), ...docs];
}

/** A path relative to the repository, for messages. */
export function repoPath(file: string): string {
  return path.relative(REPO_ROOT, file);
}

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

function code(text: string): string {
  return `\`${text}\``;
}

/** A default as the table shows it: none, a derived path, or a value (with MiB for byte sizes). */
function shownDefault(spec: SettingSpec): string {
  if (spec.default === '') return 'none';
  const value = Number(spec.default);
  if (spec.name.includes('BYTES') && Number.isInteger(value) && value % 1024 === 0) {
    const unit = value % (1024 * 1024) === 0 ? `${value / (1024 * 1024)} MiB` : `${value / 1024} KiB`;
    return `${code(spec.default)} = ${unit}`;
  }
  return code(spec.default);
}

function configTable(): string {
  return table(
    ['variable', 'default', 'range', 'meaning'],
    SETTINGS.map((s) => {
      const range = s.range === undefined ? '' : `${s.range.min}..${s.range.max}`;
      return [code(s.name), shownDefault(s), range, s.meaning];
    }),
  );
}

function limitsTable(): string {
  return table(
    ['limit', 'bound', 'when hit', 'declared in'],
    LIMITS.map((limit) => {
      if (limit.fixed !== undefined) {
        const declared = `${code(limit.fixed.constant)}, ${code(limit.fixed.declaredIn)}`;
        return [limit.bounds, limit.fixed.value, limit.whenHit, declared];
      }
      const spec = SETTINGS.find((s) => s.name === limit.setting)!;
      const bound = `${code(spec.name)}, default ${shownDefault(spec)}`;
      return [limit.bounds, bound, limit.whenHit, `setting, ${code('src/config/config.ts')}`];
    }),
  );
}

function errorsTable(): string {
  return table(
    ['status', 'code', 'meaning'],
    Object.entries(ERROR_CATALOGUE).map(([name, entry]) => [String(entry.status), code(name), entry.meaning]),
  );
}

function metricsTable(): string {
  const metrics = new ServiceMetrics({ defaultMetrics: false });
  const rows: string[][] = [];
  for (const metric of metrics.registry.getMetricsAsArray()) {
    const labels = (metric as MetricObject & { labelNames: string[] }).labelNames;
    rows.push([code(metric.name), String(metric.type), labels.map(code).join(', '), metric.help]);
  }
  return table(['metric', 'type', 'labels', 'meaning'], rows);
}

function cliOutput(args: string[]): string {
  return execFileSync(process.execPath, [CLI_JS, ...args], { encoding: 'utf8' }).replace(/\n+$/, '');
}

/** The lines every command's help ends with (the common options), taken off all but the overview. */
function commonSuffix(texts: string[]): string[] {
  const split = texts.map((text) => text.split('\n'));
  const suffix: string[] = [];
  for (let back = 1; split.every((lines) => lines.length >= back); back += 1) {
    const line = split[0]![split[0]!.length - back]!;
    if (!split.every((lines) => lines[lines.length - back] === line)) break;
    suffix.unshift(line);
  }
  return suffix;
}

function cliHelpRegions(): Array<[string, string]> {
  const overview = cliOutput(['--help']);
  const helps = COMMANDS.map((command) => [command.name, cliOutput([command.name, '--help'])] as const);
  const common = commonSuffix(helps.map(([, text]) => text));
  const fence = (text: string): string => `\`\`\`text\n${text}\n\`\`\``;
  return [
    ['cli-help', fence(overview)],
    ...helps.map(([name, text]): [string, string] => {
      const lines = text.split('\n');
      return [
        `cli-help-${name}`,
        fence(
          lines
            .slice(0, lines.length - common.length)
            .join('\n')
            .trimEnd(),
        ),
      ];
    }),
  ];
}

/** Every generated region by name, as `npm run docs` would write it. Needs a build (it runs dist/src/cli). */
export function renderRegions(): Map<string, string> {
  return new Map<string, string>([
    ['config', configTable()],
    ['limits', limitsTable()],
    ['errors', errorsTable()],
    ['metrics', metricsTable()],
    ...cliHelpRegions(),
  ]);
}

/** The result of filling one file's regions: its new text, the regions it holds, unknown names. */
export interface FilledDoc {
  text: string;
  regions: string[];
  unknown: string[];
  stale: string[];
}

/** Rewrites the regions of one document; regions the generator does not know are left as they are. */
export function fillRegions(text: string, regions: ReadonlyMap<string, string>): FilledDoc {
  const found: string[] = [];
  const unknown: string[] = [];
  const stale: string[] = [];
  const filled = text.replace(REGION, (whole, name: string, body: string) => {
    found.push(name);
    const content = regions.get(name);
    if (content === undefined) {
      unknown.push(name);
      return whole;
    }
    if (body !== `${content}\n`) stale.push(name);
    return `<!-- generated:${name} -->\n${content}\n<!-- /generated:${name} -->`;
  });
  return { text: filled, regions: found, unknown, stale };
}

function main(): void {
  const regions = renderRegions();
  const used = new Set<string>();
  let problems = 0;
  for (const file of docFiles()) {
    const before = fs.readFileSync(file, 'utf8');
    const result = fillRegions(before, regions);
    result.regions.forEach((name) => used.add(name));
    for (const name of result.unknown) {
      process.stderr.write(`${repoPath(file)}: unknown generated region "${name}"\n`);
      problems += 1;
    }
    if (result.text !== before) {
      fs.writeFileSync(file, result.text);
      process.stdout.write(`${repoPath(file)}: rewrote ${result.stale.join(', ')}\n`);
    }
  }
  for (const name of regions.keys()) {
    if (!used.has(name)) process.stderr.write(`no document holds the generated region "${name}"\n`);
  }
  process.exitCode = problems === 0 ? 0 : 1;
}

if (require.main === module) {
  main();
}
