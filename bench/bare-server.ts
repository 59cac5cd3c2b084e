import express from 'express';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * The bare baselines: `express` (default) parses the same JSON body with express.json;
 * `http` is node:http alone, reading the body and JSON.parse-ing it. Both answer 200 with a
 * small JSON and touch no disk. argv[2] picks one. Prints `{"port":N}` once listening.
 */
function expressServer(): http.Server {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use('/publish', express.json({ limit: 1024 * 1024 }));
  app.post('/publish', (req, res) => {
    const body = req.body as { events?: unknown[] };
    const received = Array.isArray(body.events) ? body.events.length : 1;
    res.status(200).json({ received, accepted: received, duplicates: 0 });
  });
  return http.createServer(app);
}

function nodeHttpServer(): http.Server {
  return http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { events?: unknown[] };
      const received = Array.isArray(body.events) ? body.events.length : 1;
      const answer = JSON.stringify({ received, accepted: received, duplicates: 0 });
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(answer) });
      res.end(answer);
    });
  });
}

function main(): void {
  const server = process.argv[2] === 'http' ? nodeHttpServer() : expressServer();
  server.keepAliveTimeout = 5000;
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
  });
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}

main();
