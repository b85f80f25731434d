import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import mongoose, { type mongo } from 'mongoose';
import {
  type ChangeStreamModuleOptions,
  decodePosition,
  type HistoryLost,
  OnChange,
  positionKey,
} from '../../lib/index.js';
import { EventLog } from '../fixtures/event-log.js';
import { ServerProbe } from '../fixtures/test-app.js';
import { TestScope } from '../fixtures/test-scope.js';
import { eventually, testEnv, uniqueName } from '../fixtures/test-env.js';
import { MongoJavaServer } from '../servers/mongo-java-server.js';
import { MongodApp } from './mongod/mongod-app.js';

@Injectable()
class OrdersListener {
  constructor(private readonly log: EventLog) {}

  @OnChange('orders', { operationTypes: ['insert'] })
  onOrder(change: mongo.ChangeStreamInsertDocument) {
    this.log.record('orders', change);
  }
}

@Injectable()
class ArchiveListener {
  constructor(private readonly log: EventLog) {}

  @OnChange('archive', { operationTypes: ['insert'] })
  onArchived(change: mongo.ChangeStreamInsertDocument) {
    this.log.record('archive', change);
  }
}

/** The test server's oplog keeps this many newest entries (MONGO_TEST_SERVER_OPLOG_MAX_ENTRIES) and answers a start before them with 286, as mongod's rolls over. */
const OPLOG_ENTRIES = 10;
/** Orders handled while archive's handlers were gone: more than the oplog keeps, so the time archive was retired at falls off. */
const ORDERS_WITHOUT_ARCHIVE = 2 * OPLOG_ENTRIES;

/**
 * A database stream whose `archive` handlers were removed and come back after the oplog rolled
 * past the time the stream stopped serving it (the `retired` time in its record), while `orders`
 * was served all along: archive's history is lost, orders' is not. On a mongo-java-server of its
 * own with a capped oplog.
 */
