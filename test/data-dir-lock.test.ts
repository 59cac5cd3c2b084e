import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { DataDirLockedError, LOCK_FILE, lockDataDir } from '../src/data-dir-lock';
import { makeTempDir } from './helpers/temp-dir';

describe('lockDataDir', () => {
  it('lets a later holder in the same process take over, and an earlier release leaves its file alone', () => {
    const dataDir = makeTempDir();
    const file = path.join(dataDir, LOCK_FILE);
    const releaseFirst = lockDataDir(dataDir, 'serve');
    const first = fs.readFileSync(file, 'utf8');
    // An abandoned in-process service (a simulated crash) and its successor.
    const releaseSecond = lockDataDir(dataDir, 'serve');
    const second = fs.readFileSync(file, 'utf8');
    expect(second).not.to.equal(first);
    releaseFirst();
    expect(fs.readFileSync(file, 'utf8')).to.equal(second);
    releaseSecond();
    expect(fs.existsSync(file)).to.equal(false);
  });

  it('takes over a lock whose pid has exited, and one it cannot parse', () => {
    const dataDir = makeTempDir();
    const file = path.join(dataDir, LOCK_FILE);
    const exited = spawnSync(process.execPath, ['-e', 'process.exit(0)']).pid;
    fs.writeFileSync(file, JSON.stringify({ pid: exited, command: 'serve' }));
    lockDataDir(dataDir, 'rebuild')();
    fs.writeFileSync(file, '{"pid": 12');
    const release = lockDataDir(dataDir, 'repair');
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).to.include({ pid: process.pid, command: 'repair' });
    release();
  });

  it('refuses a lock held by a live process, naming it, and leaves that lock as it was', () => {
    const dataDir = makeTempDir();
    const file = path.join(dataDir, LOCK_FILE);
    // pid 1 (init) is alive; no start time recorded, so its pid alone decides.
    const held = JSON.stringify({ pid: 1, command: 'rebuild' });
    fs.writeFileSync(file, held);
    expect(() => lockDataDir(dataDir, 'serve')).to.throw(
      DataDirLockedError,
      `${dataDir} is in use: ${file} is held by pid 1 (logagg rebuild); stop it first`,
    );
    expect(fs.readFileSync(file, 'utf8')).to.equal(held);
  });
});
