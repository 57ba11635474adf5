/**
 * SSE clients: the `eventsource` package (WHATWG-compliant; reconnects itself with Last-Event-ID) over
 * undici's fetch, each on a connection of its own (bench/http.ts), sending the scenario's headers.
 */
import { EventSource } from 'eventsource';
import { fetch as undiciFetch } from 'undici';
import { clientConnection, headersFor } from '../http.js';
import { dispatch } from './parse.js';
import type { ClientFactory } from './types.js';

export const sseClients: ClientFactory = ({ baseUrl, count, since, sink, http }) => {
  let requests = 0;
  const sources: EventSource[] = [];
  // Each client's own connection, destroyed on close: an aborted fetch leaves undici a spare
  // keep-alive socket, which would otherwise stay open on the server and be counted as its memory.
  const connections = Array.from({ length: count }, () => clientConnection(baseUrl, http));
  const extra = headersFor('sse', baseUrl, http);
  const ready = Promise.all(
    Array.from(
      { length: count },
      (_, i) =>
        new Promise<void>((resolve) => {
          const es = new EventSource(`${baseUrl}/events?since=${since}`, {
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
          es.onopen = () => resolve();
          es.onmessage = (e) => dispatch(sink, i, e.data);
          es.addEventListener('gap', (e) => dispatch(sink, i, e.data));
          es.addEventListener('reset', (e) => dispatch(sink, i, e.data));
          es.onerror = (e) => sink.error(i, new Error(`EventSource error: ${e.message ?? 'connection lost'}`));
        }),
    ),
  ).then(() => {});
  return {
    ready,
    requests: () => requests,
    async close() {
      for (const es of sources) es.close();
      await Promise.all(connections.map((c) => c.destroy()));
    },
  };
};
