import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { NodeDisk } from '../../src/wal/disk';
import { LogCorruptionError, recoverLog } from '../../src/wal/recovery';
import { repairLog } from '../../src/wal/repair';
import {
  canonicalEventJson,
  decodeLine,
  encodeRecord,
  isTombstoneEventJson,
  RECORD_LINE_BYTES_MAX,
  TOMBSTONE_EVENT_KEY,
  type LogEvent,
} from '../../src/wal/record';
import { READ_CHUNK_BYTES, segmentName } from '../../src/wal/segments';
import { dataDirFromWalFixture } from '../helpers/fixtures';

const DOC = fs.readFileSync(path.resolve(__dirname, '../../../docs/log-format.md'), 'utf8');

/** The lines of the doc's fenced blocks of the given language. */
function blocks(language: string): string[][] {
  const found: string[][] = [];
  const pattern = new RegExp('```' + language + '\\n([\\s\\S]*?)```', 'g');
  for (const match of DOC.matchAll(pattern)) found.push(match[1]!.split('\n').filter((line) => line !== ''));
  return found;
}

describe('docs/log-format.md', () => {
  it('shows records that the code writes byte for byte and reads back', () => {
    const examples = blocks('ndjson').flat();
    expect(examples).to.have.length(3);
    examples.forEach((line, i) => {
      const decoded = decodeLine(line);
      expect(decoded, line).to.not.be.a('string');
      const { seq, eventJson, receivedAtMs } = decoded as { seq: number; eventJson: string; receivedAtMs: number | null };
      expect(seq).to.equal(i + 1);
      // The second example is a version-2 record, the others version 1.
      expect(receivedAtMs === null).to.equal(i !== 1);
      expect(encodeRecord(seq, eventJson, receivedAtMs)).to.equal(`${line}\n`);
    });
    // The events are in the writer's key order; the last one is a tombstone.
    for (const line of examples.slice(0, 2)) {
      const { eventJson } = decodeLine(line) as { eventJson: string };
      expect(canonicalEventJson(JSON.parse(eventJson) as LogEvent)).to.equal(eventJson);
    }
    expect(isTombstoneEventJson((decodeLine(examples[2]!) as { eventJson: string }).eventJson)).to.equal(true);
    expect(DOC).to.contain(`\`${TOMBSTONE_EVENT_KEY}\``);
  });

  it('names each problem a line can have as the framing code does', () => {
    const good = encodeRecord(5, '{"a":1}').slice(0, -1);
    expect(decodeLine('not a record')).to.equal('bad_frame');
    expect(decodeLine(good.replace('"a":1', '"a":2'))).to.equal('bad_crc');
    expect(decodeLine(encodeRecord(5, '[1]').slice(0, -1))).to.equal('bad_json');
    expect(decodeLine(encodeRecord(0, '{"a":1}').slice(0, -1))).to.equal('bad_seq');
    for (const problem of ['bad_frame', 'bad_crc', 'bad_json', 'bad_seq', 'segment_name', 'seq_gap', 'seq_order'])
      expect(DOC).to.contain(`\`${problem}\``);
  });

  it('gives the segment names the code uses', () => {
    expect(DOC).to.contain(segmentName(1));
    expect(DOC).to.contain(segmentName(913));
  });

  it('gives the reading bounds the code has', () => {
    const rows = new Map<string, number>();
    for (const match of DOC.matchAll(/^\| `([A-Z_]+)` \| (\d+) \(/gm)) rows.set(match[1]!, Number(match[2]));
    expect(Object.fromEntries(rows)).to.deep.equal({ READ_CHUNK_BYTES, RECORD_LINE_BYTES_MAX });
  });

  it('names the quarantine files that recovery and repair write, and the message recovery stops with', async () => {
    const segment = segmentName(1);
    const torn = dataDirFromWalFixture('torn-tail');
    await recoverLog({
      disk: new NodeDisk(),
      walDir: path.join(torn, 'wal'),
      checkpointSeq: 0,
      chunkRecords: 10,
      onRecords: async () => undefined,
    });
    expect(fs.readdirSync(path.join(torn, 'wal', 'quarantine'))).to.deep.equal([`${segment}.441.torn`]);
    const corrupt = dataDirFromWalFixture('bad-crc-middle');
    repairLog({ walDir: path.join(corrupt, 'wal'), quarantineCorrupt: true });
    expect(fs.readdirSync(path.join(corrupt, 'wal', 'quarantine')).sort()).to.deep.equal([`${segment}.147.corrupt`, `${segment}.original`]);
    for (const pattern of ['`<segment>.<offset>.torn`', '`<segment>.<offset>.corrupt`', '`<segment>.original`', '`<segment>.rewrite`'])
      expect(DOC).to.contain(pattern);
    const message = new LogCorruptionError('<file>', 0, '<detail>').message;
    expect(DOC).to.contain(`\`${message.slice(0, message.indexOf('<detail>')).replace('offset 0', 'offset <n>')}<detail>\``);
  });
});
