import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { mongo } from 'mongoose';
import { clusterTimeOfToken } from '../../lib/position/resume-token-time.js';
import { testServerAwaitsIdleGetMore } from '../servers/mongo-java-server.js';
import { testEnv, uniqueName } from '../fixtures/test-env.js';

interface Event {
  _id: unknown;
  operationType: string;
  ns?: { db: string; coll?: string };
  documentKey?: { _id: unknown };
  fullDocument?: unknown;
  updateDescription?: unknown;
  wallTime?: Date;
  clusterTime?: mongo.Timestamp;
}
type Doc = { _id: number | string; n?: number; s?: string; gone?: string };
type Watchable = {
  watch(pipeline?: mongo.Document[], options?: mongo.ChangeStreamOptions): mongo.ChangeStream;
};

/**
 * The database-level (`db.watch()`) and deployment-level (`client.watch()`) change streams of
 * the test server (mongo-java-server has only collection-level ones; ours adds the others in
 * test/servers/mongo-java-server/MongoTestServer.java). CI runs this spec against real mongod
 * too, which keeps the test server's events honest.
 */
describe('database- and deployment-level change streams (test server)', () => {
  let client: mongo.MongoClient;
  const owned: string[] = [];
  const streams: mongo.ChangeStream[] = [];

  beforeAll(async () => {
    client = await new mongo.MongoClient(testEnv().mongoUri).connect();
  });
  afterEach(async () => {
    await Promise.all(streams.splice(0).map((stream) => stream.close()));
  });
  afterAll(async () => {
    for (const name of owned) await client.db(name).dropDatabase();
    await client.close();
  });

  const newDb = (name = uniqueName('tss')) => {
    owned.push(name);
    return client.db(name);
  };

  const watch = (
    target: Watchable,
    pipeline: mongo.Document[] = [],
    options: mongo.ChangeStreamOptions = {},
  ) => {
    const stream = target.watch(pipeline, { maxAwaitTimeMS: 50, ...options });
    streams.push(stream);
    return stream;
  };

  /** A stream opened (its aggregate answered) before the spec writes anything. */
  async function open(target: Watchable, pipeline: mongo.Document[] = [], options = {}) {
    const stream = watch(target, pipeline, options);
    expect(await stream.tryNext()).toBeNull();
    return stream;
  }

  /** The next `count` events; fails if they do not come within the timeout. */
  async function take(stream: mongo.ChangeStream, count: number, timeoutMs = 15_000) {
    const events: Event[] = [];
    const deadline = Date.now() + timeoutMs;
    while (events.length < count) {
      if (Date.now() > deadline)
        throw new Error(`Got ${events.length} of ${count} events: ${JSON.stringify(events)}`);
      const event = (await stream.tryNext()) as unknown as Event | null;
      if (event) events.push(event);
    }
    return events;
  }

  const summary = (events: Event[]) =>
    events.map((e) => [e.operationType, e.ns?.db, e.ns?.coll, e.documentKey?._id]);

  it('db.watch sees inserts, updates, replaces, deletes and drops of its collections, with ns, and no other database', async () => {
    const db = newDb();
    const other = newDb();
    const stream = await open(db);
    const collectionStream = await open(db.collection<Doc>('a'));

    await other.collection<Doc>('a').insertOne({ _id: 'elsewhere' });
    await db.collection<Doc>('a').insertOne({ _id: 1, n: 1, gone: 'soon' });
    await db.collection<Doc>('b').insertOne({ _id: 2, s: 'x' });
    await db.collection<Doc>('a').updateOne({ _id: 1 }, { $set: { n: 2 }, $unset: { gone: '' } });
    await db.collection<Doc>('b').replaceOne({ _id: 2 }, { s: 'y' });
    await db.collection<Doc>('a').deleteOne({ _id: 1 });
    await db.collection<Doc>('b').drop();
    await other.collection<Doc>('a').insertOne({ _id: 'after' });
    await db.collection<Doc>('a').insertOne({ _id: 3 });

    const events = await take(stream, 7);
    expect(summary(events)).toEqual([
      ['insert', db.databaseName, 'a', 1],
      ['insert', db.databaseName, 'b', 2],
      ['update', db.databaseName, 'a', 1],
      ['replace', db.databaseName, 'b', 2],
      ['delete', db.databaseName, 'a', 1],
      ['drop', db.databaseName, 'b', undefined],
      ['insert', db.databaseName, 'a', 3],
    ]);
    const [inserted, , updated, replaced, deleted] = events;
    expect(inserted.fullDocument).toEqual({ _id: 1, n: 1, gone: 'soon' });
    expect(updated.updateDescription).toEqual({
      updatedFields: { n: 2 },
      removedFields: ['gone'],
      truncatedArrays: [],
    });
    expect(updated).not.toHaveProperty('fullDocument'); // as mongod without updateLookup
    expect(replaced.fullDocument).toEqual({ _id: 2, s: 'y' });
    expect(deleted).not.toHaveProperty('fullDocument');
    for (const event of events) {
      expect(event._id).toEqual({ _data: expect.any(String) });
      expect(event.clusterTime).toBeInstanceOf(mongo.Timestamp);
      expect(event.wallTime).toBeInstanceOf(Date);
    }
    // The same tokens as the server's collection-level streams give for the same writes.
    const collectionEvents = await take(collectionStream, 1);
    expect(collectionEvents[0]._id).toEqual(inserted._id);
  });

  it('applies $match on ns.coll and operationType, with $in and $or', async () => {
    const db = newDb();
    const onlyA = await open(db, [{ $match: { 'ns.coll': { $in: ['a'] } } }]);
    const bOrDeletes = await open(db, [
      { $match: { $or: [{ 'ns.coll': 'b' }, { operationType: 'delete' }] } },
    ]);

    await db.collection<Doc>('b').insertOne({ _id: 'b1' });
    await db.collection<Doc>('a').insertOne({ _id: 'a1' });
    await db.collection<Doc>('a').deleteOne({ _id: 'a1' });
    await db.collection<Doc>('b').insertOne({ _id: 'b2' });
    await db.collection<Doc>('a').insertOne({ _id: 'a2' });

    expect(summary(await take(onlyA, 3))).toEqual([
      ['insert', db.databaseName, 'a', 'a1'],
      ['delete', db.databaseName, 'a', 'a1'],
      ['insert', db.databaseName, 'a', 'a2'],
    ]);
    await db.collection<Doc>('b').insertOne({ _id: 'b3' });
    expect(summary(await take(bOrDeletes, 4))).toEqual([
      ['insert', db.databaseName, 'b', 'b1'],
      ['delete', db.databaseName, 'a', 'a1'],
      ['insert', db.databaseName, 'b', 'b2'],
      ['insert', db.databaseName, 'b', 'b3'],
    ]);
  });

  it('delivers each matching event once, in order, when replies are cut by batchSize', async () => {
    const db = newDb();
    const stream = await open(db, [{ $match: { 'ns.coll': 'a' } }], { batchSize: 2 });
    const ids = [1, 2, 3, 4, 5, 6, 7];
    for (const _id of ids) {
      await db.collection<Doc>('b').insertOne({ _id });
      await db.collection<Doc>('a').insertOne({ _id });
    }
    expect(summary(await take(stream, ids.length))).toEqual(
      ids.map((id) => ['insert', db.databaseName, 'a', id]),
    );
    await db.collection<Doc>('a').insertOne({ _id: 8 });
    expect(summary(await take(stream, 1))).toEqual([['insert', db.databaseName, 'a', 8]]);
  });

  it('a collection-level stream too, among writes to other collections, and it resumes after its own token', async () => {
    const db = newDb();
    const stream = await open(db.collection<Doc>('a'), [], { batchSize: 2 });
    const ids = [1, 2, 3, 4, 5, 6, 7];
    for (const _id of ids) {
      await db.collection<Doc>('b').insertOne({ _id });
      await db.collection<Doc>('a').insertOne({ _id });
    }
    const events = await take(stream, ids.length);
    expect(events.map((e) => [e.operationType, e.documentKey?._id])).toEqual(
      ids.map((id) => ['insert', id]),
    );
    const resumed = await take(
      watch(db.collection<Doc>('a'), [], { resumeAfter: events[4]._id }),
      2,
    );
    expect(resumed.map((e) => e._id)).toEqual([events[5]._id, events[6]._id]);
  });

  it('a collection-level stream reports its own collection’s drop, not another’s', async () => {
    const db = newDb();
    await db.collection<Doc>('b').insertOne({ _id: 1 });
    const stream = await open(db.collection<Doc>('a'));
    await db.collection<Doc>('b').drop();
    await db.collection<Doc>('a').insertOne({ _id: 2 });
    await db.collection<Doc>('a').drop();
    expect(summary(await take(stream, 2))).toEqual([
      ['insert', db.databaseName, 'a', 2],
      ['drop', db.databaseName, 'a', undefined],
    ]);
  });

  it('a collection-level stream’s events carry ns and wallTime, in mongod’s field order, as the database-level ones', async () => {
    const db = newDb();
    const dbStream = await open(db);
    const collectionStream = await open(db.collection<Doc>('a'));
    const matchingNs = await open(db.collection<Doc>('a'), [
      { $match: { 'ns.coll': 'a', 'ns.db': db.databaseName, wallTime: { $type: 'date' } } },
    ]);
    await db.collection<Doc>('a').insertOne({ _id: 1, n: 1 });
    await db.collection<Doc>('a').updateOne({ _id: 1 }, { $set: { n: 2 } });
    await db.collection<Doc>('a').deleteOne({ _id: 1 });
    await db.collection<Doc>('a').drop();

    const fromDb = await take(dbStream, 4);
    const events = await take(collectionStream, 4);
    expect(events.map((e) => [e.operationType, e.ns])).toEqual(
      ['insert', 'update', 'delete', 'drop'].map((type) => [
        type,
        { db: db.databaseName, coll: 'a' },
      ]),
    );
    events.forEach((event, i) => {
      expect(event._id).toEqual(fromDb[i]._id);
      expect(event.wallTime).toBeInstanceOf(Date);
      expect(event.wallTime).toEqual(fromDb[i].wallTime);
    });
    // mongod's order at every level; the test server's collection-level updates and deletes
    // keep their own fields (a delta or null fullDocument, no updateDescription), in that order.
    const mongodOrder = [
      '_id',
      'operationType',
      'clusterTime',
      'wallTime',
      'fullDocument',
      'ns',
      'documentKey',
      'updateDescription',
    ];
    for (const event of events)
      expect(Object.keys(event).filter((key) => mongodOrder.includes(key))).toEqual(
        mongodOrder.filter((key) => key in event),
      );
    expect(Object.keys(events[0])).toEqual(Object.keys(fromDb[0]));
    // Present before the stream's stages run, as on mongod.
    expect(summary(await take(matchingNs, 1))).toEqual([['insert', db.databaseName, 'a', 1]]);
  });

  // A read looks an update's document up once, when it reads the update, as mongod does: a stream
  // that read it again on a later getMore (the test server once scanned from its last event on each
  // time) would deliver an update its $match had already turned down, with a later document.
  for (const level of ['collection', 'database'] as const)
    it(`${level}-level: a getMore never reads an entry again, so a looked-up update is judged once`, async () => {
      const db = newDb();
      const coll = db.collection<Doc>('a');
      await coll.insertOne({ _id: 1, s: 'draft' });
      const stream = await open(
        level === 'collection' ? coll : db,
        [{ $match: { 'fullDocument.s': 'sent' } }],
        { fullDocument: 'updateLookup' },
      );
      await coll.updateOne({ _id: 1 }, { $set: { n: 1 } });
      expect(await stream.tryNext()).toBeNull(); // a getMore that read the update: not 'sent'
      await coll.updateOne({ _id: 1 }, { $set: { s: 'sent' } });
      await coll.insertOne({ _id: 2, s: 'sent' });
      const events = await take(stream, 2);
      expect(events.map((e) => [e.operationType, e.fullDocument])).toEqual([
        ['update', { _id: 1, s: 'sent', n: 1 }],
        ['insert', { _id: 2, s: 'sent' }],
      ]);
    });

  it('resumes after a token (its own or a collection-level one) with the next event; startAfter too', async () => {
    const db = newDb();
    const stream = await open(db);
    const collectionStream = await open(db.collection<Doc>('a'));
    await db.collection<Doc>('a').insertOne({ _id: 1 });
    await db.collection<Doc>('b').insertOne({ _id: 2 });
    await db.collection<Doc>('a').insertOne({ _id: 3 });
    const events = await take(stream, 3);
    const [fromCollection] = await take(collectionStream, 1);

    const resumed = await take(watch(db, [], { resumeAfter: events[0]._id }), 2);
    expect(resumed.map((e) => e._id)).toEqual([events[1]._id, events[2]._id]);
    const afterCollectionToken = await take(watch(db, [], { resumeAfter: fromCollection._id }), 2);
    expect(summary(afterCollectionToken)).toEqual(summary(events.slice(1)));
    const startedAfter = await take(watch(db, [], { startAfter: events[1]._id }), 1);
    expect(startedAfter[0]._id).toEqual(events[2]._id);
    // And a collection-level stream takes a database-level token.
    const collectionResumed = await take(
      watch(db.collection<Doc>('a'), [], { resumeAfter: events[0]._id }),
      1,
    );
    expect(collectionResumed[0]._id).toEqual(events[2]._id);
  });

  it('gives tokens that carry their event’s cluster time, as mongod’s do, at both levels', async () => {
    const db = newDb();
    const stream = await open(db);
    const collectionStream = await open(db.collection<Doc>('a'));
    await db.collection<Doc>('a').insertOne({ _id: 1 });
    await db.collection<Doc>('a').updateOne({ _id: 1 }, { $set: { n: 1 } });
    const events = [...(await take(stream, 2)), ...(await take(collectionStream, 2))];
    for (const event of events) {
      expect(event.clusterTime).toBeInstanceOf(mongo.Timestamp);
      expect(clusterTimeOfToken(event._id)).toEqual(event.clusterTime);
    }
  });

  // The server's own shape (the hex of the timestamp's 64-bit value), as stored before the launcher's tokens took mongod's shape.
  (testEnv().realMongod ? it.skip : it)(
    'takes the test server’s former token shape on resumeAfter, at both levels (test server only)',
    async () => {
      const db = newDb();
      const stream = await open(db);
      await db.collection<Doc>('a').insertOne({ _id: 1 });
      await db.collection<Doc>('a').insertOne({ _id: 2 });
      const events = await take(stream, 2);
      const time = events[0].clusterTime!;
      const former = {
        _data: ((BigInt(time.high) << 32n) | BigInt(time.low)).toString(16),
      };
      for (const target of [db, db.collection<Doc>('a')]) {
        const resumed = await take(watch(target, [], { resumeAfter: former }), 1);
        expect(resumed[0]._id).toEqual(events[1]._id);
      }
    },
  );

  it('starts at an operation time, inclusive', async () => {
    const db = newDb();
    const stream = await open(db);
    for (const _id of [1, 2, 3]) await db.collection<Doc>('a').insertOne({ _id });
    const events = await take(stream, 3);

    const fromSecond = await take(
      watch(db, [], { startAtOperationTime: events[1].clusterTime }),
      2,
    );
    expect(fromSecond.map((e) => e._id)).toEqual([events[1]._id, events[2]._id]);
  });

  it('client.watch sees every database whose name matches the $regex on ns.db, and no other', async () => {
    const prefix = uniqueName('tssdep');
    const first = newDb(`${prefix}_1`);
    const second = newDb(`${prefix}_2`);
    const unmatched = newDb();
    const stream = await open(client, [
      { $match: { 'ns.db': { $regex: `^${prefix}_` }, 'ns.coll': { $in: ['a', 'b'] } } },
    ]);
    const byList = await open(client, [{ $match: { 'ns.db': { $in: [second.databaseName] } } }]);

    await unmatched.collection<Doc>('a').insertOne({ _id: 0 });
    await first.collection<Doc>('a').insertOne({ _id: 1 });
    await first.collection<Doc>('c').insertOne({ _id: 'not routed' });
    await second.collection<Doc>('b').insertOne({ _id: 2 });
    await unmatched.collection<Doc>('a').insertOne({ _id: 3 });
    await second.collection<Doc>('b').updateOne({ _id: 2 }, { $inc: { n: 5 } });

    expect(summary(await take(stream, 3))).toEqual([
      ['insert', first.databaseName, 'a', 1],
      ['insert', second.databaseName, 'b', 2],
      ['update', second.databaseName, 'b', 2],
    ]);
    expect(summary(await take(byList, 2))).toEqual([
      ['insert', second.databaseName, 'b', 2],
      ['update', second.databaseName, 'b', 2],
    ]);
  });

  it('gives the current document on updates with updateLookup, database- and deployment-wide', async () => {
    const db = newDb();
    const dbStream = await open(db, [], { fullDocument: 'updateLookup' });
    const deploymentStream = await open(client, [{ $match: { 'ns.db': db.databaseName } }], {
      fullDocument: 'updateLookup',
    });
    await db.collection<Doc>('a').insertOne({ _id: 1, n: 1 });
    await db.collection<Doc>('a').updateOne({ _id: 1 }, { $inc: { n: 1 } });
    const current = await db.collection<Doc>('a').findOne({ _id: 1 });
    expect(current).toEqual({ _id: 1, n: 2 });

    for (const stream of [dbStream, deploymentStream]) {
      const [, updated] = await take(stream, 2);
      expect(updated.operationType).toBe('update');
      expect(updated.fullDocument).toEqual(current);
      expect(updated.updateDescription).toEqual({
        updatedFields: { n: 2 },
        removedFields: [],
        truncatedArrays: [],
      });
    }
  });

  it('reports a dropped database as a drop of each of its collections, with ns', async () => {
    const db = newDb();
    await db.collection<Doc>('a').insertOne({ _id: 1 });
    await db.collection<Doc>('b').insertOne({ _id: 2 });
    const dbStream = await open(db);
    // A deployment-level stream lives on after the database (a database-level one is invalidated on mongod).
    const deploymentStream = await open(client, [
      { $match: { 'ns.db': db.databaseName, 'ns.coll': { $in: ['a', 'b'] } } },
    ]);

    await db.dropDatabase();
    await db.collection<Doc>('a').insertOne({ _id: 3 });

    const drops = [
      ['drop', db.databaseName, 'a', undefined],
      ['drop', db.databaseName, 'b', undefined],
    ];
    expect(summary(await take(dbStream, 2)).sort()).toEqual(drops);
    const events = await take(deploymentStream, 3);
    expect(summary(events.slice(0, 2)).sort()).toEqual(drops);
    expect(summary(events.slice(2))).toEqual([['insert', db.databaseName, 'a', 3]]);
  });

  it('refuses a database-level stream on admin, as mongod does', async () => {
    const stream = client.db('admin').watch([], { maxAwaitTimeMS: 50 });
    streams.push(stream);
    await expect(stream.tryNext()).rejects.toThrow(/admin/);
  });

  it('refuses stages mongod does not allow after $changeStream', async () => {
    const stream = watch(newDb(), [{ $limit: 1 }]);
    await expect(stream.tryNext()).rejects.toThrow(/\$limit/);
  });
});

