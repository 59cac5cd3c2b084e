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

/** Opens GET `url` as an event stream, optionally resuming after `lastEventId`. */
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
  client.ended = (async () => {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let id: string | null = null;
          let data: string | null = null;
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) client.comments.push(line.slice(1).trim());
            else if (line.startsWith('id: ')) id = line.slice(4);
            else if (line.startsWith('data: ')) data = line.slice(6);
          }
          if (id !== null && data !== null) client.events.push({ id: Number(id), data: JSON.parse(data) });
        }
      }
    } catch {
      // aborted by close()
    }
  })();
  return client;
}
