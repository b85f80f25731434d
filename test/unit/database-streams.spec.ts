import { afterEach, describe, expect, it } from '@jest/globals';
import mongoose from 'mongoose';
import { ChangeStreamConfigError, InMemoryPositionStore } from '../../lib/index.js';
import { disabledOf, disabledParts } from '../../lib/control/disabled-streams.js';
import { resolveOptions } from '../../lib/options/module-options.js';
import { positionKey } from '../../lib/redis/redis-keys.js';
import type { ChangeHandler } from '../../lib/stream/change-handler.js';
import { collectionDocumentKeyOf, documentKeyOf } from '../../lib/common/document-key.js';
import { databasePlans } from '../../lib/stream/database-plan.js';
import { streamModeOf } from '../../lib/options/streams-option.js';
import { planStreams } from '../../lib/stream/stream-plan.js';
import { DATABASE_STREAM } from '../../lib/stream/stream-scope.js';
import {
  databaseEvent,
  inCollection,
  insert,
  lifecycle,
  token,
  update,
} from '../fixtures/fake-change-stream.js';
import {
  DATABASE_KEY,
  databaseStream,
  stopDatabaseStreams,
} from '../fixtures/database-stream-harness.js';
import { deferred } from '../fixtures/stream-harness.js';
import { eventually } from '../fixtures/test-env.js';

afterEach(stopDatabaseStreams);

const handler = (
  collection: string,
  options: ChangeHandler['options'] = {},
  name = `${collection}.on`,
  connectionName = 'default',
): ChangeHandler => ({ name, collection, connectionName, options, invoke: () => undefined });

const database = (handlers: ChangeHandler[], streams: unknown = 'database') =>
  databasePlans(
    planStreams(handlers),
    streamModeOf(resolveOptions({ consumer: 'svc', streams: streams as 'database' }).streams),
  );

/** A mongod resume token taken at cluster time (t, 1). */
const mongodToken = (t: number) => ({
  _data: `82${t.toString(16).padStart(8, '0')}00000001` + '2B022C0100296E5A1004',
});

