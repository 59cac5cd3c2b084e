import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { postJson } from '../helpers/events';
import { startServerProcess, type ServerProcess } from '../harness/server-process';
import { makeTempDir } from '../helpers/temp-dir';

const REPO_ROOT = path.resolve(__dirname, '../../..');

/** A documented publish: the body of a `curl -X POST .../publish -d '...'` block and the answer shown after it. */
interface PublishExample {
  body: unknown;
  answer: unknown;
}

/** The publish examples of one document, in order: each curl block followed by a json block. */
function publishExamples(file: string): PublishExample[] {
  const text = fs.readFileSync(path.join(REPO_ROOT, file), 'utf8');
  const examples: PublishExample[] = [];
  const pair = /```bash\n(curl -X POST http:\/\/localhost:8080\/publish[\s\S]*?)```\n```json\n([\s\S]*?)```/g;
  for (const match of text.matchAll(pair)) {
    const body = /-d '([\s\S]*?)'/.exec(match[1]!);
    expect(body, `a -d body in ${file}`).not.to.equal(null);
    examples.push({ body: JSON.parse(body![1]!), answer: JSON.parse(match[2]!) });
  }
  return examples;
}

// The seed's curl examples must keep working verbatim, with the answers the docs show.
for (const file of ['README.md', 'docs/api.md']) {
  describe(`the publish examples of ${file}`, () => {
    let server: ServerProcess;
    before(async function () {
      this.timeout(60_000);
      server = await startServerProcess(makeTempDir('logagg-readme-'));
    });
    after(async () => {
      await server.kill('SIGTERM');
    });

    it('answer, in order on a fresh server, exactly what the document shows', async () => {
      const examples = publishExamples(file);
      expect(examples.length).to.be.at.least(2);
      for (const example of examples) {
        const { status, body } = await postJson(`${server.url}/publish`, example.body);
        expect(status).to.equal(200);
        expect(body).to.deep.equal(example.answer);
      }
    });
  });
}
