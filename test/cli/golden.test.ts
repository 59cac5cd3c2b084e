import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { packageVersion } from '../../src/cli/logagg';
import { runLogagg } from '../harness/logagg-process';
import { startServerProcess, type ServerProcess } from '../harness/server-process';
import { makeDataDir, variedEvents } from '../helpers/data-dir';
import { dataDirFromWalFixture } from '../helpers/fixtures';
import { makeTempDir } from '../helpers/temp-dir';

/**
 * Golden tests of `logagg` output, as Litestream keeps `testdata/<cmd>/<case>/`: each case
 * folder holds `case.json` (the arguments, the input data dir recipe, whether a server runs)
 * and the expected `stdout`, `stderr` and `exit-code`. The real `node dist/src/cli/logagg.js`
 * runs; paths, ports, durations, rates, pids and the current time are replaced by
 * placeholders before the comparison. `UPDATE_GOLDEN=1 npx mocha dist/test/cli/golden.test.js`
 * rewrites the expected files (review the diff: it is the change of output).
 */
const TESTDATA_DIR = path.resolve(__dirname, '../../../test/cli/testdata');
const UPDATE = process.env.UPDATE_GOLDEN === '1';

/** One case, as its case.json declares it. */
interface GoldenCase {
  /** Arguments after `logagg`; `$DATA` is the data dir, `$URL` the server, `$TMP` a scratch dir. */
  args: string[];
  /** The data dir: a byte-exact `fixtures/wal/<name>`, or `events` varied events published in batches of `batch`. */
  fixture?: { wal: string } | { events: number; batch?: number; segmentBytesMax?: number };
  /** A real server: on the fixture's data dir (`data`), or on a fresh empty one (`empty`). */
  server?: 'data' | 'empty';
  /** Extra environment of the CLI. */
  env?: Record<string, string>;
  stdin?: string;
}

/** How long a case may run. */
const CASE_TIMEOUT_MS = 60_000;
/** An ISO time this close to the run is "now" and gets normalised; the fixtures' 2025 times stay. */
const NOW_WINDOW_MS = 24 * 3_600_000;

async function makeFixture(fixture: GoldenCase['fixture']): Promise<string> {
  if (fixture === undefined) return makeTempDir();
  if ('wal' in fixture) return dataDirFromWalFixture(fixture.wal);
  const events = variedEvents(fixture.events);
  const batch = fixture.batch ?? events.length;
  const requests = Array.from({ length: Math.ceil(events.length / batch) }, (_, i) => events.slice(i * batch, (i + 1) * batch));
  return makeDataDir(requests, { segmentBytesMax: fixture.segmentBytesMax });
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Replaces what differs between runs (paths, ports, times, durations, pids, the version) by placeholders. */
function normalise(text: string, places: Record<string, string>): string {
  let out = text;
  // Longest first, so that a path inside another is not cut in half.
  for (const [name, value] of Object.entries(places).sort((a, b) => b[1].length - a[1].length)) {
    if (value !== '') out = out.replace(new RegExp(escapeRegExp(value), 'g'), name);
  }
  const now = Date.now();
  return out
    .replace(/\d{4}-\d{2}-\d{2}T\d{2}[:-]\d{2}[:-]\d{2}(?:[.-]\d+)?Z/g, (iso) => {
      const ms = Date.parse(iso.replace(/T(\d{2})-(\d{2})-(\d{2})-(\d+)Z$/, 'T$1:$2:$3.$4Z'));
      return Math.abs(ms - now) < NOW_WINDOW_MS ? '<NOW>' : iso;
    })
    .replace(/\b\d+ ms\b/g, '<N> ms')
    .replace(/\b\d+ events\/s\b/g, '<N> events/s')
    .replace(/"(elapsedMs|eventsPerSecond)": \d+/g, '"$1": <N>')
    .replace(/\bpid \d+/g, 'pid <PID>')
    .replace(/\bsim-[0-9a-z]+-[0-9a-z]+\b/g, 'sim-<RUN>');
}

function caseDirs(): string[] {
  if (!fs.existsSync(TESTDATA_DIR)) return [];
  return fs
    .readdirSync(TESTDATA_DIR)
    .sort()
    .flatMap((command) =>
      fs
        .readdirSync(path.join(TESTDATA_DIR, command))
        .sort()
        .map((name) => path.join(command, name)),
    );
}

function readExpected(dir: string, file: string): string | null {
  const full = path.join(dir, file);
  return fs.existsSync(full) ? fs.readFileSync(full, 'utf8') : null;
}

describe('logagg output (golden files in test/cli/testdata/<cmd>/<case>/)', function () {
  this.timeout(CASE_TIMEOUT_MS);
  const cases = caseDirs();

  it("has cases for --help of every command, --version, a bad flag and each command's normal output", () => {
    const names = new Set(cases);
    for (const command of ['serve', 'verify', 'repair', 'rebuild', 'export', 'replay', 'tail', 'publish']) {
      expect(names, `${command}/help`).to.include(`${command}/help`);
    }
    for (const required of ['logagg/help', 'logagg/version', 'export/mistyped-flag']) expect(names).to.include(required);
    for (const command of ['verify', 'export', 'tail', 'rebuild', 'repair', 'replay', 'publish']) {
      expect(cases.filter((c) => c.startsWith(`${command}/`) && !c.endsWith('/help')).length, command).to.be.greaterThan(0);
    }
  });

  for (const name of cases) {
    it(name, async () => {
      const dir = path.join(TESTDATA_DIR, name);
      const spec = JSON.parse(fs.readFileSync(path.join(dir, 'case.json'), 'utf8')) as GoldenCase;
      const dataDir = await makeFixture(spec.fixture);
      const scratch = makeTempDir();
      let server: ServerProcess | null = null;
      try {
        if (spec.server !== undefined) server = await startServerProcess(spec.server === 'data' ? dataDir : makeTempDir());
        const url = server?.url ?? '';
        const args = spec.args.map((arg) =>
          arg
            .replace(/\$DATA/g, dataDir)
            .replace(/\$URL/g, url)
            .replace(/\$TMP/g, scratch),
        );
        const result = await runLogagg(args, { env: { ...spec.env, DATA_DIR: '' }, input: spec.stdin, timeoutMs: CASE_TIMEOUT_MS - 5000 });
        const places = { $DATA: dataDir, $TMP: scratch, $URL: url, $REPO: path.resolve(__dirname, '../../..') };
        const version = packageVersion();
        const actual = {
          stdout: normalise(result.stdout, places).replace(`logagg ${version}`, 'logagg <VERSION>'),
          stderr: normalise(result.stderr, places),
          'exit-code': `${result.code}\n`,
        };
        if (UPDATE) {
          for (const [file, text] of Object.entries(actual)) fs.writeFileSync(path.join(dir, file), text);
          return;
        }
        for (const [file, text] of Object.entries(actual)) {
          const expected = readExpected(dir, file);
          expect(expected, `${name}/${file} is missing: run with UPDATE_GOLDEN=1`).to.not.equal(null);
          expect(text, `${name}/${file} (UPDATE_GOLDEN=1 rewrites it)`).to.equal(expected);
        }
      } finally {
        await server?.kill('SIGTERM');
      }
    });
  }
});
