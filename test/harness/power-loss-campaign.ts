import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { Random } from '../../src/cli/random';
import { AppError } from '../../src/errors';
import { WalError } from '../../src/wal/errors';
import { Aggregator, type ValidEvent } from '../../src/ingest/aggregator';
import type { LogDisk } from '../../src/wal/disk';
import { readSegments } from '../../src/wal/reader';
import { retainedSegments } from '../../src/wal/retention';
import { canonicalEventJson, type LogEvent } from '../../src/wal/record';
import { PowerLossDisk, SimulatedPowerLoss, type CrashModel } from './power-loss-disk';
import { makeTempDir } from '../helpers/temp-dir';
import { eventDigestOf } from '../../src/index/key-hash';

/** Settings of one simulated power-loss campaign. */
export interface PowerLossOptions {
  crashes: number;
  seed: number;
  publishers: number;
  /** Requests per publisher per power-on, after which the power goes out anyway. */
  requestsPerCycleMax: number;
  /** Crash models to draw from, per file and per crash. */
  models: readonly CrashModel[];
  /** Mutations for checking that the campaign can fail: skip fdatasync or directory fsync. */
  honourFdatasync: boolean;
  honourFsyncDir: boolean;
  /** Probability that the index is lost with the power (full rebuild from the log). */
  indexLossChance: number;
  /** SEGMENT_BYTES_MAX of the simulated service. */
  segmentBytesMax: number;
  /** RETENTION_BYTES of the simulated service (0: off): with small segments, deletions run all the time. */
  retentionBytes: number;
  /** Chance that an event of a request re-sends an acknowledged one. */
  resendChance: number;
}

/** Defaults: all four crash models, honest fsyncs, 3% index loss, 8 KiB segments. */
export const POWER_LOSS_DEFAULTS: PowerLossOptions = {
  crashes: 200,
  seed: 7,
  publishers: 3,
  requestsPerCycleMax: 12,
  models: ['drop', 'keep', 'torn', 'garble'],
  honourFdatasync: true,
  honourFsyncDir: true,
  indexLossChance: 0.03,
  segmentBytesMax: 8192,
  retentionBytes: 0,
  resendChance: 0.1,
};

/** What a campaign found; every harm count must be 0. */
export interface PowerLossResult {
  crashes: number;
  crashesDuringRecovery: number;
  acked: number;
  /** Acknowledged keys missing after a reboot (counted once per key). */
  lost: number;
  /** Acknowledged keys stored with other content or another seq. */
  garbled: number;
  /** Keys in the log more than once. */
  duplicated: number;
  /** Stored keys never sent. */
  unsent: number;
  /** Acknowledged keys that retention deleted (absent, rightly: their seq is below the first retained one). */
  expired: number;
  /** Index rows or log segments below the first retained seq after a reboot (a deletion undone into queries). */
  resurrected: number;
  /** Segment unlinks that a power loss undid (recovery must finish them). */
  unlinksUndone: number;
  /** Reboots whose recovery needed an operator (it threw). */
  recoveryFailures: string[];
  /** Publishes that failed other than by the power loss. */
  unexpectedErrors: string[];
  tornTailsCut: number;
  indexAheadWarnings: number;
  directoryEntriesLost: number;
  indexLosses: number;
  examples: string[];
}

interface SentRecord {
  event: LogEvent;
  eventJson: string;
  ackedSeq: number | null;
}

/**
 * Runs an Aggregator over a PowerLossDisk with a real SQLite index, cuts the power at a
 * random disk operation (during recovery, an append, a rotation, a torn-tail cut),
 * applies a crash model, reboots, checks every acknowledged event, and repeats.
 */
