import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { ConfigError, digestApiKey, loadConfig } from '../../src/config/config';
import { accessControlWarning } from '../../src/server';
import { makeTempDir } from '../helpers/temp-dir';
import { MAIN_JS } from '../harness/server-process';

const KEY_A = 'key-a-0123456789abcdef';
const KEY_B = 'key-b-0123456789abcdef';

function configError(env: Record<string, string>): string {
  try {
    loadConfig({ DATA_DIR: makeTempDir(), ...env });
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('config: API keys', () => {
  it('has no keys by default: every scope open', () => {
    expect(loadConfig({ DATA_DIR: makeTempDir() }).apiKeyDigests).to.deep.equal({ publish: [], read: [] });
  });

  it('reads comma-separated keys per scope and keeps only their SHA-256 digests', () => {
    const config = loadConfig({ DATA_DIR: makeTempDir(), API_KEYS_PUBLISH: ` ${KEY_A} , ${KEY_B}`, API_KEYS_READ: KEY_B });
    expect(config.apiKeyDigests.publish).to.deep.equal([digestApiKey(KEY_A), digestApiKey(KEY_B)]);
    expect(config.apiKeyDigests.read).to.deep.equal([digestApiKey(KEY_B)]);
    expect(JSON.stringify(config)).not.to.contain(KEY_A);
  });

  it('reads API_KEYS_FILE as JSON {"publish": [...], "read": [...]}', () => {
    const file = path.join(makeTempDir(), 'keys.json');
    fs.writeFileSync(file, JSON.stringify({ publish: [KEY_A], read: [KEY_B] }));
    const config = loadConfig({ DATA_DIR: makeTempDir(), API_KEYS_FILE: file });
    expect(config.apiKeyDigests).to.deep.equal({ publish: [digestApiKey(KEY_A)], read: [digestApiKey(KEY_B)] });
  });

  it('reads API_KEYS_FILE as lines "<scope>[,<scope>] <key>" with comments, merged with the env keys', () => {
    const file = path.join(makeTempDir(), 'keys.txt');
    fs.writeFileSync(file, `# shippers\npublish ${KEY_A}\n\npublish,read ${KEY_B}\n`);
    const config = loadConfig({ DATA_DIR: makeTempDir(), API_KEYS_FILE: file, API_KEYS_READ: KEY_A });
    expect(config.apiKeyDigests.publish).to.deep.equal([digestApiKey(KEY_A), digestApiKey(KEY_B)]);
    expect(config.apiKeyDigests.read).to.have.members([digestApiKey(KEY_A), digestApiKey(KEY_B)]);
  });

  it('refuses a short key with one line that names the setting but not the key', () => {
    const message = configError({ API_KEYS_PUBLISH: `${KEY_A},short-key` });
    expect(message).to.match(/^invalid setting API_KEYS_PUBLISH \(key 2\): an API key must be 16 to 512/);
    expect(message).not.to.contain('short-key');
    expect(message).not.to.contain('\n');
  });

  it('refuses an empty key between commas', () => {
    expect(configError({ API_KEYS_READ: `${KEY_A},,${KEY_B}` })).to.match(/API_KEYS_READ: key 2 is empty/);
  });

  it('refuses a key file that is missing, not JSON, names an unknown scope or has a bad line', () => {
    const dir = makeTempDir();
    expect(configError({ API_KEYS_FILE: path.join(dir, 'missing') })).to.match(/API_KEYS_FILE=.*cannot read it \(ENOENT\)/);
    const cases: Array<[string, RegExp]> = [
      ['{"publish": [', /not valid JSON/],
      [JSON.stringify({ admin: [KEY_A] }), /unknown scope "admin"/],
      [JSON.stringify({ publish: KEY_A }), /"publish" must be an array/],
      [`write ${KEY_A}\n`, /line 1 names unknown scope "write"/],
      [`publish\n`, /line 1 must be "<scope>\[,<scope>\] <key>"/],
      [`publish tooshort\n`, /line 1: an API key must be/],
    ];
    cases.forEach(([text, pattern], i) => {
      const file = path.join(dir, `keys-${i}`);
      fs.writeFileSync(file, text);
      const message = configError({ API_KEYS_FILE: file });
      expect(message).to.match(pattern);
      expect(message).not.to.contain(KEY_A);
    });
  });

  describe('the startup warning', () => {
    const open = { publish: [], read: [] };
    const closed = { publish: [digestApiKey(KEY_A)], read: [digestApiKey(KEY_B)] };

    it('says in one line which scopes are open when listening beyond loopback', () => {
      expect(accessControlWarning({ host: '0.0.0.0', apiKeyDigests: open }, 8080)).to.equal(
        'access control: no API keys for scope publish and read; anyone who reaches 0.0.0.0:8080 can publish and read (set API_KEYS_PUBLISH / API_KEYS_READ or API_KEYS_FILE)',
      );
      expect(accessControlWarning({ host: '10.1.2.3', apiKeyDigests: { publish: closed.publish, read: [] } }, 80)).to.match(
        /scope read; .* can read/,
      );
    });

    it('is silent on loopback, or when every scope has keys', () => {
      for (const host of ['127.0.0.1', 'localhost', '::1'])
        expect(accessControlWarning({ host, apiKeyDigests: open }, 8080)).to.equal(null);
      expect(accessControlWarning({ host: '0.0.0.0', apiKeyDigests: closed }, 8080)).to.equal(null);
    });
  });
});

describe('API_KEYS_FILE errors at start-up (real server process)', () => {
  it('stops with one line that quotes none of the file, for a malformed JSON key file', async () => {
    const dir = makeTempDir();
    const file = path.join(dir, 'keys.json');
    fs.writeFileSync(file, `{"publish": ["${KEY_A}",], "read": ["${KEY_B}"]}`);
    const child = spawn(process.execPath, [MAIN_JS], {
      env: { ...process.env, DATA_DIR: dir, PORT: '0', API_KEYS_FILE: file },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).to.equal(2);
    expect(output.trim().split('\n')).to.have.length(1);
    expect(output).to.match(/invalid setting API_KEYS_FILE=.*not valid JSON/);
    // No run of 6 characters of either key (or of the file around them) reaches the output.
    for (const key of [KEY_A, KEY_B]) {
      for (let i = 0; i + 6 <= key.length; i += 1) expect(output, key.slice(i, i + 6)).not.to.contain(key.slice(i, i + 6));
    }
    expect(output).not.to.contain('"read"');
  });
});