describe("streams: 'database': the plan", () => {
  it('makes one stream per connection with a stable, sorted namespace filter that lets lifecycle events pass', () => {
    const handlers = [
      handler('users'),
      handler('orders', { operationTypes: ['insert'] }),
      handler('audit'),
      handler('carts', { pipeline: [{ $match: { 'fullDocument.open': true } }] }),
    ];
    const plans = database(handlers);
    expect(plans).toHaveLength(1);
    const [plan] = plans;
    expect(plan.collection).toBe(DATABASE_STREAM);
    expect(plan.scope).toMatchObject({
      kind: 'database',
      collections: ['audit', 'carts', 'orders', 'users'],
    });
    expect(plan.pipeline).toEqual([
      {
        $match: {
          $or: [
            { 'ns.coll': { $in: ['audit', 'users'] } },
            {
              $and: [
                { 'ns.coll': 'carts' },
                {
                  $or: [
                    { 'fullDocument.open': true },
                    { operationType: { $in: ['drop', 'rename', 'dropDatabase', 'invalidate'] } },
                  ],
                },
              ],
            },
            {
              $and: [
                { 'ns.coll': 'orders' },
                {
                  operationType: {
                    $in: ['insert', 'drop', 'rename', 'dropDatabase', 'invalidate'],
                  },
                },
              ],
            },
            {
              operationType: { $in: ['drop', 'rename'] },
              'ns.coll': { $in: ['audit', 'carts', 'orders', 'users'] },
            },
            { operationType: 'rename', 'to.coll': { $in: ['audit', 'carts', 'orders', 'users'] } },
            { operationType: { $in: ['dropDatabase', 'invalidate'] } },
          ],
        },
      },
    ]);
    // Declared in another order, the same stream.
    expect(database([...handlers].reverse())[0].pipeline).toEqual(plan.pipeline);
  });

  it("keeps 'collection' as the default, and takes a per-connection override", () => {
    const handlers = [
      handler('orders'),
      handler('users'),
      handler('events', {}, 'events.on', 'analytics'),
      handler('clicks', {}, 'clicks.on', 'analytics'),
    ];
    expect(
      database(handlers, {})
        .map((p) => p.collection)
        .sort(),
    ).toEqual(['clicks', 'events', 'orders', 'users']);
    const mixed = database(handlers, { connections: { analytics: 'database' } });
    expect(mixed.map((p) => [p.connectionName, p.collection])).toEqual([
      ['default', 'orders'],
      ['default', 'users'],
      ['analytics', DATABASE_STREAM],
    ]);
    expect(mixed[2].scope).toMatchObject({ collections: ['clicks', 'events'] });
  });

  it.each([
    ['databases', 'option "streams" is "databases"'],
    [{ default: 'db' }, 'option "streams.default" is "db"'],
    [{ connections: { analytics: true } }, 'option "streams.connections.analytics" is true'],
    [{ mode: 'database' }, 'option "streams.mode"'],
    [42, 'option "streams" is 42'],
  ])('refuses streams: %j at startup', (value, text) => {
    expect(() => resolveOptions({ consumer: 'svc', streams: value as 'database' })).toThrow(
      ChangeStreamConfigError,
    );
    expect(() => resolveOptions({ consumer: 'svc', streams: value as 'database' })).toThrow(text);
  });

  it('fails startup when two collections disagree on fullDocument, naming both handlers and the way out', () => {
    const run = () =>
      database([
        handler('orders', { fullDocument: 'updateLookup' }, 'Orders.on'),
        handler('users', { fullDocument: 'whenAvailable' }, 'Users.on'),
      ]);
    expect(run).toThrow(ChangeStreamConfigError);
    expect(run).toThrow(/Orders\.on \('orders'\) and Users\.on \('users'\).*"fullDocument"/);
    expect(run).toThrow(/streams: \{ connections: \{ 'default': 'collection' \} \}/);
    // One that leaves it unset takes the stream's.
    expect(
      database([handler('orders', { fullDocument: 'updateLookup' }), handler('users')])[0]
        .fullDocument,
    ).toBe('updateLookup');
  });

  it('keeps a collection with a backfill handler on its own collection stream', () => {
    const plans = database([
      handler('orders', { backfill: true, fullDocument: 'updateLookup' }),
      handler('users'),
      handler('carts'),
    ]);
    expect(plans.map((p) => p.collection)).toEqual(['orders', DATABASE_STREAM]);
    expect(plans[1].scope).toMatchObject({ collections: ['carts', 'users'] });
  });

  it('shows a disabled handler on the database stream that serves its collection', () => {
    const handlers = [
      handler('orders'),
      handler('orders', { enabled: false }, 'orders.off'),
      handler('users'),
      handler('carts', { enabled: false }, 'carts.off'),
    ];
    const plans = database(handlers);
    const parts = disabledParts(handlers, plans);
    expect(disabledOf(parts.byStream, plans[0])).toEqual(['orders: orders.off']);
    // A collection none of whose handlers is enabled is not watched: it shows as a disabled stream of its own.
    expect(parts.idlePlans.map((p) => p.collection)).toEqual(['carts']);
  });

  it('keys the database stream where no collection stream can be', () => {
    expect(positionKey('cs', 'svc', 'shop', DATABASE_STREAM)).toBe('cs:{svc:shop:$database}');
  });
});

