/**
 * The "shift" server: the polling snippet that articles and course notes teach, made runnable so that
 * `npm run bench -- --claims` can measure what it does with several clients. The server keeps a queue
 * and answers each poll with `messages.shift()`: the first client to poll after a publish takes the
 * message and it is gone for everyone else. No cursor (`since` is ignored), no hold, no retention.
 *
 * It speaks the lab's poll answer format (server/protocol.ts) so that the bench's short-polling
 * clients can read it, and the lab's /stats shape; control on a second port (bench/servers/control.ts),
 * IPC per bench/servers/ipc.ts. Not a control to compare overhead against: a pattern to audit.
 */
import { createServer } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { pollAnswer, pollBody, type Message } from '../../server/protocol.js';
import { catalogueAnswer, sendError, serveReference } from './control.js';
import { Ledger } from './ledger.js';

const ledger = new Ledger();
const epoch = 'shift';
const queue: Message[] = [];
let lastId = 0;

function publish(data: unknown): number {
  queue.push({ id: ++lastId, ts: performance.timeOrigin + performance.now(), data });
  return lastId;
}

const server = createServer((req, res) => {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method !== 'GET' || path !== '/poll')
    return sendError(res, catalogueAnswer('NOT_FOUND', req.method ?? 'GET', path ?? '/'));
  const c = ledger.counters['short-poll'];
  c.requests++;
  // The snippet: `res.json(messages.shift())`, one message to whoever asks first.
  const m = queue.shift();
  const messages = m ? [m] : [];
  c.messagesOut += messages.length;
  const body = pollBody(pollAnswer(messages, m?.id ?? 0, epoch));
  res.writeHead(200, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
});
// Every transport-port socket is a short poller's; bytes are read off the sockets like everywhere else.
server.on('connection', (socket: Socket) => ledger.track(socket, 'short-poll'));

const stats = () =>
  ledger.snapshot({ kind: 'memory', epoch, lastId, firstId: queue[0]?.id ?? lastId + 1, retained: queue.length });

await serveReference({ server, publish, stats });
