import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import type { mongo } from 'mongoose';
import {
  type ChangeContext,
  ChangeStreamRegistry,
  OnChange,
  positionKey,
} from '../../lib/index.js';
import { EventLog } from '../fixtures/event-log.js';
import { ServerProbe, TestApp } from '../fixtures/test-app.js';
import { eventually, uniqueName } from '../fixtures/test-env.js';

/** This spec's tenants: `<PREFIX>_a`, `<PREFIX>_b`; no other database on the server matches. */
const PREFIX = uniqueName('tenant');
const PATTERN = new RegExp(`^${PREFIX}_`);

/** Records each event under `<context.database>:<context.collection>`. */
@Injectable()
class TenantOrders {
  constructor(private readonly log: EventLog) {}

  @OnChange({ collection: 'orders', database: PATTERN })
  onOrder(change: mongo.ChangeStreamDocument, context: ChangeContext) {
    this.log.record(`${context.database}:${context.collection}`, change);
  }
}

describe('tenant streams: a database per tenant (real test servers)', () => {
  const tenantA = `${PREFIX}_a`;
  const tenantB = `${PREFIX}_b`;
  /** Matches no pattern; the app's own database. */
  const other = uniqueName('notenant');
  let probe: ServerProbe;
  const cleanups: Array<() => Promise<unknown>> = [];

  beforeAll(async () => {
    probe = await ServerProbe.open(other);
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });
  afterAll(async () => {
    for (const name of [tenantA, tenantB, other])
      await probe.db.client
        .db(name)
        .dropDatabase()
        .catch(() => undefined);
    await probe.close();
  });

  const orders = (db: string) => probe.db.client.db(db).collection<{ _id: string }>('orders');

  async function start(consumer: string) {
    const app = await TestApp.start({ dbName: other, consumer, providers: [TenantOrders] });
    cleanups.push(() => app.close());
    return app;
  }

  const ids = (app: TestApp, db: string) => app.events.of(`${db}:orders`).map((e) => e.documentId);

  it('handles the orders of every matching database through one deployment stream, with context.database the event’s, and no other database’s', async () => {
    const consumer = uniqueName('svc');
    const app = await start(consumer);
    const key = positionKey('change-stream', consumer, '$deployment', 'default');
    expect(
      app
        .get(ChangeStreamRegistry)
        .getStatuses()
        .map((s) => [s.key, s.collections, s.databases, s.state]),
    ).toEqual([[key, ['orders'], [`/^${PREFIX}_/`], 'open']]);
    // Found by its key; not as the connection's own `orders`, which it does not watch.
    expect(app.get(ChangeStreamRegistry).getStatus(key)?.key).toBe(key);
    expect(app.get(ChangeStreamRegistry).getStatus('orders')).toBeUndefined();

    await orders(other).insertOne({ _id: 'other-1' });
    await orders(tenantA).insertOne({ _id: 'a-1' });
    await orders(tenantB).insertOne({ _id: 'b-1' });
    await probe.db.client
      .db(tenantB)
      .collection('invoices')
      .insertOne({ _id: 'inv' as never });
    await orders(other).insertOne({ _id: 'other-2' });
    // Same _id in both tenants: two documents.
    await orders(tenantA).insertOne({ _id: 'same' });
    await orders(tenantB).insertOne({ _id: 'same' });
    await orders(tenantA).insertOne({ _id: 'last' });
    // One stream, in write order: once 'last' is handled, every earlier event was read.
    await eventually('the last event handled', () => ids(app, tenantA).includes('last'));
    await eventually('tenant b handled', () => ids(app, tenantB).includes('same'));

    expect(ids(app, tenantA)).toEqual(['a-1', 'same', 'last']);
    expect(ids(app, tenantB)).toEqual(['b-1', 'same']);
    expect(app.events.events.map((e) => e.handler).sort()).toEqual(
      [
        `${tenantA}:orders`,
        `${tenantA}:orders`,
        `${tenantA}:orders`,
        `${tenantB}:orders`,
        `${tenantB}:orders`,
      ].sort(),
    );
    await eventually(
      'the position stored under the deployment key',
      async () => (await probe.redis.get(key)) !== null,
    );
  });

  it('resumes after a restart from the stored deployment position: what was written while down is handled', async () => {
    const consumer = uniqueName('svc');
    const key = positionKey('change-stream', consumer, '$deployment', 'default');
    const first = await start(consumer);
    await orders(tenantA).insertOne({ _id: 'before' });
    await eventually('handled', () => ids(first, tenantA).includes('before'));
    await eventually('stored', async () => (await probe.redis.get(key)) !== null);
    await first.close();

    await orders(tenantA).insertOne({ _id: 'down-a' });
    await orders(tenantB).insertOne({ _id: 'down-b' });
    const second = await start(consumer);
    await eventually(
      'both handled',
      () => ids(second, tenantA).includes('down-a') && ids(second, tenantB).includes('down-b'),
    );
    expect(ids(second, tenantA)).not.toContain('before');
  });
});
