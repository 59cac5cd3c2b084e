import fs from 'node:fs';
import path from 'node:path';
import { canonicalEventJson, encodeRecord } from '../src/wal/record';
import { benchEvent } from './events';

/**
 * The disk's floor for the publish path, run as its own process: a writer that does what
 * WalWriter's group commit does and nothing else. `clients` requests of `perRequest`
 * records are always pending (each client re-sends as soon as it is answered), so every
 * flush is one write of clients x perRequest encoded records and one fdatasync.
 * argv[2] is {dir, clients, perRequest, seconds}; prints {eventsPerSecond, requestsPerSecond,
 * flushP50Ms, flushP99Ms, cpuMicrosPerEvent}.
 */
function main(): void {
  const spec = JSON.parse(process.argv[2] ?? '{}') as { dir: string; clients: number; perRequest: number; seconds: number };
  const file = path.join(spec.dir, 'fsync-floor.ndjson');
  const fd = fs.openSync(file, 'a');
  const perFlush = spec.clients * spec.perRequest;
  const flushTimes: number[] = [];
  let seq = 1;
  let events = 0;
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  try {
    while (performance.now() - started < spec.seconds * 1000) {
      const flushStarted = performance.now();
      // Encoding is part of the writer's work (WalWriter encodes at append), so it is timed.
      const lines: string[] = [];
      for (let i = 0; i < perFlush; i += 1) {
        lines.push(encodeRecord(seq, canonicalEventJson(benchEvent('floor', seq))));
        seq += 1;
      }
      fs.writeSync(fd, lines.join(''));
      fs.fdatasyncSync(fd);
      flushTimes.push(performance.now() - flushStarted);
      events += perFlush;
    }
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  flushTimes.sort((a, b) => a - b);
  const at = (q: number): number => flushTimes[Math.min(flushTimes.length - 1, Math.floor(q * flushTimes.length))] ?? 0;
  process.stdout.write(
    `${JSON.stringify({
      eventsPerSecond: events / seconds,
      requestsPerSecond: events / spec.perRequest / seconds,
      flushP50Ms: at(0.5),
      flushP99Ms: at(0.99),
      cpuMicrosPerEvent: (cpu.user + cpu.system) / events,
    })}\n`,
  );
}

main();
