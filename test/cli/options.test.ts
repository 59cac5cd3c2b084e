import { expect } from 'chai';
import { COMMANDS } from '../../src/cli/logagg';
import { closestName, defineOptions, flagName, formatHelp, optionRows, parseOptions, UsageError } from '../../src/cli/options';

const SPECS = defineOptions({
  fromSeq: { type: 'int', placeholder: 'N', min: 1, max: 100, description: 'first seq' },
  batch: { type: 'int', placeholder: 'N', default: 5, min: 1, max: 10, description: 'per request' },
  rate: { type: 'number', placeholder: 'R', min: 0, max: 1, description: 'share' },
  to: { type: 'url', placeholder: 'URL', required: true, description: 'target' },
  since: { type: 'time', placeholder: 'TIME', description: 'from', group: 'Filters' },
  topic: { type: 'strings', placeholder: 'T', lengthMax: 3, description: 'topics', group: 'Filters' },
  mode: { type: 'string', placeholder: 'M', default: 'a', choices: ['a', 'b'], description: 'mode' },
  follow: { type: 'boolean', short: 'f', description: 'keep going' },
  help: { type: 'boolean', short: 'h', description: 'this help' },
});

function usageError(argv: string[]): string {
  try {
    parseOptions(SPECS, argv);
  } catch (err) {
    expect(err).to.be.instanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error(`${argv.join(' ')} was accepted`);
}

describe('option specs (src/cli/options.ts)', () => {
  it('derives each flag from its camelCase key', () => {
    expect(['fromSeq', 'timeoutMs', 'quarantineCorrupt', 'json'].map(flagName)).to.deep.equal([
      'from-seq',
      'timeout-ms',
      'quarantine-corrupt',
      'json',
    ]);
  });

  it('parses every type into its typed value, with defaults, in both --flag=V and --flag V forms', () => {
    const { values } = parseOptions(SPECS, [
      '--to=http://h:1/',
      '--from-seq',
      '7',
      '--rate',
      '0.5',
      '--since',
      '2025-10-23T10:00:00+02:00',
      '--topic',
      'a',
      '--topic=b',
      '-f',
    ]);
    expect(values).to.deep.equal({
      fromSeq: 7,
      batch: 5,
      rate: 0.5,
      to: 'http://h:1',
      since: Date.parse('2025-10-23T08:00:00Z'),
      topic: ['a', 'b'],
      mode: 'a',
      follow: true,
      help: false,
    });
    // Typed access: these assignments compile only because the types are right.
    const batch: number = values.batch;
    const to: string = values.to;
    const fromSeq: number | undefined = values.fromSeq;
    expect([batch, to, fromSeq]).to.deep.equal([5, 'http://h:1', 7]);
    // @ts-expect-error a misspelt flag name does not compile
    expect(values.fromSeg).to.equal(undefined);
  });

  it('rejects an unknown flag in one line, suggesting the closest one', () => {
    expect(usageError(['--to', 'http://h', '--sinse', 'x'])).to.equal('unknown flag --sinse (did you mean --since?)');
    expect(usageError(['--to', 'http://h', '--from-sq', '1'])).to.equal('unknown flag --from-sq (did you mean --from-seq?)');
    expect(usageError(['--to', 'http://h', '--foll'])).to.equal('unknown flag --foll (did you mean --follow?)');
    expect(usageError(['--to', 'http://h', '--nothing-like-it'])).to.equal('unknown flag --nothing-like-it');
    expect(usageError(['--to', 'http://h', '-x'])).to.equal('unknown flag -x');
  });

  it('rejects malformed, out-of-range, missing and unexpected values, naming the flag', () => {
    expect(usageError([])).to.equal('--to URL is required');
    expect(usageError(['--to', 'ftp://h'])).to.equal('--to must be an http(s) URL, got "ftp://h"');
    expect(usageError(['--to', 'http://h', '--batch', '11'])).to.equal('--batch must be a whole number from 1 to 10, got "11"');
    expect(usageError(['--to', 'http://h', '--batch', '-1'])).to.equal(
      "--batch needs a value; for a value that starts with '-', write --batch=VALUE",
    );
    expect(usageError(['--to', 'http://h', '--batch=2.5'])).to.equal('--batch must be a whole number from 1 to 10, got "2.5"');
    expect(usageError(['--to', 'http://h', '--rate', '2'])).to.equal('--rate must be a number from 0 to 1, got "2"');
    expect(usageError(['--to', 'http://h', '--since', '2025-13-45T00:00:00Z'])).to.equal(
      '--since must be an RFC 3339 date-time with Z or an offset (2025-10-23T10:00:00Z), or a time before now (15m, 2h, 7d; units s m h d w), got "2025-13-45T00:00:00Z"',
    );
    expect(usageError(['--to', 'http://h', '--topic', 'long'])).to.equal('--topic must be 1..3 characters');
    expect(usageError(['--to', 'http://h', '--mode', 'c'])).to.equal('--mode must be one of a, b, got "c"');
    expect(usageError(['--to', 'http://h', '--follow=yes'])).to.equal('--follow takes no value');
    expect(usageError(['--to', 'http://h', '--batch'])).to.equal('--batch needs a value');
    expect(usageError(['--to', 'http://h', 'stray'])).to.equal('unexpected argument "stray" (this command takes flags only)');
  });

  it('with the help flag set, checks only that every flag is known', () => {
    expect(parseOptions(SPECS, ['-h', '--batch', '99'], { helpFlag: 'help' }).help).to.equal(true);
    expect(() => parseOptions(SPECS, ['-h', '--bogus'], { helpFlag: 'help' })).to.throw(UsageError, 'unknown flag --bogus');
  });

  it('generates --help from the same specs: groups, aligned columns, defaults and bounds', () => {
    const help = formatHelp({ usage: ['prog --to URL [options]'], description: 'Does things.', examples: ['prog --to http://h'] }, SPECS);
    expect(help).to.equal(
      [
        'Usage: prog --to URL [options]',
        '',
        'Does things.',
        '',
        'Options:',
        '  --from-seq N  first seq (1..100)',
        '  --batch N     per request (default: 5; 1..10)',
        '  --rate R      share (0..1)',
        '  --to URL      target (required)',
        '  --mode M      mode (default: a; one of a, b)',
        '  -f, --follow  keep going',
        '  -h, --help    this help',
        '',
        'Filters:',
        '  --since TIME  from',
        '  --topic T     topics (repeatable)',
        '',
        'Examples:',
        '  prog --to http://h',
      ].join('\n'),
    );
    expect(optionRows(SPECS)[0]).to.deep.equal({ flags: '--from-seq N', description: 'first seq (1..100)', group: 'Options' });
  });

  it('suggests a near name or a prefix, and nothing for a far one', () => {
    expect(closestName('verfy', ['verify', 'repair'])).to.equal('verify');
    expect(closestName('quarantine', ['quarantine-corrupt', 'dry-run'])).to.equal('quarantine-corrupt');
    expect(closestName('zzz', ['verify', 'repair'])).to.equal(null);
  });

  it("declares every flag that a command's usage lines mention", async () => {
    for (const entry of COMMANDS) {
      const command = await entry.load();
      const declared = new Set(optionRows(command.options).flatMap((row) => row.flags.match(/-{1,2}[a-z][a-z-]*/g) ?? []));
      for (const line of command.help.usage) {
        for (const flag of line.match(/(?<=[[\s|])-{1,2}[a-z][a-z-]*/g) ?? [])
          expect(declared, `${entry.name}: ${flag} in "${line}"`).to.include(flag);
      }
    }
  });
});
