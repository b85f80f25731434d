import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import mongoose, { type mongo } from 'mongoose';
import { ChangeStreamRegistry, positionKey, encodePosition, OnChange } from '../../../lib/index.js';
import { ConsumerProcess } from '../../fault/consumer-process.js';
import { handledLines } from '../../fault/delivery-report.js';
import { EventLog } from '../../fixtures/event-log.js';
import { TestScope } from '../../fixtures/test-scope.js';
import { eventually, testEnv, uniqueName } from '../../fixtures/test-env.js';

@Injectable()
class OrderListener {
  constructor(private readonly log: EventLog) {}

  @OnChange('orders', { operationTypes: ['insert'] })
  onOrder(change: mongo.ChangeStreamInsertDocument) {
    this.log.record('order', change);
  }
}

const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

/**
 * Where a stream starts, on a server that answers the open with a post-batch token and an
 * `operationTime` (mongod). mongo-java-server answers with neither, so there a fresh stream has
 * no position until its first event is handled, and a crash before that restarts from now.
 */
describe('start positions (real mongod)', () => {
  const onMongod = testEnv().realMongod ? it : it.skip;
  const scope = new TestScope();
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
    await scope.closeAll();
  });

  onMongod(
    'a consumer killed before its first checkpoint loses nothing: the start position was stored at open (real mongod only)',
    async () => {
      const { mongoUri, redisUrl } = testEnv();
      const dbName = uniqueName('startpos');
      const consumer = uniqueName('svc');
      const log = join(mkdtempSync(join(tmpdir(), 'startpos-')), 'handled.log');
      const env = {
        MONGODB_URI: mongoUri,
        REDIS_URL: redisUrl,
        FAULT_DB: dbName,
        FAULT_CONSUMER: consumer,
        FAULT_LOG: log,
        FAULT_COLLECTIONS: 'items',
      };
      const probe = await scope.probe(dbName);

      // Handlers that never finish: nothing can be acknowledged, so no event's token is ever stored.
      const stuck = await ConsumerProcess.start({ ...env, FAULT_HANDLER_MS: '600000' });
      cleanups.push(() => stuck.kill());
      // READY comes after app.init(), which waits for the stream to be open: the start position is stored by then.
      const atStart = await probe.storedPosition(consumer, 'items');
      expect(atStart).not.toBeNull();
      expect(atStart && 'token' in atStart).toBe(true); // mongod's post-batch token

      await probe.collection('items').insertMany(range(1, 5).map((id) => ({ _id: id as never })));
      await stuck.kill(); // SIGKILL: no shutdown hook, no final flush
      expect(handledLines(log)).toEqual([]);

      const next = await ConsumerProcess.start(env);
      cleanups.push(() => next.stop());
      await probe.collection('items').insertOne({ _id: 6 as never }); // written after the restart: must come last
      await eventually(
        'the write made after the restart',
        () => handledLines(log).some((line) => line.id === 6),
        30_000,
      );
      expect(handledLines(log).map((line) => line.id)).toEqual(range(1, 6));
    },
  );

  onMongod(
    'a stored cluster time (startAtOperationTime) delivers the writes at and after it, and nothing before (real mongod only)',
    async () => {
      const dbName = uniqueName('optime');
      const consumer = uniqueName('svc');
      const probe = await scope.probe(dbName);
      const orders = probe.collection('orders');
      await orders.insertOne({ _id: 'before' as never });
      const session = probe.db.client.startSession();
      let operationTime: mongo.Timestamp | undefined;
      try {
        await orders.insertOne({ _id: 'at' as never }, { session });
        operationTime = session.operationTime; // the cluster time of that write
      } finally {
        await session.endSession();
      }
      expect(operationTime).toBeInstanceOf(mongoose.mongo.Timestamp);
      await orders.insertOne({ _id: 'after' as never });
      // What a stream stores when the server gave no post-batch token: resumed with startAtOperationTime.
      await probe.redis.set(
        positionKey('change-stream', consumer, dbName, 'orders'),
        encodePosition({ operationTime: operationTime! }),
      );

      const app = await scope.app({ dbName, consumer, providers: [OrderListener] });
      expect(app.get(ChangeStreamRegistry).getStatus('orders')?.state).toBe('open');
      await orders.insertOne({ _id: 'later' as never });
      await eventually('the write made after the start', () =>
        app.events.of('order').some((e) => e.documentId === 'later'),
      );
      // startAtOperationTime is inclusive: "changes that occurred at or after the specified timestamp".
      expect(app.events.of('order').map((e) => e.documentId)).toEqual(['at', 'after', 'later']);
      // From the first handled event on, the position is a resume token.
      await eventually(
        'a token replaced the cluster time',
        async () => (await probe.storedToken(consumer, 'orders')) !== null,
      );
    },
  );
});
