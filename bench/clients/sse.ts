/** SSE clients: the `eventsource` package (WHATWG-compliant; reconnects itself with Last-Event-ID). */
import { EventSource } from 'eventsource';
import { dispatch } from './parse.js';
import type { ClientFactory } from './types.js';

export const sseClients: ClientFactory = ({ baseUrl, count, since, sink }) => {
  let requests = 0;
  const sources: EventSource[] = [];
  const ready = Promise.all(
    Array.from(
      { length: count },
      (_, i) =>
        new Promise<void>((resolve) => {
          const es = new EventSource(`${baseUrl}/events?since=${since}`, {
            fetch: (input, init) => {
              requests++;
              return fetch(input, init);
            },
          });
          sources[i] = es;
          es.onopen = () => resolve();
          es.onmessage = (e) => dispatch(sink, i, JSON.parse(e.data));
          es.addEventListener('gap', (e) => dispatch(sink, i, JSON.parse(e.data)));
          es.addEventListener('reset', (e) => dispatch(sink, i, JSON.parse(e.data)));
          es.onerror = (e) => sink.error(i, new Error(`EventSource error: ${e.message ?? 'connection lost'}`));
        }),
    ),
  ).then(() => {});
  return {
    ready,
    requests: () => requests,
    async close() {
      for (const es of sources) es.close();
    },
  };
};
