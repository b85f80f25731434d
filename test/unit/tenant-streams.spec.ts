import 'reflect-metadata';
import { afterEach, describe, expect, it } from '@jest/globals';
import { ON_CHANGE_METADATA } from '../../lib/change-stream.constants.js';
import { ChangeStreamConfigError, OnChange, OnChangeBatch } from '../../lib/index.js';
import { disabledOf, disabledParts } from '../../lib/control/disabled-streams.js';
import { resolveOptions } from '../../lib/options/module-options.js';
import { streamModeOf } from '../../lib/options/streams-option.js';
import { deploymentKey, positionKey } from '../../lib/redis/redis-keys.js';
import type { ChangeHandler } from '../../lib/stream/change-handler.js';
import { databasePlans } from '../../lib/stream/database-plan.js';
import { namespaceDocumentKeyOf } from '../../lib/common/document-key.js';
import { planStreams } from '../../lib/stream/stream-plan.js';
import { DATABASE_STREAM, DEPLOYMENT_STREAM } from '../../lib/stream/stream-scope.js';
import { databaseEvent, inCollection, insert, update } from '../fixtures/fake-change-stream.js';
import { databaseStream, stopDatabaseStreams } from '../fixtures/database-stream-harness.js';
import { deferred } from '../fixtures/stream-harness.js';
import { eventually } from '../fixtures/test-env.js';

afterEach(stopDatabaseStreams);

const handler = (
  collection: string,
  database: ChangeHandler['database'],
  options: ChangeHandler['options'] = {},
  name = `${collection}.on`,
): ChangeHandler => ({
  name,
  collection,
  ...(database !== undefined && { database }),
  connectionName: 'default',
  options,
  invoke: () => undefined,
});

const plan = (handlers: ChangeHandler[], streams: 'collection' | 'database' = 'collection') =>
  databasePlans(
    planStreams(handlers),
    streamModeOf(resolveOptions({ consumer: 'svc', streams }).streams),
  );

const LIFECYCLE = ['drop', 'rename'];

