import { expect } from 'chai';
import fc from 'fast-check';
import { digestJsonParts, isoFromNanos, setOwn } from '../../src/protocols/common';

describe('isoFromNanos', () => {
  it('keeps every nanosecond digit and names the same millisecond as Date (property)', () => {
    fc.assert(
      fc.property(fc.bigInt(0n, BigInt(Date.parse('9999-12-31T23:59:59.999Z')) * 1_000_000n), (nanos) => {
        const iso = isoFromNanos(nanos)!;
        expect(Date.parse(iso)).to.equal(Number(nanos / 1_000_000n));
        const fraction = /\.(\d+)Z$/.exec(iso)![1]!;
        expect(BigInt(fraction.padEnd(9, '0'))).to.equal(nanos % 1_000_000_000n);
      }),
      { numRuns: 500 },
    );
    expect(isoFromNanos(3n * 10n ** 20n)).to.equal(null);
    expect(isoFromNanos(-1n)).to.equal(null);
  });
});

describe('digestJsonParts and setOwn', () => {
  it('digests the parts as one stream of JSON texts: moving a boundary changes the digest', () => {
    expect(digestJsonParts(['"ab"', '"c"'])).not.to.equal(digestJsonParts(['"a"', '"bc"']));
    expect(digestJsonParts(['"ab"', '"c"'])).to.equal(digestJsonParts(['"ab"', '"c"']));
  });

  it('keeps __proto__ as data', () => {
    const target: Record<string, unknown> = {};
    setOwn(target, '__proto__', { polluted: true });
    expect(Object.getPrototypeOf(target)).to.equal(Object.prototype);
    expect(JSON.stringify(target)).to.equal('{"__proto__":{"polluted":true}}');
  });
});
