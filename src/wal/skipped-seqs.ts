import path from 'node:path';
import type { LogDisk } from './disk';

/**
 * Seqs that an operator removed from the log on purpose (`logagg repair
 * --quarantine-corrupt`), kept in `wal/quarantine/skipped-seqs.json`. Seqs are ids and are
 * never renumbered, so a quarantined record leaves a gap; readers accept exactly the gaps
 * listed here and still call any other gap corruption.
 */
export interface SkippedSeqRange {
  /** First and last seq of the gap, inclusive. */
  from: number;
  to: number;
  /** The segment the gap is in (or before, for a gap between segments). */
  segment: string;
  reason: string;
  /** Where the removed bytes were saved, or null when there were none (a missing record). */
  savedTo: string | null;
  /** When the repair recorded it (ISO 8601). */
  at: string;
}

/** The set of skipped seqs, answering range questions without expanding the ranges. */
export interface SkippedSeqs {
  readonly ranges: readonly SkippedSeqRange[];
  /** True when every seq from `from` to `to` (inclusive) is skipped; true for an empty range. */
  covers(from: number, to: number): boolean;
  /** The highest skipped seq, 0 when none. */
  readonly maxSeq: number;
}

/** The file's name inside `wal/quarantine/`. */
export const SKIPPED_SEQS_FILE = 'skipped-seqs.json';

/** The path of the skipped-seqs file of a log directory. */
export function skippedSeqsPath(walDir: string): string {
  return path.join(walDir, 'quarantine', SKIPPED_SEQS_FILE);
}

/** Builds the lookup over a list of ranges (in any order, overlaps allowed). */
export function skippedSeqsFrom(ranges: readonly SkippedSeqRange[]): SkippedSeqs {
  const sorted = [...ranges].sort((a, b) => a.from - b.from);
  const merged: Array<{ from: number; to: number }> = [];
  for (const range of sorted) {
    const last = merged[merged.length - 1];
    if (last !== undefined && range.from <= last.to + 1) last.to = Math.max(last.to, range.to);
    else merged.push({ from: range.from, to: range.to });
  }
  return {
    ranges: sorted,
    maxSeq: merged.length === 0 ? 0 : merged[merged.length - 1]!.to,
    covers(from: number, to: number): boolean {
      if (to < from) return true;
      return merged.some((range) => range.from <= from && to <= range.to);
    },
  };
}

/** Reads the skipped seqs of a log (none when the file is absent); a malformed file throws. */
export function readSkippedSeqs(disk: LogDisk, walDir: string): SkippedSeqs {
  const file = skippedSeqsPath(walDir);
  if (!disk.exists(file)) return skippedSeqsFrom([]);
  let parsed: unknown;
  try {
    parsed = JSON.parse(disk.readFile(file).toString('utf8'));
  } catch (err) {
    throw new Error(`read ${file}: ${(err as Error).message}`, { cause: err });
  }
  const ranges = (parsed as { skipped?: unknown }).skipped;
  const valid =
    Array.isArray(ranges) &&
    ranges.every((r: SkippedSeqRange) => Number.isSafeInteger(r?.from) && Number.isSafeInteger(r?.to) && r.from >= 1 && r.to >= r.from);
  if (!valid) throw new Error(`read ${file}: expected {"skipped":[{"from":N,"to":N,...}]}`);
  return skippedSeqsFrom(ranges as SkippedSeqRange[]);
}