describe('tenant streams: the plan', () => {
  it('puts every handler with a database pattern on one deployment stream with an exact, stable filter', () => {
    const handlers = [
      handler('orders', /^tenant_/),
      handler('users', /^tenant_/, { operationTypes: ['insert'] }),
      handler('orders', 'shared_a', {}, 'Shared.on'),
      handler('audit', undefined),
    ];
    const plans = plan(handlers);
    expect(plans.map((p) => p.collection)).toEqual(['audit', DEPLOYMENT_STREAM]);
    const [, deployment] = plans;
    expect(deployment.scope).toMatchObject({
      kind: 'deployment',
      collections: ['orders', 'users'],
      databases: ['/^tenant_/', 'shared_a'],
    });
    const tenant = { $regex: '^tenant_' };
    expect(deployment.pipeline).toEqual([
      {
        $match: {
          $or: [
            // '/^tenant_/' sorts before 'shared_a'.
            { 'ns.db': tenant, 'ns.coll': { $in: ['orders'] } },
            {
              $and: [
                { 'ns.db': tenant, 'ns.coll': 'users' },
                {
                  operationType: {
                    $in: ['insert', 'drop', 'rename', 'dropDatabase', 'invalidate'],
                  },
                },
              ],
            },
            {
              operationType: { $in: LIFECYCLE },
              'ns.db': tenant,
              'ns.coll': { $in: ['orders', 'users'] },
            },
            { operationType: 'rename', 'to.db': tenant, 'to.coll': { $in: ['orders', 'users'] } },
            { operationType: 'dropDatabase', 'ns.db': tenant },
            { 'ns.db': 'shared_a', 'ns.coll': { $in: ['orders'] } },
            {
              operationType: { $in: LIFECYCLE },
              'ns.db': 'shared_a',
              'ns.coll': { $in: ['orders'] },
            },
            { operationType: 'rename', 'to.db': 'shared_a', 'to.coll': { $in: ['orders'] } },
            { operationType: 'dropDatabase', 'ns.db': 'shared_a' },
            { operationType: 'invalidate' },
          ],
        },
      },
    ]);
    // Declared in another order, the same filter.
    expect(plan([...handlers].reverse())[1].pipeline).toEqual(deployment.pipeline);
  });

  it("passes the RegExp's flags as $options, and stays a deployment stream in streams: 'database'", () => {
    const plans = plan([handler('orders', /^Tenant_/i), handler('users', undefined)], 'database');
    expect(plans.map((p) => p.collection)).toEqual([DATABASE_STREAM, DEPLOYMENT_STREAM]);
    expect(plans[0].scope).toMatchObject({ collections: ['users'] });
    expect(JSON.stringify(plans[1].pipeline)).toContain(
      '{"ns.db":{"$regex":"^Tenant_","$options":"i"},"ns.coll":{"$in":["orders"]}}',
    );
  });

  it('refuses backfill on a handler with a database pattern, at startup, with its own message', () => {
    const run = () =>
      plan([
        handler('orders', /^tenant_/, { backfill: true, fullDocument: 'updateLookup' }, 'T.on'),
      ]);
    expect(run).toThrow(ChangeStreamConfigError);
    expect(run).toThrow(
      "@OnChange({ collection: 'orders', database: /^tenant_/ }) on T.on asks for backfill, which a deployment stream",
    );
  });

  it('names a batch handler by its decorator and quotes a database name in the backfill refusal', () => {
    const batch = {
      ...handler('orders', 'tenant_a', { backfill: true }, 'B.on'),
      batch: { maxSize: 10, maxWaitMs: 50 },
    } as ChangeHandler;
    expect(() => plan([batch])).toThrow(
      "@OnChangeBatch({ collection: 'orders', database: 'tenant_a' }) on B.on asks for backfill",
    );
  });

  it('fails startup when two tenant handlers disagree on fullDocument', () => {
    const run = () =>
      plan([
        handler('orders', /^tenant_/, { fullDocument: 'updateLookup' }, 'Orders.on'),
        handler('users', 'hq', { fullDocument: 'whenAvailable' }, 'Users.on'),
      ]);
    expect(run).toThrow(ChangeStreamConfigError);
    expect(run).toThrow(
      /deployment stream of connection 'default'.*Orders\.on \('orders'\) and Users\.on \('users'\).*"fullDocument"/,
    );
  });

  it('files a disabled tenant handler under the deployment stream, never under the connection’s own collection', () => {
    const handlers = [
      handler('orders', /^tenant_/),
      handler('orders', /^tenant_/, { enabled: false }, 'tenant.off'),
      handler('orders', undefined, { enabled: false }, 'own.off'),
    ];
    const plans = plan(handlers);
    expect(plans.map((p) => p.collection)).toEqual([DEPLOYMENT_STREAM]);
    const parts = disabledParts(handlers, plans);
    expect(disabledOf(parts.byStream, plans[0])).toEqual(['/^tenant_/.orders: tenant.off']);
    // The connection's own `orders` is not watched by the deployment stream: its own disabled stream.
    expect(parts.idlePlans.map((p) => [p.collection, p.handlers.map((h) => h.name)])).toEqual([
      ['orders', ['own.off']],
    ]);
    // Every tenant handler disabled: an idle deployment stream (its key and status).
    const idle = disabledParts([handlers[1]], plan([handlers[1]])).idlePlans;
    expect(idle.map((p) => [p.collection, p.scope])).toEqual([
      [
        DEPLOYMENT_STREAM,
        { kind: 'deployment', collections: ['orders'], databases: ['/^tenant_/'], parts: [] },
      ],
    ]);
  });

  it('keys the deployment stream by connection, where no collection or database stream can be', () => {
    expect(deploymentKey('cs', 'svc', 'default')).toBe('cs:{svc:$deployment:default}');
    expect(deploymentKey('cs', 'svc', 'default')).toBe(
      positionKey('cs', 'svc', DEPLOYMENT_STREAM, 'default'),
    );
  });

  it('keys a document by its database, collection and _id', () => {
    const a = inCollection('orders', insert(1, 7), 'tenant_a');
    const b = inCollection('orders', insert(2, 7), 'tenant_b');
    expect(namespaceDocumentKeyOf(a)).not.toBe(namespaceDocumentKeyOf(b));
    expect(namespaceDocumentKeyOf(inCollection('orders', update(3, 7), 'tenant_a'))).toBe(
      namespaceDocumentKeyOf(a),
    );
  });
});

