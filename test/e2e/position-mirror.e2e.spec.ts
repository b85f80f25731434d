import { afterEach, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import type { mongo } from 'mongoose';
import { ChangeStreamRegistry, positionKey, decodePosition, OnChange } from '../../lib/index.js';
import { EventLog } from '../fixtures/event-log.js';
import type { TestApp } from '../fixtures/test-app.js';
import { TestApp as App } from '../fixtures/test-app.js';
import { TestScope } from '../fixtures/test-scope.js';
import { eventually, uniqueName } from '../fixtures/test-env.js';
import { LocalRedisServer } from '../servers/redis-server.js';

@Injectable()
class ItemListener {
  constructor(private readonly log: EventLog) {}

  @OnChange('items')
  onItem(change: mongo.ChangeStreamDocument) {
    this.log.record('item', change);
  }
}

const MIRROR = 'change_stream_positions';
const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);
const handled = (app: TestApp) => app.events.of('item').map((e) => e.documentId as number);

/**
 * Redis without persistence (a cache restarted empty): its own redis-server per test, stopped and
 * started again with nothing in it. Without the mirror the next start opens "from now" and the
 * events written meanwhile are lost.
 */
describe('position mirror in MongoDB (Redis restarted empty)', () => {
  const scope = new TestScope();
  afterEach(() => scope.closeAll());

  async function setUp() {
    const redis = await LocalRedisServer.start();
    scope.track({ close: () => redis.stop() });
    const dbName = uniqueName('mirror');
    const consumer = uniqueName('svc');
    const probe = await scope.probe(dbName);
    const start = (instanceId?: string) =>
      scope.app({
        dbName,
        consumer,
        providers: [ItemListener],
        changeStreams: {
          redis: redis.url,
          shutdownTimeoutMs: 3000,
          positionMirror: { intervalMs: 200 },
          ...(instanceId ? { leases: { instanceId } } : {}),
        },
      });
    const insert = (ids: number[]) =>
      probe.collection('items').insertMany(ids.map((id) => ({ _id: id as never })));
    return {
      redis,
      dbName,
      consumer,
      probe,
      start,
      insert,
      key: positionKey('change-stream', consumer, dbName, 'items'),
    };
  }

  it('SIGTERM while Redis is down, Redis back empty: the next start resumes from the mirror and every event is handled', async () => {
    const { redis, probe, start, insert, key } = await setUp();
    const a = await start();
    await insert(range(1, 20));
    await eventually('A handled 1..20', () => handled(a).length === 20);
    await redis.stop(); // Redis loses everything; A goes on handling, its saves fail
    await insert(range(21, 30));
    await eventually('A handled 21..30 with Redis down', () => handled(a).length === 30);
    await scope.close(a); // the final save cannot reach Redis: the mirror keeps it
    await insert(range(31, 40)); // written while no instance runs
    await redis.resume(); // empty

    const b = await start();
    await insert(range(41, 50));
    await eventually('B handled 50', () => handled(b).includes(50), 15_000);
    expect([...new Set([...handled(a), ...handled(b)])].sort((x, y) => x - y)).toEqual(
      range(1, 50),
    );
    expect(
      b.logger.messages('warn').some((m) => m.includes('resuming from the copy in MongoDB')),
    ).toBe(true);
    // The mirror held A's last handled event (its final save went there): B delivers nothing A had handled.
    expect(handled(b)).toEqual(range(31, 50));
    // While B runs, the mirror follows it (every intervalMs).
    const last = JSON.stringify({ token: b.events.of('item').at(-1)!.token });
    await eventually("the mirror holds B's last position", async () => {
      const doc = await probe.collection(MIRROR).findOne({ _id: key as never });
      return doc !== null && JSON.stringify(decodePosition(key, doc.position as string)) === last;
    });
  });

  it('Redis restarted empty while no instance runs (clean shutdown before): nothing is lost and nothing is delivered twice', async () => {
    const { redis, start, insert } = await setUp();
    const a = await start();
    await insert(range(1, 15));
    await eventually('A handled 1..15', () => handled(a).length === 15);
    await scope.close(a);
    await redis.stop();
    await insert(range(16, 25));
    await redis.resume();

    const b = await start();
    await insert(range(26, 30));
    await eventually('B handled 30', () => handled(b).includes(30), 15_000);
    expect(handled(b)).toEqual(range(16, 30));
  });

  it('after Redis lost its fence counter the new holder (fence 1) takes the copy over from the old, larger fences', async () => {
    const { redis, probe, start, insert, key } = await setUp();
    for (const [n, instance] of [
      [1, 'a1'],
      [2, 'a2'],
      [3, 'a3'],
    ] as const) {
      const a = await start(instance);
      await insert([n]);
      await eventually(`${instance} handled ${n}`, () => handled(a).includes(n));
      await scope.close(a);
    }
    expect(await probe.collection(MIRROR).findOne({ _id: key as never })).toMatchObject({
      holder: 'a3',
      fence: 3,
      generation: 0,
    });
    await redis.stop();
    await redis.resume(); // empty: the next lease gets fence 1

    const b = await start('b');
    await insert(range(4, 8));
    await eventually('B handled 8', () => handled(b).includes(8));
    expect(handled(b)).toEqual(range(4, 8));
    const last = JSON.stringify({ token: b.events.of('item').at(-1)!.token });
    await eventually("the copy is B's, one generation up", async () => {
      const doc = await probe.collection(MIRROR).findOne({ _id: key as never });
      return (
        doc?.holder === 'b' &&
        doc.fence === 1 &&
        doc.generation === 1 &&
        JSON.stringify(decodePosition(key, doc.position as string)) === last
      );
    });
    expect(b.logger.messages('warn').filter((m) => m.includes('was not replaced'))).toEqual([]);
  });

  it('a mirror document it cannot read, with nothing in Redis, gets the stored-token treatment: the stream fails (onHistoryLost "fail"), naming the document', async () => {
    const { probe, start, key } = await setUp();
    await probe.collection(MIRROR).insertOne({ _id: key as never, position: 'not EJSON' });
    const app = await start();
    await eventually(
      'the stream failed',
      () => app.get(ChangeStreamRegistry).getStatus('items')?.state === 'failed',
    );
    expect(app.get(ChangeStreamRegistry).getStatus('items')?.lastError).toContain(
      `"mongodb ${probe.db.databaseName}.${MIRROR} _id=${key}" is not a valid resume token`,
    );
  });

  it('a mirror on a connection the application does not have fails startup, naming the option', async () => {
    const { error } = await App.startExpectingFailure({
      dbName: uniqueName('mirror'),
      consumer: uniqueName('svc'),
      providers: [ItemListener],
      changeStreams: { positionMirror: { connectionName: 'archive' } },
    });
    expect(error.message).toContain(
      'no mongoose connection named "archive" for the "positionMirror" option',
    );
  });
});
