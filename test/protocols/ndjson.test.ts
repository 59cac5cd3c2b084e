import { expect } from 'chai';
import { parseNdjson } from '../../src/protocols/ndjson';

describe('parseNdjson', () => {
  it('skips blank lines and CRLF, and names the line of a bad one with its position among the events', () => {
    expect(parseNdjson('{"a":1}\r\n\n{"b":2}', 10, 'event').map((l) => [l.line, l.value])).to.deep.equal([
      [1, { a: 1 }],
      [3, { b: 2 }],
    ]);
    try {
      parseNdjson('{}\n\n{"x":\n', 10, 'event');
      expect.fail('no error');
    } catch (err: any) {
      expect(err.code).to.equal('invalid_json');
      expect(err.details[0]).to.deep.include({ index: 1, path: 'line 3' });
    }
    expect(() => parseNdjson('1\n2\n3\n', 2, 'event')).to.throw(/more than 2 event lines/);
  });

  it('refuses a number it cannot store as sent, naming its line, as a JSON body does', () => {
    for (const literal of ['12345678901234567890', '-0', '1e400']) {
      try {
        parseNdjson(`{"a":1}\n{"n":${literal}}\n`, 10, 'event');
        expect.fail(`no error for ${literal}`);
      } catch (err: any) {
        expect(err.code, literal).to.equal('number_not_kept');
        expect(err.details[0]).to.deep.include({ index: 1, path: 'line 2' });
      }
    }
    expect(parseNdjson('{"n":1.5}\n', 10, 'event')[0]!.value).to.deep.equal({ n: 1.5 });
  });
});