export async function runPowerLossCampaign(input: Partial<PowerLossOptions> = {}): Promise<PowerLossResult> {
  const options: PowerLossOptions = { ...POWER_LOSS_DEFAULTS, ...input };
  const random = new Random(options.seed);
  const dataDir = makeTempDir('logagg-powerloss-');
  const config = {
    walDir: path.join(dataDir, 'wal'),
    databasePath: path.join(dataDir, 'index.db'),
    queueMaxSize: 10_000,
    segmentBytesMax: options.segmentBytesMax,
    indexBatchMax: 16,
    retryAfterSeconds: 1,
    retentionBytes: options.retentionBytes,
  };
  const disk = new PowerLossDisk(dataDir);
  disk.honourFdatasync = options.honourFdatasync;
  disk.honourFsyncDir = options.honourFsyncDir;
  const result: PowerLossResult = {
    crashes: 0,
    crashesDuringRecovery: 0,
    acked: 0,
    lost: 0,
    garbled: 0,
    duplicated: 0,
    unsent: 0,
    expired: 0,
    resurrected: 0,
    unlinksUndone: 0,
    recoveryFailures: [],
    unexpectedErrors: [],
    tornTailsCut: 0,
    indexAheadWarnings: 0,
    directoryEntriesLost: 0,
    indexLosses: 0,
    examples: [],
  };
  const logger = pino(
    { level: 'warn' },
    {
      write(line: string) {
        if (line.includes('recovery: cut torn tail')) result.tornTailsCut += 1;
        if (line.includes('index is ahead of the log')) result.indexAheadWarnings += 1;
      },
    },
  );
  const sent = new Map<string, SentRecord>();
  const acked: string[] = [];
  const lostKeys = new Set<string>();
  const garbledKeys = new Set<string>();
  const expiredKeys = new Set<string>();
  let counter = 0;
  const example = (text: string): void => {
    if (result.examples.length < 20) result.examples.push(text);
  };

  const newEvent = (publisher: number): SentRecord => {
    counter += 1;
    const event: LogEvent = {
      topic: `t${random.int(3)}`,
      event_id: `p${publisher}-${counter}`,
      timestamp: '2025-10-23T10:00:00.000Z',
      source: `publisher-${publisher}`,
      payload: { n: counter, text: 'é😀"\\\n'.repeat(random.int(30)), pad: 'x'.repeat(random.int(300)) },
    };
    const record: SentRecord = { event, eventJson: canonicalEventJson(event), ackedSeq: null };
    sent.set(`${event.topic}\u0000${event.event_id}`, record);
    return record;
  };

  /**
   * Acknowledged keys must be in the index with their first content and seq: every key
   * acknowledged since the last check, a random sample of older ones, and all of them
   * every 20th reboot and at the end.
   */
  let checkedUpTo = 0;
  const checkAcked = (aggregator: Aggregator, all: boolean): void => {
    const keys = all ? acked : acked.slice(checkedUpTo);
    if (!all) for (let i = 0; i < 100 && checkedUpTo > 0; i += 1) keys.push(acked[random.int(checkedUpTo)]!);
    checkedUpTo = acked.length;
    const firstSeq = aggregator.firstSeq;
    // Retention deleted the rows below the first retained seq: none may be back.
    // The first row's seq from the index alone: reading its body would touch the simulated disk.
    const below = aggregator.index.seqBounds()?.first;
    if (below !== undefined && below < firstSeq) {
      result.resurrected += 1;
      example(`after crash ${result.crashes}: index row seq ${below} below the first retained seq ${firstSeq}`);
    }
    for (const key of keys) {
      const record = sent.get(key)!;
      const stored = aggregator.index.lookup(record.event.topic, record.event.event_id);
      if (stored === undefined && record.ackedSeq !== null && record.ackedSeq < firstSeq) {
        expiredKeys.add(key);
      } else if (stored === undefined) {
        if (!lostKeys.has(key)) example(`lost after crash ${result.crashes}: ${key} (acked seq ${record.ackedSeq})`);
        lostKeys.add(key);
      } else if (stored.seq !== record.ackedSeq || !stored.digest.equals(eventDigestOf(record.eventJson))) {
        if (!garbledKeys.has(key))
          example(`garbled after crash ${result.crashes}: ${key} stored seq ${stored.seq}, acked ${record.ackedSeq}`);
        garbledKeys.add(key);
      }
    }
  };

  const publisher = async (aggregator: Aggregator, id: number, isCrashed: () => boolean): Promise<void> => {
    let outstanding: SentRecord[] | null = null;
    for (let request = 0; request < options.requestsPerCycleMax && !isCrashed(); request += 1) {
      if (outstanding === null) {
        const size = random.chance(0.5) ? 1 : 1 + random.int(8);
        outstanding = [];
        for (let i = 0; i < size; i += 1) {
          const resend = acked.length > 0 && random.chance(options.resendChance) ? sent.get(acked[random.int(acked.length)]!)! : null;
          outstanding.push(resend ?? newEvent(id));
        }
      }
      const events: ValidEvent[] = outstanding.map((r) => ({ event: r.event, tsMs: Date.parse(r.event.timestamp) }));
      let answer;
      try {
        answer = await aggregator.publish(events);
      } catch (err) {
        if (isCrashed() || err instanceof SimulatedPowerLoss) return;
        if ((err instanceof AppError && err.status === 503) || err instanceof WalError) continue;
        result.unexpectedErrors.push(String(err));
        return;
      }
      // An answer that arrives after the power went out was never sent to a client.
      if (isCrashed()) return;
      answer.results.forEach((outcome, index) => {
        const record = outstanding![index]!;
        const key = `${record.event.topic}\u0000${record.event.event_id}`;
        if (record.ackedSeq === null) {
          record.ackedSeq = outcome.seq;
          acked.push(key);
        } else if (record.ackedSeq !== outcome.seq) {
          result.unexpectedErrors.push(`${key} acked as seq ${record.ackedSeq}, later answered ${JSON.stringify(outcome)}`);
        }
      });
      outstanding = null;
    }
  };

  // Disk operations of a power-on that ran to its end: crash points are drawn below it.
  let quietCycleOperations = 150;
  // Disk operations of the last recovery that completed.
  let recoveryOperations = 8;
  for (let cycle = 0; cycle <= options.crashes; cycle += 1) {
    const operationsAtStart = disk.operationCount;
    const isFinal = cycle === options.crashes;
    let crashed = false;
    let aggregator: Aggregator | null = null;
    let signalCrash: () => void = () => undefined;
    const crashSignal = new Promise<void>((resolve) => (signalCrash = resolve));
    const onCrash = (): void => {
      crashed = true;
      session.end();
      // The process is gone: its index connection writes nothing more.
      try {
        aggregator?.index.close();
      } catch {
        // the index was not open yet
      }
      signalCrash();
    };
    // One power-on in five loses power during recovery (which may be long after an index
    // loss); the others somewhere in the appends that follow it.
    const duringRecovery = !isFinal && random.chance(0.2);
    if (duringRecovery) disk.armCrash(1 + random.int(recoveryOperations), onCrash);

    // The process of this power-on sees the disk through a session that dies with it: work it
    // had scheduled (a flush, a retention run) must not touch the disk after the reboot.
    const session = sessionOf(disk);
    aggregator = new Aggregator({ config, logger, disk: session.disk });
    let opened = false;
    try {
      await aggregator.open();
      opened = true;
    } catch (err) {
      if (!crashed) {
        result.recoveryFailures.push(`reboot after crash ${result.crashes}: ${(err as Error).message}`);
        break;
      }
      result.crashesDuringRecovery += 1;
    }

    if (opened) {
      recoveryOperations = Math.max(1, disk.operationCount - operationsAtStart);
      if (!isFinal && !duringRecovery) disk.armCrash(1 + random.int(quietCycleOperations), onCrash);
      checkAcked(aggregator, isFinal || cycle % 20 === 0);
      if (isFinal) {
        await finalChecks(aggregator, disk, config.walDir, sent, result, example);
        await aggregator.close();
        break;
      }
      const running = aggregator;
      const publishers = Array.from({ length: options.publishers }, (_, id) => publisher(running, id, () => crashed));
      await Promise.race([Promise.all(publishers), crashSignal]);
      if (!crashed) {
        quietCycleOperations = Math.max(30, disk.operationCount - operationsAtStart - recoveryOperations);
        disk.crashNow();
      }
    }

    // Power loss: apply the crash model, maybe lose the index too, and power up again.
    result.crashes += 1;
    const { entriesLost, unlinksUndone } = disk.reboot(random, () => random.pick(options.models));
    result.directoryEntriesLost += entriesLost;
    result.unlinksUndone += unlinksUndone;
    if (random.chance(options.indexLossChance)) {
      result.indexLosses += 1;
      for (const suffix of ['', '-wal', '-shm']) fs.rmSync(config.databasePath + suffix, { force: true });
    }
  }

  result.acked = acked.length;
  result.lost = lostKeys.size;
  result.garbled = garbledKeys.size;
  result.expired = expiredKeys.size;
  return result;
}

