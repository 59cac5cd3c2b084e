import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { runChaos, summaryLine, verifyLog, type ChaosResult } from '../harness/chaos-harness';
import { PublisherLedger, type SentEvent } from '../harness/chaos-publisher';
import { parseChaosArgs } from '../harness/chaos';
import { encodeRecord } from '../../src/wal/record';
import { makeTempDir } from '../helpers/temp-dir';

/** Cycles of the short campaign in npm test; CHAOS_CYCLES raises it. */
const CYCLES = Number(process.env.CHAOS_CYCLES ?? 25);
/** Cycles of the retention-mode campaigns (each cycle starts a server: kept short in npm test). */
const RETENTION_CYCLES = Math.max(8, Math.round(CYCLES / 2));

function sent(topic: string, eventId: string): SentEvent {
  const payload = { n: eventId };
  return {
    topic,
    eventId,
    body: { topic, event_id: eventId, timestamp: '2025-10-23T10:00:00Z', source: 's', payload },
    payloadJson: JSON.stringify(payload),
  };
}

function emptyResult(): ChaosResult {
  return {
    ok: false,
    cycles: 0,
    acked: 0,
    lost: 0,
    duplicated: 0,
    garbled: 0,
    unsent: 0,
    expired: 0,
    firstSeq: 1,
    resurrected: 0,
    expiredResent: 0,
    expiredForgotten: 0,
    violations: [],
    statsOk: true,
    statsProblems: [],
    stored: 0,
    tornTails: 0,
    kills: { random: 0, after_ack: 0, rotation: 0, recovery: 0, deletion: 0 },
    requests: 0,
    resentAcked: 0,
    elapsedMs: 0,
    dataDir: '',
    aborted: null,
    examples: [],
  };
}

describe('chaos harness', function () {
  // A cycle takes about 1.5 s on a quiet 2-core machine and up to 8 s on a loaded one.
  this.timeout(Math.max(300_000, CYCLES * 12_000));

  it(`survives ${CYCLES} SIGKILL/restart cycles under at-least-once publishers: nothing lost, duplicated or garbled`, async () => {
    const result = await runChaos({ cycles: CYCLES, publishers: 3, cycleMs: 300, seed: 3 });
    console.log(`      ${summaryLine(result)}`);
    expect({
      aborted: result.aborted,
      violations: result.violations,
      statsProblems: result.statsProblems,
      examples: result.examples,
    }).to.deep.equal({
      aborted: null,
      violations: [],
      statsProblems: [],
      examples: [],
    });
    expect(result.ok).to.equal(true);
    expect(result.cycles).to.equal(CYCLES);
    expect(result.acked).to.be.greaterThan(CYCLES);
    expect(result.stored).to.equal(result.acked);
  });

  /** Retention mode: 4 KiB segments (the smallest), 24 KiB kept, so deletions run all the time and kills land in them. */
  const RETENTION_MODE = { segmentBytesMax: 4096, retentionBytes: 24 * 1024, cycleMs: 300, publishers: 3, seed: 5 };

  it(`retention mode: ${RETENTION_CYCLES} SIGKILL cycles while deletions run: every acknowledged event kept once or expired, none resurrected`, async () => {
    // Re-sends of acknowledged events are the next test's: here only retries of unanswered requests repeat keys.
    const result = await runChaos({ cycles: RETENTION_CYCLES, ...RETENTION_MODE, resendAckedChance: 0 });
    console.log(`      ${summaryLine(result)}`);
    expect({
      aborted: result.aborted,
      violations: result.violations,
      statsProblems: result.statsProblems,
      examples: result.examples,
    }).to.deep.equal({
      aborted: null,
      violations: [],
      statsProblems: [],
      examples: [],
    });
    expect(result.ok).to.equal(true);
    expect(result.expired, 'retention deleted acknowledged events').to.be.greaterThan(0);
    expect(result.stored + result.expired).to.equal(result.acked);
  });

  it(`retention mode: an expired event re-sent is answered as the duplicate of its original, during and after ${RETENTION_CYCLES} cycles`, async () => {
    const result = await runChaos({ cycles: RETENTION_CYCLES, ...RETENTION_MODE, checkExpiredResends: true });
    console.log(`      ${summaryLine(result)}`);
    expect({
      aborted: result.aborted,
      violations: result.violations,
      statsProblems: result.statsProblems,
      examples: result.examples,
    }).to.deep.equal({
      aborted: null,
      violations: [],
      statsProblems: [],
      examples: [],
    });
    expect(result.ok).to.equal(true);
    expect(result.expiredResent).to.be.greaterThan(0);
    expect(result.expiredForgotten).to.equal(0);
    expect(result.stored + result.expired).to.equal(result.acked);
  });

  it('its log check finds lost, duplicated and never-sent events (the check can fail)', () => {
    const ledger = new PublisherLedger();
    for (const event of [sent('t', 'kept'), sent('t', 'twice'), sent('t', 'lost')]) ledger.register(event);
    ledger.recordAnswer([sent('t', 'kept'), sent('t', 'twice'), sent('t', 'lost')], {
      results: [
        { status: 'accepted', seq: 1 },
        { status: 'accepted', seq: 2 },
        { status: 'accepted', seq: 3 },
      ],
    });
    const walDir = path.join(makeTempDir(), 'wal');
    fs.mkdirSync(walDir);
    const json = (id: string) => JSON.stringify(sent('t', id).body);
    fs.writeFileSync(
      path.join(walDir, '00000000000000000001.ndjson'),
      [json('kept'), json('twice'), json('twice'), json('stranger')].map((j, i) => encodeRecord(i + 1, j)).join(''),
    );
    const result = emptyResult();
    verifyLog(walDir, ledger, result);
    expect({ lost: result.lost, duplicated: result.duplicated, unsent: result.unsent, garbled: result.garbled }).to.deep.equal({
      lost: 1,
      duplicated: 1,
      unsent: 1,
      garbled: 0,
    });
  });

  it('its publishers flag an answer that names another seq for an acknowledged event', () => {
    const ledger = new PublisherLedger();
    const event = sent('t', 'a');
    ledger.register(event);
    ledger.recordAnswer([event], { results: [{ status: 'accepted', seq: 1 }] });
    ledger.recordAnswer([event], { results: [{ status: 'duplicate', seq: 1 }] });
    expect(ledger.figures.violations).to.deep.equal([]);
    ledger.recordAnswer([event], { results: [{ status: 'accepted', seq: 7 }] });
    ledger.recordAnswer([event], { results: [{ status: 'duplicate', seq: 1, conflict: true }] });
    expect(ledger.figures.violations).to.have.length(2);
  });

  it('reads its flags', () => {
    expect(
      parseChaosArgs(['--cycles', '1000', '--duration-ms=60000', '--publishers', '8', '--data-dir', '/tmp/x', '--keep']),
    ).to.deep.equal({
      cycles: 1000,
      durationMs: 60000,
      publishers: 8,
      dataDir: '/tmp/x',
      keepDataDir: true,
    });
    expect(() => parseChaosArgs(['--cycles', 'many'])).to.throw('--cycles must be a whole number');
    expect(() => parseChaosArgs(['--bogus', '1'])).to.throw('unknown flag --bogus');
  });
});
