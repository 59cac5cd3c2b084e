import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { DOCS_COMMAND, docFiles, fillRegions, renderRegions, repoPath } from './generate';

const REPO_ROOT = path.resolve(__dirname, '../../..');

describe('README.md', () => {
  const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');

  it('starts with the two commands a newcomer needs, and CI runs its test command', () => {
    const first = /^# [^\n]+\n\n```bash\n([\s\S]*?)```/.exec(readme);
    expect(first, 'a bash block right under the title').not.to.equal(null);
    const commands = first![1]!
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => line.split('#')[0]!.trim());
    expect(commands).to.deep.equal(['npm install && npm start', 'npm test']);
    expect(fs.readFileSync(path.join(REPO_ROOT, '.ci/run'), 'utf8').split('\n')).to.include('npm test');
  });

  it('stays a short door: at most 200 lines', () => {
    expect(readme.split('\n').length).to.be.at.most(200);
  });
});

describe('generated doc tables', () => {
  let regions: Map<string, string>;
  before(function () {
    this.timeout(60_000);
    regions = renderRegions();
  });

  it('are what the code would write (settings, limits, error codes, metrics, CLI help)', () => {
    const stale: string[] = [];
    for (const file of docFiles()) {
      const result = fillRegions(fs.readFileSync(file, 'utf8'), regions);
      if (result.stale.length > 0) stale.push(`${repoPath(file)} (${result.stale.join(', ')})`);
    }
    expect(stale, `doc tables differ from the code: run \`${DOCS_COMMAND}\``).to.deep.equal([]);
  });

  it('name only regions the generator knows', () => {
    const unknown = docFiles().flatMap((file) =>
      fillRegions(fs.readFileSync(file, 'utf8'), regions).unknown.map((name) => `${repoPath(file)}: ${name}`),
    );
    expect(unknown).to.deep.equal([]);
  });

  it('hold every region the generator writes, so no table was dropped', () => {
    const used = new Set(docFiles().flatMap((file) => fillRegions(fs.readFileSync(file, 'utf8'), regions).regions));
    expect([...regions.keys()].filter((name) => !used.has(name))).to.deep.equal([]);
  });

  it('notice a region that was edited by hand, and restore it', () => {
    const fresh = `a\n<!-- generated:errors -->\n${regions.get('errors')}\n<!-- /generated:errors -->\nb\n`;
    const edited = fresh.replace('| 404 |', '| 418 |');
    expect(fillRegions(fresh, regions).stale).to.deep.equal([]);
    const restored = fillRegions(edited, regions);
    expect(restored.stale).to.deep.equal(['errors']);
    expect(restored.text).to.equal(fresh);
  });

  it('show each setting with its default and each error code with its status', () => {
    expect(regions.get('config')).to.include('| `PORT` | `8080` | 0..65535 |');
    expect(regions.get('config')).to.include('| `BODY_BYTES_MAX` | `1048576` = 1 MiB |');
    expect(regions.get('errors')).to.include('| 503 | `backlog_full` |');
    expect(regions.get('metrics')).to.include('| `logagg_requests_rejected_total` | counter | `route`, `reason` |');
    expect(regions.get('cli-help-verify')).to.match(/^```text\nUsage: logagg verify/);
  });
});
