/**
 * Realistic JSON payloads for the messages a scenario publishes, instead of padding: what compression
 * works on is the shape and repetition of real messages, which a run of `x` would flatter. Each carries
 * the scheduled time `t` the receivers measure latency from, and varies per message (seeded by its
 * index) as a real feed does.
 * - `chat`: a chat room's message (room, user, text);
 * - `tick`: a price tick (symbol, bid, ask, sizes, venue, sequence);
 * - `patch`: a collaborative document's JSON Patch (RFC 6902) of two operations.
 */
import type { PAYLOADS } from '../../report/types.js';

export type PayloadKind = (typeof PAYLOADS)[number];

const WORDS = [
  'deploy',
  'looks',
  'good',
  'to',
  'me',
  'the',
  'build',
  'is',
  'green',
  'again',
  'lunch',
  'anyone',
  'merging',
  'now',
  'thanks',
  'fixed',
  'in',
  'main',
  'review',
  'please',
];
const USERS = ['ada', 'grace', 'linus', 'margaret', 'ken', 'barbara', 'dennis'];
const SYMBOLS = ['AAPL', 'MSFT', 'NVDA', 'AMZN', 'GOOG', 'META', 'TSLA'];

/** A deterministic sequence from `seed`: the same message for the same index on every server. */
function rng(seed: number): () => number {
  let x = (seed * 2654435761) >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

/** `data` of message `k` of a `kind` feed, scheduled at `t` (ms). */
export function payloadData(kind: PayloadKind, t: number, k: number): Record<string, unknown> {
  const r = rng(k + 1);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  switch (kind) {
    case 'chat': {
      const words = Array.from({ length: 4 + Math.floor(r() * 8) }, () => pick(WORDS));
      return { t, room: 'general', user: pick(USERS), text: words.join(' '), id: `m-${k}` };
    }
    case 'tick': {
      const mid = 100 + r() * 400;
      return {
        t,
        sym: pick(SYMBOLS),
        bid: Math.round((mid - 0.01) * 100) / 100,
        ask: Math.round((mid + 0.01) * 100) / 100,
        bidSize: 100 * (1 + Math.floor(r() * 20)),
        askSize: 100 * (1 + Math.floor(r() * 20)),
        venue: 'XNAS',
        seq: k,
      };
    }
    case 'patch':
      return {
        t,
        doc: 'doc-42',
        rev: k,
        ops: [
          {
            op: 'replace',
            path: `/blocks/${Math.floor(r() * 50)}/text`,
            value: `${pick(WORDS)} ${pick(WORDS)} ${pick(WORDS)}`,
          },
          {
            op: 'add',
            path: `/cursors/${pick(USERS)}`,
            value: { line: Math.floor(r() * 200), col: Math.floor(r() * 80) },
          },
        ],
      };
    default:
      return kind satisfies never;
  }
}
