import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { ERROR_CATALOGUE, type ErrorCode } from '../errors';

/** Node's HTTP parser errors and the catalogue codes they are answered with (anything else is bad_request). */
const PARSER_ERRORS: Record<string, { code: ErrorCode; message: string }> = {
  HPE_HEADER_OVERFLOW: { code: 'headers_too_large', message: 'the request line and headers are over the 16 KiB bound' },
  ERR_HTTP_REQUEST_TIMEOUT: {
    code: 'request_timeout',
    message: 'the request was not received within REQUEST_TIMEOUT_MS / HEADERS_TIMEOUT_MS',
  },
};

/** The raw HTTP answer for a parser error: the catalogue's JSON `{error, message}`, closing the connection. */
export function clientErrorAnswer(err: NodeJS.ErrnoException): string {
  const known = PARSER_ERRORS[err.code ?? ''] ?? {
    code: 'bad_request' as const,
    message: `the HTTP request is malformed (${err.code ?? 'parse error'})`,
  };
  const status = ERROR_CATALOGUE[known.code].status;
  const body = JSON.stringify({ error: known.code, message: known.message });
  return `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

/**
 * The server's 'clientError' listener: answers what Node's own parser rejects (431, 400, 408)
 * as JSON like every other error, unless the client is gone or an answer is already under way.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  const answering = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (err.code === 'ECONNRESET' || !socket.writable || answering?.headersSent === true) {
    socket.destroy();
    return;
  }
  socket.end(clientErrorAnswer(err));
}
