import { afterEach, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import type { mongo } from 'mongoose';
import { OnChange } from '../../lib/index.js';
import { EventLog } from '../fixtures/event-log.js';
import type { TestApp } from '../fixtures/test-app.js';
import { TestScope } from '../fixtures/test-scope.js';
import { delay, eventually, uniqueName } from '../fixtures/test-env.js';

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
  }
}

const ids = (app: TestApp, handler = 'item:done') => app.events.of(handler).map((e) => e.documentId);
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

describe('resume tokens in Redis (real MongoDB and Redis)', () => {
  const scope = new TestScope();
  afterEach(async () => {
    gate.open();
    handlerDelayMs = 0;
    await scope.closeAll();
  });
  const start = (dbName: string, consumer: string, checkpoint?: { maxEvents: number; intervalMs: number }) =>
    scope.app({ dbName, consumer, providers: [ItemListener], changeStreams: checkpoint ? { checkpoint } : {} });
  const probeFor = (dbName: string) => scope.probe(dbName);

  it('stores the token only after the handler succeeded', async () => {
    const dbName = uniqueName('ack');
    const consumer = uniqueName('svc');
    const app = await start(dbName, consumer);
    const probe = await probeFor(dbName);

    await probe.collection('items').insertOne({ _id: 1 as never });
    await eventually('first event handled and stored', async () => (await probe.storedToken(consumer, 'items')) !== null);
    const first = app.events.of('item:done')[0].token;
    expect(await probe.storedToken(consumer, 'items')).toEqual(first);

    gate.close();
    await probe.collection('items').insertOne({ _id: 2 as never });
    await eventually('second event in flight', () => app.events.of('item').length === 2);
    await delay(300); // several checkpoint intervals: nothing may be stored for an unfinished event
    expect(await probe.storedToken(consumer, 'items')).toEqual(first);

    gate.open();
    const second = await (async () => {
      await eventually('second event done', () => app.events.of('item:done').length === 2);
      return app.events.of('item:done')[1].token;
    })();
    await eventually('second token stored', async () => JSON.stringify(await probe.storedToken(consumer, 'items')) === JSON.stringify(second));
  });

  it('delivers exactly the writes made while the app was down, in order, to the next instance', async () => {
    const dbName = uniqueName('downtime');
    const consumer = uniqueName('svc');
    const probe = await probeFor(dbName);
    const first = await start(dbName, consumer);
    await probe.collection('items').insertOne({ _id: 0 as never });
    await eventually('warm-up event stored', async () => (await probe.storedToken(consumer, 'items')) !== null);
    await scope.close(first);

    for (const id of range(1, 21)) await probe.collection('items').insertOne({ _id: id as never });

    const second = await start(dbName, consumer);
    await eventually('20 missed events', () => ids(second).length >= 20);
    await delay(300); // and nothing more arrives
    expect(ids(second)).toEqual(range(1, 21));
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
    expect(ids(second)).toEqual([]);

    await probe.collection('items').insertMany(range(1, 201).map((id) => ({ _id: id as never })));
    await eventually('some handled', () => ids(second).length >= 20);
    await scope.close(second);
    const handledBefore = ids(second);
    expect(handledBefore.length).toBeLessThan(200);
    expect(handledBefore).toEqual(range(1, 1 + handledBefore.length));
    // Every event the handler started was finished: shutdown waited for it.
    expect(second.events.of('item').length).toBe(handledBefore.length);

    handlerDelayMs = 0;
    const third = await start(dbName, consumer);
    await eventually('the rest handled', () => ids(third).length >= 200 - handledBefore.length);
    await delay(300);
    expect(ids(third)).toEqual(range(1 + handledBefore.length, 201));
  });
});
