/** SSE clients: the `eventsource` package (WHATWG-compliant; reconnects itself with Last-Event-ID). */
import { EventSource } from 'eventsource';
import { Agent, fetch as undiciFetch } from 'undici';
import { dispatch } from './parse.js';
import type { ClientFactory } from './types.js';

export const sseClients: ClientFactory = ({ baseUrl, count, since, sink }) => {
  let requests = 0;
  const sources: EventSource[] = [];
  // The group's own connection pool, destroyed on close: an aborted fetch leaves undici a spare
  // keep-alive socket, which would otherwise stay open on the server and be counted as its memory.
  const agent = new Agent({ connections: null, headersTimeout: 0, bodyTimeout: 0 });
  const ready = Promise.all(
    Array.from(
      { length: count },
      (_, i) =>
        new Promise<void>((resolve) => {
          const es = new EventSource(`${baseUrl}/events?since=${since}`, {
            fetch: (input, init) => {
              requests++;
              return undiciFetch(input as string, { ...(init as object), dispatcher: agent }) as unknown as Promise<Response>;
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
      await agent.destroy();
    },
  };
};
