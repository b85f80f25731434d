import { afterEach, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import type { mongo } from 'mongoose';
import {
  type ChangeStreamEvent,
  ChangeStreamDeadLetters,
  type ChangeStreamModuleOptions,
  ChangeStreamRegistry,
  positionKey,
  OnChange,
} from '../../lib/index.js';
import { deadLetterKey } from '../../lib/redis/redis-keys.js';
import { EventLog } from '../fixtures/event-log.js';
import type { TestApp } from '../fixtures/test-app.js';
import { TestScope } from '../fixtures/test-scope.js';
import { eventually, uniqueName } from '../fixtures/test-env.js';

/** Rejects the ids in `rejecting` on every attempt. */
const rejecting = new Set<number>();

@Injectable()
class InvoiceListener {
  constructor(private readonly log: EventLog) {}

  @OnChange('invoices', { operationTypes: ['insert'] })
  onInvoice(change: mongo.ChangeStreamInsertDocument<{ _id: number }>) {
    if (rejecting.has(change.fullDocument._id))
      throw new Error(`invoice ${change.fullDocument._id} rejected`);
    this.log.record('done', change);
  }
}

describe('failure policies (real MongoDB and Redis)', () => {
  const scope = new TestScope();
  afterEach(async () => {
    rejecting.clear();
    await scope.closeAll();
  });
  const start = (
    dbName: string,
    consumer: string,
    changeStreams: Partial<ChangeStreamModuleOptions> = {},
  ) => scope.app({ dbName, consumer, providers: [InvoiceListener], changeStreams });
  const probeFor = (dbName: string) => scope.probe(dbName);
  const done = (app: TestApp) => app.events.of('done').map((e) => e.documentId);

  it('dead-letter: records the event with its error in Redis, goes on, and replays it on demand', async () => {
    const dbName = uniqueName('dlq');
    const consumer = uniqueName('svc');
    const app = await start(dbName, consumer, { onHandlerFailure: 'dead-letter' });
    const probe = await probeFor(dbName);
    rejecting.add(2).add(4);
    await probe
      .collection('invoices')
      .insertMany([1, 2, 3, 4, 5].map((id) => ({ _id: id as never })));
    await eventually('1, 3, 5 handled', () => done(app).length === 3);
    expect(done(app)).toEqual([1, 3, 5]);
    expect(app.get(ChangeStreamRegistry).getStatus('invoices')?.state).toBe('open');

    const deadLetters = app.get(ChangeStreamDeadLetters);
    await eventually('two dead letters', async () => (await deadLetters.list()).length === 2);
    const letters = await deadLetters.list();
    expect(
      letters.map((l) => [
        (l.change as { documentKey: { _id: number } }).documentKey._id,
        l.handler,
        l.attempts,
        l.error.message,
      ]),
    ).toEqual([
      [2, 'InvoiceListener.onInvoice', 3, 'invoice 2 rejected'],
      [4, 'InvoiceListener.onInvoice', 3, 'invoice 4 rejected'],
    ]);
    // Stored in Redis under the consumer's namespace, as EJSON.
    const raw = await probe.redis.hget(deadLetterKey('change-stream', consumer), letters[0].id);
    expect(raw).toContain('"invoice 2 rejected"');
    // The stream moved past them: the stored position is the last event.
    await eventually(
      'position after 5',
      async () =>
        JSON.stringify(await probe.storedToken(consumer, 'invoices')) ===
        JSON.stringify(app.events.of('done')[2].token),
    );

    rejecting.clear();
    await deadLetters.replay(letters[0].id);
    expect(done(app)).toEqual([1, 3, 5, 2]);
    expect(await deadLetters.discard(letters[1].id)).toBe(true);
    expect(await deadLetters.list()).toEqual([]);
    await expect(deadLetters.replay('nope')).rejects.toThrow('No dead letter with id "nope".');
  });

  it('a failure callback records the event itself and the stream goes on', async () => {
    const dbName = uniqueName('callback');
    const consumer = uniqueName('svc');
    const recorded: unknown[] = [];
    const app = await start(dbName, consumer, {
      onHandlerFailure: ({ change, error, context }) =>
        void recorded.push([change.operationType, (error as Error).message, context.attempt]),
    });
    const probe = await probeFor(dbName);
    rejecting.add(1);
    await probe.collection('invoices').insertMany([{ _id: 1 as never }, { _id: 2 as never }]);
    await eventually('2 handled', () => done(app).length === 1);
    expect(recorded).toEqual([['insert', 'invoice 1 rejected', 3]]);
  });

  describe('a stored position that cannot be used', () => {
    const malformed = 'this is not a token';
    const rejected = JSON.stringify({
      v: 1,
      token: { _data: 'zz-not-hex' },
      savedAt: new Date().toISOString(),
    });

    it.each([['malformed', malformed, /is not a valid resume token \(not EJSON/]])(
      '%s, policy fail: the stream fails, health reason says how to recover, the value is kept',
      async (_case, stored, reason) => {
        const dbName = uniqueName('badtoken');
        const consumer = uniqueName('svc');
        const probe = await probeFor(dbName);
        const key = positionKey('change-stream', consumer, dbName, 'invoices');
        await probe.redis.set(key, stored);
        const app = await start(dbName, consumer);
        const status = app.get(ChangeStreamRegistry).getStatus('invoices')!;
        expect(status.state).toBe('failed');
        expect(status.lastError).toMatch(reason);
        expect(status.lastError).toMatch(/delete the key/);
        expect(await probe.redis.get(key)).toBe(stored);
        // Failed is final: the stream never fell back to reading from now.
        expect(status.eventsHandled).toBe(0);
        expect(app.logger.messages('log').some((m) => m.includes('starting from now'))).toBe(false);
      },
    );

    it.each([['malformed', malformed]])(
      '%s, policy restart-from-now: logged as data loss, event emitted, new writes delivered',
      async (_case, stored) => {
        const dbName = uniqueName('badtoken');
        const consumer = uniqueName('svc');
        const probe = await probeFor(dbName);
        const key = positionKey('change-stream', consumer, dbName, 'invoices');
        await probe.redis.set(key, stored);
        const app = await start(dbName, consumer, { onHistoryLost: 'restart-from-now' });
        expect(app.logger.messages('error').some((m) => m.startsWith(`DATA LOSS on ${key}`))).toBe(
          true,
        );
        expect(app.get(ChangeStreamRegistry).getStatus('invoices')?.state).toBe('open');
        await probe.collection('invoices').insertOne({ _id: 1 as never });
        await eventually('handled', () => done(app).length === 1);
        await eventually(
          'a valid position replaced the bad value',
          async () => (await probe.redis.get(key)) !== stored,
        );
      },
    );

    // The server refuses the token without a history-lost code (mongo-java-server: no code; mongod:
    // FailedToParse): that says nothing about the oplog, so no policy runs and nothing restarts from
    // now; the stream keeps trying with backoff and counts the identical failures in its status.
    it.each(['fail', 'restart-from-now'] as const)(
      'rejected by the server without a history-lost code, policy %s: reconnecting, counted, the value kept, never from now',
      async (policy) => {
        const dbName = uniqueName('badtoken');
        const consumer = uniqueName('svc');
        const probe = await probeFor(dbName);
        const key = positionKey('change-stream', consumer, dbName, 'invoices');
        await probe.redis.set(key, rejected);
        const app = await start(dbName, consumer, {
          onHistoryLost: policy,
          reconnect: { initialDelayMs: 10, maxDelayMs: 50 },
          startupTimeoutMs: 500,
        });
        const status = () => app.get(ChangeStreamRegistry).getStatus('invoices')!;
        await eventually(
          'three identical failures in a row',
          () => status().consecutiveFailures >= 3,
        );
        expect(status().state).toBe('reconnecting');
        expect(await probe.redis.get(key)).toBe(rejected);
        expect(app.logger.messages('error').some((m) => m.includes('DATA LOSS'))).toBe(false);
        expect(app.logger.messages('log').some((m) => m.includes('starting from now'))).toBe(false);
      },
    );

    it('emits a history-lost event that an app can alert on', async () => {
      const dbName = uniqueName('badtoken');
      const consumer = uniqueName('svc');
      const probe = await probeFor(dbName);
      await probe.redis.set(positionKey('change-stream', consumer, dbName, 'invoices'), malformed);
      const seen: ChangeStreamEvent[] = [];
      const app = await start(dbName, consumer, {
        onHistoryLost: (lost) => {
          seen.push({ type: 'history-lost', action: 'restart-from-now', ...lost });
          return 'restart-from-now';
        },
      });
      expect(seen).toHaveLength(1);
      expect(seen[0]).toMatchObject({ collection: 'invoices', database: dbName, position: null });
      expect(app.get(ChangeStreamRegistry).getStatus('invoices')?.state).toBe('open');
    });
  });
});
