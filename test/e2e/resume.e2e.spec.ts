import { afterEach, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import type { mongo } from 'mongoose';
import { ChangeStreamRegistry, positionKey, decodePosition, OnChange } from '../../lib/index.js';
import { EventLog } from '../fixtures/event-log.js';
import { KeyWrites } from '../fixtures/key-writes.js';
import type { TestApp } from '../fixtures/test-app.js';
import { TestScope } from '../fixtures/test-scope.js';
import { delay, eventually, testEnv, uniqueName } from '../fixtures/test-env.js';

/** Handlers wait on this gate when it is closed, to hold an event in flight. */
class Gate {
  private opened: Promise<void> = Promise.resolve();
  private release: () => void = () => undefined;
  close() {
    this.opened = new Promise((resolve) => (this.release = resolve));
  }
  open() {
    this.release();
  }
  pass() {
    return this.opened;
  }
}
const gate = new Gate();
let handlerDelayMs = 0;

@Injectable()
class ItemListener {
  constructor(private readonly log: EventLog) {}

  @OnChange('items')
  async onItem(change: mongo.ChangeStreamDocument) {
    this.log.record('item', change);
    await gate.pass();
    if (handlerDelayMs) await delay(handlerDelayMs);
    this.log.record('item:done', change);
    doneAt.set(JSON.stringify(change._id), Date.now());
  }
}
/** When each event's handler finished, by token. */
const doneAt = new Map<string, number>();

const ids = (app: TestApp, handler = 'item:done') =>
  app.events.of(handler).map((e) => e.documentId);
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

describe('resume tokens in Redis (real MongoDB and Redis)', () => {
  const scope = new TestScope();
  afterEach(async () => {
    gate.open();
    handlerDelayMs = 0;
    await scope.closeAll();
  });
  const start = (
    dbName: string,
    consumer: string,
    checkpoint?: { maxEvents: number; intervalMs: number },
  ) =>
    scope.app({
      dbName,
      consumer,
      providers: [ItemListener],
      changeStreams: checkpoint ? { checkpoint } : {},
    });
  const probeFor = (dbName: string) => scope.probe(dbName);

  it('stores the token only after the handler succeeded', async () => {
    const dbName = uniqueName('ack');
    const consumer = uniqueName('svc');
    const app = await start(dbName, consumer);
    const probe = await probeFor(dbName);
    const writes = scope.track(
      await KeyWrites.watch(
        testEnv().redisUrl,
        positionKey('change-stream', consumer, dbName, 'items'),
      ),
    );

    await probe.collection('items').insertOne({ _id: 1 as never });
    await eventually(
      'first event handled and stored',
      async () => (await probe.storedToken(consumer, 'items')) !== null,
    );
    const first = app.events.of('item:done')[0].token;
    expect(await probe.storedToken(consumer, 'items')).toEqual(first);

    gate.close();
    await probe.collection('items').insertOne({ _id: 2 as never });
    await eventually(
      'second event in flight for several checkpoint intervals',
      () => (app.get(ChangeStreamRegistry).getStatus('items')?.inFlightForMs ?? 0) >= 250,
    );
    expect(await probe.storedToken(consumer, 'items')).toEqual(first);
    gate.open();
    await eventually('second event done', () => app.events.of('item:done').length === 2);
    const second = app.events.of('item:done')[1].token;
    await eventually(
      'second token stored',
      async () =>
        JSON.stringify(await probe.storedToken(consumer, 'items')) === JSON.stringify(second),
    );

    // The whole write history of the key: the second token was never written before its handler finished.
    const tokenWrites = writes.writes.map((w) => ({
      at: w.at,
      position: decodePosition('k', w.value),
    }));
    const secondWrites = tokenWrites.filter(
      (w) => 'token' in w.position && JSON.stringify(w.position.token) === JSON.stringify(second),
    );
    expect(secondWrites.length).toBeGreaterThan(0);
    for (const write of secondWrites)
      expect(write.at).toBeGreaterThanOrEqual(doneAt.get(JSON.stringify(second))! - 5);
  });

  it('delivers exactly the writes made while the app was down, in order, to the next instance', async () => {
    const dbName = uniqueName('downtime');
    const consumer = uniqueName('svc');
    const probe = await probeFor(dbName);
    const first = await start(dbName, consumer);
    await probe.collection('items').insertOne({ _id: 0 as never });
    await eventually(
      'warm-up event stored',
      async () => (await probe.storedToken(consumer, 'items')) !== null,
    );
    await scope.close(first);

    for (const id of range(1, 21)) await probe.collection('items').insertOne({ _id: id as never });

    const second = await start(dbName, consumer);
    await probe.collection('items').insertOne({ _id: 21 as never }); // written after the restart: must come last
    await eventually('the post-restart write', () => ids(second).includes(21));
    expect(ids(second)).toEqual(range(1, 22));
  });

  it('a graceful shutdown mid-stream drains and flushes, so the restart replays nothing already handled', async () => {
    const dbName = uniqueName('drain');
    const consumer = uniqueName('svc');
    const probe = await probeFor(dbName);
    handlerDelayMs = 5;
    // Large batches: without the final flush, the restart would replay everything.
    const first = await start(dbName, consumer, { maxEvents: 10_000, intervalMs: 60_000 });
    await probe.collection('items').insertOne({ _id: 0 as never });
    await eventually('warm-up handled', () => ids(first).length === 1);
    await scope.close(first); // flushes the warm-up position (the only checkpoint written so far)
    const second = await start(dbName, consumer, { maxEvents: 10_000, intervalMs: 60_000 });
    await probe.collection('items').insertOne({ _id: -1 as never }); // a marker: everything replayed would come before it
    await eventually('marker handled', () => ids(second).includes(-1));
    expect(ids(second)).toEqual([-1]);

    await probe.collection('items').insertMany(range(1, 201).map((id) => ({ _id: id as never })));
    await eventually('some handled', () => ids(second).length >= 21);
    await scope.close(second);
    const handledBefore = ids(second).slice(1);
    expect(handledBefore.length).toBeLessThan(200);
    expect(handledBefore).toEqual(range(1, 1 + handledBefore.length));
    // Every event the handler started was finished: shutdown waited for it.
    expect(second.events.of('item').length).toBe(handledBefore.length + 1);

    handlerDelayMs = 0;
    const third = await start(dbName, consumer);
    await probe.collection('items').insertOne({ _id: 201 as never });
    await eventually('the rest handled, up to a write made after the restart', () =>
      ids(third).includes(201),
    );
    expect(ids(third)).toEqual(range(1 + handledBefore.length, 202));
  });
});
