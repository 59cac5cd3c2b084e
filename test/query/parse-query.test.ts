import { expect } from 'chai';
import { FIXED_LIMITS } from '../../src/config/config';
import { AppError } from '../../src/errors';
import { compileBodyMatcher, compileRowMatcher, splitWords, valueEquals } from '../../src/query/event-filter';
import { parseInstant } from '../../src/query/instant';
import { parseEventsQuery, parseHistogramQuery } from '../../src/query/parse-query';

const NOW = Date.parse('2026-01-01T12:00:00Z');

function problemsOf(run: () => unknown): Array<{ path: string; message: string }> {
  try {
    run();
  } catch (err) {
    expect(err).to.be.instanceOf(AppError);
    expect((err as AppError).code).to.equal('invalid_query');
    return (err as AppError).details ?? [];
  }
  throw new Error('expected invalid_query');
}

function body(event: Record<string, unknown>): string {
  return JSON.stringify({ topic: 't', event_id: 'e', timestamp: '2025-10-23T10:00:00Z', source: 's', ...event });
}

describe('parseInstant', () => {
  it('reads RFC 3339 with Z or an offset, relative times before now, and now', () => {
    expect(parseInstant('2025-10-23T11:00:00+01:00', NOW)).to.equal(Date.parse('2025-10-23T10:00:00Z'));
    expect(parseInstant('15m', NOW)).to.equal(NOW - 15 * 60_000);
    expect(parseInstant('2h', NOW)).to.equal(NOW - 2 * 3_600_000);
    expect(parseInstant('7d', NOW)).to.equal(NOW - 7 * 86_400_000);
    expect(parseInstant('30s', NOW)).to.equal(NOW - 30_000);
    expect(parseInstant('1w', NOW)).to.equal(NOW - 7 * 86_400_000);
    expect(parseInstant('now', NOW)).to.equal(NOW);
  });

  for (const bad of [
    'yesterday',
    '15',
    'm15',
    '-5m',
    '1.5h',
    '15M',
    '2025-10-23',
    '2025-10-23T10:00:00',
    '2025-13-45T10:00:00Z',
    '1234567m',
  ]) {
    it(`refuses ${JSON.stringify(bad)}`, () => {
      expect(parseInstant(bad, NOW)).to.equal(null);
    });
  }
});

describe('parseEventsQuery', () => {
  it('reads repeated topics, q words, payload field filters, order and the cursor', () => {
    const query = parseEventsQuery(
      {
        topic: ['a', 'b', 'a'],
        q: 'timeout "connection reset"',
        'payload.level': 'error',
        'payload.user.id': '123',
        order: 'desc',
        after: '42',
        limit: '5',
      },
      NOW,
    );
    expect(query).to.deep.equal({
      topics: ['a', 'b'],
      words: ['timeout', 'connection reset'],
      fields: [
        { path: ['level'], value: 'error' },
        { path: ['user', 'id'], value: '123' },
      ],
      order: 'desc',
      afterSeq: 42,
      limit: 5,
    });
  });

  it('defaults to oldest first, the default page, no filter', () => {
    expect(parseEventsQuery({}, NOW)).to.deep.equal({ limit: FIXED_LIMITS.queryLimitDefault, order: 'asc' });
  });

  it('resolves relative since/until against now', () => {
    const query = parseEventsQuery({ since: '1h', until: '15m' }, NOW);
    expect(query.sinceMs).to.equal(NOW - 3_600_000);
    expect(query.untilMs).to.equal(NOW - 900_000);
  });

  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['a bad order', { order: 'newest' }, 'order'],
    ['a since that is no instant', { since: 'yesterday' }, 'since'],
    ['an empty topic', { topic: ['a', ''] }, 'topic'],
    ['too many topics', { topic: Array.from({ length: FIXED_LIMITS.queryTopicsMax + 1 }, (_, i) => `t${i}`) }, 'topic'],
    ['q given twice', { q: ['a', 'b'] }, 'q'],
    ['a q too long', { q: 'x'.repeat(FIXED_LIMITS.queryTextLengthMax + 1) }, 'q'],
    ['too many words', { q: Array.from({ length: FIXED_LIMITS.queryWordsMax + 1 }, (_, i) => `w${i}`).join(' ') }, 'q'],
    ['an empty payload path', { 'payload.': 'x' }, 'payload.'],
    ['an empty path segment', { 'payload.a..b': 'x' }, 'payload.a..b'],
    [
      'a path too deep',
      { [`payload.${Array.from({ length: FIXED_LIMITS.queryFieldDepthMax + 1 }, () => 'k').join('.')}`]: 'x' },
      'payload.k',
    ],
    [
      'too many field filters',
      Object.fromEntries(Array.from({ length: FIXED_LIMITS.queryFieldFiltersMax + 1 }, (_, i) => [`payload.f${i}`, 'x'])),
      'payload.*',
    ],
    ['a cursor that is no seq', { after: 'abc' }, 'after'],
  ];
  for (const [name, raw, path] of cases) {
    it(`answers invalid_query naming the parameter for ${name}`, () => {
      const problems = problemsOf(() => parseEventsQuery(raw, NOW));
      expect(problems.map((p) => p.path).some((p) => p.startsWith(path))).to.equal(true, JSON.stringify(problems));
    });
  }

  it('lists every problem of a query at once', () => {
    const problems = problemsOf(() => parseEventsQuery({ order: 'x', limit: '0', since: 'soon' }, NOW));
    expect(problems.map((p) => p.path).sort()).to.deep.equal(['limit', 'order', 'since']);
  });
});

