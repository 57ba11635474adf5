/**
 * HTTP compression of SSE streams and poll answers (config.httpGzip, or a request's `compress=gzip`):
 * whether a request takes gzip, an SSE stream's own gzip context flushed after every write, and poll
 * answers compressed once per body.
 */
import { constants, createGzip, type Gzip, gzipSync } from 'node:zlib';
import type { Compress } from './params.js';

/**
 * Whether `Accept-Encoding` allows gzip (RFC 9110 §12.5.3): `gzip` (or `x-gzip`) or `*` listed without
 * `q=0`. Absent or empty: no.
 */
export function acceptsGzip(header: string | string[] | undefined): boolean {
  if (header === undefined) return false;
  for (const part of (Array.isArray(header) ? header.join(',') : header).split(',')) {
    const [name = '', ...params] = part.split(';').map((x) => x.trim().toLowerCase());
    if (name !== 'gzip' && name !== 'x-gzip' && name !== '*') continue;
    const q = params.find((p) => p.startsWith('q='));
    if (q === undefined || Number(q.slice(2)) > 0) return true;
  }
  return false;
}

/**
 * Whether an SSE stream or a poll answer is gzip'd: as the connection's `compress` asks (params.ts
 * parseCompress), else as config.httpGzip says, and only ever when its Accept-Encoding takes gzip.
 */
export function gzipFor(
  compress: Compress<'http'> | undefined,
  httpGzip: boolean,
  acceptEncoding: string | string[] | undefined,
): boolean {
  return (compress === undefined ? httpGzip : compress === 'gzip') && acceptsGzip(acceptEncoding);
}

/** The headers a compressed answer adds: its coding, and that it depends on the request's Accept-Encoding. */
export const GZIP_HEAD: readonly string[] = Object.freeze(['content-encoding', 'gzip', 'vary', 'accept-encoding']);

/**
 * An SSE stream's compressor: whatever is written is flushed at once (Z_SYNC_FLUSH: the bytes so far
 * become decodable, the window is kept), so compression never holds an event back.
 */
export class FlushingGzip {
  readonly gzip: Gzip = createGzip();
  write(chunk: string | Buffer): void {
    this.gzip.write(chunk);
    this.gzip.flush(constants.Z_SYNC_FLUSH);
  }
  /** Bytes waiting in the compressor, in and out. */
  get pending(): number {
    return this.gzip.writableLength + this.gzip.readableLength;
  }
}

/** Poll answers compressed, each Buffer body once (a batch's answer is one Buffer shared by every poll it answers). */
const compressed = new WeakMap<Buffer, Buffer>();
export function gzipBody(body: string | Buffer): Buffer {
  if (typeof body === 'string') return gzipSync(body);
  let z = compressed.get(body);
  if (z === undefined) {
    z = gzipSync(body);
    compressed.set(body, z);
  }
  return z;
}
