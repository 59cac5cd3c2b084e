import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { NodeDisk } from '../../src/wal/disk';
import { readSegmentChunks } from '../../src/wal/segments';
import { makeTempDir } from '../helpers/temp-dir';

describe('readSegmentChunks on the real disk', () => {
  it('gives back the exact bytes for any chunk size, and stops at the size the file had when reading began', () => {
    const file = path.join(makeTempDir(), '00000000000000000001.ndjson');
    const bytes = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 7) % 256));
    fs.writeFileSync(file, bytes);
    const disk = new NodeDisk();
    for (const chunkBytes of [1, 7, 999, 1000, 4096]) {
      const chunks = [...readSegmentChunks(disk, file, chunkBytes)];
      expect(Buffer.concat(chunks), `chunks of ${chunkBytes}`).to.deep.equal(bytes);
      expect(chunks).to.have.length(Math.ceil(bytes.length / chunkBytes));
    }
    const reading = readSegmentChunks(disk, file, 400);
    expect(reading.next().value).to.have.length(400);
    // A writer appends while the file is read: the reader keeps to what was there.
    fs.appendFileSync(file, Buffer.alloc(500, 1));
    expect(Buffer.concat([...reading])).to.deep.equal(bytes.subarray(400));
  });
});
