/**
 * The servers' certificates are self-signed (server/tls.ts); the bench measures transports, not PKI,
 * so its clients accept them. Never used against anything but the bench's own 127.0.0.1 servers.
 *
 * A module of its own so that the publisher's worker thread (publisher-worker.ts, started twice per
 * run) loads it without http.ts's header fixture and the report schema behind it (TypeBox, ~700
 * modules: about 1 s of CPU per worker start, measured).
 */
export const ACCEPT_SELF_SIGNED = Object.freeze({ rejectUnauthorized: false });
