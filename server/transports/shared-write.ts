/**
 * Shared writes: one Buffer, built once per batch, written as is to every socket that can take it,
 * instead of each library framing the same bytes again per socket (what Socket.IO ≥ 4.6 does with
 * `wsPreEncodedFrame`). Writing under a library is safe only when the library has nothing of its own
 * in flight on that socket — otherwise our bytes would overtake its queued ones or land inside one of
 * its frames. Each check below says why; when any fails, the caller takes the library's own path
 * (`ws.send`, `res.write`), which queues behind whatever is pending. The checks read `ws`' and Node's
 * internal fields defensively: a field that is missing (another version) means "not safe", never a
 * write.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { httpChunk, sseBatch, wsFrames, wsWire, type Message } from '../protocol.js';

/** Which way a batch went: the shared Buffer straight to the socket, or the library's own writer. */
export type WritePath = 'shared' | 'library';

/** Message payloads go out as text frames (one options object, not one per frame). */
const TEXT_FRAME = Object.freeze({ binary: false });

/** The parts of ws' Sender the check reads (ws 8: lib/sender.js). */
interface SenderState {
  /** 0 (DEFAULT) when no deflate or Blob read is in progress. */
  _state?: unknown;
  /** Frames waiting behind a deflate or a Blob read. */
  _queue?: unknown;
  /** False while a fragmented message is being sent (between a `fin: false` frame and its last one). */
  _firstFragment?: unknown;
}

/**
 * Whether WebSocket frames built elsewhere (protocol.ts `wsWire`) may go straight to `socket`:
 * - the connection is OPEN (never a frame after our close frame or the peer's);
 * - no extension was negotiated (permessage-deflate would need RSV1 and compressed payloads);
 * - ws' sender is idle: nothing queued behind a deflate or a Blob read, no fragmented message in
 *   flight (our frame would split it, which RFC 6455 §5.4 forbids for data frames);
 * - the socket is writable.
 */
export function canShareWsFrames(ws: WebSocket, socket: Socket): boolean {
  if (ws.readyState !== 1 || ws.extensions !== '' || !socket.writable) return false;
  const sender = (ws as unknown as { _sender?: SenderState })._sender;
  return (
    sender !== undefined &&
    sender._state === 0 &&
    Array.isArray(sender._queue) &&
    sender._queue.length === 0 &&
    sender._firstFragment === true
  );
}

/** The parts of Node's OutgoingMessage the check reads. */
interface OutgoingState {
  _headerSent?: unknown;
  chunkedEncoding?: unknown;
  outputData?: unknown;
}

/**
 * Whether an HTTP/1.1 chunk built elsewhere (protocol.ts `httpChunk`) may go straight to the socket
 * of `res`: the response is chunked, its headers are on the socket, nothing of it waits in Node's
 * own output queue (it would be written after our chunk), it has not ended, and the socket is this
 * response's and writable. Node then writes nothing of its own between chunks, so the stream stays
 * the same chunked body `res.write` would have made.
 */
export function canShareChunk(res: ServerResponse): Socket | undefined {
  const r = res as unknown as OutgoingState;
  const socket = res.socket;
  if (!socket?.writable || res.writableEnded || res.destroyed) return undefined;
  if (r._headerSent !== true || r.chunkedEncoding !== true || !Array.isArray(r.outputData) || r.outputData.length !== 0)
    return undefined;
  if ((socket as unknown as { _httpMessage?: unknown })._httpMessage !== res) return undefined;
  return socket;
}

/**
 * An SSE batch as the hub encodes it once for every stream: the event text (`res.write` takes it, on
 * HTTP/2 or whenever a shared write is not safe) and, made on first use and then shared, the same
 * text as one HTTP/1.1 chunk for the streams whose socket can take it as is.
 */
export class SseEncoded {
  #chunk: Buffer | undefined;
  constructor(readonly body: Buffer) {}
  get chunk(): Buffer {
    this.#chunk ??= httpChunk(this.body);
    return this.#chunk;
  }
}

/**
 * Writes `messages` to one WebSocket: `wire` (their frames, built once for every socket, or built here
 * when this socket needs a batch of its own) in one write when canShareWsFrames says so, else through
 * `ws.send`, frame by frame in one corked writev, behind whatever ws has queued; after a close
 * `ws.send` sends nothing.
 */
export function sendWsBatch(
  ws: WebSocket,
  socket: Socket,
  messages: readonly Message[],
  wire: Buffer | undefined,
): WritePath {
  if (canShareWsFrames(ws, socket)) {
    socket.write(wire ?? wsWire(messages));
    return 'shared';
  }
  socket.cork();
  for (const f of wsFrames(messages)) ws.send(f, TEXT_FRAME);
  socket.uncork();
  return 'library';
}

/** Writes `messages` to one SSE response: the shared chunk straight to its socket when canShareChunk says so, else `res.write`; the same bytes either way. */
export function writeSseBatch(
  res: ServerResponse,
  messages: readonly Message[],
  encoded: SseEncoded | undefined,
): WritePath {
  const socket = canShareChunk(res);
  if (encoded && socket) {
    socket.write(encoded.chunk);
    return 'shared';
  }
  res.write(encoded?.body ?? sseBatch(messages));
  return 'library';
}
