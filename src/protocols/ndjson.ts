import { AppError } from '../errors';
import { findLossyNumber } from './json-text';

/** One non-empty line of an NDJSON body, parsed, with its 1-based line number. */
export interface NdjsonLine {
  line: number;
  text: string;
  value: unknown;
}

/**
 * Splits an NDJSON text into its non-empty lines (LF or CRLF; blank lines skipped) and
 * parses each. More than `linesMax` lines is 413 batch_too_large (checked before parsing);
 * a line that is not JSON is 400 invalid_json naming its line number (and, as `index`, its
 * position among the non-empty lines); nothing is kept then.
 */
export function parseNdjson(text: string, linesMax: number, what: string): NdjsonLine[] {
  const lines: Array<{ line: number; text: string }> = [];
  let start = 0;
  let number = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    number += 1;
    const raw = text.charCodeAt(end - 1) === 13 ? text.slice(start, end - 1) : text.slice(start, end);
    if (raw.trim() !== '') {
      if (lines.length === linesMax)
        throw new AppError('batch_too_large', `more than ${linesMax} ${what} lines in one request (BATCH_EVENTS_MAX)`);
      lines.push({ line: number, text: raw });
    }
    start = end + 1;
  }
  return lines.map(({ line, text: lineText }, index) => {
    let value: unknown;
    try {
      value = JSON.parse(lineText) as unknown;
    } catch (err) {
      const message = `line ${line} is not valid JSON: ${(err as Error).message}`;
      throw new AppError('invalid_json', `${message}; nothing was written`, { details: [{ index, path: `line ${line}`, message }] });
    }
    // As for a JSON body (src/http/body.ts): a number is stored as sent or refused, never rounded.
    const lossy = findLossyNumber(lineText);
    if (lossy !== null) {
      const message = `line ${line}: the number ${lossy.literal.slice(0, 40)} cannot be stored as sent; send it as a string`;
      throw new AppError('number_not_kept', `${message}; nothing was written`, { details: [{ index, path: `line ${line}`, message }] });
    }
    return { line, text: lineText, value };
  });
}
