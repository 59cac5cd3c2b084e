import Database from 'better-sqlite3';
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { waitFor } from '../../src/cli/wait';
import { Checkpointer } from '../../src/index/checkpointer';
import { makeTempDir } from '../helpers/temp-dir';

/** A WAL database whose own connection never checkpoints (as if its backstop were never reached). */
function openWriter(file: string): Database.Database {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('wal_autocheckpoint = 0');
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)');
  return db;
}

describe('Checkpointer', () => {
  it('folds the WAL into the database file from its worker thread while the writer commits', async () => {
    const file = path.join(makeTempDir(), 'index.db');
    const db = openWriter(file);
    const checkpointer = new Checkpointer({ databasePath: file, intervalMs: 20 });
    try {
      const insert = db.prepare('INSERT INTO t (body) VALUES (?)');
      const body = Buffer.alloc(4000, 7);
      // About 8 MiB in 40 commits, with pauses for the worker's turns.
      for (let batch = 0; batch < 40; batch += 1) {
        db.transaction(() => {
          for (let i = 0; i < 50; i += 1) insert.run(body);
        })();
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      await waitFor(
        () => {
          const [state] = db.pragma('wal_checkpoint(NOOP)') as Array<{ log: number; checkpointed: number }>;
          // Nothing left to copy: every frame of the WAL is in the file (or the WAL started over).
          return checkpointer.checkpoints > 0 && state !== undefined && state.checkpointed === state.log;
        },
        { what: 'the worker to checkpoint the whole WAL' },
      );
      expect(checkpointer.framesCopied).to.be.above(1000);
      // The file holds the rows without the WAL: a copy of it alone reads them all.
      const copy = path.join(makeTempDir(), 'copy.db');
      fs.copyFileSync(file, copy);
      const alone = new Database(copy, { readonly: true });
      expect(alone.prepare('SELECT count(*) FROM t').pluck().get()).to.equal(2000);
      alone.close();
    } finally {
      await checkpointer.close();
      db.close();
    }
    // The writer's connection closed last: SQLite removed the WAL.
    expect(fs.existsSync(`${file}-wal`)).to.equal(false);
  });

  it('closes its connection before close() resolves, and checkpoints nothing after', async () => {
    const file = path.join(makeTempDir(), 'index.db');
    const db = openWriter(file);
    const checkpointer = new Checkpointer({ databasePath: file, intervalMs: 10 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    await checkpointer.close();
    db.prepare('INSERT INTO t (body) VALUES (?)').run(Buffer.alloc(100));
    const before = checkpointer.checkpoints;
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(checkpointer.checkpoints).to.equal(before);
    const [state] = db.pragma('wal_checkpoint(NOOP)') as Array<{ log: number; checkpointed: number }>;
    expect(state!.log).to.be.above(state!.checkpointed);
    db.close();
  });
});
