import express from 'express';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * The bare baseline: an express app that parses the same JSON body with express.json and
 * answers 200 with a small JSON, touching no disk. Prints `{"port":N}` once listening.
 */
function main(): void {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use('/publish', express.json({ limit: 1024 * 1024 }));
  app.post('/publish', (req, res) => {
    const body = req.body as { events?: unknown[] };
    const received = Array.isArray(body.events) ? body.events.length : 1;
    res.status(200).json({ received, accepted: received, duplicates: 0 });
  });
  const server = http.createServer(app);
  server.keepAliveTimeout = 5000;
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
  });
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}

main();
