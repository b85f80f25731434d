import { afterEach, describe, expect, it } from '@jest/globals';
import { insert, lifecycle } from '../fixtures/fake-change-stream.js';
import { FencedMemoryStore } from '../fixtures/memory-lease-store.js';
import { deferred, KEY, setup, stopAllStreams } from '../fixtures/stream-harness.js';
import { eventually } from '../fixtures/test-env.js';

afterEach(stopAllStreams);

/** Event `n` on document `doc`. */
const on = (n: number, doc: number) => insert(n, doc);

describe('Dead-letter replay through the running stream', () => {
  it("waits for the document's running event, runs beside other documents, and a later event of that document waits for it", async () => {
    const live7 = deferred();
    const replay = deferred();
    const later = deferred();
    const order: string[] = [];
    const { stream, seen } = setup({
      options: { concurrency: 4, checkpoint: { maxEvents: 10, intervalMs: 10 } },
      scripts: [{ getMores: [[on(1, 7)], { after: later.promise }, [on(2, 8), on(3, 7)]] }],
      handle: async (id) => {
        order.push(`live ${id} start`);
        if (id === 7 && !order.includes('replay start')) await live7.promise;
        order.push(`live ${id} end`);
      },
    });
    stream.start();
    await eventually('the live event of document 7 running', () => order.includes('live 7 start'));
    const replayed = stream.replayInOrder(on(0, 7), async () => {
      order.push('replay start');
      await replay.promise;
      order.push('replay end');
      return 'done';
    });
    later.resolve(); // document 8, then a newer event of document 7
    await eventually('document 8 handled beside them', () => seen.includes(8));
    // Document 8 came after the replay was asked for and is done: the replay still waits for document 7's event.
    expect(order).not.toContain('replay start');
    live7.resolve();
    await eventually('the replay running', () => order.includes('replay start'));
    await eventually('document 8 read', () => seen.includes(8));
    // The newer event of document 7 was read, but waits for the replay.
    expect(order.filter((step) => step === 'live 7 start')).toHaveLength(1);
    replay.resolve();
    await expect(replayed).resolves.toBe('done');
    await eventually(
      'the newer event of document 7 handled',
      () => seen.filter((id) => id === 7).length === 2,
    );
    expect(order.indexOf('replay end')).toBeLessThan(order.lastIndexOf('live 7 start'));
  });

  it('never runs beside an event that runs alone (a drop)', async () => {
    const drop = deferred();
    const order: string[] = [];
    const { stream, seen } = setup({
      options: { concurrency: 4, checkpoint: { maxEvents: 10, intervalMs: 10 } },
      scripts: [{ getMores: [[lifecycle(1, 'drop')], [on(2, 8)]] }],
      handle: async (id) => {
        order.push(`live ${id} start`);
        if (id === -1) await drop.promise;
        order.push(`live ${id} end`);
      },
    });
    stream.start();
    await eventually('the drop running', () => order.includes('live -1 start'));
    const keyed = stream.replayInOrder(on(0, 7), async () => void order.push('replay 7'));
    drop.resolve();
    await keyed;
    expect(order.indexOf('replay 7')).toBeGreaterThan(order.indexOf('live -1 end'));
    await eventually('document 8 handled', () => seen.includes(8));
  });

  it('is refused on an instance that does not hold the stream, naming the holder', async () => {
    const tokens = new FencedMemoryStore();
    tokens.leases.steal(KEY, 'B');
    const { stream } = setup({ tokens, leases: {}, scripts: [] });
    stream.start();
    await eventually('standby', () => stream.status().state === 'standby');
    let ran = false;
    await expect(stream.replayInOrder(on(0, 7), async () => (ran = true))).rejects.toThrow(
      `Dead letter replay refused: this instance is not consuming stream ${KEY} (it is held by B).`,
    );
    expect(ran).toBe(false);
  });

  it('does not move the stored position or count as a handled event', async () => {
    const { stream, seen, checkpointer } = setup({
      options: { concurrency: 2 },
      scripts: [{ getMores: [[on(1, 1)]] }],
    });
    stream.start();
    await eventually('1 handled', () => seen.length === 1);
    await eventually('its position stored', () => checkpointer.unsavedCount === 0);
    const before = JSON.stringify(checkpointer.position);
    await stream.replayInOrder(on(99, 5), async () => undefined);
    expect(stream.status().eventsHandled).toBe(1);
    expect(JSON.stringify(checkpointer.position)).toBe(before);
  });
});