/**
 * mongod's wait on an idle change stream: a getMore with nothing new waits until a write or its
 * maxTimeMS (the stream's maxAwaitTimeMS). The test server does so only with its await switch
 * (MONGO_TEST_SERVER_AWAIT, see docs/development.md); without it, it answers at once.
 */
describe('an idle change stream waits for writes, as on mongod', () => {
  const waits = testEnv().realMongod || testServerAwaitsIdleGetMore();
  // Skipped on the test server with its await switch off (MONGO_TEST_SERVER_AWAIT=0: it answers idle getMores at once).
  const whenWaiting = waits ? it : it.skip;
  let client: mongo.MongoClient;
  const getMoresStarted: number[] = [];
  const owned: string[] = [];
  const streams: mongo.ChangeStream[] = [];

  beforeAll(async () => {
    client = await new mongo.MongoClient(testEnv().mongoUri, { monitorCommands: true }).connect();
    client.on('commandStarted', (event) => {
      if (event.commandName === 'getMore') getMoresStarted.push(Date.now());
    });
  });
  afterEach(async () => {
    await Promise.all(streams.splice(0).map((stream) => stream.close()));
  });
  afterAll(async () => {
    for (const name of owned) await client.db(name).dropDatabase();
    await client.close();
  });

  const targets: [string, () => { target: Watchable; write: (id: number) => Promise<unknown> }][] =
    [
      [
        'collection',
        () => {
          const coll = newDb().collection<Doc>('a');
          return { target: coll, write: (_id) => coll.insertOne({ _id }) };
        },
      ],
      [
        'database',
        () => {
          const db = newDb();
          return { target: db, write: (_id) => db.collection<Doc>('a').insertOne({ _id }) };
        },
      ],
      [
        'deployment',
        () => {
          const db = newDb();
          return { target: client, write: (_id) => db.collection<Doc>('a').insertOne({ _id }) };
        },
      ],
    ];

  function newDb() {
    const name = uniqueName('tsw');
    owned.push(name);
    return client.db(name);
  }

  function watch(target: Watchable, maxAwaitTimeMS: number) {
    const stream = target.watch([], { maxAwaitTimeMS });
    streams.push(stream);
    return stream;
  }

  async function getMoreStarted(after: number) {
    const deadline = Date.now() + 15_000;
    while (!getMoresStarted.some((at) => at >= after)) {
      if (Date.now() > deadline) throw new Error('no getMore was sent');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  for (const [level, make] of targets) {
    whenWaiting(`${level}-level: an empty tryNext takes about its maxAwaitTimeMS`, async () => {
      const { target } = make();
      const stream = watch(target, 2_000);
      const started = Date.now();
      expect(await stream.tryNext()).toBeNull(); // its aggregate, then one getMore
      expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
    });

    whenWaiting(
      `${level}-level: a write during the wait answers it at once, with the event`,
      async () => {
        const { target, write } = make();
        const stream = watch(target, 20_000);
        const started = Date.now();
        const next = stream.tryNext(); // its aggregate (the stream starts there), then a getMore
        await getMoreStarted(started);
        await write(1);
        const event = (await next) as unknown as Event | null;
        expect(event).toMatchObject({ operationType: 'insert', documentKey: { _id: 1 } });
        expect(Date.now() - started).toBeLessThan(10_000);
      },
    );
  }

  whenWaiting('closing a stream during the wait (killCursors) ends the wait', async () => {
    const stream = watch(newDb(), 20_000);
    const started = Date.now();
    const next = stream.tryNext().catch((error: unknown) => error);
    await getMoreStarted(started);
    await stream.close();
    await next;
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
