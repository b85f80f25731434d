import { afterEach, describe, expect, it } from '@jest/globals';
import { mongo } from 'mongoose';
import { messages } from '../../lib/change-stream.messages.js';
import { InMemoryPositionStore } from '../../lib/memory/in-memory-position.store.js';
import { databaseStream, stopDatabaseStreams } from '../fixtures/database-stream-harness.js';
import { inCollection, insert } from '../fixtures/fake-change-stream.js';
import { logs, setup, stopAllStreams } from '../fixtures/stream-harness.js';
import { eventually } from '../fixtures/test-env.js';

afterEach(async () => {
  await stopDatabaseStreams();
  await stopAllStreams();
});

/** The logger context of the stream's "opened" line. */
async function openedContext(): Promise<string | undefined> {
  await eventually('the stream opened', () =>
    logs.lines.some((l) => l.message.includes(' opened')),
  );
  return logs.lines.find((l) => l.message.includes(' opened'))?.context;
}

describe('how a stream names itself and its handlers', () => {
  it('logs under a context that says what the stream watches: a collection, a database or a deployment', async () => {
    setup({ scripts: [{ getMores: [] }] }).stream.start();
    expect(await openedContext()).toBe('CollectionStream');
    await stopAllStreams();

    databaseStream([{ collection: 'orders' }], [{ getMores: [] }]).stream.start();
    expect(await openedContext()).toBe('DatabaseStream');
    await stopDatabaseStreams();
    logs.lines.splice(0);

    databaseStream(
      [{ collection: 'orders', database: /^tenant_/ }],
      [{ getMores: [] }],
    ).stream.start();
    expect(await openedContext()).toBe('DeploymentStream');
  });

  it("logs a database stream's start position under its own context, not the checkpointer's", async () => {
    const tokens = new InMemoryPositionStore();
    await tokens.save('cs:{svc:db:orders}', {
      operationTime: new mongo.Timestamp({ t: 100, i: 1 }),
    });
    databaseStream([{ collection: 'orders' }], [{ getMores: [] }], { tokens }).stream.start();
    await eventually('the start position logged', () =>
      logs.lines.some((l) => l.message.includes('starts at cluster time 100.1')),
    );
    const line = logs.lines.find((l) => l.message.includes('starts at cluster time 100.1'));
    expect(line?.context).toBe('DatabaseStream');
  });

  it("tells apart two collections' handlers of one method in a database stream's status", async () => {
    const { stream, seen } = databaseStream(
      [
        { collection: 'orders', name: 'Listener.onChange' },
        { collection: 'users', name: 'Listener.onChange' },
      ],
      [{ getMores: [[inCollection('orders', insert(1, 7))]] }],
    );
    stream.start();
    await eventually('the event handled', () => seen.length === 1);
    expect(stream.status().handlers).toEqual([
      'orders: Listener.onChange',
      'users: Listener.onChange',
    ]);
  });

  it('names a deployment stream’s handlers with their database pattern and collection', () => {
    const { stream } = databaseStream(
      [
        { collection: 'orders', database: /^tenant_/, name: 'Listener.onChange' },
        { collection: 'orders', database: 'shop', name: 'Listener.onChange' },
      ],
      [{ getMores: [] }],
    );
    expect(stream.status().handlers.sort()).toEqual([
      '/^tenant_/.orders: Listener.onChange',
      'shop.orders: Listener.onChange',
    ]);
  });

  it("keeps a collection stream's handlers as Class.method", () => {
    expect(setup({ scripts: [{ getMores: [] }] }).stream.status().handlers).toEqual([
      'Listener.onOrder',
    ]);
  });
});

describe('log messages count in the right number', () => {
  it('says "1 document", not "1 documents"', () => {
    expect(messages.backfillFinished('k', 'r1', 1, 1)).toContain('finished: 1 document delivered');
    expect(messages.backfillFinished('k', 'r1', 2, 2)).toContain('finished: 2 documents delivered');
    expect(messages.backfillFinished('k', 'r1', 1, 2)).toContain('(2 read; 1 not delivered');
    expect(messages.backfillCancelled('k', 'r1', 1)).toContain('after 1 document.');
    expect(messages.backfillProgress('k', 'r1', 1, null, null, null)).toContain(
      ': 1 document done',
    );
    expect(messages.backfillProgress('k', 'r1', 1, 1, null, null)).toContain(
      ': 1 of about 1 document done',
    );
  });

  it('says "1 event" in the catch-up lines and when reading is paused', () => {
    expect(messages.catchingUp('k', 1, 1000, 1)).toMatch(/^k: 1 event handled,/);
    expect(messages.catchingUp('k', 1234, 1000, 1)).toMatch(/^k: 1,234 events handled,/);
    expect(messages.fallingBehind('k', 1, 1000, 1000)).toMatch(/^k: 1 event handled,/);
    expect(messages.readingPaused('k', 1)).toContain('k: 1 handled event is not stored yet');
    expect(messages.readingPaused('k', 3)).toContain('k: 3 handled events are not stored yet');
  });

  it('says "1 stream" when an instance holds more than its share', () => {
    expect(messages.leaseShed('k', 'A', 1, 0)).toContain('A holds 1 stream, more than');
    expect(messages.leaseShed('k', 'A', 3, 2)).toContain('A holds 3 streams, more than');
  });
});

describe('historyHeadroomUnknown says what is unknown', () => {
  it('tells a stream without a position from a position without a readable time', () => {
    expect(messages.headroomNoPosition()).toMatch(/^the stream's position is unknown/);
    expect(messages.headroomPositionWithoutTime()).toMatch(
      /^the cluster time of the stream's position is unknown/,
    );
  });
});
