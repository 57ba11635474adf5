// Which HTTP protocol each pane's connection uses, as the browser itself reports it: the
// `nextHopProtocol` of Resource Timing entries (`h2`, `http/1.1`), read with a PerformanceObserver.
//
// What Chromium does (checked with Chromium 156, over HTTP/1.1 and over HTTP/2): a fetch() gets its
// resource entry (initiatorType "fetch") when its response body has been read, so the long-poll and
// short-poll panes have one after their first answer. An EventSource gets one (initiatorType "other")
// only when its request ENDS — closed by the page, or ended by the server before a reconnect — and
// none at all while the stream is open. So the SSE pane, whose stream normally never ends, falls back
// to the navigation entry's `nextHopProtocol` (the page's own connection: same origin, same connection
// pool, hence the same protocol) until one of its streams has ended; from then on it shows that
// stream's entry. `protocolSource` says which it is. A WebSocket has no entry at all: it is always an
// HTTP/1.1 upgrade here, because ws does not implement WebSocket over HTTP/2 (RFC 8441).
//
// The observer (not performance.getEntriesByType) because the resource timing buffer holds 250 entries
// by default and then stops taking new ones, while observers are given every entry: the panes make a
// request every second or more. The buffer is cleared whenever it fills up, so it never stays full.

/** @typedef {import('./panes.js').PaneModel} PaneModel */

/** Requests of the connection-limit section carry `extra=<id>` in their query (web/extra.js). */
export const EXTRA_PARAM = 'extra';

const WS_PROTOCOL = 'http/1.1';
export const WS_PROTOCOL_NOTE = 'HTTP/1.1 (WebSocket over HTTP/2, RFC 8441, is not supported by ws)';

/** Whether this page came over TLS (https:), whatever the HTTP version. */
export const pageTls = () => location.protocol === 'https:';

/** The navigation entry's nextHopProtocol: the protocol of the connection the page itself came over. */
export function navigationProtocol() {
  const nav = /** @type {PerformanceNavigationTiming | undefined} */ (performance.getEntriesByType('navigation')[0]);
  return nav?.nextHopProtocol ?? '';
}

/** `h2` → `HTTP/2`, `http/1.1` → `HTTP/1.1`, anything else as it is. @param {string} p */
export function protocolLabel(p) {
  if (p === 'h2') return 'HTTP/2';
  if (p === 'h3') return 'HTTP/3';
  if (p === 'http/1.1') return 'HTTP/1.1';
  if (p === 'http/1.0') return 'HTTP/1.0';
  return p || '…';
}

/**
 * Which pane a same-origin request belongs to, by its URL; undefined for anything else (/stats,
 * scripts, the connection-limit section's streams).
 * @param {string} name a resource entry's name (its absolute URL)
 * @returns {'poll' | 'short-poll' | 'sse' | undefined}
 */
function paneOf(name) {
  let url;
  try {
    url = new URL(name);
  } catch {
    return undefined;
  }
  if (url.origin !== location.origin || url.searchParams.has(EXTRA_PARAM)) return undefined;
  if (url.pathname === '/poll') return url.searchParams.get('timeout') === '0' ? 'short-poll' : 'poll';
  if (url.pathname === '/events') return 'sse';
  return undefined;
}

/**
 * Keeps every pane's `protocol` (a nextHopProtocol value, '' while unknown) and `protocolSource`
 * ('resource' | 'navigation' | 'websocket') up to date, and hands every resource entry to listeners.
 */
export class ProtocolWatch {
  /** @param {Record<string, PaneModel>} panes by transport key */
  constructor(panes) {
    this.panes = panes;
    this.navigation = navigationProtocol();
    this.tls = pageTls();
    /** @type {((e: PerformanceResourceTiming) => void)[]} */
    this.listeners = [];
    for (const pane of Object.values(panes)) {
      if (pane.key === 'ws') {
        pane.protocol = WS_PROTOCOL;
        pane.protocolSource = 'websocket';
      } else if (pane.key === 'sse') {
        // No resource entry while the stream is open (see the top of this file).
        pane.protocol = this.navigation;
        pane.protocolSource = 'navigation';
      }
    }
    performance.addEventListener('resourcetimingbufferfull', () => performance.clearResourceTimings());
    // `buffered: true` also delivers the entries made before the observer existed.
    this.observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) this.#take(/** @type {PerformanceResourceTiming} */ (e));
    });
    this.observer.observe({ type: 'resource', buffered: true });
  }

  /** @param {(e: PerformanceResourceTiming) => void} fn */
  onEntry(fn) {
    this.listeners.push(fn);
  }

  /** @param {PerformanceResourceTiming} e */
  #take(e) {
    const key = paneOf(e.name);
    const pane = key ? this.panes[key] : undefined;
    // An empty nextHopProtocol means the browser withheld it (it never does for same-origin requests).
    if (pane && e.nextHopProtocol) {
      pane.protocol = e.nextHopProtocol;
      pane.protocolSource = 'resource';
    }
    for (const fn of this.listeners) fn(e);
  }
}

/** The badge text of a pane: protocol, and TLS or not. @param {PaneModel} pane @param {boolean} tls */
export function paneProtocolText(pane, tls) {
  return `${protocolLabel(pane.protocol)} · ${tls ? 'TLS' : 'no TLS'}`;
}

/** Where the badge's protocol comes from, for its tooltip. @param {PaneModel} pane */
export function paneProtocolWhy(pane) {
  switch (pane.protocolSource) {
    case 'websocket':
      return WS_PROTOCOL_NOTE;
    case 'navigation':
      return "Chromium makes no Resource Timing entry for an EventSource until its stream ends: this is the page's own nextHopProtocol (navigation entry), which its same-origin requests share";
    case 'resource':
      return "nextHopProtocol of this pane's last completed request (Resource Timing)";
    default:
      return 'no request of this pane has completed yet';
  }
}
