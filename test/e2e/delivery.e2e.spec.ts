import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import type { mongo } from 'mongoose';
import { type ChangeContext, ChangeStreamRegistry, OnChange } from '../../lib/index.js';
import { EventLog } from '../fixtures/event-log.js';
import { ServerProbe, TestApp } from '../fixtures/test-app.js';
import { eventually, testEnv, uniqueName } from '../fixtures/test-env.js';

@Injectable()
class OrderListener {
  readonly contexts: ChangeContext[] = [];
  constructor(private readonly log: EventLog) {}

  @OnChange('orders', { fullDocument: 'updateLookup' })
  onAnyOrder(change: mongo.ChangeStreamDocument, context: ChangeContext) {
    this.contexts.push(context);
    this.log.record('any', change);
  }

  @OnChange('orders', { operationTypes: ['delete'] })
  onDeletedOrder(change: mongo.ChangeStreamDocument) {
    this.log.record('deleted', change);
  }
}

@Injectable()
class CustomerListener {
  constructor(private readonly log: EventLog) {}

  @OnChange('customers', {
    operationTypes: ['insert'],
    pipeline: [{ $match: { 'fullDocument.vip': true } }],
  })
  onVip(change: mongo.ChangeStreamDocument) {
    this.log.record('vip', change);
  }
}

describe('delivery to @OnChange handlers (real MongoDB and Redis)', () => {
  let app: TestApp;
  let probe: ServerProbe;
  const dbName = uniqueName('delivery');
  const consumer = uniqueName('svc');

  beforeAll(async () => {
    app = await TestApp.start({ dbName, consumer, providers: [OrderListener, CustomerListener] });
    probe = await ServerProbe.open(dbName);
  });
  afterEach(() => {
    app.events.events.length = 0;
  });
  afterAll(async () => {
    await app?.close();
    await probe?.close();
  });

  it('opens one stream per collection and names its handlers', () => {
    const statuses = app.get(ChangeStreamRegistry).getStatuses();
    expect(statuses.map((s) => [s.collection, s.state, s.handlers, s.key])).toEqual([
      [
        'orders',
        'open',
        ['OrderListener.onAnyOrder', 'OrderListener.onDeletedOrder'],
        `change-stream:{${consumer}:${dbName}:orders}`,
      ],
      [
        'customers',
        'open',
        ['CustomerListener.onVip'],
        `change-stream:{${consumer}:${dbName}:customers}`,
      ],
    ]);
  });

  it('delivers insert, update and delete in order, with the requested full document after an update', async () => {
    const orders = probe.collection('orders');
    await orders.insertOne({ _id: 'o1' as never, total: 10 });
    await orders.updateOne({ _id: 'o1' as never }, { $set: { total: 12 } });
    // updateLookup reads the document when the event is read: delete only after that.
    await eventually('update handled', () => app.events.of('any').length >= 2);
    await orders.deleteOne({ _id: 'o1' as never });
    await eventually('three order events', () => app.events.of('any').length >= 3);

    const seen = app.events.of('any');
    expect(seen.map((e) => e.operationType)).toEqual(['insert', 'update', 'delete']);
    expect(seen[0].fullDocument).toEqual({ _id: 'o1', total: 10 });
    expect(seen[1].fullDocument).toEqual({ _id: 'o1', total: 12 });
    expect(seen[0].documentId).toBe('o1');
    expect(seen[2].documentId).toBe('o1');
  });

  it('routes by operation type: the delete-only handler sees only the delete', async () => {
    const orders = probe.collection('orders');
    await orders.insertOne({ _id: 'o2' as never });
    await orders.deleteOne({ _id: 'o2' as never });
    await eventually(
      'delete handled',
      () => app.events.of('deleted').length >= 1 && app.events.of('any').length >= 2,
    );
    expect(app.events.of('deleted').map((e) => [e.operationType, e.documentId])).toEqual([
      ['delete', 'o2'],
    ]);
  });

  it('passes a context naming the consumer, database, collection, handler, attempt and lease fence', async () => {
    const listener = app.get(OrderListener);
    listener.contexts.length = 0;
    await probe.collection('orders').insertOne({ _id: 'o3' as never });
    await eventually('context recorded', () => listener.contexts.length >= 1);
    const { signal, ...context } = listener.contexts[0];
    expect(context).toEqual({
      consumer,
      connectionName: 'default',
      database: dbName,
      collection: 'orders',
      handler: 'OrderListener.onAnyOrder',
      attempt: 1,
      fence: app.get(ChangeStreamRegistry).getStatus('orders')!.fence,
    });
    expect(context.fence).toEqual(expect.any(Number)); // leases are on with Redis
    expect(signal).toBeInstanceOf(AbortSignal);
    expect(signal.aborted).toBe(false);
  });

  it('applies the $match pipeline on the server: only VIP inserts reach the handler', async () => {
    const customers = probe.collection('customers');
    await customers.insertMany([
      { _id: 'c1' as never, vip: false },
      { _id: 'c2' as never, vip: true },
      { _id: 'c3' as never },
    ]);
    await customers.updateOne({ _id: 'c2' as never }, { $set: { vip: true, n: 1 } });
    await customers.insertOne({ _id: 'c4' as never, vip: true });
    await eventually('second VIP insert', () => app.events.of('vip').length >= 2);
    expect(app.events.of('vip').map((e) => [e.operationType, e.documentId])).toEqual([
      ['insert', 'c2'],
      ['insert', 'c4'],
    ]);
  });

  const onMongod = testEnv().realMongod ? it : it.skip;
  // mongo-java-server reports a replacement as an "update" event, so this needs a real mongod.
  onMongod('delivers replace events with the new document (real mongod only)', async () => {
    await probe.collection('orders').insertOne({ _id: 'r1' as never, a: 1 });
    await probe.collection('orders').replaceOne({ _id: 'r1' as never }, { b: 2 });
    await eventually('replace handled', () =>
      app.events.of('any').some((e) => e.operationType === 'replace'),
    );
    expect(app.events.of('any').find((e) => e.operationType === 'replace')?.fullDocument).toEqual({
      _id: 'r1',
      b: 2,
    });
  });
});
