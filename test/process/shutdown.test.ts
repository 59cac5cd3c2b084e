import { expect } from 'chai';
import http from 'node:http';
import { startServerProcess } from '../helpers/server-process';
import { makeTempDir } from '../helpers/temp-dir';

/** GET over one shared keep-alive agent; resolves with the status, or 0 when the connection failed. */
function get(agent: http.Agent, url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
  });
}

describe('graceful shutdown', function () {
  this.timeout(30_000);

  it('exits 0 well before SHUTDOWN_TIMEOUT_MS while a keep-alive client keeps sending', async () => {
    const server = await startServerProcess(makeTempDir(), { SHUTDOWN_TIMEOUT_MS: '8000', KEEP_ALIVE_TIMEOUT_MS: '5000' });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    let sending = true;
    // A client that never lets its connection go idle: one request every 100 ms.
    const client = (async () => {
      while (sending) {
        await get(agent, `${server.url}/stats`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    try {
      await get(agent, `${server.url}/stats`);
      const started = Date.now();
      const exit = await server.kill('SIGTERM');
      expect(exit.code).to.equal(0);
      expect(Date.now() - started).to.be.below(4000);
    } finally {
      sending = false;
      await client;
      agent.destroy();
      await server.kill('SIGKILL');
    }
  });
});
