import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { spawnLogagg } from '../harness/logagg-process';
import { makeEvent, postJson } from '../helpers/events';
import { makeTempDir } from '../helpers/temp-dir';
import { waitFor } from '../../src/cli/wait';

describe('logagg serve', () => {
  it('runs the service on --data-dir (as npm start does) and exits 0 on SIGTERM', async () => {
    const dataDir = makeTempDir();
    const serve = spawnLogagg(['serve', '--data-dir', dataDir, '--port', '0', '--host', '127.0.0.1'], {
      LOG_LEVEL: 'info',
      DATA_DIR: '/nonexistent/ignored',
    });
    try {
      const port = await waitFor(() => Number(/"port":(\d+)[^\n]*"msg":"listening"/.exec(serve.stdout())?.[1] ?? 0), {
        timeoutMs: 15_000,
        what: 'listening',
      });
      const url = `http://127.0.0.1:${port}`;
      await waitFor(async () => (await fetch(`${url}/health`)).status === 200, { what: 'ready' });
      expect((await postJson(`${url}/publish`, makeEvent('serve', 'e1'))).body.accepted).to.equal(1);
      expect(await serve.stop('SIGTERM')).to.equal(0);
      expect(fs.readdirSync(path.join(dataDir, 'wal'))).to.include('00000000000000000001.ndjson');
    } finally {
      await serve.stop('SIGKILL');
    }
  });

  it('exits 2 on an invalid setting, naming it', async () => {
    const serve = spawnLogagg(['serve', '--data-dir', makeTempDir(), '--port', 'eighty']);
    expect(await serve.exited).to.equal(2);
    expect(serve.stderr()).to.contain('invalid setting PORT="eighty"');
  });
});
