/**
 * WebSocket clients (`ws`), resuming with `since` after an unexpected close, as a real client would.
 * The upgrade carries the scenario's headers; it is HTTP/1.1 (over TLS in TLS scenarios, h2 included).
 */
import WebSocket from 'ws';
import { ACCEPT_SELF_SIGNED, headersFor } from './http.js';
import {
  type Ack,
  type BatchAck,
  batchFrame,
  type ErrorFrame,
  publishFrame,
  type SendItem,
  type ServerFrame,
} from '../../server/protocol.js';
import { dispatchFrame } from './parse.js';
import type { SendAnswer, Sending } from './senders.js';
import { type ClientGroup, type ClientGroupOptions, Reconnector } from './types.js';
import { isTls } from '../plan/http-setup.js';

/**
 * WebSocket clients; they may send too (`sending`): a publish frame on the client's open socket with a
 * `ref` of its own and the send's `key` (or a batch frame, each item with its key), answered by the
 * server's `ack` or `error` with that ref.
 */
export const wsClients = ({
  baseUrl,
  count,
  since,
  sink,
  http,
  reconnect,
  compression,
  pageOrigin,
}: ClientGroupOptions): ClientGroup & { sending: Sending } => {
  let requests = 0;
  let nextRef = 0;
  /** Sends awaiting their answer, by ref (unique across the group); failed when their socket closes first. */
  const pending = new Map<
    number,
    { client: number; resolve: (answer: Ack | BatchAck | ErrorFrame) => void; reject: (e: Error) => void }
  >();
  let closing = false;
  const sockets: WebSocket[] = [];
  const wsBase = baseUrl.replace(/^http/, 'ws');
  const headers = headersFor('ws', baseUrl, http, pageOrigin);
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
        waiting?.resolve(frame);
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

  /** One frame (made with its ref) on `client`'s open socket, resolved with the server's answer to that ref. */
  function request(client: number, frame: (ref: number) => unknown): Promise<Ack | BatchAck | ErrorFrame> {
    const ws = sockets[client];
    if (ws?.readyState !== WebSocket.OPEN) return Promise.reject(new Error(`client ${client} is not connected`));
    const ref = nextRef++;
    return new Promise((resolve, reject) => {
      pending.set(ref, { client, resolve, reject });
      ws.send(JSON.stringify(frame(ref)), (err) => {
        if (!err) return;
        pending.delete(ref);
        reject(err);
      });
    });
  }

  const ready = Promise.all(
    Array.from({ length: count }, (_, i) => new Promise<void>((resolve) => open(i, since, resolve))),
  ).then(() => {});
  return {
    ready,
    requests: () => requests,
    sending: {
      async send(client, data, key) {
        const answer = await request(client, (ref) => publishFrame(data, ref, key));
        if (answer.type === 'error') return { ok: false, code: answer.code };
        if ('batch' in answer) throw new Error('a batch ack answered a single send');
        return { ok: true, id: answer.id, duplicate: answer.duplicate === true };
      },
      async sendBatch(client, items: SendItem[]) {
        const answer = await request(client, (ref) => batchFrame(items, ref));
        if (answer.type === 'error') return items.map((): SendAnswer => ({ ok: false, code: answer.code }));
        if (!('batch' in answer) || answer.batch.length !== items.length)
          throw new Error(`a batch of ${items.length} was not answered item by item`);
        return answer.batch.map((a): SendAnswer => ({ ok: true, id: a.id, duplicate: a.duplicate === true }));
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
