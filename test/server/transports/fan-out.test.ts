/**
 * One fan-out per process (server/transports/tail.ts): however many transports and subscribers are
 * live, each publish is read from the feed once, and a long poll on its way in reads once, not twice.
 * The feed is the real in-memory one, its reads counted.
 */
import { describe, expect, it } from 'vitest';
import { MemoryFeed } from '../../../server/feed/memory.js';
import { poll, publish, SseClient, startLab, until, WsClient } from '../../helpers/lab.js';

/** A MemoryFeed that counts its reads: read() and readNow() alike (read answers through readNow). */
class CountingFeed extends MemoryFeed {
  reads = 0;
  override readNow(...args: Parameters<MemoryFeed['readNow']>): ReturnType<MemoryFeed['readNow']> {
    this.reads++;
    return super.readNow(...args);
  }
}

describe('one fan-out per process', () => {
  it('a publish is read once for every transport; a held poll that is up to date costs no read on its way in', async () => {
    const feed = new CountingFeed({ retentionMessages: 1000 });
    const lab = await startLab({}, { feed });
    const sse = new SseClient(`${lab.url}/events`);
    const ws = new WsClient(`${lab.wsUrl}/ws`);
    await until(() => sse.eventsOf('hello').length > 0 && ws.controlsOf('hello').length > 0);
    const afterJoin = feed.reads;
    const held = poll(lab.url, `since=${feed.info().lastId}&timeout=10000`);
    // At the last id: held at once, without a read (counted as a connection).
    await until(() => lab.app.lab.stats.transports.poll.connections === 1);
    const beforePublish = feed.reads;
    expect(beforePublish - afterJoin).toBe(0);
    await publish(lab.url, { n: 1 });
    await until(() => sse.messages.length === 1 && ws.messages.length === 1);
    expect((await held).body.messages.map((m) => m.id)).toEqual([1]);
    // One read of the new message for the three transports, and one more that finds nothing after it.
    expect(feed.reads - beforePublish).toBe(2);
    // A poll behind the last id reads once, and is answered at once.
    const behind = await poll(lab.url, 'since=0&timeout=10000');
    expect(behind.body.messages.map((m) => m.id)).toEqual([1]);
    expect(feed.reads - beforePublish).toBe(3);
  });
});
