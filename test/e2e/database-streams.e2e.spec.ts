import { afterEach, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import type { mongo } from 'mongoose';
import {
  type ChangeContext,
  type ChangeStreamModuleOptions,
  ChangeStreamRegistry,
  OnChange,
  positionKey,
} from '../../lib/index.js';
import { EventLog } from '../fixtures/event-log.js';
import { ServerProbe, TestApp } from '../fixtures/test-app.js';
import { eventually, uniqueName } from '../fixtures/test-env.js';

/** Records each event under `<context.collection>:<handler>`. */
@Injectable()
class OrdersListener {
  constructor(private readonly log: EventLog) {}

  @OnChange('orders')
  onOrder(change: mongo.ChangeStreamDocument, context: ChangeContext) {
    this.log.record(`${context.collection}:orders`, change);
  }
}

@Injectable()
class UsersListener {
  constructor(private readonly log: EventLog) {}

  @OnChange('users', { operationTypes: ['insert'] })
  onUser(change: mongo.ChangeStreamDocument, context: ChangeContext) {
    this.log.record(`${context.collection}:users`, change);
  }
}

const DATABASE: Partial<ChangeStreamModuleOptions> = { streams: 'database', concurrency: 4 };

describe("streams: 'database' (real test servers)", () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });

  async function scenario(name: string) {
    const dbName = uniqueName(name);
    const consumer = uniqueName('svc');
    const probe = await ServerProbe.open(dbName);
    cleanups.push(() => probe.close());
    const start = async (changeStreams: Partial<ChangeStreamModuleOptions> = DATABASE) => {
      const app = await TestApp.start({
        dbName,
        consumer,
        providers: [OrdersListener, UsersListener],
        changeStreams,
      });
      cleanups.push(() => app.close());
      return app;
    };
    const keyOf = (collection: string) =>
      positionKey('change-stream', consumer, dbName, collection);
    return { dbName, consumer, probe, start, keyOf };
  }

  const ids = (app: TestApp, handler: string) => app.events.of(handler).map((e) => e.documentId);

  it('reads several collections through one stream, routes each event to its collection’s handlers, keeps one document’s events in order', async () => {
    const { probe, start, keyOf } = await scenario('dbroute');
    const app = await start();
    const statuses = app.get(ChangeStreamRegistry).getStatuses();
    expect(statuses.map((s) => [s.key, s.collection, s.collections, s.state])).toEqual([
      [keyOf('$database'), '$database', ['orders', 'users'], 'open'],
    ]);
    expect(app.get(ChangeStreamRegistry).getStatus('users')?.key).toBe(keyOf('$database'));

    await probe.collection('orders').insertOne({ _id: 1 as never, n: 0 });
    await probe.collection('users').insertOne({ _id: 1 as never });
    await probe.collection('unwatched').insertOne({ _id: 1 as never });
    await probe.collection('users').updateOne({ _id: 1 as never }, { $set: { x: 1 } });
    for (let n = 1; n <= 5; n++)
      await probe.collection('orders').updateOne({ _id: 1 as never }, { $set: { n } });
    await probe.collection('users').insertOne({ _id: 'last' as never });
    await eventually('the last event handled', () => ids(app, 'users:users').includes('last'));
    await eventually('orders handled', () => app.events.of('orders:orders').length === 6);

    // Same _id in three collections: each handler saw its own collection's events only.
    expect(app.events.of('orders:orders').map((e) => e.operationType)).toEqual([
      'insert',
      ...Array(5).fill('update'),
    ]);
    expect(ids(app, 'users:users')).toEqual([1, 'last']);
    expect(app.events.events.map((e) => e.handler).sort()).toEqual(
      [...Array(6).fill('orders:orders'), 'users:users', 'users:users'].sort(),
    );
    // The updates of one document in the order they were written (their tokens in stream order).
    const tokens = app.events.of('orders:orders').map((e) => JSON.stringify(e.token));
    expect(new Set(tokens).size).toBe(6);
    await eventually(
      'the position stored under the database key',
      async () => (await probe.redis.get(keyOf('$database'))) !== null,
    );
    expect(await probe.redis.get(keyOf('orders'))).toBeNull();
  });

  it('resumes after a restart from the database stream’s stored position: nothing written while down is lost', async () => {
    const { probe, start, keyOf } = await scenario('dbresume');
    const first = await start();
    await probe.collection('orders').insertOne({ _id: 'before' as never });
    await eventually('handled', () => ids(first, 'orders:orders').includes('before'));
    await eventually('stored', async () => (await probe.redis.get(keyOf('$database'))) !== null);
    await first.close();

    await probe.collection('orders').insertOne({ _id: 'down-1' as never });
    await probe.collection('users').insertOne({ _id: 'down-2' as never });
    const second = await start();
    await eventually(
      'both handled',
      () =>
        ids(second, 'orders:orders').includes('down-1') &&
        ids(second, 'users:users').includes('down-2'),
    );
    expect(ids(second, 'orders:orders')).not.toContain('before');
  });

  it('switching from collection streams to a database stream starts at the oldest collection position and loses nothing; the old keys stay', async () => {
    const { probe, start, keyOf } = await scenario('dbswitch');
    const collectionMode = await start({});
    expect(
      collectionMode.app
        .get(ChangeStreamRegistry)
        .getStatuses()
        .map((s) => s.key)
        .sort(),
    ).toEqual([keyOf('orders'), keyOf('users')]);
    await probe.collection('orders').insertOne({ _id: 'o-before' as never });
    await eventually('handled', () => ids(collectionMode, 'orders:orders').includes('o-before'));
    await eventually('stored', async () => (await probe.redis.get(keyOf('orders'))) !== null);
    const ordersKeyValue = await probe.redis.get(keyOf('orders'));
    await collectionMode.close();

    await probe.collection('orders').insertOne({ _id: 'o-down' as never });
    await probe.collection('users').insertOne({ _id: 'u-down' as never });
    const databaseMode = await start();
    await eventually(
      'events written while switching handled',
      () =>
        ids(databaseMode, 'orders:orders').includes('o-down') &&
        ids(databaseMode, 'users:users').includes('u-down'),
    );
    expect(
      databaseMode.logger.lines.some((l) =>
        l.message.includes(
          "starts at the oldest stored position of the other stream mode's streams",
        ),
      ),
    ).toBe(true);
    await eventually(
      'own position stored',
      async () => (await probe.redis.get(keyOf('$database'))) !== null,
    );
    expect(await probe.redis.get(keyOf('orders'))).toBe(ordersKeyValue);
  });

  it('two instances share the database stream’s one lease: one reads, every event is handled once', async () => {
    const { probe, start, keyOf } = await scenario('dblease');
    const timing = { ttlMs: 2000, renewIntervalMs: 500, pollIntervalMs: 200 };
    const a = await start({ ...DATABASE, leases: { ...timing, instanceId: 'A' } });
    const b = await start({ ...DATABASE, leases: { ...timing, instanceId: 'B' } });
    const roles = () =>
      [a, b].map((app) => app.get(ChangeStreamRegistry).getStatus('orders')?.role).sort();
    await eventually(
      'one active, one standby',
      () => JSON.stringify(roles()) === JSON.stringify(['active', 'standby']),
    );
    expect(
      a
        .get(ChangeStreamRegistry)
        .getStatuses()
        .map((s) => s.key),
    ).toEqual([keyOf('$database')]);
    for (let i = 0; i < 10; i++)
      await probe.collection(i % 2 ? 'orders' : 'users').insertOne({ _id: i as never });
    const handled = () => [...a.events.events, ...b.events.events].map((e) => e.documentId);
    await eventually('all handled', () => handled().length >= 10);
    expect(handled().sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});
