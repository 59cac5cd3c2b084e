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
    violations: [],
    statsOk: true,
    statsProblems: [],
    stored: 0,
    tornTails: 0,
    kills: { random: 0, after_ack: 0, rotation: 0, recovery: 0 },
    requests: 0,
    resentAcked: 0,
    elapsedMs: 0,
    dataDir: '',
    aborted: null,
    examples: [],
  };
}

describe('chaos harness', function () {
  this.timeout(Math.max(120_000, CYCLES * 5000));

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
