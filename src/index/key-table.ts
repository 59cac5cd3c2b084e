/**
 * The dedup key of an event as a 53-bit number: two independent 32-bit hashes of
 * (topic, event_id), the first whole and 21 bits of the second. Different keys may share a
 * hash; every user of it confirms a match against the stored key, so dedup stays exact.
 */
export function keyHash(topic: string, eventId: string): number {
  // The topic's length goes first, so ("ab", "c") and ("a", "bc") hash apart.
  let h1 = Math.imul(0x811c9dc5 ^ topic.length, 0x01000193);
  let h2 = Math.imul(0x9747b28c ^ topic.length, 0x5bd1e995);
  for (let i = 0; i < topic.length; i += 1) {
    const c = topic.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995);
    h2 ^= h2 >>> 13;
  }
  for (let i = 0; i < eventId.length; i += 1) {
    const c = eventId.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995);
    h2 ^= h2 >>> 13;
  }
  return (mix32(h1) >>> 0) * 0x200000 + (mix32(h2 ^ eventId.length) >>> 11);
}

/** MurmurHash3's finaliser: every input bit affects every output bit. */
function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}

/** Slots per key at least; the table doubles before it is more than half full. */
const LOAD_FACTOR_MAX = 0.5;
const CAPACITY_MIN = 1024;

/**
 * An in-memory multimap from key hash to seq, for every key the index holds: 16 bytes a
 * slot in two typed arrays (about 32 MB for 1M keys), open addressing with linear probing.
 * It answers "which seqs might hold this key?" in one probe run; it does not know the keys
 * themselves (callers confirm a candidate against its stored row) and it never forgets.
 */
export class KeyTable {
  private hashes: Float64Array;
  /** 0 marks an empty slot: seqs start at 1. */
  private seqs: Float64Array;
  private mask: number;
  private count = 0;

  constructor(expectedKeys = 0) {
    let capacity = CAPACITY_MIN;
    while (capacity * LOAD_FACTOR_MAX < expectedKeys) capacity *= 2;
    this.hashes = new Float64Array(capacity);
    this.seqs = new Float64Array(capacity);
    this.mask = capacity - 1;
  }

  /** Keys held. */
  get size(): number {
    return this.count;
  }

  /** Records that `seq` holds a key with this hash. */
  add(hash: number, seq: number): void {
    if (this.count + 1 > (this.mask + 1) * LOAD_FACTOR_MAX) this.grow();
    this.place(hash, seq);
    this.count += 1;
  }

  /**
   * Calls `matches` with each seq stored under `hash` until it returns true; returns that
   * seq, or 0 when none matched.
   */
  find(hash: number, matches: (seq: number) => boolean): number {
    const { hashes, seqs, mask } = this;
    for (let slot = slotOf(hash, mask); seqs[slot] !== 0; slot = (slot + 1) & mask) {
      if (hashes[slot] === hash && matches(seqs[slot]!)) return seqs[slot]!;
    }
    return 0;
  }

  /** True when no key with this hash is held: then the key is certainly new. */
  lacks(hash: number): boolean {
    const { hashes, seqs, mask } = this;
    for (let slot = slotOf(hash, mask); seqs[slot] !== 0; slot = (slot + 1) & mask) {
      if (hashes[slot] === hash) return false;
    }
    return true;
  }

  private place(hash: number, seq: number): void {
    const { hashes, seqs, mask } = this;
    let slot = slotOf(hash, mask);
    while (seqs[slot] !== 0) slot = (slot + 1) & mask;
    hashes[slot] = hash;
    seqs[slot] = seq;
  }

  private grow(): void {
    const oldHashes = this.hashes;
    const oldSeqs = this.seqs;
    const capacity = (this.mask + 1) * 2;
    this.hashes = new Float64Array(capacity);
    this.seqs = new Float64Array(capacity);
    this.mask = capacity - 1;
    for (let i = 0; i < oldSeqs.length; i += 1) {
      if (oldSeqs[i] !== 0) this.place(oldHashes[i]!, oldSeqs[i]!);
    }
  }
}

/** The first slot to probe: low bits of the hash (both halves of it are well mixed). */
function slotOf(hash: number, mask: number): number {
  return ((hash % 0x200000) ^ Math.floor(hash / 0x200000)) & mask;
}
