import { isUtf8 } from 'node:buffer';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Transform } from 'node:stream';
import zlib from 'node:zlib';
import type { RequestHandler } from 'express';
import { AppError } from '../errors';
import { invalidUtf8Offset, numberNotKeptError } from '../protocols/json-text';

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
  const notKept = numberNotKeptError(text);
  if (notKept !== null) throw notKept;
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
