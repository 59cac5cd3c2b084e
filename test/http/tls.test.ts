import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { expect } from 'chai';
import { makeEvent } from '../helpers/events';
import { startServerProcess, type ServerProcess } from '../harness/server-process';
import { makeTempDir } from '../helpers/temp-dir';
import { waitFor } from '../../src/cli/wait';

/** One HTTPS request that trusts only `ca`; resolves with status and body. */
function httpsRequest(port: number, ca: Buffer, method: string, urlPath: string, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path: urlPath,
        ca,
        servername: 'localhost',
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
      },
      (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('TLS (TLS_CERT_FILE / TLS_KEY_FILE, real server process)', function () {
  this.timeout(60_000);
  let server: ServerProcess;
  let cert: Buffer;

  before(async function () {
    const dir = makeTempDir();
    const certFile = path.join(dir, 'cert.pem');
    const keyFile = path.join(dir, 'key.pem');
    try {
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-keyout',
          keyFile,
          '-out',
          certFile,
          '-days',
          '1',
          '-subj',
          '/CN=localhost',
          '-addext',
          'subjectAltName=DNS:localhost,IP:127.0.0.1',
        ],
        { stdio: 'pipe' },
      );
    } catch (err) {
      console.log(`      skipped: openssl cannot make a self-signed certificate here (${String(err)})`);
      this.skip();
    }
    cert = fs.readFileSync(certFile);
    server = await startServerProcess(makeTempDir(), { TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile }, { waitReady: false });
    await waitFor(async () => (await httpsRequest(server.port, cert, 'GET', '/health')).status === 200, {
      timeoutMs: 30_000,
      what: 'HTTPS /health',
    });
  });

  after(async () => {
    await server?.kill('SIGTERM');
  });

  it('publishes and reads over HTTPS with a self-signed certificate', async () => {
    const published = await httpsRequest(server.port, cert, 'POST', '/publish', JSON.stringify(makeEvent('tls.a', 'e-1')));
    expect(published.status).to.equal(200);
    expect(JSON.parse(published.body).accepted).to.equal(1);
    const read = await httpsRequest(server.port, cert, 'GET', '/events?topic=tls.a');
    expect(JSON.parse(read.body).events.map((e: { event_id: string }) => e.event_id)).to.deep.equal(['e-1']);
    expect(server.output()).to.match(/"tls":true[^\n]*"msg":"listening"/);
  });

  it('speaks no plain HTTP on the TLS port', async () => {
    let failed: boolean;
    try {
      const res = await fetch(`http://127.0.0.1:${server.port}/health`);
      failed = res.status !== 200;
    } catch {
      failed = true;
    }
    expect(failed).to.equal(true);
  });

  it('refuses to start with only one of the two settings, in one line', () => {
    let message = '';
    try {
      execFileSync(process.execPath, [path.resolve(__dirname, '../../src/main.js')], {
        env: { ...process.env, DATA_DIR: makeTempDir(), PORT: '0', TLS_CERT_FILE: '/etc/hostname' },
        stdio: 'pipe',
      });
    } catch (err) {
      message = String((err as { stderr: Buffer }).stderr);
      expect((err as { status: number }).status).to.equal(2);
    }
    expect(message.trim()).to.equal('log-aggregator: invalid setting TLS_CERT_FILE: TLS needs both TLS_CERT_FILE and TLS_KEY_FILE');
  });
});
