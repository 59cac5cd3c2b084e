import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** How the proxy fails a request it has forwarded: the server stored it, the client never learns so. */
export type ProxyFailure = 'answer-503' | 'drop-connection';

/** A forwarding HTTP proxy in front of a service, failing the first requests on purpose. */
export interface FlakyProxy {
  url: string;
  /** Requests forwarded to the service so far (failed ones included). */
  forwarded(): number;
  /** Requests whose answer was replaced by the failure. */
  failed(): number;
  /** Path and Content-Type of every request received, in order. */
  requests(): Array<{ path: string; contentType: string | undefined }>;
  close(): Promise<void>;
}

/**
 * Starts a proxy that forwards every request to `target` unchanged. The first `failFirst`
 * requests whose path starts with `pathPrefix` are forwarded and answered by the service,
 * but the client gets `failure` instead of that answer: a 503 with Retry-After: 1, or its
 * connection closed. A client that retries then re-sends a batch the service already stored.
 */
export async function startFlakyProxy(
  target: string,
  options: { failFirst: number; failure: ProxyFailure; pathPrefix?: string },
): Promise<FlakyProxy> {
  const targetUrl = new URL(target);
  let forwarded = 0;
  let failed = 0;
  const seen: Array<{ path: string; contentType: string | undefined }> = [];
  const server = http.createServer((req, res) => {
    seen.push({ path: req.url ?? '', contentType: req.headers['content-type'] });
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const headers = { ...req.headers, host: targetUrl.host };
      delete headers.connection;
      const upstream = http.request(
        { host: targetUrl.hostname, port: targetUrl.port, method: req.method, path: req.url, headers },
        (answer) => {
          const body: Buffer[] = [];
          answer.on('data', (chunk: Buffer) => body.push(chunk));
          answer.on('end', () => {
            forwarded += 1;
            const shouldFail = failed < options.failFirst && (req.url ?? '').startsWith(options.pathPrefix ?? '/');
            if (shouldFail) {
              failed += 1;
              if (options.failure === 'drop-connection') {
                req.socket.destroy();
                return;
              }
              res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' });
              res.end(JSON.stringify({ error: 'proxy', message: 'forced failure after forwarding' }));
              return;
            }
            const out = { ...answer.headers };
            delete out.connection;
            delete out['keep-alive'];
            res.writeHead(answer.statusCode ?? 502, out);
            res.end(Buffer.concat(body));
          });
        },
      );
      upstream.on('error', (err) => {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`proxy: ${err.message}`);
      });
      upstream.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    forwarded: () => forwarded,
    failed: () => failed,
    requests: () => [...seen],
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
