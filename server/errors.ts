/**
 * The one error catalogue. Every error the lab returns — HTTP body, WebSocket `error` frame or close
 * reason — carries one of these stable `LAB_ERR_*` codes. Tests assert the code, never the message.
 * The README's error table is this list. WebSocket close codes, and which of these codes each close
 * carries as its reason, are in protocol.ts (WS_END).
 */
import createError from '@fastify/error';

export interface LabErrorDef {
  readonly code: `LAB_ERR_${string}`;
  /** HTTP status for HTTP answers; WebSocket errors use the same code in an `error` frame. */
  readonly statusCode: number;
  readonly message: string;
}

function def<const C extends `LAB_ERR_${string}`>(code: C, statusCode: number, message: string) {
  return { code, statusCode, message } as const;
}

export const ERRORS = Object.freeze({
  BAD_CURSOR: def('LAB_ERR_BAD_CURSOR', 400, 'since must be a non-negative integer message id, got %s'),
  BAD_EPOCH: def('LAB_ERR_BAD_EPOCH', 400, 'epoch must be a non-empty string of at most 128 characters'),
  BAD_TIMEOUT: def(
    'LAB_ERR_BAD_TIMEOUT',
    400,
    'timeout must be an integer number of milliseconds from 0 to %s, got %s',
  ),
  BAD_COMPRESSION: def('LAB_ERR_BAD_COMPRESSION', 400, 'compress must be one of %s here%s, got %s'),
  INVALID_JSON: def('LAB_ERR_INVALID_JSON', 400, 'the body is not valid JSON'),
  INVALID_UTF8: def('LAB_ERR_INVALID_UTF8', 400, 'the body is not valid UTF-8'),
  DATA_TOO_DEEP: def('LAB_ERR_DATA_TOO_DEEP', 400, 'data nests deeper than maxNestingDepth (%s levels)'),
  NUMBER_NOT_FINITE: def(
    'LAB_ERR_NUMBER_NOT_FINITE',
    400,
    'data holds a number JSON cannot carry (%s): it would arrive as null',
  ),
  BAD_REQUEST: def('LAB_ERR_BAD_REQUEST', 400, 'malformed HTTP request: %s'),
  BAD_UPGRADE: def('LAB_ERR_BAD_UPGRADE', 400, 'not a valid WebSocket handshake: %s'),
  MISSING_DATA: def('LAB_ERR_MISSING_DATA', 400, 'the body must be a JSON object with a "data" field'),
  BAD_FRAME: def('LAB_ERR_BAD_FRAME', 400, 'WebSocket frames must be JSON text {"type":"publish","data":…}'),
  BAD_CONTROL: def('LAB_ERR_BAD_CONTROL', 400, '%s'),
  BAD_IDEMPOTENCY_KEY: def(
    'LAB_ERR_BAD_IDEMPOTENCY_KEY',
    400,
    'an idempotency key is 1 to 128 printable ASCII characters (no spaces), got %s',
  ),
  BAD_BATCH: def(
    'LAB_ERR_BAD_BATCH',
    400,
    'a batch is 1 to sendBatchMax (%s) items, each {"data": …} with an optional "key" of its own; %s',
  ),
  UNAUTHORIZED: def('LAB_ERR_UNAUTHORIZED', 401, 'publishing needs Authorization: Bearer <PUBLISH_TOKEN>'),
  ORIGIN_FORBIDDEN: def('LAB_ERR_ORIGIN_FORBIDDEN', 403, 'origin %s is not allowed; add it to ALLOWED_ORIGINS'),
  HOST_FORBIDDEN: def(
    'LAB_ERR_HOST_FORBIDDEN',
    403,
    'Host %s is not this server on a loopback address; add it to ALLOWED_HOSTS',
  ),
  NOT_FOUND: def('LAB_ERR_NOT_FOUND', 404, 'no route %s %s'),
  UNKNOWN_NETWORK: def('LAB_ERR_UNKNOWN_NETWORK', 404, 'no network profile %s; expected one of %s'),
  METHOD_NOT_ALLOWED: def('LAB_ERR_METHOD_NOT_ALLOWED', 405, 'method %s is not served here'),
  REQUEST_TIMEOUT: def('LAB_ERR_REQUEST_TIMEOUT', 408, 'the request did not arrive in time'),
  PRECONDITION_FAILED: def(
    'LAB_ERR_PRECONDITION_FAILED',
    412,
    'a precondition (If-Match, If-Unmodified-Since) did not hold',
  ),
  PAYLOAD_TOO_LARGE: def('LAB_ERR_PAYLOAD_TOO_LARGE', 413, 'the body is larger than maxPayloadBytes (%s bytes)'),
  NETWORK_FIXED: def(
    'LAB_ERR_NETWORK_FIXED',
    409,
    'this server runs workers: its relays are the ones --network started (%s); restart it with --network %s',
  ),
  RANGE_NOT_SATISFIABLE: def('LAB_ERR_RANGE_NOT_SATISFIABLE', 416, 'the requested range is outside the file'),
  EXPECTATION_FAILED: def('LAB_ERR_EXPECTATION_FAILED', 417, 'Expect: %s is not supported (only 100-continue)'),
  UNSUPPORTED_MEDIA_TYPE: def('LAB_ERR_UNSUPPORTED_MEDIA_TYPE', 415, 'publish with Content-Type: application/json'),
  URI_TOO_LONG: def('LAB_ERR_URI_TOO_LONG', 414, 'the request URL is too long'),
  UPGRADE_REQUIRED: def(
    'LAB_ERR_UPGRADE_REQUIRED',
    426,
    'this is a WebSocket endpoint: send an Upgrade: websocket request',
  ),
  TOO_MANY_ERRORS: def(
    'LAB_ERR_TOO_MANY_ERRORS',
    429,
    'more than wsErrorRepliesPerSec frames needed an error answer; closing',
  ),
  SEND_RATE: def(
    'LAB_ERR_SEND_RATE',
    429,
    'this connection sent more than sendMessagesPerSec messages or sendBytesPerSec bytes a second; retry in %s ms',
  ),
  PONG_TIMEOUT: def('LAB_ERR_PONG_TIMEOUT', 408, 'the peer did not answer a ping within wsPingIntervalMs and was cut'),
  HEADERS_TOO_LARGE: def('LAB_ERR_HEADERS_TOO_LARGE', 431, 'the request headers are too large'),
  SLOW_CONSUMER: def(
    'LAB_ERR_SLOW_CONSUMER',
    503,
    'the client fell more than maxBufferedBytes behind and was disconnected',
  ),
  SHUTTING_DOWN: def('LAB_ERR_SHUTTING_DOWN', 503, 'the server is shutting down'),
  FEED_UNAVAILABLE: def('LAB_ERR_FEED_UNAVAILABLE', 503, 'the feed store is unavailable: %s'),
  INTERNAL: def('LAB_ERR_INTERNAL', 500, 'internal error'),
} satisfies Record<string, LabErrorDef>);

