import { expect } from 'chai';
import path from 'node:path';
import { ConfigError, loadConfig } from '../../src/config/config';

describe('loadConfig', () => {
  it('uses the seed defaults: port 8080, data/ with the index inside it', () => {
    const config = loadConfig({});
    expect(config.port).to.equal(8080);
    expect(config.dataDir).to.equal(path.resolve('data'));
    expect(config.walDir).to.equal(path.resolve('data', 'wal'));
    expect(config.databasePath).to.equal(path.resolve('data', 'index.db'));
    expect(config.logLevel).to.equal('info');
    expect(Object.isFrozen(config)).to.equal(true);
  });

  it('honours the seed names DATABASE_PATH, LOG_LEVEL (any case) and QUEUE_MAX_SIZE', () => {
    const config = loadConfig({ DATABASE_PATH: 'data/dedup.db', LOG_LEVEL: 'DEBUG', QUEUE_MAX_SIZE: '10000' });
    expect(config.databasePath).to.equal(path.resolve('data/dedup.db'));
    expect(config.logLevel).to.equal('debug');
    expect(config.queueMaxSize).to.equal(10000);
  });

  for (const [name, value, pattern] of [
    ['PORT', '80a', /invalid setting PORT="80a": expected a whole number from 0 to 65535/],
    ['PORT', '70000', /invalid setting PORT="70000"/],
    ['QUEUE_MAX_SIZE', '0', /invalid setting QUEUE_MAX_SIZE="0"/],
    ['LOG_LEVEL', 'loud', /invalid setting LOG_LEVEL="loud": expected one of/],
    ['DATA_DIR', ' ', /invalid setting DATA_DIR: must not be empty/],
    ['BODY_BYTES_MAX', '-1', /invalid setting BODY_BYTES_MAX="-1"/],
  ] as const) {
    it(`rejects ${name}=${JSON.stringify(value)} with one line naming it`, () => {
      expect(() => loadConfig({ [name]: value })).to.throw(ConfigError, pattern);
    });
  }

  it('rejects a headers timeout longer than the request timeout', () => {
    expect(() => loadConfig({ HEADERS_TIMEOUT_MS: '20000', REQUEST_TIMEOUT_MS: '10000' })).to.throw(ConfigError, /HEADERS_TIMEOUT_MS/);
  });
});