describe('a stale collection position in a database stream (capped oplog on the test server)', () => {
  const scope = new TestScope();
  let server: MongoJavaServer;
  let client: mongo.MongoClient;

  beforeAll(async () => {
    server = await MongoJavaServer.start({ oplogMaxEntries: OPLOG_ENTRIES });
    client = await new mongoose.mongo.MongoClient(server.uri).connect();
  }, 120_000);
  afterEach(() => scope.closeAll());
  afterAll(async () => {
    await client?.close();
    await server?.stop();
  });

  /** Runs the deployments before the one under test; returns what it needs. */
  async function archiveLeftBehind(name: string, more: { archiveWhileGone?: boolean } = {}) {
    const dbName = uniqueName(name);
    const consumer = uniqueName('svc');
    const key = positionKey('change-stream', consumer, dbName, '$database');
    const probe = scope.track(await ServerProbe.openAt(server.uri, testEnv().redisUrl, dbName));
    const start = (
      providers: Array<typeof OrdersListener | typeof ArchiveListener>,
      changeStreams: Partial<ChangeStreamModuleOptions> = {},
    ) =>
      MongodApp.start({
        mongoUri: server.uri,
        dbName,
        consumer,
        providers,
        changeStreams: { streams: 'database', ...changeStreams },
      }).then((app) => scope.track(app));
    const ids = (app: MongodApp, handler: string) =>
      app.events.of(handler).map((e) => e.documentId);

    // Both collections served, then archive's handlers removed: the record retires it at its time.
    const both = await start([OrdersListener, ArchiveListener]);
    await probe.collection('archive').insertOne({ _id: 'a1' as never });
    await probe.collection('orders').insertOne({ _id: 'o1' as never });
    await eventually(
      'a1 and o1 handled',
      () => ids(both, 'archive').includes('a1') && ids(both, 'orders').includes('o1'),
    );
    await scope.close(both);
    const ordersOnly = await start([OrdersListener]);
    for (let n = 2; n <= ORDERS_WITHOUT_ARCHIVE + 1; n++)
      await probe.collection('orders').insertOne({ _id: `o${n}` as never });
    // Written while its handlers are gone, late enough to stay in the oplog; orders' position passes it.
    if (more.archiveWhileGone) {
      await probe.collection('archive').insertOne({ _id: 'a-gone' as never });
      await probe.collection('orders').insertOne({ _id: 'o-last' as never });
    }
    const ordersHandled = ORDERS_WITHOUT_ARCHIVE + (more.archiveWhileGone ? 1 : 0);
    await eventually(
      'orders handled without archive',
      () => ids(ordersOnly, 'orders').length === ordersHandled,
    );
    await scope.close(ordersOnly);
    const record = decodePosition(key, (await probe.redis.get(key))!);
    const retired = record.coverage?.retired?.archive;
    expect(record.coverage?.serves).toEqual(['orders']);
    expect(retired).toBeDefined();

    // While it is down: both collections are written to, and the oplog no longer reaches the retired time.
    await probe.collection('orders').insertOne({ _id: 'down-1' as never });
    await probe.collection('archive').insertOne({ _id: 'down-2' as never });
    await probe.collection('orders').insertOne({ _id: 'down-3' as never });
    const oldest = await client
      .db('local')
      .collection('oplog.rs')
      .findOne({}, { sort: { $natural: 1 } });
    expect((oldest!.ts as mongo.Timestamp).greaterThan(retired!)).toBe(true);
    return { probe, start, ids, key, storedValue: (await probe.redis.get(key))! };
  }

  it('restart-from-now: the other collection’s events written while down are all handled; the stale one gets its history-lost event', async () => {
    const { probe, start, ids, key } = await archiveLeftBehind('stalerestart');
    const app = await start([OrdersListener, ArchiveListener], {
      onHistoryLost: 'restart-from-now',
    });
    await probe.collection('orders').insertOne({ _id: 'after' as never });
    await eventually('the write made after the start', () => ids(app, 'orders').includes('after'));
    expect(ids(app, 'orders')).toEqual(['down-1', 'down-3', 'after']);
    expect(ids(app, 'archive')).toEqual(['down-2']);
    const lost = app.registryEvents.filter((e) => e.type === 'history-lost');
    expect(lost).toEqual([
      expect.objectContaining({
        action: 'restart-from-now',
        key,
        collection: 'archive',
        position: { operationTime: expect.anything() },
        reason: expect.stringContaining("the history of 'archive' fell off the oplog"),
      }),
    ]);
    expect(
      app.logger
        .messages('error')
        .filter((m) => m.startsWith(`DATA LOSS on ${key} for collection 'archive'`)),
    ).toHaveLength(1);
    expect(app.registry.getStatus('orders')?.state).toBe('open');
  });

  it('restart-from-now: the stored start serves archive; archive’s change still in the oplog but before that start is not delivered, and the history-lost event says so', async () => {
    const { probe, start, ids, key } = await archiveLeftBehind('stalegone', {
      archiveWhileGone: true,
    });
    const oplog = client.db('local').collection('oplog.rs');
    const gone = (await oplog.findOne({ 'o._id': 'a-gone' }))!.ts as mongo.Timestamp;
    const oldest = (await oplog.findOne({}, { sort: { $natural: 1 } }))!.ts as mongo.Timestamp;
    expect(gone.greaterThan(oldest)).toBe(true);

    const app = await start([OrdersListener, ArchiveListener], {
      onHistoryLost: 'restart-from-now',
    });
    await eventually('open', () => app.registry.getStatus('orders')?.state === 'open');
    // The stored record serves archive: a restart does not ask about it again (stored before any
    // event is handled: history-fell-off.spec.ts; here the events written while down come at once).
    expect(decodePosition(key, (await probe.redis.get(key))!).coverage).toEqual({
      serves: ['archive', 'orders'],
    });
    await probe.collection('archive').insertOne({ _id: 'after' as never });
    await eventually('the write made after the start', () => ids(app, 'archive').includes('after'));
    expect(ids(app, 'archive')).toEqual(['down-2', 'after']);
    const [lost] = app.registryEvents.filter((e) => e.type === 'history-lost') as Array<
      HistoryLost & { action: string }
    >;
    // The loss reaches up to the stream's start (orders' position), past the oplog's oldest entry.
    const startsAt = lost.startsAt!;
    expect(startsAt.greaterThan(gone)).toBe(true);
    const at = (t: mongo.Timestamp) => `cluster time ${t.t}.${t.i}`;
    expect(lost.reason).toContain(`up to ${at(startsAt)} cannot be delivered`);
    expect(app.logger.messages('error')).toContainEqual(
      expect.stringContaining(`goes on from the stream's start (${at(startsAt)})`),
    );
  });

  it('fail: the stream fails with a message naming the collection; the stored value is kept', async () => {
    const { probe, start, ids, key, storedValue } = await archiveLeftBehind('stalefail');
    const app = await start([OrdersListener, ArchiveListener], { onHistoryLost: 'fail' });
    await eventually('failed', () => app.registry.getStatus('orders')?.state === 'failed');
    expect(app.registry.getStatus('orders')?.lastError).toMatch(
      /^the history of collection 'archive' \(cluster time \d+\.\d+ under .*\) fell off the oplog; stream .* itself could resume/,
    );
    expect(app.registryEvents.filter((e) => e.type === 'history-lost')).toEqual([
      expect.objectContaining({ action: 'fail', key, collection: 'archive' }),
    ]);
    expect(ids(app, 'orders')).toEqual([]);
    await scope.close(app);
    expect(await probe.redis.get(key)).toBe(storedValue);
  });
});
