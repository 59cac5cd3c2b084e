import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { parseApiKeysFile } from '../../src/config/config';
import { SERVER_NODE_FLAGS } from '../../src/node-flags';

const REPO_ROOT = path.resolve(__dirname, '../../..');
const read = (file: string): string => fs.readFileSync(path.join(REPO_ROOT, file), 'utf8');

// There is no Docker engine where the tests run: these check the files as docs/operations.md describes them.
describe('docker/ (as docs/operations.md describes it)', () => {
  const dockerfile = read('docker/Dockerfile');
  const compose = read('docker/docker-compose.yml');

  it('builds and runs on Node 22', () => {
    const bases = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    expect(bases).to.have.length(2);
    for (const base of bases) expect(base).to.match(/^node:22-/);
  });

  it('compiles src/ only and copies no tests or benchmarks into the image', () => {
    const copies = [...dockerfile.matchAll(/^COPY (.+)$/gm)].map((m) => m[1]!);
    expect(copies.filter((c) => /\b(test|bench)\b/.test(c))).to.deep.equal([]);
    expect(copies).to.include('--from=build /app/dist/src ./dist/src');
    expect(copies.filter((c) => c.includes('/app/dist ') || c.endsWith('/app/dist'))).to.deep.equal([]);
  });

  it('runs what `npm start` runs', () => {
    const start = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts.start!;
    const cmd = /^CMD (\[.*\])$/m.exec(dockerfile);
    expect(cmd, 'a CMD in exec form').not.to.equal(null);
    expect((JSON.parse(cmd![1]!) as string[]).join(' ')).to.equal(start);
    expect(dockerfile).to.match(/^USER node$/m);
  });

  it('runs the service with its Node flags (src/node-flags.ts), as the tests and the benchmark run it', () => {
    const start = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts.start!;
    expect(start).to.equal(['node', ...SERVER_NODE_FLAGS, 'dist/src/main.js'].join(' '));
  });

  it('keeps the data in a named volume and takes API keys from a file', () => {
    expect(compose).to.match(/^\s+- logagg-data:\/app\/data$/m);
    expect(compose).to.match(/^volumes:\n\s+logagg-data:/m);
    expect(compose).to.match(/^\s+- API_KEYS_FILE=\/run\/secrets\/logagg-api-keys$/m);
    expect(compose).to.match(/^secrets:\n\s+logagg-api-keys:\n\s+file: \.\/api-keys$/m);
    expect(read('.gitignore').split('\n')).to.include('docker/api-keys');
  });

  it('ships an example key file that API_KEYS_FILE accepts, with keys of both scopes', () => {
    const keys = parseApiKeysFile(read('docker/api-keys.example'), 'docker/api-keys.example');
    expect(keys.publish).to.have.length(2);
    expect(keys.read).to.have.length(2);
  });
});
