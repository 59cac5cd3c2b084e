import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { startInProcessService, type InProcessService } from '../helpers/in-process-service';
import { makeTempDir } from '../helpers/temp-dir';

const run = promisify(execFile);
/** The repository root, from dist/test/http where the compiled test runs. */
const ROOT = path.resolve(__dirname, '../../..');
const bin = (pkg: string, file: string) => path.join(ROOT, 'node_modules', pkg, file);

/**
 * A client a user writes over types generated from the served document: the seed's curl
 * examples (README) as typed values, plus a payload with message and level fields.
 */
const CLIENT = `import type { paths } from './api';

type PublishBody = paths['/publish']['post']['requestBody']['content']['application/json'];
type PublishAnswer = paths['/publish']['post']['responses'][200]['content']['application/json'];
type EventsQuery = NonNullable<paths['/events']['get']['parameters']['query']>;
type EventsPage = paths['/events']['get']['responses'][200]['content']['application/json'];
type Stats = paths['/stats']['get']['responses'][200]['content']['application/json'];
type Health = paths['/health']['get']['responses'][200]['content']['application/json'];

export const single: PublishBody = {
  topic: 'user.login',
  event_id: 'evt-001',
  timestamp: '2025-10-23T10:00:00Z',
  source: 'auth-service',
  payload: { user_id: 'user-123' },
};

export const batch: PublishBody = {
  events: [
    { topic: 'app.log', event_id: 'log-1', timestamp: '2025-10-23T10:00:00Z', source: 'api', payload: { message: 'started', level: 'info' } },
    { topic: 'app.log', event_id: 'log-2', timestamp: '2025-10-23T10:00:01Z', source: 'api', payload: { message: 'slow query', level: 'warn', ms: 812, tags: ['db'] } },
  ],
};

export const query: EventsQuery = { topic: ['user.login'], limit: 10 }; // topic is repeatable (?topic=a&topic=b)

export function firstSeq(answer: PublishAnswer): number | undefined {
  return answer.results[0]?.seq;
}

export function messages(page: EventsPage): unknown[] {
  return page.events.map((event) => event.payload?.['message']);
}

export function atRest(stats: Stats): boolean {
  return stats.queue_size === 0 && stats.received === stats.unique_processed + stats.duplicate_dropped;
}

export function describeHealth(health: Health): string {
  return \`\${health.status} log seq \${health.log.durable_seq ?? 'none'} index \${health.index.checkpoint_seq}\`;
}
`;

describe('the served OpenAPI document, as client tools read it', function () {
  this.timeout(120_000);
  let svc: InProcessService;
  let dir: string;
  before(async () => {
    svc = await startInProcessService();
    dir = makeTempDir();
    fs.writeFileSync(path.join(dir, 'openapi.json'), await (await fetch(`${svc.url}/openapi.json`)).text());
  });
  after(async () => svc.stop());

  it('gives openapi-typescript types under which the seed examples compile with tsc --strict', async () => {
    await run(process.execPath, [bin('openapi-typescript', 'bin/cli.js'), path.join(dir, 'openapi.json'), '-o', path.join(dir, 'api.ts')]);
    fs.writeFileSync(path.join(dir, 'client.ts'), CLIENT);
    const tsconfig = {
      compilerOptions: { strict: true, noEmit: true, noUncheckedIndexedAccess: true, target: 'ES2022', module: 'commonjs', types: [] },
      files: ['client.ts'],
    };
    fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify(tsconfig));
    const compiled = await run(process.execPath, [bin('typescript', 'bin/tsc'), '-p', dir]).then(
      () => '',
      (err: unknown) => (err as { stdout?: string }).stdout ?? (err instanceof Error ? err.message : JSON.stringify(err)),
    );
    expect(compiled, 'tsc --strict on a client over the generated types').to.equal('');
  });

  it('passes @redocly/cli lint (recommended rules) with no errors', async () => {
    const outcome = await run(process.execPath, [
      bin('@redocly/cli', 'bin/cli.js'),
      'lint',
      '--format=stylish',
      path.join(dir, 'openapi.json'),
    ]).then(
      ({ stdout, stderr }) => ({ ok: true, text: stdout + stderr }),
      (err: unknown) => {
        const { stdout, stderr } = err as { stdout?: string; stderr?: string };
        return { ok: false, text: `${stdout ?? ''}${stderr ?? ''}` };
      },
    );
    expect(outcome.text).not.to.match(/\berror\b\s+[a-z0-9-]+/);
    expect(outcome.ok, outcome.text).to.equal(true);
  });
});
