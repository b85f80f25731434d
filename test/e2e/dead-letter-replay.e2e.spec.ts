import { afterEach, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import type { mongo } from 'mongoose';
import { ChangeStreamDeadLetters, ChangeStreamRegistry, OnChange } from '../../lib/index.js';
import { TestScope } from '../fixtures/test-scope.js';
import { eventually, uniqueName } from '../fixtures/test-env.js';

/** What the handler did, in order: `<op> <id> start|end`. */
const steps: string[] = [];
let failInsertOf: number | null = null;
/** Set: the live delete waits for it (a newer event of the dead-lettered document, still running). */
let holdDelete: Promise<void> | null = null;

@Injectable()
class TicketListener {
  @OnChange('tickets', { operationTypes: ['insert', 'delete'] })
  async onTicket(
    change:
      | mongo.ChangeStreamInsertDocument<{ _id: number }>
      | mongo.ChangeStreamDeleteDocument<{ _id: number }>,
  ) {
    const id = change.documentKey._id;
    const replaying = steps.includes('replay asked');
    const name = `${change.operationType} ${id}${replaying && change.operationType === 'insert' && id === failInsertOf ? ' (replay)' : ''}`;
    steps.push(`${name} start`);
    if (change.operationType === 'insert' && id === failInsertOf && !replaying)
      throw new Error(`ticket ${id} rejected`);
    if (change.operationType === 'delete' && holdDelete) await holdDelete;
    steps.push(`${name} end`);
  }
}

describe('dead-letter replay (real MongoDB and Redis)', () => {
  const scope = new TestScope();
  afterEach(async () => {
    steps.length = 0;
    failInsertOf = null;
    holdDelete = null;
    await scope.closeAll();
  });
  // A replay counts toward the unsaved-events bound (2 × maxEvents) while it waits: room for the events read meanwhile.
  const options = {
    onHandlerFailure: 'dead-letter' as const,
    concurrency: 4,
    handlerRetry: { retries: 0 },
    checkpoint: { maxEvents: 10, intervalMs: 50 },
  };

  it("waits for the document's running live event, and the rest of the stream goes on meanwhile", async () => {
    const spec = {
      dbName: uniqueName('replay'),
      consumer: uniqueName('svc'),
      providers: [TicketListener],
      changeStreams: options,
    };
    const app = await scope.app(spec);
    const probe = await scope.probe(spec.dbName);
    const tickets = probe.collection('tickets');
    failInsertOf = 1;
    await tickets.insertOne({ _id: 1 as never });
    const deadLetters = app.get(ChangeStreamDeadLetters);
    await eventually('ticket 1 dead-lettered', async () => (await deadLetters.list()).length === 1);
    const [letter] = await deadLetters.list();

    let release!: () => void;
    holdDelete = new Promise<void>((resolve) => (release = resolve));
    await tickets.deleteOne({ _id: 1 as never });
    await eventually('the live delete of ticket 1 running', () => steps.includes('delete 1 start'));
    steps.push('replay asked');
    const replayed = deadLetters.replay(letter.id);
    await tickets.insertOne({ _id: 2 as never });
    await eventually('ticket 2 handled meanwhile', () => steps.includes('insert 2 end'));
    expect(steps).not.toContain('insert 1 (replay) start');
    release();
    await replayed;
    expect(steps.indexOf('delete 1 end')).toBeLessThan(steps.indexOf('insert 1 (replay) start'));
    expect(await deadLetters.list()).toEqual([]);
  });

  it('is refused on an instance that stands by, naming the holder', async () => {
    const spec = {
      dbName: uniqueName('replay'),
      consumer: uniqueName('svc'),
      providers: [TicketListener],
      changeStreams: options,
    };
    const active = await scope.app(spec);
    const standby = await scope.app(spec);
    await eventually(
      'one active, one standby',
      () =>
        [active, standby]
          .map((a) => a.get(ChangeStreamRegistry).getStatus('tickets')?.role)
          .sort()
          .join() === 'active,standby',
    );
    const [holderApp, otherApp] =
      active.get(ChangeStreamRegistry).getStatus('tickets')?.role === 'active'
        ? [active, standby]
        : [standby, active];
    failInsertOf = 1;
    const probe = await scope.probe(spec.dbName);
    await probe.collection('tickets').insertOne({ _id: 1 as never });
    const deadLetters = otherApp.get(ChangeStreamDeadLetters);
    await eventually('ticket 1 dead-lettered', async () => (await deadLetters.list()).length === 1);
    const [letter] = await deadLetters.list();
    const holder = holderApp.get(ChangeStreamRegistry).getStatus('tickets')!.instanceId!;
    await expect(deadLetters.replay(letter.id)).rejects.toThrow(`(it is held by ${holder})`);
    expect(steps.filter((s) => s.includes('(replay)'))).toEqual([]);
    expect(await deadLetters.list()).toHaveLength(1);
    // On the holder it runs.
    steps.push('replay asked');
    await holderApp.get(ChangeStreamDeadLetters).replay(letter.id);
    expect(steps).toContain('insert 1 (replay) end');
  });
});
