import { expect } from 'chai';
import { KeyTable, keyHash } from '../../src/index/key-table';

describe('keyHash', () => {
  it('gives equal keys equal hashes and is a safe integer', () => {
    const hash = keyHash('orders', 'evt-1');
    expect(hash).to.equal(keyHash('orders', 'evt-1'));
    expect(Number.isSafeInteger(hash)).to.equal(true);
    expect(hash).to.be.at.least(0);
  });

  it('tells apart keys that concatenate to the same text', () => {
    expect(keyHash('ab', 'c')).to.not.equal(keyHash('a', 'bc'));
  });

  it('spreads 200k distinct keys with no collision', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 200_000; i += 1) seen.add(keyHash(`topic-${i % 7}`, `event-${i}`));
    expect(seen.size).to.equal(200_000);
  });
});

describe('KeyTable', () => {
  it('answers lacks() for a hash never added and finds the seq of one that was', () => {
    const table = new KeyTable();
    table.add(12345, 7);
    expect(table.lacks(999)).to.equal(true);
    expect(table.lacks(12345)).to.equal(false);
    expect(table.find(12345, () => true)).to.equal(7);
  });

  it('keeps every seq of a shared hash so the caller can pick the right key', () => {
    const table = new KeyTable();
    table.add(42, 1);
    table.add(42, 2);
    table.add(42, 3);
    const offered: number[] = [];
    expect(table.find(42, (seq) => (offered.push(seq), seq === 3))).to.equal(3);
    expect(offered.sort()).to.deep.equal([1, 2, 3]);
    expect(table.find(42, () => false)).to.equal(0);
  });

  it('keeps every entry while growing far past its first capacity', () => {
    const table = new KeyTable();
    for (let seq = 1; seq <= 50_000; seq += 1) table.add(keyHash('t', String(seq)), seq);
    expect(table.size).to.equal(50_000);
    for (let seq = 1; seq <= 50_000; seq += 997) {
      expect(table.find(keyHash('t', String(seq)), (candidate) => candidate === seq)).to.equal(seq);
    }
  });
});
