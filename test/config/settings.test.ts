import { expect } from 'chai';
import { ConfigError, loadConfig, SETTINGS } from '../../src/config/config';

/** The environment loadConfig sees for a setting's documented default ('$DATA_DIR' spelled out). */
function defaultValue(spec: (typeof SETTINGS)[number]): string {
  const dataDir = SETTINGS.find((s) => s.name === 'DATA_DIR')!.default;
  return spec.default.replace('$DATA_DIR', dataDir);
}

/** The message loadConfig throws for `env`, or null when it accepts it. */
function configErrorOf(env: Record<string, string>): string | null {
  try {
    loadConfig(env);
    return null;
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
}

describe('SETTINGS (the table docs/operations.md is generated from)', () => {
  it('names every variable loadConfig reads, and nothing else', () => {
    const read = new Set<string>();
    const env = new Proxy(
      {},
      {
        get(_target, name) {
          if (typeof name === 'string') read.add(name);
          return undefined;
        },
      },
    );
    loadConfig(env);
    const listed = new Set(SETTINGS.map((s) => s.name));
    expect(
      [...read].filter((name) => !listed.has(name)),
      'add these to SETTINGS in src/config/config.ts',
    ).to.deep.equal([]);
    expect(
      [...listed].filter((name) => !read.has(name)),
      'loadConfig does not read these SETTINGS',
    ).to.deep.equal([]);
  });

  it('lists each variable once', () => {
    const names = SETTINGS.map((s) => s.name);
    expect(new Set(names).size).to.equal(names.length);
  });

  for (const spec of SETTINGS) {
    it(`${spec.name}: the documented default is what an unset variable means`, () => {
      expect(loadConfig({ [spec.name]: defaultValue(spec) })).to.deep.equal(loadConfig({}));
    });

    const range = spec.range;
    if (range === undefined) continue;
    it(`${spec.name}: accepts ${range.min}..${range.max} and refuses one past either end`, () => {
      // The message states loadConfig's own bounds, so both ends are checked against the table.
      for (const value of [range.min - 1, range.max + 1]) {
        const bounds = `expected a whole number from ${range.min} to ${range.max}`;
        const expected = `invalid setting ${spec.name}="${value}": ${bounds}`;
        expect(configErrorOf({ [spec.name]: String(value) })).to.equal(expected);
      }
      // Other rules (HEADERS_TIMEOUT_MS <= REQUEST_TIMEOUT_MS) may refuse an end; the range must not.
      for (const value of [range.min, range.max]) {
        expect(configErrorOf({ [spec.name]: String(value) }) ?? '').not.to.include('expected a whole number');
      }
    });
  }
});
