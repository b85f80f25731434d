import { afterEach, describe, expect, it } from '@jest/globals';
import { Injectable, type Type } from '@nestjs/common';
import type { mongo } from 'mongoose';
import {
  type BackfillEvent,
  type ChangeContext,
  ChangeStreamControl,
  type ChangeStreamModuleOptions,
  ChangeStreamRegistry,
  decodePosition,
  OnChange,
  positionKey,
  type StreamPosition,
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

/** `orders` with a backfill handler: in database mode it keeps a collection stream of its own. */
@Injectable()
class OrdersBackfillListener {
  constructor(private readonly log: EventLog) {}

  @OnChange('orders', { backfill: true, fullDocument: 'updateLookup' })
  onOrder(change: mongo.ChangeStreamDocument | BackfillEvent, context: ChangeContext) {
    this.log.record(`${context.collection}:orders`, change as mongo.ChangeStreamDocument);
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
    const start = async (
      changeStreams: Partial<ChangeStreamModuleOptions> = DATABASE,
      providers: Type[] = [OrdersListener, UsersListener],
    ) => {
      const app = await TestApp.start({ dbName, consumer, providers, changeStreams });
      cleanups.push(() => app.close());
      return app;
    };
    const keyOf = (collection: string) =>
      positionKey('change-stream', consumer, dbName, collection);
    /** The position stored under a key, decoded. */
    const stored = async (key: string) => {
      const raw = await probe.redis.get(key);
      return raw === null
        ? null
        : (decodePosition(key, raw) as StreamPosition & { token?: unknown });
    };
    return { dbName, consumer, probe, start, keyOf, stored };
  }

  const lastToken = (app: TestApp, handler: string) => app.events.of(handler).at(-1)!.token;
  const sameToken = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

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
          `not now (it has no stored position yet): ${keyOf('orders')} holds the newest stored position for collection 'orders'`,
        ),
      ),
    ).toBe(true);
    await eventually(
      'own position stored',
      async () => (await probe.redis.get(keyOf('$database'))) !== null,
    );
    expect(await probe.redis.get(keyOf('orders'))).toBe(ordersKeyValue);
  });

  it('rolling back to collection streams: each starts where the database stream got to, so what it handled does not come again (but the event at that position); nothing written while stopped is lost', async () => {
    const { probe, start, keyOf, stored } = await scenario('dbroll');
    const orders = probe.collection('orders');
    const users = probe.collection('users');
    const collectionMode = await start({});
    await orders.insertOne({ _id: 'o-1' as never });
    await users.insertOne({ _id: 'u-1' as never });
    await eventually('u-1 handled', () => ids(collectionMode, 'users:users').includes('u-1'));
    await eventually('both collection positions stored', async () => {
      const [o, u] = [await stored(keyOf('orders')), await stored(keyOf('users'))];
      return (
        !!o &&
        !!u &&
        sameToken(o, { token: lastToken(collectionMode, 'orders:orders') }) &&
        sameToken(u, { token: lastToken(collectionMode, 'users:users') })
      );
    });
    await collectionMode.close();

    await orders.insertOne({ _id: 'o-down-1' as never });
    const databaseMode = await start();
    await orders.insertOne({ _id: 'o-2' as never });
    await users.insertOne({ _id: 'u-2' as never });
    await eventually('u-2 handled', () => ids(databaseMode, 'users:users').includes('u-2'));
    // It started at the older collection position (o-1's time, inclusive): o-1 and u-1 came again.
    expect(ids(databaseMode, 'orders:orders')).toEqual(['o-1', 'o-down-1', 'o-2']);
    expect(ids(databaseMode, 'users:users')).toEqual(['u-1', 'u-2']);
    const u2 = lastToken(databaseMode, 'users:users');
    await eventually('the database position stored at u-2', async () =>
      sameToken((await stored(keyOf('$database')))?.token, u2),
    );
    expect(await stored(keyOf('$database'))).toEqual({
      token: u2,
      coverage: { serves: ['orders', 'users'] },
    });
    await databaseMode.close();
    const databaseValue = await probe.redis.get(keyOf('$database'));

    await orders.insertOne({ _id: 'o-down-2' as never });
    const rolledBack = await start({});
    await orders.insertOne({ _id: 'o-3' as never });
    await users.insertOne({ _id: 'u-3' as never });
    await eventually(
      'o-3 and u-3 handled',
      () =>
        ids(rolledBack, 'orders:orders').includes('o-3') &&
        ids(rolledBack, 'users:users').includes('u-3'),
    );
    // Each collection stream started at u-2's time (inclusive): before it only u-2 itself comes again.
    expect(ids(rolledBack, 'orders:orders')).toEqual(['o-down-2', 'o-3']);
    expect(ids(rolledBack, 'users:users')).toEqual(['u-2', 'u-3']);
    expect(
      rolledBack.logger
        .messages('warn')
        .filter((m) =>
          m.includes(`${keyOf('$database')} holds the newest stored position for collection`),
        ),
    ).toHaveLength(2);
    await eventually('the orders position stored at o-3', async () =>
      sameToken(await stored(keyOf('orders')), { token: lastToken(rolledBack, 'orders:orders') }),
    );
    // The database stream's key is left for a roll-forward.
    expect(await probe.redis.get(keyOf('$database'))).toBe(databaseValue);
  });

  it('a collection leaving its own stream for the database stream (its backfill handler removed) gets the events its own stream had not handled', async () => {
    const { probe, start, keyOf, stored } = await scenario('dbjoin');
    const orders = probe.collection('orders');
    const users = probe.collection('users');
    const before = await start(DATABASE, [OrdersBackfillListener, UsersListener]);
    expect(
      before
        .get(ChangeStreamRegistry)
        .getStatuses()
        .map((s) => s.key)
        .sort(),
    ).toEqual([keyOf('$database'), keyOf('orders')].sort());
    await orders.insertOne({ _id: 'o-1' as never });
    await users.insertOne({ _id: 'u-1' as never });
    await eventually('o-1 handled', () => ids(before, 'orders:orders').includes('o-1'));
    const o1 = lastToken(before, 'orders:orders');
    await eventually('the orders position stored at o-1', async () =>
      sameToken((await stored(keyOf('orders')))?.token, o1),
    );
    // The orders stream falls behind (paused here); the database stream goes on past its events.
    await before.get(ChangeStreamControl).pause('orders');
    await orders.insertOne({ _id: 'o-behind' as never });
    await users.insertOne({ _id: 'u-2' as never });
    await eventually('u-2 handled', () => ids(before, 'users:users').includes('u-2'));
    const u2 = lastToken(before, 'users:users');
    await eventually('the database position stored at u-2', async () =>
      sameToken((await stored(keyOf('$database')))?.token, u2),
    );
    expect((await stored(keyOf('$database')))?.coverage).toEqual({ serves: ['users'] });
    await before.close();
    expect(ids(before, 'orders:orders')).toEqual(['o-1']);

    await orders.insertOne({ _id: 'o-down' as never });
    const after = await start(DATABASE, [OrdersListener, UsersListener]);
    await orders.insertOne({ _id: 'o-2' as never });
    await users.insertOne({ _id: 'u-3' as never });
    await eventually('u-3 handled', () => ids(after, 'users:users').includes('u-3'));
    // Started at the orders stream's position (o-1's time, inclusive), not the database stream's newer one.
    expect(ids(after, 'orders:orders')).toEqual(['o-1', 'o-behind', 'o-down', 'o-2']);
    expect(ids(after, 'users:users')).toEqual(['u-1', 'u-2', 'u-3']);
    expect(
      after.logger
        .messages('warn')
        .some((m) =>
          m.includes(`${keyOf('orders')} holds the newest stored position for collection 'orders'`),
        ),
    ).toBe(true);
    await eventually('the database position stored at u-3, serving both', async () =>
      sameToken(await stored(keyOf('$database')), {
        token: lastToken(after, 'users:users'),
        coverage: { serves: ['orders', 'users'] },
      }),
    );
    expect((await stored(keyOf('orders')))?.token).toEqual(o1);
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