export type ErrorName = keyof typeof ERRORS;
export type ErrorCode = (typeof ERRORS)[ErrorName]['code'];

/** Fastify error constructors, one per catalogue entry (`new HttpErrors.BAD_CURSOR(value)`). */
export const HttpErrors = Object.fromEntries(
  Object.entries(ERRORS).map(([name, e]) => [name, createError(e.code, e.message, e.statusCode)]),
) as {
  [K in ErrorName]: ReturnType<typeof createError>;
};

/** Fastify's own content-type-parser errors, mapped to our codes so clients only ever see LAB_ERR_*. */
export const FASTIFY_CODE_MAP: Readonly<Record<string, ErrorName>> = Object.freeze({
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'INVALID_JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'MISSING_DATA',
  FST_ERR_CTP_INVALID_JSON_BODY: 'INVALID_JSON',
  FST_ERR_VALIDATION: 'BAD_CONTROL',
  // The router's own refusals (answered through `frameworkErrors`, before any hook runs).
  FST_ERR_BAD_URL: 'BAD_REQUEST',
  FST_ERR_MAX_PARAM_LENGTH: 'URI_TOO_LONG',
});

/** The JSON body of every HTTP error: `{ "error": { "code", "message" } }`. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string };
}

/** Raised at start-up for a bad setting; main.ts prints it and exits 1. */
export class ConfigError extends Error {
  readonly code = 'LAB_ERR_CONFIG';
  constructor(
    readonly setting: string,
    readonly value: unknown,
    reason: string,
  ) {
    super(`invalid ${setting}=${JSON.stringify(value)}: ${reason}`);
    this.name = 'ConfigError';
  }
}
