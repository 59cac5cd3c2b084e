import { isUtf8 } from 'node:buffer';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Transform } from 'node:stream';
import zlib from 'node:zlib';
import type { RequestHandler } from 'express';
import { AppError } from '../errors';

/** What one request body may cost; every protocol route that reads a body shares it. */
export interface BodyLimits {
  /** Bytes on the wire and bytes after inflation; past either the answer is 413 and the connection closes. */
  bodyBytesMax: number;
}

/**
 * After an early 413 the rest of the body is read and thrown away for at most this long, so
 * the client, still sending, gets to read the answer before the connection is cut (a reset
 * with unread bytes would discard it).
 */
const DISCARD_AFTER_REJECT_MS = 1000;

/** Content-Encoding values a body may have, and the stream that inflates each. */
const INFLATERS: Record<string, (() => Transform) | null> = {
  identity: null,
  gzip: () => zlib.createGunzip(),
  'x-gzip': () => zlib.createGunzip(),
  deflate: () => zlib.createInflate(),
  br: () => zlib.createBrotliDecompress(),
};

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
 * Decodes and parses a JSON body: strict UTF-8 (an invalid byte is 400 invalid_utf8 naming its
 * offset, never replaced), an object or array at the top, and every number kept as sent
 * (400 number_not_kept otherwise). A leading byte order mark is ignored.
 */
export function parseJsonBody(bytes: Buffer): unknown {
  if (!isUtf8(bytes)) {
    const offset = invalidUtf8Offset(bytes) ?? 0;
    throw new AppError(
      'invalid_utf8',
      `the body is not valid UTF-8: byte 0x${bytes[offset]!.toString(16).padStart(2, '0')} at byte offset ${offset}`,
      {
        details: [{ index: -1, path: '(body)', message: `invalid UTF-8 at byte offset ${offset}` }],
      },
    );
  }
  let text = bytes.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const first = /\S/.exec(text)?.[0];
  if (first !== '{' && first !== '[') {
    throw new AppError('invalid_json', 'the body is not valid JSON: it must be an object or an array');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new AppError('invalid_json', `the body is not valid JSON: ${(err as Error).message}`);
  }
  const lossy = findLossyNumber(text);
  if (lossy !== null) {
    const shown = lossy.literal.length > 40 ? `${lossy.literal.slice(0, 40)}...` : lossy.literal;
    throw new AppError(
      'number_not_kept',
      `the number ${shown} at byte offset ${lossy.offset} cannot be stored as sent; send it as a string`,
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
  return value;
}

/** The charset parameter of a Content-Type, lower-cased, or null. */
function charsetOf(contentType: string): string | null {
  const match = /;\s*charset\s*=\s*"?([^";\s]*)"?/i.exec(contentType);
  return match === null ? null : match[1]!.toLowerCase();
}

/** True when the request announces a body (Content-Length or Transfer-Encoding), even an empty one. */
function hasBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || req.headers['content-length'] !== undefined;
}

/** Answers the rest of this request with `Connection: close`, discarding what the client still sends for a bounded time. */
function closeAfterAnswer(req: IncomingMessage, res: ServerResponse): void {
  res.setHeader('Connection', 'close');
  req.resume();
  res.once('finish', () => {
    const socket = req.socket;
    const timer = setTimeout(() => socket.destroy(), DISCARD_AFTER_REJECT_MS);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  });
}

/**
 * Reads a request body into one Buffer, inflating gzip/deflate/br. Past `bodyBytesMax` on the
 * wire (declared by Content-Length or received) or after inflation it rejects at once with
 * 413 body_too_large and marks the connection to close, without reading the rest.
 */
export function readBody(req: IncomingMessage, res: ServerResponse, limits: BodyLimits): Promise<Buffer> {
  const limit = limits.bodyBytesMax;
  const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  const inflater = INFLATERS[encoding];
  if (inflater === undefined) {
    return Promise.reject(
      new AppError('unsupported_media_type', `unsupported content encoding "${encoding}"; use gzip, deflate, br or none`),
    );
  }
  const tooLarge = (what: string): AppError => {
    closeAfterAnswer(req, res);
    return new AppError('body_too_large', `the body is over BODY_BYTES_MAX=${limit} bytes (${what})`);
  };
  const declared = Number(req.headers['content-length'] ?? Number.NaN);
  if (declared > limit) return Promise.reject(tooLarge('by its Content-Length'));

  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let wireBytes = 0;
    let bodyBytes = 0;
    let settled = false;
    const stream = inflater === null ? null : inflater();
    const finish = (err: Error | null): void => {
      if (settled) return;
      settled = true;
      req.off('data', onWire);
      req.off('end', onWireEnd);
      req.off('aborted', onAborted);
      req.off('error', onAborted);
      if (stream !== null) stream.destroy();
      if (err === null) resolve(Buffer.concat(chunks, bodyBytes));
      else reject(err);
    };
    const onBody = (chunk: Buffer): void => {
      bodyBytes += chunk.length;
      if (bodyBytes > limit) finish(tooLarge('after decompression'));
      else chunks.push(chunk);
    };
    const onWire = (chunk: Buffer): void => {
      wireBytes += chunk.length;
      if (wireBytes > limit) {
        finish(tooLarge('as received'));
        return;
      }
      if (stream === null) onBody(chunk);
      else stream.write(chunk);
    };
    const onWireEnd = (): void => {
      if (stream === null) finish(null);
      else stream.end();
    };
    const onAborted = (): void => finish(new AppError('invalid_json', 'the request was aborted before the body was complete'));
    if (stream !== null) {
      stream.on('data', onBody);
      stream.on('end', () => finish(null));
      stream.on('error', (err: Error) => {
        finish(new AppError('invalid_compressed_body', `the compressed body could not be inflated: ${err.message}`));
      });
    }
    req.on('data', onWire);
    req.on('end', onWireEnd);
    req.on('aborted', onAborted);
    req.on('error', onAborted);
  });
}

/**
 * Middleware for the JSON body of a publish route: for a JSON Content-Type (`isJson`) it reads
 * the body (readBody) and parses it (parseJsonBody) into `req.body`; a request without a body
 * leaves `req.body` undefined and other types are left for the route to refuse (415).
 */
export function jsonBodyParser(limits: BodyLimits, isJson: (req: IncomingMessage) => boolean): RequestHandler {
  return (req, res, next) => {
    if (!isJson(req)) {
      next();
      return;
    }
    const charset = charsetOf(req.headers['content-type'] ?? '');
    if (charset !== null && charset !== 'utf-8' && charset !== 'utf8') {
      next(new AppError('unsupported_media_type', `unsupported charset "${charset.toUpperCase()}"; send UTF-8`));
      return;
    }
    readBody(req, res, limits).then(
      (bytes) => {
        try {
          // An empty body that was announced (Content-Length: 0) reads as {}, as body-parser did.
          if (bytes.length > 0) req.body = parseJsonBody(bytes);
          else if (hasBody(req)) req.body = {};
        } catch (err) {
          next(err);
          return;
        }
        next();
      },
      (err: unknown) => next(err),
    );
  };
}