describe("streams: 'database': per-document order", () => {
  it('keys a document by its collection and _id', () => {
    const a = inCollection('orders', insert(1, 7));
    const b = inCollection('users', insert(2, 7));
    expect(documentKeyOf(a)).toBe(documentKeyOf(b));
    expect(collectionDocumentKeyOf(a)).not.toBe(collectionDocumentKeyOf(b));
    expect(collectionDocumentKeyOf(inCollection('orders', update(3, 7)))).toBe(
      collectionDocumentKeyOf(a),
    );
    expect(collectionDocumentKeyOf(databaseEvent(4, 'dropDatabase'))).toBeNull();
  });

  it('does not serialise two collections’ documents with the same _id, and keeps one document’s events in order', async () => {
    const ordersFirst = deferred();
    const { stream, seen } = databaseStream(
      [
        {
          collection: 'orders',
          handle: (c) => (c.operationType === 'insert' ? ordersFirst.promise : undefined),
        },
        { collection: 'users' },
      ],
      [
        {
          getMores: [
            [
              inCollection('orders', insert(1, 7)),
              inCollection('orders', update(2, 7)),
              inCollection('users', insert(3, 7)),
            ],
          ],
        },
      ],
      // Saves every event by default here: the duplicate bound would hold reading behind the held event.
      { options: { concurrency: 4, checkpoint: { maxEvents: 100, intervalMs: 10 } } },
    );
    stream.start();
    // users' document 7 is handled while orders' document 7 is still held.
    await eventually('users 7 handled', () => seen.some((s) => s.collection === 'users'));
    expect(seen).toEqual([
      { handler: 'users.on', collection: 'users', operationType: 'insert', id: 7 },
    ]);
    ordersFirst.resolve();
    await eventually('all handled', () => seen.length === 3);
    expect(seen.filter((s) => s.collection === 'orders').map((s) => s.operationType)).toEqual([
      'insert',
      'update',
    ]);
  });
  it('orders a dead-letter replay behind its own collection’s document only', async () => {
    const held = deferred();
    const { stream, seen } = databaseStream(
      [{ collection: 'orders', handle: () => held.promise }, { collection: 'users' }],
      [{ getMores: [[inCollection('orders', insert(1, 7))]] }],
      { options: { concurrency: 4, checkpoint: { maxEvents: 100, intervalMs: 10 } } },
    );
    stream.start();
    await eventually('orders 7 running', () => stream.status().inFlightEvents === 1);
    const replayed: string[] = [];
    const ordersReplay = stream.replayInOrder(inCollection('orders', update(90, 7)), async () => {
      replayed.push('orders 7');
    });
    // users 7 is another document: its replay runs while orders 7 is still held.
    await stream.replayInOrder(inCollection('users', update(91, 7)), async () => {
      replayed.push('users 7');
    });
    expect(replayed).toEqual(['users 7']);
    held.resolve();
    await ordersReplay;
    expect(replayed).toEqual(['users 7', 'orders 7']);
    expect(seen.map((s) => s.collection)).toEqual(['orders']);
  });
});

describe("streams: 'database': routing and lifecycle", () => {
  it('routes each event to its collection’s handlers only, with context.collection the event’s', async () => {
    const { stream, seen, tokens } = databaseStream(
      [{ collection: 'orders', options: { operationTypes: ['insert'] } }, { collection: 'users' }],
      [
        {
          getMores: [
            [
              inCollection('orders', insert(1, 1)),
              inCollection('users', insert(2, 1)),
              inCollection('orders', update(3, 1)),
              inCollection('unwatched', insert(4, 1)),
              inCollection('users', update(5, 2)),
            ],
          ],
        },
      ],
    );
    stream.start();
    await eventually(
      'position after the last event',
      async () =>
        JSON.stringify(await tokens.load(DATABASE_KEY)) ===
        JSON.stringify({ token: token(5), coverage: { serves: ['orders', 'users'] } }),
    );
    expect(seen).toEqual([
      { handler: 'orders.on', collection: 'orders', operationType: 'insert', id: 1 },
      { handler: 'users.on', collection: 'users', operationType: 'insert', id: 1 },
      { handler: 'users.on', collection: 'users', operationType: 'update', id: 2 },
    ]);
  });

  it('goes on after a drop of one watched collection, and reopens after the invalidate that follows dropDatabase', async () => {
    const { stream, seen, server, tokens } = databaseStream(
      [{ collection: 'orders' }, { collection: 'users', options: { operationTypes: ['insert'] } }],
      [
        {
          getMores: [
            [
              inCollection('orders', lifecycle(1, 'drop')),
              inCollection('users', insert(2, 1)),
              databaseEvent(3, 'dropDatabase'),
              databaseEvent(4, 'invalidate'),
            ],
          ],
        },
        { getMores: [[inCollection('users', insert(5, 2))]] },
      ],
    );
    stream.start();
    await eventually('event after the reopen handled', () => seen.some((s) => s.id === 2));
    // The drop went to the handler that takes every type, and did not end the stream; the
    // database's own events to the handler that asked for them.
    expect(seen.map((s) => [s.handler, s.operationType])).toEqual([
      ['orders.on', 'drop'],
      ['users.on', 'insert'],
      ['orders.on', 'dropDatabase'],
      ['orders.on', 'invalidate'],
      ['users.on', 'insert'],
    ]);
    expect(server.opens).toHaveLength(2);
    expect(server.opens[1].startAfter).toEqual(token(4));
    await eventually(
      'position stored',
      async () =>
        JSON.stringify(await tokens.load(DATABASE_KEY)) ===
        JSON.stringify({ token: token(5), coverage: { serves: ['orders', 'users'] } }),
    );
  });

  it('names its collections in status', () => {
    const { stream } = databaseStream([{ collection: 'users' }, { collection: 'orders' }], []);
    expect(stream.status()).toMatchObject({
      key: DATABASE_KEY,
      collection: DATABASE_STREAM,
      collections: ['orders', 'users'],
      handlers: ['orders: orders.on', 'users: users.on'],
    });
  });
});

