/**
 * WebSocket clients (`ws`), resuming with `since` after an unexpected close, as a real client would.
 * The upgrade carries the scenario's headers; it is HTTP/1.1 (over TLS in TLS scenarios, h2 included).
 */
import WebSocket from 'ws';
import { ACCEPT_SELF_SIGNED, headersFor } from './http.js';
import { publishFrame, type ServerFrame } from '../../server/protocol.js';
import { dispatchFrame } from './parse.js';
import type { SendAnswer, Sending } from './senders.js';
import { type ClientGroup, type ClientGroupOptions, Reconnector } from './types.js';
import { isTls } from '../plan/http-setup.js';

/**
 * WebSocket clients; they may send too (`sending`): a publish frame on the client's open socket with a
 * `ref` of its own and the send's `key`, answered by the server's `ack` or `error` with that ref.
 */
export const wsClients = ({
  baseUrl,
  count,
  since,
  sink,
  http,
  reconnect,
  compression,
}: ClientGroupOptions): ClientGroup & { sending: Sending } => {
  let requests = 0;
  let nextRef = 0;
  /** Sends awaiting their answer, by ref (unique across the group); failed when their socket closes first. */
  const pending = new Map<number, { client: number; resolve: (a: SendAnswer) => void; reject: (e: Error) => void }>();
  let closing = false;
  const sockets: WebSocket[] = [];
  const wsBase = baseUrl.replace(/^http/, 'ws');
  const headers = headersFor('ws', baseUrl, http);
  // ws sets Origin from this option, not from `headers`.
  const { origin, ...rest } = headers;
  const options = {
    perMessageDeflate: compression === true,
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
      const text = raw.toString();
      const frame = JSON.parse(text) as ServerFrame;
      if ('type' in frame && (frame.type === 'ack' || frame.type === 'error') && typeof frame.ref === 'number') {
        const waiting = pending.get(frame.ref);
        pending.delete(frame.ref);
        waiting?.resolve(
          frame.type === 'ack'
            ? { ok: true, id: frame.id, duplicate: frame.duplicate === true }
            : { ok: false, code: frame.code },
        );
        return;
      }
      const id = dispatchFrame(sink, i, frame, text.length);
      if (id !== undefined) last = id;
    });
    ws.once('open', () => {
      backoff[i]!.succeeded();
      onOpen?.();
    });
    ws.on('error', (err) => sink.error(i, err));
    ws.once('close', () => {
      // Unanswered sends of this socket: the sender cannot know whether they counted (it retries with the key).
      for (const [ref, waiting] of pending) {
        if (waiting.client !== i) continue;
        pending.delete(ref);
        waiting.reject(new Error('the connection closed before the send was answered'));
      }
      if (!closing) setTimeout(() => open(i, last), backoff[i]!.next());
    });
  };

  const ready = Promise.all(
    Array.from({ length: count }, (_, i) => new Promise<void>((resolve) => open(i, since, resolve))),
  ).then(() => {});
  return {
    ready,
    requests: () => requests,
    sending: {
      send(client, data, key) {
        const ws = sockets[client];
        if (ws?.readyState !== WebSocket.OPEN) return Promise.reject(new Error(`client ${client} is not connected`));
        const ref = nextRef++;
        return new Promise<SendAnswer>((resolve, reject) => {
          pending.set(ref, { client, resolve, reject });
          ws.send(JSON.stringify(publishFrame(data, ref, key)), (err) => {
            if (!err) return;
            pending.delete(ref);
            reject(err);
          });
        });
      },
      ownWire: () => ({ bytesUp: 0, bytesDown: 0, requests: 0 }),
      close: async () => {},
    },
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
