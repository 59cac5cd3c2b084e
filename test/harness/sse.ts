import { createParser } from 'eventsource-parser';

/** A Server-Sent Events reader for tests: every event and comment as it arrives. */
export interface SseClient {
  status: number;
  headers: Headers;
  events: Array<{ id: number; data: any }>;
  comments: string[];
  /** Resolves when the server ends the stream (or the client closes it). */
  ended: Promise<void>;
  close(): void;
}

/**
 * Opens GET `url` as an event stream, optionally resuming after `lastEventId`. Framing (LF or
 * CRLF line ends, multi-line data, comments) is eventsource-parser's, as the CLI's tail
 * uses; an event is kept when it has an id and JSON data.
 */
export async function openSse(url: string, lastEventId?: number): Promise<SseClient> {
  const controller = new AbortController();
  const headers: Record<string, string> = { accept: 'text/event-stream' };
  if (lastEventId !== undefined) headers['last-event-id'] = String(lastEventId);
  const res = await fetch(url, { headers, signal: controller.signal });
  const client: SseClient = {
    status: res.status,
    headers: res.headers,
    events: [],
    comments: [],
    ended: Promise.resolve(),
    close: () => controller.abort(),
  };
  if (res.status !== 200) {
    await res.text();
    return client;
  }
  const parser = createParser({
    onEvent: (message) => {
      if (message.id !== undefined) client.events.push({ id: Number(message.id), data: JSON.parse(message.data) });
    },
    onComment: (comment) => client.comments.push(comment.trim()),
  });
  client.ended = (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) parser.feed(decoder.decode(chunk, { stream: true }));
    } catch {
      // aborted by close()
    }
  })();
  return client;
}
