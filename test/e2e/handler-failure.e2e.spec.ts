import { afterEach, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import type { mongo } from 'mongoose';
import { ChangeStreamRegistry, type ChangeContext, OnChange } from '../../lib/index.js';
// The sample's own /health controller, so the spec also proves the README's recipe.
import { HealthController } from '../../sample/health/health.controller.js';
import { EventLog } from '../fixtures/event-log.js';
import { TestScope } from '../fixtures/test-scope.js';
import { eventually, uniqueName } from '../fixtures/test-env.js';

/** Ids the handler rejects on every attempt, until removed. */
const alwaysFailing = new Set<number>();

/** Documents with `failTimes: n` make the handler throw on their first n attempts. */
@Injectable()
class PaymentListener {
  constructor(private readonly log: EventLog) {}

  @OnChange('payments', { operationTypes: ['insert'] })
  onPayment(
    change: mongo.ChangeStreamInsertDocument<{ _id: number; failTimes?: number }>,
    context: ChangeContext,
  ) {
    this.log.record('attempt', change, context.attempt);
    const failTimes = change.fullDocument.failTimes ?? 0;
    if (alwaysFailing.has(change.fullDocument._id) || context.attempt <= failTimes)
      throw new Error(`payment ${change.fullDocument._id} rejected`);
    this.log.record('done', change, context.attempt);
  }
}

describe('handler failures (real MongoDB and Redis)', () => {
  const scope = new TestScope();
  afterEach(async () => {
    alwaysFailing.clear();
    await scope.closeAll();
  });
  const start = (dbName: string, consumer: string) =>
    scope.app({
      dbName,
      consumer,
      providers: [PaymentListener, HealthController],
      imports: [TerminusModule],
    });
  const probeFor = (dbName: string) => scope.probe(dbName);

  it('retries a throwing handler and acknowledges the event once it succeeds', async () => {
    const dbName = uniqueName('retry');
    const consumer = uniqueName('svc');
    const app = await start(dbName, consumer);
    const probe = await probeFor(dbName);
    await probe.collection('payments').insertOne({ _id: 1 as never, failTimes: 2 });
    await eventually('payment done', () => app.events.of('done').length === 1);
    expect(app.events.of('attempt').map((e) => e.attempt)).toEqual([1, 2, 3]);
    await eventually(
      'token stored',
      async () =>
        JSON.stringify(await probe.storedToken(consumer, 'payments')) ===
        JSON.stringify(app.events.of('done')[0].token),
    );
    expect(app.get(ChangeStreamRegistry).getStatus('payments')?.state).toBe('open');
  });

  it('stops the stream before an event that keeps failing, reports it, and redelivers it after a restart', async () => {
    const dbName = uniqueName('stop');
    const consumer = uniqueName('svc');
    const app = await start(dbName, consumer);
    const probe = await probeFor(dbName);
    const payments = probe.collection('payments');

    await payments.insertOne({ _id: 1 as never });
    await eventually('first payment done', () => app.events.of('done').length === 1);
    const goodToken = app.events.of('done')[0].token;
    alwaysFailing.add(2);
    await payments.insertOne({ _id: 2 as never });
    await payments.insertOne({ _id: 3 as never });

    const registry = app.get(ChangeStreamRegistry);
    await eventually('stream failed', () => registry.getStatus('payments')?.state === 'failed');
    // 1 call + 2 retries (the fixture's retries), then nothing more: event 3 is not read past the failure.
    // (A stream turns failed only once its in-flight handlers finished, so this is its final record.)
    expect(app.events.of('attempt').map((e) => [e.documentId, e.attempt])).toEqual([
      [1, 1],
      [2, 1],
      [2, 2],
      [2, 3],
    ]);
    expect(await probe.storedToken(consumer, 'payments')).toEqual(goodToken);

    const status = registry.getStatus('payments')!;
    expect(status.lastError).toContain(
      'Handler PaymentListener.onPayment failed on insert of document 2 (token ',
    );
    expect(status.lastError).toContain('after 3 attempt(s): payment 2 rejected');
    expect(app.logger.messages('error').some((m) => m.includes('payment 2 rejected'))).toBe(true);

    const health = app.get(HealthController);
    let healthError: unknown;
    await health.check().catch((e: unknown) => (healthError = e));
    const body = (healthError as { getResponse(): Record<string, any> }).getResponse();
    expect(body.status).toBe('error');
    expect(body.error.changeStreams.status).toBe('down');
    expect(body.error.changeStreams.streams[`default/${dbName}.payments`]).toMatchObject({
      state: 'failed',
      eventsHandled: 1,
    });

    // Fix the cause, restart: the failed event comes again, then the one behind it, and nothing before it.
    alwaysFailing.clear();
    await scope.close(app);
    const restarted = await start(dbName, consumer);
    await payments.insertOne({ _id: 4 as never }); // written after the restart: comes after anything replayed
    await eventually('4 handled after restart', () =>
      restarted.events.of('done').some((e) => e.documentId === 4),
    );
    expect(restarted.events.of('done').map((e) => e.documentId)).toEqual([2, 3, 4]);
  });

  it('reports up with per-stream figures while streams are open', async () => {
    const dbName = uniqueName('health');
    const consumer = uniqueName('svc');
    const app = await start(dbName, consumer);
    const probe = await probeFor(dbName);
    await probe.collection('payments').insertOne({ _id: 1 as never });
    await eventually('handled', () => app.events.of('done').length === 1);
    const result = await app.get(HealthController).check();
    expect(result.status).toBe('ok');
    const indicator = result.info!.changeStreams!;
    expect(indicator.status).toBe('up');
    expect(indicator.streams[`default/${dbName}.payments`]).toMatchObject({
      state: 'open',
      eventsHandled: 1,
    });
    expect(typeof indicator.streams[`default/${dbName}.payments`].lastEventAt).toBe('string');
  });
});
