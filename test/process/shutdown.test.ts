import { expect } from 'chai';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { makeEvent } from '../helpers/events';
import { startServerProcess } from '../harness/server-process';
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

  it('answers a request in flight at SIGTERM with Connection: close, so a keep-alive client cannot hold the shutdown', async () => {
    const server = await startServerProcess(makeTempDir(), { SHUTDOWN_TIMEOUT_MS: '8000', KEEP_ALIVE_TIMEOUT_MS: '5000' });
    const socket = net.connect(server.port, '127.0.0.1');
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('error', () => undefined);
    const socketClosed = once(socket, 'close');
    await once(socket, 'connect');
    let pinger: NodeJS.Timeout | undefined;
    try {
      // A publish whose body is still coming when SIGTERM arrives: not idle, so server.close() keeps it.
      const body = JSON.stringify(makeEvent('shutdown', 'in-flight'));
      const half = Math.floor(body.length / 2);
      socket.write(
        `POST /publish HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, half)}`,
      );
      await new Promise((resolve) => setTimeout(resolve, 200));
      server.child.kill('SIGTERM');
      await server.waitForOutput('shutting down', 'the server to start its shutdown');
      socket.write(body.slice(half));
      // Then, as a keep-alive client does, more requests on the same socket for as long as it stays open.
      pinger = setInterval(() => {
        if (socket.writable) socket.write('GET /health HTTP/1.1\r\nHost: test\r\n\r\n');
      }, 100);
      const exit = await server.exited;
      expect(exit.code, server.output()).to.equal(0);
      await socketClosed;
      const answers = received.split(/(?=HTTP\/1\.1 )/);
      // The in-flight publish was finished (acknowledged), and its connection closed with it.
      expect(answers).to.have.length(1);
      expect(answers[0]).to.match(/^HTTP\/1\.1 200 /);
      expect(answers[0]?.toLowerCase()).to.include('connection: close');
    } finally {
      clearInterval(pinger);
      socket.destroy();
      await server.kill('SIGKILL');
    }
  });

  it('exits 0 while a live-tail client reopens its stream as soon as it ends', async () => {
    // A live tail never ends by itself: the stop must end it, close its connection, and
    // refuse the reopened stream, or the client holds the shutdown until SHUTDOWN_TIMEOUT_MS.
    const server = await startServerProcess(makeTempDir(), { SHUTDOWN_TIMEOUT_MS: '8000', KEEP_ALIVE_TIMEOUT_MS: '5000' });
    const answers: Array<{ status: number; connection: string | null }> = [];
    let streaming = true;
    let opened!: () => void;
    const firstOpen = new Promise<void>((resolve) => (opened = resolve));
    // As `logagg tail -f --url` does: fetch (undici keeps the connection), read to the end, reopen.
    const client = (async () => {
      while (streaming) {
        try {
          const res = await fetch(`${server.url}/events/stream`, { headers: { accept: 'text/event-stream' } });
          answers.push({ status: res.status, connection: res.headers.get('connection') });
          if (res.status === 200) opened();
          await res.arrayBuffer();
          if (res.status !== 200) await new Promise((resolve) => setTimeout(resolve, 50));
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    })();
    try {
      await firstOpen;
      const exit = await server.kill('SIGTERM');
      expect(exit.code, server.output()).to.equal(0);
      expect(answers[0]?.status).to.equal(200);
      // Whatever reached the server after SIGTERM was refused and its connection closed.
      for (const later of answers.slice(1)) expect(later).to.deep.equal({ status: 503, connection: 'close' });
    } finally {
      streaming = false;
      await client;
      await server.kill('SIGKILL');
    }
  });

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
