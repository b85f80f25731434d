import { afterEach, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import type { mongo } from 'mongoose';
import { ChangeStreamRegistry, encodePosition, OnChange, positionKey } from '../../../lib/index.js';
import { TestScope } from '../../fixtures/test-scope.js';
import { eventually, testEnv, uniqueName } from '../../fixtures/test-env.js';

interface Order {
  _id: number;
  status: string;
}

@Injectable()
class InsertsOnly {
  readonly ids: number[] = [];
  readonly tokens: unknown[] = [];

  @OnChange<Order, 'insert'>('orders', { operationTypes: ['insert'] })
  onInsert(change: mongo.ChangeStreamInsertDocument<Order>) {
    this.ids.push(change.documentKey._id);
    this.tokens.push(change._id);
  }
}

@Injectable()
class UpdatesOnly {
  readonly ids: number[] = [];

  @OnChange<Order, 'update'>('orders', { operationTypes: ['update'] })
  onUpdate(change: mongo.ChangeStreamUpdateDocument<Order>) {
    this.ids.push(change.documentKey._id);
  }
}

/**
 * A deploy that changes the handler set changes the server-side `$match`. Resume tokens are tied
 * to the pipeline that produced them: mongod (6.0+, which rewrites `$match` into the oplog scan)
 * may not find an insert's token under a filter that drops inserts and answer
 * ChangeStreamFatalError 280 "the resume token was not found". Whatever the server does here, the
 * stream must resume (at the token's cluster time if need be), never report history lost or
 * restart from now. mongo-java-server ignores the filter when resuming: skipped there.
 */
describe('resume after the server-side pipeline changed (real mongod)', () => {
  const onMongod = testEnv().realMongod ? it : it.skip;
  const scope = new TestScope();
  afterEach(() => scope.closeAll());

  onMongod(
    'a token stored under an inserts-only filter resumes under an updates-only filter without losing the updates (real mongod only)',
    async () => {
      const dbName = uniqueName('pipeline');
      const consumer = uniqueName('svc');
      const probe = await scope.probe(dbName);
      const orders = probe.db.collection<Order>('orders');
      const first = await scope.app({ dbName, consumer, providers: [InsertsOnly] });
      await orders.insertOne({ _id: 1, status: 'new' });
      await eventually('insert handled', () => first.get(InsertsOnly).ids.length === 1);
      const [insertToken] = first.get(InsertsOnly).tokens;
      await scope.close(first);
      // The case under test is the insert's own token. The final flush may have stored a later
      // post-batch token instead (any write on the server moves it): a high-water mark, which
      // mongod resumes from without looking for an event, so the filter would not matter. Put the
      // event's token back, as a consumer that stopped right after the insert would have left it.
      await probe.redis.set(
        positionKey('change-stream', consumer, dbName, 'orders'),
        encodePosition({ token: insertToken as mongo.ResumeToken }),
      );

      // Written while no instance runs, then the new handler set starts from the insert's token.
      await orders.updateOne({ _id: 1 }, { $set: { status: 'paid' } });
      await orders.insertOne({ _id: 2, status: 'new' });
      await orders.updateOne({ _id: 2 }, { $set: { status: 'paid' } });
      const second = await scope.app({
        dbName,
        consumer,
        providers: [UpdatesOnly],
        changeStreams: { onHistoryLost: 'restart-from-now' },
      });
      await eventually(
        'both updates handled',
        () => second.get(UpdatesOnly).ids.length >= 2,
        30_000,
      );

      expect([...new Set(second.get(UpdatesOnly).ids)]).toEqual([1, 2]);
      expect(second.logger.messages('error').some((m) => m.includes('DATA LOSS'))).toBe(false);
      expect(second.get(ChangeStreamRegistry).getStatus('orders')).toMatchObject({ state: 'open' });
    },
  );
});
