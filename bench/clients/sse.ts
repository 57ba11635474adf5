/**
 * SSE clients: the `eventsource` package (WHATWG-compliant; reconnects itself with Last-Event-ID) over
 * undici's fetch, each on a connection of its own (bench/clients/http.ts), sending the scenario's headers.
 *
 * EventSource gives up for good on an answer that is not a 200 text/event-stream (a proxy's 502 while
 * the server restarts, a draining server's 503): then, as a real client would, the client opens a new
 * one from the last id it received, after its `reconnect` wait (as the WebSocket and polling clients do).
 */
import { EventSource } from 'eventsource';
import { fetch as undiciFetch } from 'undici';
import { clientConnection, headersFor } from './http.js';
import { dispatch } from './parse.js';
import { type ClientFactory, Reconnector } from './types.js';

export const sseClients: ClientFactory = ({ baseUrl, count, since, sink, http, reconnect, pageOrigin }) => {
  let requests = 0;
  let closing = false;
  const sources: EventSource[] = [];
  const timers = new Set<NodeJS.Timeout>();
  // Each client's own connection, destroyed on close: an aborted fetch leaves undici a spare
  // keep-alive socket, which would otherwise stay open on the server and be counted as its memory.
  const connections = Array.from({ length: count }, () => clientConnection(baseUrl, http));
  const extra = headersFor('sse', baseUrl, http, pageOrigin);

  const open = (i: number, onOpen: () => void) => {
    const backoff = new Reconnector(reconnect);
    let last = since;
    const connect = () => {
      const es = new EventSource(`${baseUrl}/events?since=${last}`, {
        fetch: (input, init) => {
          requests++;
          // EventSource's own headers (Accept, Cache-Control, Last-Event-ID) win over the browser set.
          const own = (init?.headers ?? {}) as Record<string, string>;
          return undiciFetch(input as string, {
            ...(init as object),
            headers: { ...extra, ...own },
            dispatcher: connections[i]!,
          }) as unknown as Promise<Response>;
        },
      });
      sources[i] = es;
      es.onopen = () => {
        backoff.succeeded();
        onOpen();
      };
      const onFrame = (e: MessageEvent) => {
        const id = dispatch(sink, i, e.data as string);
        if (id !== undefined) last = id;
      };
      es.onmessage = onFrame;
      es.addEventListener('gap', onFrame);
      es.addEventListener('reset', onFrame);
      es.onerror = (e) => {
        sink.error(i, new Error(`EventSource error: ${e.message ?? 'connection lost'}`));
        if (es.readyState !== EventSource.CLOSED || closing) return;
        const t = setTimeout(() => {
          timers.delete(t);
          if (!closing) connect();
        }, backoff.next());
        timers.add(t);
      };
    };
    connect();
  };

  const ready = Promise.all(
    Array.from({ length: count }, (_, i) => new Promise<void>((resolve) => open(i, resolve))),
  ).then(() => {});
  return {
    ready,
    requests: () => requests,
    async close() {
      closing = true;
      for (const t of timers) clearTimeout(t);
      for (const es of sources) es.close();
      await Promise.all(connections.map((c) => c.destroy()));
    },
  };
};
