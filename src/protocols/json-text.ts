/**
 * Checks on JSON text that JSON.parse does not make: where UTF-8 breaks, and which number
 * literals it would change. Every body parser (the /publish JSON body, NDJSON lines, the
 * shippers' protocols) uses them, so they live with the protocols, below the HTTP layer.
 */
import { AppError } from '../errors';

/** The byte offset of the first byte that breaks UTF-8 (WHATWG rules: no overlongs, surrogates or values past U+10FFFF). */
export function invalidUtf8Offset(bytes: Uint8Array): number | null {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i += 1;
      continue;
    }
    let need: number;
    let lower = 0x80;
    let upper = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) lower = 0xa0;
      if (b === 0xed) upper = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) lower = 0x90;
      if (b === 0xf4) upper = 0x8f;
    } else return i;
    for (let k = 1; k <= need; k += 1) {
      const c = bytes[i + k];
      if (c === undefined || c < lower || c > upper) return i;
      lower = 0x80;
      upper = 0xbf;
    }
    i += need + 1;
  }
  return null;
}

/** A number literal JSON.parse would change, and where it starts (byte offset in the body). */
export interface LossyNumber {
  offset: number;
  literal: string;
}

/** Sign, significant digits and exponent of a JSON number literal, so equal values compare equal as text. */
function decimalKey(literal: string): string {
  const match = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(literal);
  if (match === null) return `?${literal}`;
  const fraction = match[3] ?? '';
  const all = (match[2]! + fraction).replace(/^0+/, '');
  if (all === '') return `${match[1]}0`;
  const digits = all.replace(/0+$/, '');
  const exponent = Number(match[4] ?? '0') - fraction.length + (all.length - digits.length);
  return `${match[1]}${digits}e${exponent}`;
}

/** True when the number JSON.parse makes of `literal` is written back (JSON.stringify) with the same value and sign. */
export function isNumberKept(literal: string): boolean {
  const stored = JSON.stringify(Number(literal));
  return stored !== 'null' && decimalKey(stored) === decimalKey(literal);
}

/**
 * The first number literal in `text` (valid JSON) whose value JSON.parse cannot keep: past the
 * double range (1e400), negative zero, or more precision than a double holds
 * (12345678901234567890, 0.30000000000000001). Numbers of at most 15 significant digits
 * without exponent are always kept and cost no check beyond the scan.
 */
export function findLossyNumber(text: string): LossyNumber | null {
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // A string: jump to its closing quote (one not preceded by an odd run of backslashes).
      let from = i + 1;
      for (;;) {
        const quote = text.indexOf('"', from);
        if (quote === -1) return null;
        let slash = quote - 1;
        while (text.charCodeAt(slash) === 0x5c) slash -= 1;
        if ((quote - 1 - slash) % 2 === 0) {
          i = quote + 1;
          break;
        }
        from = quote + 1;
      }
      continue;
    }
    if (c !== 0x2d && (c < 0x30 || c > 0x39)) {
      i += 1;
      continue;
    }
    const start = i;
    let digits = 0;
    let nonZero = false;
    let exponent = false;
    for (; i < n; i += 1) {
      const d = text.charCodeAt(i);
      if (d >= 0x30 && d <= 0x39) {
        if (!exponent) {
          digits += 1;
          if (d !== 0x30) nonZero = true;
        }
      } else if (d === 0x65 || d === 0x45) exponent = true;
      else if (d !== 0x2e && d !== 0x2d && d !== 0x2b) break;
    }
    const negativeZero = c === 0x2d && !nonZero;
    if (exponent || digits > 15 || negativeZero) {
      const literal = text.slice(start, i);
      if (!isNumberKept(literal)) return { offset: Buffer.byteLength(text.slice(0, start)), literal };
    }
  }
  return null;
}

/**
 * The 400 number_not_kept for a JSON body (`text`, valid JSON) holding a number JSON.parse
 * would change, or null when every number is kept: a number is stored as sent or refused,
 * never rounded. `what` names the body in the message when it is not "the body".
 */
export function numberNotKeptError(text: string, what = 'the body'): AppError | null {
  const lossy = findLossyNumber(text);
  if (lossy === null) return null;
  const shown = lossy.literal.length > 40 ? `${lossy.literal.slice(0, 40)}...` : lossy.literal;
  const where = what === 'the body' ? '' : ` of ${what}`;
  return new AppError(
    'number_not_kept',
    `the number ${shown} at byte offset ${lossy.offset}${where} cannot be stored as sent; send it as a string`,
    {
      details: [
        {
          index: -1,
          path: '(body)',
          message: `number at byte offset ${lossy.offset} is out of range, -0, or more precise than a double`,
        },
      ],
    },
  );
}