describe('switching modes', () => {
  const ordersKey = positionKey('cs', 'svc', 'db', 'orders');
  const usersKey = positionKey('cs', 'svc', 'db', 'users');

  it('starts a new database stream at the oldest position of the collection streams it replaces, by cluster time, leaving their keys', async () => {
    const tokens = new InMemoryPositionStore();
    await tokens.save(ordersKey, { token: mongodToken(50) });
    await tokens.save(usersKey, { token: mongodToken(40) });
    const { stream, server, seen } = databaseStream(
      [{ collection: 'orders' }, { collection: 'users' }],
      [{ getMores: [[inCollection('orders', insert(1, 1))]] }],
      { tokens },
    );
    stream.start();
    await eventually('event handled', () => seen.length === 1);
    expect(server.opens[0].startAtOperationTime).toEqual(
      new mongoose.mongo.Timestamp({ t: 40, i: 1 }),
    );
    expect(server.opens[0].resumeAfter).toBeUndefined();
    await eventually(
      'own position stored',
      async () =>
        JSON.stringify(await tokens.load(DATABASE_KEY)) ===
        JSON.stringify({ token: token(1), coverage: { serves: ['orders', 'users'] } }),
    );
    expect(await tokens.load(ordersKey)).toEqual({ token: mongodToken(50) });
    expect(await tokens.load(usersKey)).toEqual({ token: mongodToken(40) });
  });

  it('takes a stored cluster time as it is, and prefers its own position over the replaced ones', async () => {
    const tokens = new InMemoryPositionStore();
    await tokens.save(ordersKey, { operationTime: new mongoose.mongo.Timestamp({ t: 30, i: 2 }) });
    await tokens.save(usersKey, { token: mongodToken(40) });
    const first = databaseStream([{ collection: 'orders' }], [{}], { tokens });
    first.stream.start();
    await eventually('opened', () => first.server.opens.length === 1);
    expect(first.server.opens[0].startAtOperationTime).toEqual(
      new mongoose.mongo.Timestamp({ t: 30, i: 2 }),
    );
    await stopDatabaseStreams();
    await tokens.save(DATABASE_KEY, { token: token('own') });
    const second = databaseStream([{ collection: 'orders' }], [{}], { tokens });
    second.stream.start();
    await eventually('opened', () => second.server.opens.length === 1);
    expect(second.server.opens[0].resumeAfter).toEqual(token('own'));
    expect(second.server.opens[0].startAtOperationTime).toBeUndefined();
  });

  it('starts from now when none of the replaced streams has a position', async () => {
    const { stream, server } = databaseStream([{ collection: 'orders' }], [{}]);
    stream.start();
    await eventually('opened', () => server.opens.length === 1);
    expect(server.opens[0]).not.toHaveProperty('startAtOperationTime');
    expect(server.opens[0]).not.toHaveProperty('resumeAfter');
  });
});
