import { expect } from 'chai';
import { jsonDepth } from '../../src/http/publish';

describe('jsonDepth', () => {
  it('counts the levels of objects and arrays (a scalar is 0)', () => {
    expect(jsonDepth('text', 32)).to.equal(0);
    expect(jsonDepth(null, 32)).to.equal(0);
    expect(jsonDepth({}, 32)).to.equal(1);
    expect(jsonDepth({ a: 1, b: 'x' }, 32)).to.equal(1);
    expect(jsonDepth(JSON.parse('{"a":{"b":[1,{"c":[[{"d":1}]]}]},"e":[{"f":{"g":2}}]}'), 32)).to.equal(7);
    expect(jsonDepth(JSON.parse('[[[]],[[[[]]]]]'), 32)).to.equal(5);
  });

  it('says "above the bound" for nesting past it, without walking it all (no stack overflow at 200,000 levels)', () => {
    let deep: unknown = {};
    for (let i = 0; i < 200_000; i += 1) deep = i % 2 === 0 ? [deep] : { k: deep };
    expect(jsonDepth(deep, 32)).to.be.above(32);
    expect(jsonDepth(JSON.parse('['.repeat(33) + ']'.repeat(33)), 32)).to.be.above(32);
    expect(jsonDepth(JSON.parse('['.repeat(32) + ']'.repeat(32)), 32)).to.equal(32);
  });
});
