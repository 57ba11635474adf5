/**
 * permessage-deflate (RFC 7692) per WebSocket: config.wsDeflate for every upgrade, unless the upgrade's
 * `compress` asks for another mode (GET /ws?compress=off|deflate|deflate-alone, params.ts parseCompress).
 *
 * ws negotiates the extension inside `WebSocketServer#handleUpgrade`, from the server's construction-time
 * `perMessageDeflate` option: one server cannot answer one upgrade with deflate and the next without, or
 * with and without context takeover. So the server @fastify/websocket made (with config.wsDeflate) is joined
 * by one noServer `WebSocketServer` per other mode, made on first use with the same options but
 * `perMessageDeflate`, and its `handleUpgrade` hands an upgrade whose request chose another mode to that
 * mode's server. @fastify/websocket calls `handleUpgrade` on its own server and emits 'connection' there,
 * so routes, hooks and handlers see no difference. Each socket then carries what it negotiated
 * (`ws.extensions`): a deflating one takes ws' own sender, compressing for itself, while the others keep
 * getting the frames built once for all (shared-write.ts canShareWsFrames).
 */
import type { IncomingMessage } from 'node:http';
import { type PerMessageDeflateOptions, WebSocketServer } from 'ws';
import type { Compress } from './params.js';

/** config.wsDeflate's values: no extension, deflate keeping its window between messages, each message alone. */
export type WsDeflate = 'off' | 'on' | 'no-context-takeover';

/**
 * ws' permessage-deflate options for a mode. Every message is compressed (threshold 0: the lab's are
 * small, and a threshold would leave exactly them uncompressed); without context takeover neither side
 * keeps its window between messages.
 */
export function deflateOptions(mode: WsDeflate): false | PerMessageDeflateOptions {
  if (mode === 'off') return false;
  const alone = mode === 'no-context-takeover';
  return { threshold: 0, serverNoContextTakeover: alone, clientNoContextTakeover: alone };
}

/** The mode an upgrade asked for with `compress`, or the server's own when it did not ask. */
export function wsDeflateFor(compress: Compress<'ws'> | undefined, configured: WsDeflate): WsDeflate {
  switch (compress) {
    case undefined:
      return configured;
    case 'off':
      return 'off';
    case 'deflate':
      return 'on';
    case 'deflate-alone':
      return 'no-context-takeover';
    default:
      return compress satisfies never;
  }
}

type HandleUpgrade = WebSocketServer['handleUpgrade'];

/**
 * Routes each upgrade to the WebSocketServer of its mode (see the top of this file). `choose` is called
 * before the upgrade (the route's preValidation); an upgrade nobody chose for gets the main server's mode.
 */
export class DeflatePerConnection {
  readonly #chosen = new WeakMap<IncomingMessage, WsDeflate>();
  readonly #servers = new Map<WsDeflate, WebSocketServer>();
  #closing = false;

  constructor(
    readonly main: WebSocketServer,
    readonly configured: WsDeflate,
  ) {
    this.#servers.set(configured, main);
    const own: HandleUpgrade = main.handleUpgrade.bind(main);
    const route: HandleUpgrade = (req, socket, head, cb) => {
      const mode = this.#chosen.get(req);
      this.#chosen.delete(req);
      if (mode === undefined || mode === configured) return own(req, socket, head, cb);
      this.#server(mode).handleUpgrade(req, socket, head, cb);
    };
    main.handleUpgrade = route;
  }

  /** `req`'s upgrade negotiates `mode` (nothing is kept when that is the server's own). */
  choose(req: IncomingMessage, mode: WsDeflate): void {
    if (mode !== this.configured) this.#chosen.set(req, mode);
  }

  /** Closes the other modes' servers (the main one is @fastify/websocket's): resolves once their sockets are closed. */
  async closeOthers(): Promise<void> {
    this.#closing = true;
    const others = [...this.#servers.values()].filter((s) => s !== this.main);
    await Promise.all(others.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }

  #server(mode: WsDeflate): WebSocketServer {
    let server = this.#servers.get(mode);
    // Closing: the main server answers a late upgrade 503, as ws does once closed.
    if (server === undefined && this.#closing) return this.main;
    if (server === undefined) {
      // The main server's options (noServer, maxPayload, ws' defaults) but the extension.
      server = new WebSocketServer({ ...this.main.options, perMessageDeflate: deflateOptions(mode) });
      this.#servers.set(mode, server);
    }
    return server;
  }
}