describe('parseHistogramQuery', () => {
  it('takes the filter and buckets (default 60)', () => {
    expect(parseHistogramQuery({ topic: 'a', since: '1h' }, NOW)).to.deep.equal({
      filter: { topics: ['a'], sinceMs: NOW - 3_600_000 },
      buckets: 60,
    });
    expect(parseHistogramQuery({ buckets: '10' }, NOW).buckets).to.equal(10);
  });

  for (const [name, raw] of [
    ['zero buckets', { buckets: '0' }],
    ['too many buckets', { buckets: String(FIXED_LIMITS.histogramBucketsMax + 1) }],
    ['an until not after since', { since: '1h', until: '2h' }],
  ] as const) {
    it(`answers invalid_query for ${name}`, () => {
      expect(problemsOf(() => parseHistogramQuery(raw, NOW))).to.have.length(1);
    });
  }
});

describe('event filter', () => {
  it('splits q into words and double-quoted phrases', () => {
    expect(splitWords('  a  "b c"  d" ')).to.deep.equal(['a', 'b c', 'd"']);
    expect(splitWords('""')).to.deep.equal([]);
  });

  it('compares payload values as text: strings exactly, numbers as numbers, booleans and null by name', () => {
    expect(valueEquals('error', 'error')).to.equal(true);
    expect(valueEquals('Error', 'error')).to.equal(false);
    expect(valueEquals(123, '123')).to.equal(true);
    expect(valueEquals(1.5, '1.50')).to.equal(true);
    expect(valueEquals('123', '123')).to.equal(true);
    expect(valueEquals(123, '0x7b')).to.equal(false);
    expect(valueEquals(true, 'true')).to.equal(true);
    expect(valueEquals(null, 'null')).to.equal(true);
    expect(valueEquals({ a: 1 }, '[object Object]')).to.equal(false);
    expect(valueEquals(['x'], 'x')).to.equal(false);
  });

  it('finds every word in topic, source, event_id or any payload value, case-insensitively', () => {
    const match = compileBodyMatcher({ words: ['TIMEOUT', 'db-1'] });
    expect(match(body({ source: 'db-1', payload: { msg: 'Read Timeout after 5s' } }))).to.equal(true);
    expect(match(body({ source: 'db-2', payload: { msg: 'Read Timeout after 5s' } }))).to.equal(false);
    expect(match(body({ payload: { nested: [{ deep: 'xtimeoutx' }], host: 'DB-1' } }))).to.equal(true);
    // Keys and the timestamp are not searched.
    expect(compileBodyMatcher({ words: ['timeout'] })(body({ payload: { timeout: 5 } }))).to.equal(false);
    expect(compileBodyMatcher({ words: ['2025'] })(body({}))).to.equal(false);
    // A number value is searched as its text; a word must lie inside one value.
    expect(compileBodyMatcher({ words: ['404'] })(body({ payload: { status: 404 } }))).to.equal(true);
    expect(compileBodyMatcher({ words: ['ab'] })(body({ payload: { x: 'a', y: 'b' } }))).to.equal(false);
  });

  it('matches words with quotes, backslashes and non-ASCII letters in either case', () => {
    expect(compileBodyMatcher({ words: ['"quoted"'] })(body({ payload: { m: 'say "QUOTED" now' } }))).to.equal(true);
    expect(compileBodyMatcher({ words: ['c:\\temp'] })(body({ payload: { m: 'C:\\TEMP\\x' } }))).to.equal(true);
    expect(compileBodyMatcher({ words: ['ärger'] })(body({ payload: { m: 'ÄRGER' } }))).to.equal(true);
  });

  it('applies payload field filters by dotted path, own keys only', () => {
    const match = compileBodyMatcher({ fields: [{ path: ['user', 'id'], value: '123' }] });
    expect(match(body({ payload: { user: { id: 123 } } }))).to.equal(true);
    expect(match(body({ payload: { user: { id: '123' } } }))).to.equal(true);
    expect(match(body({ payload: { user: { id: 124 } } }))).to.equal(false);
    expect(match(body({ payload: { 'user.id': 123 } }))).to.equal(false);
    expect(match(body({}))).to.equal(false);
    expect(
      compileBodyMatcher({ fields: [{ path: ['__proto__', 'x'], value: '1' }] })('{"topic":"t","payload":{"__proto__":{"x":1}}}'),
    ).to.equal(true);
    expect(compileBodyMatcher({ fields: [{ path: ['constructor'], value: 'x' }] })(body({ payload: {} }))).to.equal(false);
  });

  it('tests a row on topics, source and the time range too', () => {
    const row = { topic: 'a', source: 's', tsMs: 1000, body: body({ topic: 'a' }) };
    expect(compileRowMatcher({ topics: ['b', 'a'], source: 's', sinceMs: 1000, untilMs: 1001 })(row)).to.equal(true);
    expect(compileRowMatcher({ topics: ['b'] })(row)).to.equal(false);
    expect(compileRowMatcher({ untilMs: 1000 })(row)).to.equal(false);
    expect(compileRowMatcher({ source: 'x' })(row)).to.equal(false);
  });
});
