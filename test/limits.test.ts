import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { SETTINGS } from '../src/config/config';
import { LIMITS } from '../src/limits';

const REPO_ROOT = path.resolve(__dirname, '../..');

/** A setting whose name says it bounds something: it must be in the limits table. */
const BOUNDING_SETTING = /(_MAX|_MAX_SIZE|_TIMEOUT_MS)$/;

describe('LIMITS (the table docs/operations.md is generated from)', () => {
  it('points only at settings that exist', () => {
    const names = new Set(SETTINGS.map((s) => s.name));
    const unknown = LIMITS.flatMap((l) => (l.setting !== undefined && !names.has(l.setting) ? [l.setting] : []));
    expect(unknown).to.deep.equal([]);
  });

  it('lists every setting that bounds something', () => {
    const listed = new Set(LIMITS.map((l) => l.setting));
    const missing = SETTINGS.filter((s) => BOUNDING_SETTING.test(s.name) && !listed.has(s.name)).map((s) => s.name);
    expect(missing, 'add these to LIMITS in src/limits.ts').to.deep.equal([]);
  });

  it('names, for each fixed bound, a file that declares its constant', () => {
    for (const limit of LIMITS) {
      if (limit.fixed === undefined) continue;
      const source = fs.readFileSync(path.join(REPO_ROOT, limit.fixed.declaredIn), 'utf8');
      expect(source, `${limit.fixed.declaredIn} declares ${limit.fixed.constant}`).to.match(
        new RegExp(`export const ${limit.fixed.constant}\\b`),
      );
    }
  });

  it('gives each limit either a setting or a fixed bound, and what happens when it is hit', () => {
    for (const limit of LIMITS) {
      expect((limit.setting === undefined) !== (limit.fixed === undefined), limit.bounds).to.equal(true);
      expect(limit.whenHit, limit.bounds).not.to.equal('');
    }
  });
});
