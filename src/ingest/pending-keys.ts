/** An accepted key not yet in the index: dedup must see it before the consumer does. */
export interface PendingEntry {
  seq: number;
  eventJson: string;
  topic: string;
  eventId: string;
  /** The next entry whose key shares this one's hash (rare). */
  next: PendingEntry | null;
}

/**
 * Accepted keys on their way to the index, by key hash (a number key is cheaper to hash
 * and compare than a composed string). Entries whose keys share a hash are chained and told
 * apart by topic and event_id, so answers are exact.
 */
export class PendingKeys {
  private readonly byHash = new Map<number, PendingEntry>();

  get size(): number {
    return this.byHash.size;
  }

  /** The pending entry for exactly this key, or undefined. */
  get(hash: number, topic: string, eventId: string): PendingEntry | undefined {
    for (let entry = this.byHash.get(hash) ?? null; entry !== null; entry = entry.next) {
      if (entry.topic === topic && entry.eventId === eventId) return entry;
    }
    return undefined;
  }

  /** Adds an entry for a key that get() did not find. */
  add(hash: number, entry: PendingEntry): void {
    entry.next = this.byHash.get(hash) ?? null;
    this.byHash.set(hash, entry);
  }

  /** Removes the entry with this seq under this hash, if it is still there. */
  removeSeq(hash: number, seq: number): void {
    let previous: PendingEntry | null = null;
    for (let entry = this.byHash.get(hash) ?? null; entry !== null; previous = entry, entry = entry.next) {
      if (entry.seq !== seq) continue;
      if (previous !== null) previous.next = entry.next;
      else if (entry.next !== null) this.byHash.set(hash, entry.next);
      else this.byHash.delete(hash);
      return;
    }
  }
}
