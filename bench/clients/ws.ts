/**
 * WebSocket clients (`ws`), resuming with `since` after an unexpected close, as a real client would.
 * The upgrade carries the scenario's headers; it is HTTP/1.1 (over TLS in TLS scenarios, h2 included).
 */
import WebSocket from 'ws';
import { ACCEPT_SELF_SIGNED, headersFor } from './http.js';
import { dispatch } from './parse.js';
import { type ClientFactory, Reconnector } from './types.js';
import { isTls } from '../plan/http-setup.js';

export const wsClients: ClientFactory = ({ baseUrl, count, since, sink, http, reconnect }) => {
  let requests = 0;
  let closing = false;
  const sockets: WebSocket[] = [];
  const wsBase = baseUrl.replace(/^http/, 'ws');
  const headers = headersFor('ws', baseUrl, http);
  // ws sets Origin from this option, not from `headers`.
  const { origin, ...rest } = headers;
  const options = {
    perMessageDeflate: false,
    headers: rest,
    ...(origin ? { origin } : {}),
    ...(isTls(http.protocol) ? ACCEPT_SELF_SIGNED : {}),
  };

  // Each client's wait before reconnecting after an unexpected close (or a failed upgrade).
  const backoff = Array.from({ length: count }, () => new Reconnector(reconnect));
  const open = (i: number, cursor: number, onOpen?: () => void) => {
    requests++;
    const ws = new WebSocket(`${wsBase}/ws?since=${cursor}`, options);
    sockets[i] = ws;
    let last = cursor;
    ws.on('message', (raw) => {
      const id = dispatch(sink, i, raw.toString());
      if (id !== undefined) last = id;
    });
    ws.once('open', () => {
      backoff[i]!.succeeded();
      onOpen?.();
    });
    ws.on('error', (err) => sink.error(i, err));
    ws.once('close', () => {
      if (!closing) setTimeout(() => open(i, last), backoff[i]!.next());
    });
  };

  const ready = Promise.all(
    Array.from({ length: count }, (_, i) => new Promise<void>((resolve) => open(i, since, resolve))),
  ).then(() => {});
  return {
    ready,
    requests: () => requests,
    async close() {
      closing = true;
      await Promise.all(
        sockets.map((ws) =>
          ws.readyState === WebSocket.CLOSED
            ? undefined
            : new Promise<void>((resolve) => {
                ws.once('close', () => resolve());
                ws.terminate();
              }),
        ),
      );
    },
  };
};