describe('tenant streams: the decorator', () => {
  it('records the database pattern of the object form, for @OnChange and @OnChangeBatch', () => {
    class Listener {
      @OnChange({ collection: 'orders', database: /^tenant_/ })
      onOrder() {}

      @OnChangeBatch({ collection: 'orders', database: 'tenant_a' }, { maxSize: 10, maxWaitMs: 5 })
      onOrders() {}
    }
    const [entry] = Reflect.getMetadata(ON_CHANGE_METADATA, Listener.prototype.onOrder);
    expect(entry).toMatchObject({ collection: 'orders', database: /^tenant_/ });
  });

  it.each([
    [/^tenant_/g, 'flags must be among i, m and s'],
    ['tenant.a', 'a database name is not empty'],
    ['', 'a database name is not empty'],
  ])('refuses the database pattern %s where it is declared', (database, text) => {
    const declare = () => {
      class Listener {
        @OnChange({ collection: 'orders', database })
        onOrder() {}
      }
      return Listener;
    };
    expect(declare).toThrow(ChangeStreamConfigError);
    expect(declare).toThrow(text);
  });
});

describe('tenant streams: routing', () => {
  it('routes by database and collection, with context.database the event’s; another database’s events never reach the handler', async () => {
    const { stream, seen } = databaseStream(
      [
        { collection: 'orders', database: /^tenant_/ },
        { collection: 'users', database: 'tenant_b', name: 'users.b' },
      ],
      [
        {
          getMores: [
            [
              inCollection('orders', insert(1, 1), 'tenant_a'),
              inCollection('orders', insert(2, 2), 'other'),
              inCollection('users', insert(3, 3), 'tenant_a'),
              inCollection('users', insert(4, 4), 'tenant_b'),
              inCollection('orders', insert(5, 5), 'tenant_b'),
              inCollection('invoices', insert(6, 6), 'tenant_b'),
              databaseEvent(7, 'dropDatabase'), // of 'db': matches no pattern
              inCollection('orders', insert(8, 8), 'tenant_c'),
            ],
          ],
        },
      ],
    );
    stream.start();
    await eventually('tenant_c handled', () => seen.some((s) => s.database === 'tenant_c'));
    expect(seen.map((s) => [s.handler, s.database, s.collection, s.id])).toEqual([
      ['orders.on', 'tenant_a', 'orders', 1],
      ['users.b', 'tenant_b', 'users', 4],
      ['orders.on', 'tenant_b', 'orders', 5],
      ['orders.on', 'tenant_c', 'orders', 8],
    ]);
  });

  it('does not serialise the same _id in two tenant databases: two documents, both handled', async () => {
    const aFirst = deferred();
    const { stream, seen } = databaseStream(
      [
        {
          collection: 'orders',
          database: /^tenant_/,
          handle: (c) =>
            (c as { ns?: { db?: string } }).ns?.db === 'tenant_a' && c.operationType === 'insert'
              ? aFirst.promise
              : undefined,
        },
      ],
      [
        {
          getMores: [
            [
              inCollection('orders', insert(1, 7), 'tenant_a'),
              inCollection('orders', update(2, 7), 'tenant_a'),
              inCollection('orders', insert(3, 7), 'tenant_b'),
            ],
          ],
        },
      ],
      { options: { concurrency: 4, checkpoint: { maxEvents: 100, intervalMs: 10 } } },
    );
    stream.start();
    await eventually('tenant_b 7 handled', () => seen.length > 0);
    expect(seen.map((s) => [s.database, s.operationType, s.id])).toEqual([
      ['tenant_b', 'insert', 7],
    ]);
    aFirst.resolve();
    await eventually('all handled', () => seen.length === 3);
    expect(seen.filter((s) => s.database === 'tenant_a').map((s) => s.operationType)).toEqual([
      'insert',
      'update',
    ]);
  });

  it("shows the stream's collections and database patterns in its status", () => {
    const { stream } = databaseStream([{ collection: 'orders', database: /^tenant_/ }], []);
    expect(stream.status()).toMatchObject({
      collection: DEPLOYMENT_STREAM,
      collections: ['orders'],
      databases: ['/^tenant_/'],
    });
  });
});
