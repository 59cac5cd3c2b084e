import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { expect } from 'chai';
import { fetchAllEvents, getJson } from '../helpers/events';
import { startInProcessService, type InProcessService } from '../helpers/in-process-service';
import { makeTempDir } from '../helpers/temp-dir';
import { ChildProgram } from '../harness/server-process';
import { waitFor } from '../../src/cli/wait';

/** The shipped configuration, used unchanged; the test sets its environment variables. */
const SHIPPED_CONFIG = path.resolve(__dirname, '../../../docker/syslog-ng/log-aggregator.conf');
const PUBLISH_KEY = 'syslog-ng-key-0123456789abcdef';

/** Why syslog-ng cannot run here, or null when it can (binary and its http module present). */
function syslogNgMissing(): string | null {
  const version = spawnSync('syslog-ng', ['--version'], { encoding: 'utf8' });
  if (version.error !== undefined || version.status !== 0) return 'syslog-ng is not installed';
  const modules = spawnSync('syslog-ng', ['--module-registry'], { encoding: 'utf8' });
  if (!/\bhttp\b/.test(modules.stdout ?? '')) return "syslog-ng's http module is not installed";
  return null;
}

/** The environment without proxy settings, so syslog-ng's libcurl talks to loopback directly. */
function withoutProxy(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const proxyNames = new Set(['http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'all_proxy', 'ALL_PROXY']);
  const kept = Object.entries(env).filter(([name]) => !proxyNames.has(name));
  return { ...Object.fromEntries(kept), NO_PROXY: '127.0.0.1,localhost', no_proxy: '127.0.0.1,localhost' };
}

/** A free loopback TCP port (bound and released; syslog-ng binds it right after). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * A stand-in for the service's front door: answers the first request 503 + Retry-After, as
 * the service does while it recovers, then passes every request through to the service.
 * Records each body it saw and what it answered.
 */
async function startFlakyProxy(
  targetUrl: string,
): Promise<{ url: string; seen: Array<{ status: number; body: string }>; close(): Promise<void> }> {
  const seen: Array<{ status: number; body: string }> = [];
  const target = new URL(targetUrl);
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (seen.length === 0) {
        seen.push({ status: 503, body: body.toString() });
        res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' });
        res.end(JSON.stringify({ error: 'recovering', message: 'recovery is replaying the log' }));
        return;
      }
      const forward = http.request(
        { host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers },
        (answer) => {
          seen.push({ status: answer.statusCode ?? 0, body: body.toString() });
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      forward.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    seen,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Writes lines to syslog-ng's TCP source and closes the connection. */
async function sendLines(port: number, lines: string[]): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.end(lines.map((line) => `${line}\n`).join(''), () => resolve()));
    socket.on('error', reject);
  });
}

describe("syslog-ng's http() destination (docker/syslog-ng/log-aggregator.conf)", function () {
  let svc: InProcessService;
  let proxy: Awaited<ReturnType<typeof startFlakyProxy>>;
  let syslogNg: ChildProgram | null = null;
  let listenPort = 0;

  before(async function () {
    const missing = syslogNgMissing();
    if (missing !== null) {
      const message = `${missing}: install it with "apt-get install -y syslog-ng-core syslog-ng-mod-http"`;
      if (process.env.CI === 'true') throw new Error(`${message} (CI must run this test)`);
      console.log(`    (syslog-ng shipper test skipped: ${message})`);
      this.skip();
    }
    svc = await startInProcessService({ API_KEYS_PUBLISH: PUBLISH_KEY });
    proxy = await startFlakyProxy(svc.url);
    const dir = makeTempDir();
    listenPort = await freePort();
    syslogNg = new ChildProgram(
      'syslog-ng',
      [
        '-F',
        '--no-caps',
        '-f',
        SHIPPED_CONFIG,
        '-R',
        path.join(dir, 'syslog-ng.persist'),
        '-p',
        path.join(dir, 'syslog-ng.pid'),
        '-c',
        path.join(dir, 'syslog-ng.ctl'),
      ],
      {
        env: {
          ...withoutProxy(process.env),
          LOGAGG_URL: `${proxy.url}/publish`,
          LOGAGG_API_KEY: PUBLISH_KEY,
          LOGAGG_LISTEN_IP: '127.0.0.1',
          LOGAGG_LISTEN_PORT: String(listenPort),
        },
      },
    );
    await waitFor(
      () => {
        if (!syslogNg!.running) throw new Error(`syslog-ng exited ${syslogNg!.child.exitCode}: ${syslogNg!.output()}`);
        return new Promise<boolean>((resolve) => {
          const probe = net.connect(listenPort, '127.0.0.1', () => {
            probe.destroy();
            resolve(true);
          });
          probe.on('error', () => resolve(false));
        });
      },
      { timeoutMs: 15_000, what: 'syslog-ng to listen' },
    );
  });

  after(async () => {
    await syslogNg?.kill('SIGTERM');
    await proxy?.close();
    await svc?.stop();
  });

  // RFC 5424 lines as an application's syslog client writes them (one per line over TCP).
  const LINES = [1, 2, 3, 4, 5].map(
    (i) => `<${i === 3 ? 11 : 14}>1 2025-10-23T10:00:0${i}.250Z web-1 checkout ${4000 + i} ORDER - order ${i} paid "in full"`,
  );

  it('delivers a batch as {"events": [...]}, retrying after a 503, and every event arrives as sent', async () => {
    await sendLines(listenPort, LINES);
    await waitFor(async () => (await fetchAllEvents(svc.url, 'syslog.checkout')).length === 5, {
      timeoutMs: 20_000,
      what: `the syslog-ng batch to arrive (syslog-ng said: ${syslogNg?.output()})`,
    });

    // The first POST got 503 and syslog-ng sent the very same batch again.
    expect(proxy.seen.map((s) => s.status)).to.deep.equal([503, 200]);
    expect(proxy.seen[1]!.body).to.equal(proxy.seen[0]!.body);
    const batch = JSON.parse(proxy.seen[0]!.body) as { events: unknown[] };
    expect(batch.events).to.have.length(5);

    const stored = await fetchAllEvents(svc.url, 'syslog.checkout');
    expect(stored.map((e) => (e.payload as any).message)).to.deep.equal([1, 2, 3, 4, 5].map((i) => `order ${i} paid "in full"`));
    expect(stored[2]).to.deep.include({
      topic: 'syslog.checkout',
      timestamp: '2025-10-23T10:00:03.250+00:00',
      source: 'web-1',
      payload: { message: 'order 3 paid "in full"', program: 'checkout', pid: '4003', msgid: 'ORDER', facility: 'user', severity: 'err' },
    });
    for (const event of stored) expect(event.event_id).to.match(/^[0-9a-f]{40}$/);
    expect(new Set(stored.map((e) => e.event_id)).size).to.equal(5);
  });

  it('stores a re-sent batch once: the same lines again are counted as duplicates', async () => {
    const before = (await getJson(`${svc.url}/stats`)).body;
    await sendLines(listenPort, LINES);
    await waitFor(async () => (await getJson(`${svc.url}/stats`)).body.duplicate_dropped === before.duplicate_dropped + 5, {
      timeoutMs: 20_000,
      what: `the re-sent batch to be counted (syslog-ng said: ${syslogNg?.output()})`,
    });
    const after = (await getJson(`${svc.url}/stats`)).body;
    expect(after.conflicts).to.equal(0);
    expect(after.unique_processed).to.equal(5);
    expect(await fetchAllEvents(svc.url, 'syslog.checkout')).to.have.length(5);
    expect(proxy.seen.map((s) => s.status)).to.deep.equal([503, 200, 200]);
  });

  it('uses only a config file that syslog-ng itself accepts', () => {
    const check = spawnSync('syslog-ng', ['--syntax-only', '-f', SHIPPED_CONFIG], {
      env: {
        ...process.env,
        LOGAGG_URL: 'http://127.0.0.1:1/publish',
        LOGAGG_API_KEY: 'k',
        LOGAGG_LISTEN_IP: '127.0.0.1',
        LOGAGG_LISTEN_PORT: '1',
      },
      encoding: 'utf8',
    });
    expect(check.status, check.stderr).to.equal(0);
    expect(fs.readFileSync(SHIPPED_CONFIG, 'utf8')).to.contain('body-prefix(\'{"events":[\')');
  });
});