/** After the last reboot: the whole index and the whole log against what was sent. */
async function finalChecks(
  aggregator: Aggregator,
  disk: PowerLossDisk,
  walDir: string,
  sent: Map<string, SentRecord>,
  result: PowerLossResult,
  example: (text: string) => void,
): Promise<void> {
  for (const { seq, position } of aggregator.index.rowsInSeqOrder()) {
    let body: string | null;
    try {
      body = aggregator.index.readEventAt(seq, position);
    } catch (err) {
      // A disk that lied about fsync lost the record the index points at: not the event sent.
      result.garbled += 1;
      example(`index row seq ${seq} points at no record of it: ${(err as Error).message}`);
      continue;
    }
    if (body === null) continue;
    const row = { seq, body };
    const { topic, event_id } = JSON.parse(row.body) as LogEvent;
    const record = sent.get(`${topic}\u0000${event_id}`);
    if (record === undefined) {
      result.unsent += 1;
      example(`stored but never sent: ${topic}/${event_id}`);
    } else if (record.eventJson !== row.body) {
      result.garbled += 1;
      example(`stored content differs from sent: ${topic}/${event_id}`);
    }
  }
  const seen = new Map<string, number>();
  // Policy: after recovery the log must read clean, from the first retained seq (no segment
  // wholly below it left); a problem is shown, the counts decide.
  const retained = retainedSegments(disk, walDir, aggregator.firstSeq);
  if (retained.expired.length > 0) {
    result.resurrected += 1;
    example(`after recovery, segments below the first retained seq remain: ${retained.expired.map((s) => s.name).join(', ')}`);
  }
  for (const item of readSegments(disk, retained.segments, { expectedFirstSeq: retained.marked ? retained.firstSeq : null })) {
    if (item.kind === 'corruption' || item.kind === 'seq_break' || item.kind === 'torn_tail') {
      example(`segment ${item.segment.name} after recovery: ${item.kind} ${JSON.stringify({ ...item, segment: undefined })}`);
    }
    if (item.kind !== 'record') continue;
    const event = JSON.parse(item.eventJson) as LogEvent;
    const key = `${event.topic}\u0000${event.event_id}`;
    seen.set(key, (seen.get(key) ?? 0) + 1);
  }
  for (const [key, count] of seen) {
    if (count > 1) {
      result.duplicated += 1;
      example(`${count} records in the log for ${key}`);
    }
    if (!sent.has(key)) result.unsent += 1;
  }
}

/**
 * A view of `disk` for one power-on: once `end` is called (the power went out), every call
 * through it throws SimulatedPowerLoss, also after the reboot, as a dead process does nothing.
 */
function sessionOf(disk: PowerLossDisk): { disk: LogDisk; end: () => void } {
  let alive = true;
  const view = new Proxy(disk, {
    get(target, name, receiver) {
      const value: unknown = Reflect.get(target, name, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]): unknown => {
        if (!alive) throw new SimulatedPowerLoss();
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { disk: view, end: () => (alive = false) };
}
