import net from 'node:net';
import { waitFor } from '../../src/cli/wait';

/** A raw TCP connection to a server, for requests a client library refuses to send. */
export interface RawConnection {
  socket: net.Socket;
  /** Everything the server sent so far. */
  received: () => string;
  /** True once the server closed (or reset) the connection. */
  closed: () => boolean;
  /** Waits until the server's answer is complete (headers and a Content-Length body) and returns it. */
  answer(timeoutMs?: number): Promise<{ status: number; headers: string; body: string }>;
}

/** Opens a connection and writes `first` (request line, headers, maybe some body). */
export async function rawConnect(port: number, first: string | Buffer, host = '127.0.0.1'): Promise<RawConnection> {
  const socket = net.connect(port, host);
  let received = '';
  let closed = false;
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  socket.on('error', () => undefined);
  socket.on('close', () => (closed = true));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.write(first);
  return {
    socket,
    received: () => received,
    closed: () => closed,
    answer: (timeoutMs = 10_000) =>
      waitFor(
        () => {
          const end = received.indexOf('\r\n\r\n');
          if (end === -1) return null;
          const headers = received.slice(0, end);
          const length = /\r\ncontent-length:\s*(\d+)/i.exec(headers);
          const body = received.slice(end + 4);
          if (length !== null && Buffer.byteLength(body, 'latin1') < Number(length[1])) return null;
          return { status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(headers)?.[1] ?? 0), headers, body };
        },
        { timeoutMs, what: 'the server to answer' },
      ),
  };
}
