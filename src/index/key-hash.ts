/**
 * The dedup key of an event: MurmurHash3_x86_128 (seed 0) over the UTF-16LE code units of
 * (topic length as two 16-bit units, topic, event_id). The length prefix keeps ("ab", "c")
 * and ("a", "bc") apart; the total length is mixed into the hash by MurmurHash3 itself.
 * Keys are compared by this hash alone: for n keys a collision has probability about
 * n^2 / 2^129, 1.5e-15 at 10^12 keys (docs/architecture.md).
 */
export type DedupKey = Buffer;

/** Bytes of a DedupKey and of an event digest. */
export const DEDUP_KEY_BYTES = 16;

/** The 128-bit dedup key of (topic, event_id). */
export function dedupKeyOf(topic: string, eventId: string): DedupKey {
  return murmur128(String.fromCharCode(topic.length & 0xffff, topic.length >>> 16) + topic + eventId);
}

/**
 * The 128-bit digest of an event's canonical JSON (without received_at): what a re-send is
 * compared with once the original's body may be gone (retention), to flag a conflict.
 */
export function eventDigestOf(eventJson: string): Buffer {
  return murmur128(eventJson);
}

/**
 * A 53-bit number from a key (its first 53 bits), for maps keyed by numbers (PendingKeys):
 * entries that share it are told apart by topic and event_id.
 */
export function keyNumberOf(key: DedupKey): number {
  return key.readUInt32LE(0) * 0x200000 + (key.readUInt32LE(4) >>> 11);
}

const C1 = 0x239b961b;
const C2 = 0xab0e9789;
const C3 = 0x38b34ae5;
const C4 = 0xa1e38b93;

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

/** MurmurHash3's 32-bit finaliser. */
function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}

/** The 32-bit little-endian word of `text`'s UTF-16LE bytes that starts at code unit `unit` (0 past the end). */
function wordAt(text: string, unit: number, units: number): number {
  const low = unit < units ? text.charCodeAt(unit) : 0;
  const high = unit + 1 < units ? text.charCodeAt(unit + 1) : 0;
  return low | (high << 16);
}

/** MurmurHash3_x86_128 with seed 0 over the UTF-16LE bytes of `text`. */
export function murmur128(text: string): Buffer {
  const units = text.length;
  const bytes = units * 2;
  let h1 = 0;
  let h2 = 0;
  let h3 = 0;
  let h4 = 0;
  let k1: number;
  let k2: number;
  let k3: number;
  let k4: number;
  // Body: 16-byte blocks (8 code units).
  const blocks = Math.floor(units / 8);
  for (let block = 0; block < blocks; block += 1) {
    const at = block * 8;
    k1 = text.charCodeAt(at) | (text.charCodeAt(at + 1) << 16);
    k2 = text.charCodeAt(at + 2) | (text.charCodeAt(at + 3) << 16);
    k3 = text.charCodeAt(at + 4) | (text.charCodeAt(at + 5) << 16);
    k4 = text.charCodeAt(at + 6) | (text.charCodeAt(at + 7) << 16);
    k1 = Math.imul(rotl(Math.imul(k1, C1), 15), C2);
    h1 ^= k1;
    h1 = (Math.imul(rotl(h1, 19) + h2, 5) + 0x561ccd1b) | 0;
    k2 = Math.imul(rotl(Math.imul(k2, C2), 16), C3);
    h2 ^= k2;
    h2 = (Math.imul(rotl(h2, 17) + h3, 5) + 0x0bcaa747) | 0;
    k3 = Math.imul(rotl(Math.imul(k3, C3), 17), C4);
    h3 ^= k3;
    h3 = (Math.imul(rotl(h3, 15) + h4, 5) + 0x96cd1c35) | 0;
    k4 = Math.imul(rotl(Math.imul(k4, C4), 18), C1);
    h4 ^= k4;
    h4 = (Math.imul(rotl(h4, 13) + h1, 5) + 0x32ac3b17) | 0;
  }
  // Tail: the last 0-14 bytes, zero-padded into up to four words.
  const tail = blocks * 8;
  const tailUnits = units - tail;
  if (tailUnits > 6) h4 ^= Math.imul(rotl(Math.imul(wordAt(text, tail + 6, units), C4), 18), C1);
  if (tailUnits > 4) h3 ^= Math.imul(rotl(Math.imul(wordAt(text, tail + 4, units), C3), 17), C4);
  if (tailUnits > 2) h2 ^= Math.imul(rotl(Math.imul(wordAt(text, tail + 2, units), C2), 16), C3);
  if (tailUnits > 0) h1 ^= Math.imul(rotl(Math.imul(wordAt(text, tail, units), C1), 15), C2);
  // Finalisation.
  h1 ^= bytes;
  h2 ^= bytes;
  h3 ^= bytes;
  h4 ^= bytes;
  h1 = (h1 + h2 + h3 + h4) | 0;
  h2 = (h2 + h1) | 0;
  h3 = (h3 + h1) | 0;
  h4 = (h4 + h1) | 0;
  h1 = fmix(h1);
  h2 = fmix(h2);
  h3 = fmix(h3);
  h4 = fmix(h4);
  h1 = (h1 + h2 + h3 + h4) | 0;
  h2 = (h2 + h1) | 0;
  h3 = (h3 + h1) | 0;
  h4 = (h4 + h1) | 0;
  const out = Buffer.allocUnsafe(DEDUP_KEY_BYTES);
  out.writeUInt32LE(h1 >>> 0, 0);
  out.writeUInt32LE(h2 >>> 0, 4);
  out.writeUInt32LE(h3 >>> 0, 8);
  out.writeUInt32LE(h4 >>> 0, 12);
  return out;
}
