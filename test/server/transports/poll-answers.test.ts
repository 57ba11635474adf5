/**
 * Long polling's answers (server/transports/poll.ts): every held poll gets exactly what came after its own
 * cursor, in one body built once for all of them; an answer stays within maxBufferedBytes, the rest
 * following from its lastId; and a poll answered by its timeout gets nothing more. Real sockets: undici
 * for the polls, a raw socket where what arrives after the answer matters.
 */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import type { Message } from '../../../server/protocol.js';
import { poll, publish, publishMany, range, startLab, until } from '../../helpers/lab.js';

/** A poll whose answer is read as text, to compare bodies byte for byte. */
async function pollText(url: string, query: string): Promise<string> {
  const res = await fetch(`${url}/poll?${query}`);
  expect(res.status).toBe(200);
  return res.text();
}

describe('long-poll answers', () => {
  it('every held poll gets exactly the messages after its own cursor, the same body for all held at one cursor', async () => {
    const lab = await startLab();
    await publishMany(lab.url, 2);
    const heldTexts = Array.from({ length: 5 }, () => pollText(lab.url, 'since=2&timeout=10000'));
    await until(() => lab.app.lab.stats.transports.poll.connections === 5);
    // Behind the last id: answered at once, with what came after its own cursor only.
    expect((await poll(lab.url, 'since=1&timeout=10000')).body.messages.map((m) => m.id)).toEqual([2]);
    // Three in one event-loop turn: one batch for every held poll.
    const burst = await fetch(`${lab.url}/control/burst`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ count: 3 }),
    });
    expect(await burst.json()).toEqual({ firstId: 3, lastId: 5 });
    const texts = await Promise.all(heldTexts);
    for (const t of texts) expect(t).toBe(texts[0]);
    const answer = JSON.parse(texts[0]!) as { messages: Message[]; lastId: number };
    expect(answer.messages.map((m) => m.id)).toEqual([3, 4, 5]);
    expect(answer.lastId).toBe(5);
    expect(lab.app.lab.stats.transports.poll.connections).toBe(0);
  });

  it('an answer stays within maxBufferedBytes (one message at least); the client gets the rest from its lastId', async () => {
    const maxBufferedBytes = 16 * 1024;
    const lab = await startLab({ maxBufferedBytes, maxPayloadBytes: 8 * 1024 });
    // 20 messages of ~5 KB: 100 KB, six times the bound.
    await publishMany(lab.url, 20, (i) => ({ i, pad: 'x'.repeat(5_000) }));
    const got: number[] = [];
    let cursor = 0;
    let answers = 0;
    while (got.length < 20) {
      const res = await fetch(`${lab.url}/poll?since=${cursor}&timeout=0`);
      const text = await res.text();
      const body = JSON.parse(text) as { messages: Message[]; lastId: number };
      expect(body.messages.length).toBeGreaterThan(0);
      // Within the bound, or one message alone.
      if (body.messages.length > 1) expect(Buffer.byteLength(text)).toBeLessThanOrEqual(maxBufferedBytes);
      got.push(...body.messages.map((m) => m.id));
      cursor = body.lastId;
      answers++;
    }
    expect(got).toEqual(range(1, 20));
    expect(answers).toBeGreaterThanOrEqual(7);

    // Held polls handed an oversized batch: each gets the part that fits, the same for all of them.
    const held = [pollText(lab.url, 'since=20&timeout=10000'), pollText(lab.url, 'since=20&timeout=10000')];
    await until(() => lab.app.lab.stats.transports.poll.connections === 2);
    // The burst publishes the publisher's payload: ~5 KB each, 200 KB in one batch.
    await fetch(`${lab.url}/control`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ payloadBytes: 5_000 }),
    });
    const burst = await fetch(`${lab.url}/control/burst`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ count: 40 }),
    });
    expect(burst.status).toBe(201);
    const [a, b] = await Promise.all(held);
    expect(a).toBe(b);
    const first = JSON.parse(a!) as { messages: Message[]; lastId: number };
    expect(first.messages[0]!.id).toBe(21);
    expect(first.messages.length).toBeLessThan(40);
    expect(Buffer.byteLength(a!)).toBeLessThanOrEqual(maxBufferedBytes);
    expect(first.lastId).toBe(first.messages.at(-1)!.id);
  });

  it('a poll answered by its timeout gets nothing more on its connection', async () => {
    const lab = await startLab();
    await publish(lab.url, { n: 1 });
    const socket = net.connect(Number(new URL(lab.url).port), '127.0.0.1');
    let received = '';
    socket.setEncoding('latin1').on('data', (d: string) => (received += d));
    socket.write('GET /poll?since=1&timeout=50 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    const complete = () => {
      const end = received.indexOf('\r\n\r\n');
      const length = /content-length: (\d+)/i.exec(received)?.[1];
      return end > 0 && length !== undefined && received.length >= end + 4 + Number(length);
    };
    await until(complete);
    const answered = received;
    expect(JSON.parse(answered.slice(answered.indexOf('\r\n\r\n') + 4))).toMatchObject({ messages: [], lastId: 1 });
    // A message after the timeout reaches a poll held now, and nothing reaches the answered one.
    const later = poll(lab.url, 'since=1&timeout=10000');
    await until(() => lab.app.lab.stats.transports.poll.connections === 1);
    await publish(lab.url, { n: 2 });
    expect((await later).body.messages.map((m) => m.id)).toEqual([2]);
    expect(received).toBe(answered);
    socket.destroy();
  });
});
