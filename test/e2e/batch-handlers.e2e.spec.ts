import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import mongoose, { type mongo } from 'mongoose';
import {
  type ChangeContext,
  ChangeStreamDeadLetters,
  ChangeStreamRegistry,
  OnChange,
  OnChangeBatch,
} from '../../lib/index.js';
import { ConsumerProcess } from '../fault/consumer-process.js';
import { awaitDelivery, deliveryReport, handledLines } from '../fault/delivery-report.js';
import { ServerProbe, TestApp } from '../fixtures/test-app.js';
import { TestScope } from '../fixtures/test-scope.js';
import { eventually, testEnv, uniqueName } from '../fixtures/test-env.js';

type Item = { _id: number };
type ItemInsert = mongo.ChangeStreamInsertDocument<Item>;

/** What the handlers saw: each batch's ids, and the per-event handler's ids and tokens. */
const seen = {
  batches: [] as number[][],
  batchContexts: [] as ChangeContext[],
  perEvent: [] as Array<{ id: number; token: unknown }>,
};
let failOn: number | null = null;
let holdPerEvent: { id: number; until: Promise<void> } | null = null;

@Injectable()
class ItemSink {
  @OnChangeBatch<Item, 'insert'>('items', {
    maxSize: 10,
    maxWaitMs: 20,
    operationTypes: ['insert'],
  })
  onItems(changes: ItemInsert[], context: ChangeContext) {
    const ids = changes.map((change) => change.fullDocument._id);
    if (failOn !== null && ids.includes(failOn)) throw new Error(`item ${failOn} rejected`);
    seen.batches.push(ids);
    seen.batchContexts.push(context);
  }
}

@Injectable()
class ItemListener {
  @OnChange<Item, 'insert'>('items', { operationTypes: ['insert'] })
  async onItem(change: ItemInsert) {
    const id = change.fullDocument._id;
    if (holdPerEvent?.id === id) await holdPerEvent.until;
    seen.perEvent.push({ id, token: change._id });
  }
}

const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);
const docs = (from: number, to: number) => range(from, to).map((id) => ({ _id: id as never }));
const ejson = (value: unknown) => mongoose.mongo.BSON.EJSON.stringify(value);

