import { expect } from 'chai';
import pino from 'pino';
import { Writable } from 'node:stream';
import { Aggregator, type ValidEvent } from '../../src/ingest/aggregator';
import { testConfig } from '../helpers/service';

function capture(level: string) {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level }, stream), lines };
}

const event = (payload: Record<string, unknown>): ValidEvent => ({
  event: { topic: 'user.login', event_id: 'evt-001', timestamp: '2025-10-23T10:00:00Z', source: 'auth-service', payload },
  tsMs: 0,
});

describe('duplicate logging', () => {
  it('logs each dropped duplicate with topic, event_id and source at debug', async () => {
    const { logger, lines } = capture('debug');
    const aggregator = new Aggregator({ config: testConfig(), logger });
    await aggregator.open();
    await aggregator.publish([event({ a: 1 })]);
    await aggregator.publish([event({ a: 1 })]);
    await aggregator.close();
    const dup = lines.find((l) => l.msg === 'duplicate event detected and dropped');
    expect(dup).to.include({ level: 20, topic: 'user.login', event_id: 'evt-001', source: 'auth-service', seq: 1 });
  });

  it('stays quiet about plain retries at info, but warns about a conflicting duplicate', async () => {
    const { logger, lines } = capture('info');
    const aggregator = new Aggregator({ config: testConfig(), logger });
    await aggregator.open();
    await aggregator.publish([event({ a: 1 })]);
    await aggregator.publish([event({ a: 1 })]);
    expect(lines.filter((l) => String(l.msg).includes('duplicate'))).to.deep.equal([]);
    await aggregator.publish([event({ a: 2 })]);
    await aggregator.close();
    const conflict = lines.find((l) => String(l.msg).startsWith('conflicting duplicate'));
    expect(conflict).to.include({ level: 40, topic: 'user.login', event_id: 'evt-001', source: 'auth-service' });
  });
});
