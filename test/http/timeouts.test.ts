import { expect } from 'chai';
import net from 'node:net';
import { startService, type RunningService } from '../../src/server';
import { silentLogger, testConfig } from '../helpers/service';
import { statsBody } from '../../src/http/status';

/** Opens a raw connection, writes `first`, and reports how the server ended it and when. */
function trickle(port: number, first: string): Promise<{ elapsedMs: number; answer: string }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    let answer = '';
    const socket = net.connect(port, '127.0.0.1', () => socket.write(first));
    socket.on('data', (chunk) => (answer += chunk.toString()));
    socket.on('close', () => resolve({ elapsedMs: Date.now() - started, answer }));
    socket.on('error', reject);
    // A bound for the test itself: the server must act well before this.
    setTimeout(() => socket.destroy(new Error('server never cut the slow client off')), 10_000).unref();
  });
}

describe('slow clients', function () {
  this.timeout(20_000);
  let service: RunningService;

  before(async () => {
    const config = testConfig({ PORT: '0', HOST: '127.0.0.1', HEADERS_TIMEOUT_MS: '600', REQUEST_TIMEOUT_MS: '1200' });
    service = await startService(config, { logger: silentLogger });
    await service.ready;
  });
  after(async () => {
    await service.stop();
  });

  it('cuts off a client that trickles its headers (HEADERS_TIMEOUT_MS)', async () => {
    const { elapsedMs, answer } = await trickle(service.port, 'POST /publish HTTP/1.1\r\nHost: x\r\n');
    expect(answer).to.match(/^HTTP\/1\.1 408/);
    expect(elapsedMs).to.be.within(500, 3000);
  });

  it('cuts off a client that trickles its body (REQUEST_TIMEOUT_MS)', async () => {
    const { elapsedMs, answer } = await trickle(
      service.port,
      'POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"topic":',
    );
    expect(answer).to.match(/^HTTP\/1\.1 408/);
    expect(elapsedMs).to.be.within(1000, 4000);
    expect(statsBody(service.aggregator)).to.include({ received: 0 });
  });
});