describe('@OnChangeBatch (real MongoDB and Redis)', () => {
  const scope = new TestScope();
  afterEach(async () => {
    seen.batches.length = 0;
    seen.batchContexts.length = 0;
    seen.perEvent.length = 0;
    failOn = null;
    holdPerEvent = null;
    await scope.closeAll();
  });
  const start = async (changeStreams = {}) => {
    const spec = {
      dbName: uniqueName('batch'),
      consumer: uniqueName('svc'),
      providers: [ItemSink, ItemListener],
      changeStreams: { checkpoint: { maxEvents: 50, intervalMs: 20 }, ...changeStreams },
    };
    const app = await scope.app(spec);
    const probe = await scope.probe(spec.dbName);
    return { app, probe, spec, items: probe.collection('items') };
  };

  it('shares one stream with a per-event handler; both get every event, the batch handler in stream order and in batches', async () => {
    const { app, items } = await start();
    await items.insertMany(docs(1, 30));
    await eventually(
      'both handled 30',
      () => seen.batches.flat().length === 30 && seen.perEvent.length === 30,
    );
    expect(seen.batches.flat()).toEqual(range(1, 30));
    expect(seen.perEvent.map((e) => e.id)).toEqual(range(1, 30));
    expect(seen.batches.every((batch) => batch.length <= 10)).toBe(true);
    expect(seen.batches.length).toBeLessThan(30); // batched, not one call per event
    expect(seen.batchContexts[0]).toMatchObject({
      collection: 'items',
      handler: 'ItemSink.onItems',
      attempt: 1,
    });
    expect(
      app
        .get(ChangeStreamRegistry)
        .getStatuses()
        .map((s) => s.collection),
    ).toEqual(['items']);
  });

  it('dead-letters only the failing event of a batch; its replay calls the handler with a batch of one', async () => {
    const { app, items } = await start({
      onHandlerFailure: 'dead-letter',
      handlerRetry: { retries: 1, initialDelayMs: 5, maxDelayMs: 10 },
    });
    failOn = 13;
    await items.insertMany(docs(1, 30));
    const deadLetters = app.get(ChangeStreamDeadLetters);
    await eventually('29 handled in batches', () => seen.batches.flat().length === 29);
    const letters = await deadLetters.list();
    expect(letters.map((l) => [l.handler, (l.change as ItemInsert).fullDocument._id])).toEqual([
      ['ItemSink.onItems', 13],
    ]);
    expect(seen.batches.flat()).toEqual(range(1, 30).filter((id) => id !== 13));
    failOn = null;
    await deadLetters.replay(letters[0].id);
    expect(seen.batches.at(-1)).toEqual([13]);
    expect(await deadLetters.list()).toEqual([]);
  });

  it('stores the position only past events both handlers finished', async () => {
    let release!: () => void;
    holdPerEvent = { id: 5, until: new Promise<void>((resolve) => (release = resolve)) };
    // concurrency 4: the held event takes one slot, later documents go on in the others.
    const { probe, spec, items } = await start({ concurrency: 4 });
    await items.insertMany(docs(1, 20));
    await eventually('the batch handler got all 20', () => seen.batches.flat().length === 20);
    await eventually('the per-event handler past 5, held on 5', () => seen.perEvent.length === 19);
    expect(seen.perEvent.map((e) => e.id)).not.toContain(5);
    const fourth = seen.perEvent.find((e) => e.id === 4)!.token;
    await eventually(
      'position of event 4 stored',
      async () => ejson(await probe.storedToken(spec.consumer, 'items')) === ejson(fourth),
    );
    // The batch handler is done with 5..20: a later save must still not pass event 4.
    await items.insertOne({ _id: 21 as never });
    await eventually('the batch handler got 21', () => seen.batches.flat().includes(21));
    expect(ejson(await probe.storedToken(spec.consumer, 'items'))).toBe(ejson(fourth));
    release();
    await eventually('the per-event handler got 21', () => seen.perEvent.length === 21);
    const last = seen.perEvent.find((e) => e.id === 21)!.token;
    await eventually(
      'position of event 21 stored',
      async () => ejson(await probe.storedToken(spec.consumer, 'items')) === ejson(last),
    );
  });

  it('refuses at startup a maxSize above checkpoint.maxEvents, naming both', async () => {
    const { error } = await TestApp.startExpectingFailure({
      dbName: uniqueName('batch'),
      consumer: uniqueName('svc'),
      providers: [ItemSink],
      changeStreams: { checkpoint: { maxEvents: 5, intervalMs: 20 } },
    });
    expect(error.message).toMatch(
      /^@OnChangeBatch\('items'\) on ItemSink\.onItems: maxSize 10 is larger than checkpoint\.maxEvents 5\./,
    );
  });

  it('SIGKILL while a backlog drains: nothing lost for either handler, duplicates within 2 × maxEvents per kill', async () => {
    const { mongoUri, redisUrl } = testEnv();
    const dbName = uniqueName('batchkill');
    const consumer = uniqueName('svc');
    const dir = mkdtempSync(join(tmpdir(), 'batch-fault-'));
    const env = {
      MONGODB_URI: mongoUri,
      REDIS_URL: redisUrl,
      FAULT_DB: dbName,
      FAULT_CONSUMER: consumer,
      FAULT_LOG: join(dir, 'per-event.log'),
      FAULT_BATCH_LOG: join(dir, 'batch.log'),
      FAULT_BATCH_SIZE: '50',
      FAULT_MAX_EVENTS: '100',
    };
    const probe = scope.track(await ServerProbe.openAt(mongoUri, redisUrl, dbName));
    const items = probe.collection('items');
    const processes: ConsumerProcess[] = [];
    scope.track({ close: () => Promise.all(processes.map((p) => p.stop())).then(() => undefined) });
    const run = async () => {
      const process = await ConsumerProcess.start(env);
      processes.push(process);
      return process;
    };
    let current = await run();
    await items.insertOne({ _id: 0 as never });
    await eventually(
      'first position stored',
      async () => (await probe.storedToken(consumer, 'items')) !== null,
    );
    const writing = (async () => {
      for (let batch = 0; batch < 20; batch++)
        await items.insertMany(docs(batch * 100 + 1, batch * 100 + 100));
    })();
    const kills = 4;
    for (let k = 0; k < kills; k++) {
      const target =
        handledLines(env.FAULT_BATCH_LOG).length + 100 + Math.floor(Math.random() * 300);
      await eventually(
        `progress before kill ${k + 1}`,
        () => handledLines(env.FAULT_BATCH_LOG).length >= Math.min(target, 2001),
        30_000,
      );
      await current.kill();
      current = await run();
    }
    await writing;
    const written = range(0, 2000);
    await awaitDelivery(env.FAULT_BATCH_LOG, written);
    await awaitDelivery(env.FAULT_LOG, written);
    const batch = deliveryReport(env.FAULT_BATCH_LOG, written);
    const perEvent = deliveryReport(env.FAULT_LOG, written);
    console.log(
      `[batch:sigkill] batch handler: handled ${batch.handled}, lost ${batch.lost.length}, duplicated ${batch.duplicated}; per-event: handled ${perEvent.handled}, lost ${perEvent.lost.length}, duplicated ${perEvent.duplicated}; bound ${kills * 2 * 100}`,
    );
    expect(batch.lost).toEqual([]);
    expect(perEvent.lost).toEqual([]);
    expect(batch.duplicated).toBeLessThanOrEqual(kills * 2 * 100);
    expect(perEvent.duplicated).toBeLessThanOrEqual(kills * 2 * 100);
    // Batches were cut by size and by quiet, in stream order within each run.
    const lines = handledLines(env.FAULT_BATCH_LOG);
    expect(lines.length).toBeGreaterThan(0);
  }, 180_000);
});
