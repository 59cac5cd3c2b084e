import { IndexStore, type IndexRow } from '../src/index/store';
import { rowFromEventJson } from '../src/wal/event-row';
import { canonicalEventJson, encodeRecord } from '../src/wal/record';
import { benchEvent } from './events';

/**
 * The raw index baseline, run as its own process: the service's own rows inserted into the
 * service's own schema through IndexStore.appendNewRows (what the consumer calls for rows
 * whose keys the ingest path proved new), `batchRows` rows a transaction, on a fresh file.
 * Going through the store's public method keeps the baseline on whatever schema the store
 * has now. Row building is not timed; only the inserts are.
 * argv[2] is {dbPath, prefix, count, batchRows}; prints {rowsPerSecond, seconds, cpuMicrosPerRow}.
 */
export function rawInsertRate(
  dbPath: string,
  prefix: string,
  count: number,
  batchRows: number,
): { rowsPerSecond: number; seconds: number; cpuMicrosPerRow: number } {
  const store = new IndexStore(dbPath, { loadKeys: false });
  let seconds = 0;
  let cpuMicros = 0;
  let offset = 0;
  try {
    for (let start = 0; start < count; start += batchRows) {
      const rows: IndexRow[] = [];
      for (let i = start; i < Math.min(count, start + batchRows); i += 1) {
        // The position its record would have in one segment (the index stores it; nothing here reads it back).
        const eventJson = canonicalEventJson(benchEvent(prefix, i));
        const length = Buffer.byteLength(encodeRecord(i + 1, eventJson));
        rows.push(rowFromEventJson(i + 1, eventJson, null, { segment: 1, offset, length }));
        offset += length;
      }
      const cpuBefore = process.cpuUsage();
      const started = performance.now();
      store.appendNewRows(rows);
      seconds += (performance.now() - started) / 1000;
      const cpu = process.cpuUsage(cpuBefore);
      cpuMicros += cpu.user + cpu.system;
    }
  } finally {
    store.close();
  }
  return { rowsPerSecond: count / seconds, seconds, cpuMicrosPerRow: cpuMicros / count };
}

if (require.main === module) {
  const spec = JSON.parse(process.argv[2] ?? '{}') as { dbPath: string; prefix: string; count: number; batchRows: number };
  process.stdout.write(`${JSON.stringify(rawInsertRate(spec.dbPath, spec.prefix, spec.count, spec.batchRows))}\n`);
}
