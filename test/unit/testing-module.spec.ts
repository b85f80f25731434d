import { afterEach, describe, expect, it, jest } from '@jest/globals';
import type { Provider } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import mongoose from 'mongoose';
import {
  ChangeStreamConfigError,
  ChangeStreamDeadLetters,
  type HandlerFailure,
  HandlerFailedError,
} from '../../lib/index.js';
import { deadLetterId } from '../../lib/dead-letter/dead-letter-id.js';
import {
  ChangeStreamTester,
  ChangeStreamTestingModule,
  type ChangeStreamTestingOptions,
  changeEvents,
} from '../../lib/testing/index.js';
import { OrderTotalsListener } from '../../sample/orders/order-totals.listener.js';
import { CapturingLogger } from '../fixtures/capturing-logger.js';
import {
  ArchiveListener,
  NegativeRetriesListener,
  OrderAuditListener,
  type OrderDoc,
  OrderSearchListener,
  PaidInvoicesListener,
  RequiredFullDocumentListener,
  SearchIndex,
} from '../fixtures/testing-listeners.js';

const { Timestamp } = mongoose.mongo;
const TOTALS = 'OrderTotalsListener.onOrderChange';

const order = (
  id: string,
  customer: string,
  total: number,
  status: OrderDoc['status'] = 'open',
): OrderDoc => ({ _id: id, customer, total, status });

const opened: TestingModule[] = [];
let logs = new CapturingLogger();

async function compile(
  providers: Provider[],
  options?: ChangeStreamTestingOptions,
): Promise<TestingModule> {
  logs = new CapturingLogger();
  const moduleRef = await Test.createTestingModule({
    imports: [ChangeStreamTestingModule.forRoot(options)],
    providers,
  })
    .setLogger(logs)
    .compile();
  opened.push(moduleRef);
  return moduleRef;
}

/** The sample app's listener in a testing module. */
async function sample(options?: ChangeStreamTestingOptions, more: Provider[] = []) {
  const moduleRef = await compile([OrderTotalsListener, ...more], options);
  return {
    moduleRef,
    tester: moduleRef.get(ChangeStreamTester),
    totals: moduleRef.get(OrderTotalsListener),
  };
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

afterEach(async () => {
  jest.restoreAllMocks();
  await Promise.all(opened.splice(0).map((m) => m.close()));
});

describe('ChangeStreamTestingModule with the sample OrderTotalsListener', () => {
  it('keeps the totals in step with inserts, updates and deletes, and acknowledges every event', async () => {
    const { tester, totals } = await sample();
    const calls = jest.spyOn(totals, 'onOrderChange');
    const outcomes = await tester.emitMany<OrderDoc>('orders', [
      changeEvents.insert('orders', order('o1', 'ada', 30)),
      changeEvents.insert('orders', order('o2', 'bob', 20)),
      changeEvents.update('orders', order('o1', 'ada', 45), { updatedFields: { total: 45 } }),
      changeEvents.insert('orders', order('o3', 'ada', 5)),
      changeEvents.replace('orders', order('o3', 'ada', 5, 'cancelled')),
      changeEvents.delete('orders', { _id: 'o2' }),
    ]);

    expect(totals.totals()).toEqual({ ada: 45 });
    expect(totals.handled).toBe(6);
    expect(
      outcomes.map((o) => [
        o.change.operationType,
        o.delivered,
        o.acknowledged,
        o.handlers.map((h) => [h.handler, h.status, h.attempts]),
      ]),
    ).toEqual([
      ['insert', true, true, [[TOTALS, 'succeeded', 1]]],
      ['insert', true, true, [[TOTALS, 'succeeded', 1]]],
      ['update', true, true, [[TOTALS, 'succeeded', 1]]],
      ['insert', true, true, [[TOTALS, 'succeeded', 1]]],
      ['replace', true, true, [[TOTALS, 'succeeded', 1]]],
      ['delete', true, true, [[TOTALS, 'succeeded', 1]]],
    ]);
    // The handler received exactly the outcome's event, and the outcome's context values and signal.
    const [first] = outcomes;
    expect(calls.mock.calls[0][0]).toBe(first.change);
    expect(calls.mock.calls[0][1]).toMatchObject(first.handlers[0].contexts[0]);
    expect(calls.mock.calls[0][1].signal).toBe(first.handlers[0].contexts[0].signal);
    expect(first.handlers[0].contexts[0]).toMatchObject({
      consumer: 'test',
      connectionName: 'default',
      database: 'test',
      collection: 'orders',
      handler: TOTALS,
      attempt: 1,
    });
    expect(first.handlers[0].contexts[0].signal.aborted).toBe(false);
    expect(first).toMatchObject({
      connectionName: 'default',
      database: 'test',
      collection: 'orders',
      deadLetters: [],
    });
    expect(first.failure).toBeUndefined();

    // An event no handler wants (the sample does not list drops): handled by nobody, acknowledged.
    const dropped = await tester.emit('orders', changeEvents.drop('orders'));
    expect(dropped).toMatchObject({
      delivered: true,
      acknowledged: true,
      handlers: [],
      deadLetters: [],
    });
    expect(calls).toHaveBeenCalledTimes(6);
  });

  it('retries a throwing handler as production does, without backoff delays by default', async () => {
    const { tester, totals } = await sample();
    jest
      .spyOn(totals, 'onOrderChange')
      .mockImplementationOnce(() => {
        throw new Error('search timeout');
      })
      .mockImplementationOnce(() => {
        throw new Error('search timeout again');
      });
    const started = Date.now();
    const outcome = await tester.emit(
      'orders',
      changeEvents.insert<OrderDoc>('orders', order('o1', 'ada', 30)),
    );

    expect(Date.now() - started).toBeLessThan(1000);
    expect(outcome.acknowledged).toBe(true);
    const [run] = outcome.handlers;
    expect(run).toMatchObject({ handler: TOTALS, status: 'succeeded', attempts: 3 });
    expect(run.contexts.map((c) => c.attempt)).toEqual([1, 2, 3]);
    expect(run.errors.map((e) => (e as Error).message)).toEqual([
      'search timeout',
      'search timeout again',
    ]);
    expect(totals.totals()).toEqual({ ada: 30 });
    // The production dispatcher's own log lines.
    expect(logs.messages('warn')).toEqual([
      expect.stringMatching(
        /^Handler OrderTotalsListener\.onOrderChange threw on insert of document "o1" \(token .*\) \(attempt 1: search timeout\); retrying in 0 ms\.$/,
      ),
      expect.stringMatching(/attempt 2: search timeout again\); retrying in 0 ms\.$/),
    ]);
  });

  it("applies production's backoff when handlerRetry.initialDelayMs is set", async () => {
    const { tester, totals } = await sample({ handlerRetry: { retries: 2, initialDelayMs: 40 } });
    jest.spyOn(totals, 'onOrderChange').mockImplementation(() => {
      throw new Error('down');
    });
    const started = Date.now();
    const outcome = await tester.emit(
      'orders',
      changeEvents.insert<OrderDoc>('orders', order('o1', 'ada', 30)),
    );
    // Two waits with jitter in [50%, 100%]: 20–40 ms, then 40–80 ms.
    expect(Date.now() - started).toBeGreaterThanOrEqual(58);
    expect(outcome.handlers[0].attempts).toBe(3);
  });

  it("stops the stream under the default 'stop' policy: not acknowledged, nothing more delivered until a restart", async () => {
    const { tester, totals } = await sample();
    const calls = jest.spyOn(totals, 'onOrderChange').mockImplementation(() => {
      throw new Error('read model unavailable');
    });
    const failed = await tester.emit(
      'orders',
      changeEvents.insert<OrderDoc>('orders', order('o1', 'ada', 30)),
    );

    expect(failed.acknowledged).toBe(false);
    expect(failed.handlers[0]).toMatchObject({ status: 'failed', attempts: 4 });
    expect(failed.failure).toBeInstanceOf(HandlerFailedError);
    expect(failed.failure?.message).toMatch(
      /^Handler OrderTotalsListener\.onOrderChange failed on insert of document "o1" .* of change-stream:\{test:test:orders\} after 4 attempt\(s\): read model unavailable\. The stream is stopped before this event/,
    );
    expect((failed.failure?.cause as Error).message).toBe('read model unavailable');
    expect(await tester.deadLetters()).toEqual([]);

    // Production reads nothing more after a stop.
    const next = await tester.emit(
      'orders',
      changeEvents.insert<OrderDoc>('orders', order('o2', 'bob', 20)),
    );
    expect(next).toMatchObject({
      delivered: false,
      acknowledged: false,
      handlers: [],
      deadLetters: [],
    });
    expect(calls).toHaveBeenCalledTimes(4);

    // After a restart the failed event comes first again; now the handler works.
    calls.mockRestore();
    tester.restart();
    const again = await tester.emit('orders', failed.change);
    expect(again.change._id).toEqual(failed.change._id);
    expect(again).toMatchObject({ delivered: true, acknowledged: true });
    expect(totals.totals()).toEqual({ ada: 30 });
  });

  it("dead-letters under 'dead-letter' with production's deterministic ids; ChangeStreamDeadLetters replays them", async () => {
    const { tester, totals, moduleRef } = await sample({
      onHandlerFailure: 'dead-letter',
      handlerRetry: { retries: 1 },
    });
    const original = totals.onOrderChange.bind(totals);
    jest.spyOn(totals, 'onOrderChange').mockImplementation((change, context) => {
      if ((change as { documentKey: { _id: string } }).documentKey._id === 'o2')
        throw new TypeError('total is not a number');
      return original(change, context);
    });
    const outcomes = await tester.emitMany<OrderDoc>('orders', [
      changeEvents.insert('orders', order('o1', 'ada', 30)),
      changeEvents.insert('orders', order('o2', 'bob', 20)),
      changeEvents.insert('orders', order('o3', 'cy', 7)),
    ]);

    expect(outcomes.map((o) => o.acknowledged)).toEqual([true, true, true]);
    expect(totals.totals()).toEqual({ ada: 30, cy: 7 });
    const poisoned = outcomes[1];
    const id = deadLetterId(
      'test',
      'change-stream:{test:test:orders}',
      poisoned.change._id,
      TOTALS,
    );
    expect(poisoned.deadLetters).toEqual([id]);
    expect(poisoned.handlers[0]).toMatchObject({
      status: 'dead-lettered',
      attempts: 2,
      deadLetterId: id,
    });
    expect(poisoned.failure).toBeUndefined();

    const letters = await tester.deadLetters();
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({
      id,
      streamKey: 'change-stream:{test:test:orders}',
      connectionName: 'default',
      database: 'test',
      collection: 'orders',
      handler: TOTALS,
      attempts: 2,
      error: { name: 'TypeError', message: 'total is not a number' },
      change: {
        operationType: 'insert',
        documentKey: { _id: 'o2' },
        fullDocument: order('o2', 'bob', 20),
      },
    });
    expect(logs.messages('error').some((m) => m.includes(`stored as dead letter ${id}`))).toBe(
      true,
    );

    // The same event failing again (a redelivery) overwrites its letter.
    const redelivered = await tester.emit('orders', poisoned.change);
    expect(redelivered.deadLetters).toEqual([id]);
    expect(await tester.deadLetters()).toHaveLength(1);

    // Fixed: the production API replays the letter through the same handler and removes it.
    jest.restoreAllMocks();
    const deadLetters = moduleRef.get(ChangeStreamDeadLetters);
    await deadLetters.replay(id);
    expect(totals.totals()).toEqual({ ada: 30, bob: 20, cy: 7 });
    expect(await deadLetters.list()).toEqual([]);
  });

  it('counts a failure callback that resolves as recorded (acknowledged); one that throws stops the stream', async () => {
    const recorded: HandlerFailure[] = [];
    let callbackFails = false;
    const { tester, totals } = await sample({
      handlerRetry: { retries: 0 },
      onHandlerFailure: (failure) => {
        if (callbackFails) throw new Error('audit log down');
        recorded.push(failure);
      },
    });
    jest.spyOn(totals, 'onOrderChange').mockImplementation(() => {
      throw new Error('boom');
    });

    const first = await tester.emit(
      'orders',
      changeEvents.insert<OrderDoc>('orders', order('o1', 'ada', 30)),
    );
    expect(first).toMatchObject({ acknowledged: true, deadLetters: [] });
    expect(first.handlers[0]).toMatchObject({ status: 'recorded', attempts: 1 });
    expect(recorded).toHaveLength(1);
    expect(recorded[0].change).toBe(first.change);
    expect((recorded[0].error as Error).message).toBe('boom');
    expect(recorded[0].context).toMatchObject({ handler: TOTALS, attempt: 1 });

    callbackFails = true;
    const second = await tester.emit(
      'orders',
      changeEvents.insert<OrderDoc>('orders', order('o2', 'bob', 20)),
    );
    expect(second.acknowledged).toBe(false);
    expect(second.handlers[0].status).toBe('failed');
    expect(second.failure?.message).toMatch(
      /The onFailure callback for OrderTotalsListener\.onOrderChange threw .*audit log down/,
    );
  });

  it('routes by operation type and the lifecycle rule, as production does', async () => {
    const { tester, moduleRef } = await sample({}, [OrderAuditListener, PaidInvoicesListener]);
    const names = (o: { handlers: ReadonlyArray<{ handler: string }> }) =>
      o.handlers.map((h) => h.handler);

    // orders: the sample lists insert/update/replace/delete; the audit listener lists nothing.
    const [inserted, dropped, renamed, invalidated] = await tester.emitMany('orders', [
      changeEvents.insert('orders', order('o1', 'ada', 30)),
      changeEvents.drop('orders'),
      changeEvents.rename('orders', 'orders_2024'),
      changeEvents.invalidate(),
    ]);
    expect(names(inserted)).toEqual([TOTALS, 'OrderAuditListener.record']);
    expect(names(dropped)).toEqual(['OrderAuditListener.record']);
    expect(names(renamed)).toEqual(['OrderAuditListener.record']);
    expect(renamed.change).toMatchObject({
      ns: { db: 'test', coll: 'orders' },
      to: { db: 'test', coll: 'orders_2024' },
    });
    expect(names(invalidated)).toEqual(['OrderAuditListener.record']);
    expect(invalidated.acknowledged).toBe(false); // never a resume point
    expect(moduleRef.get(OrderAuditListener).seen).toEqual([
      'insert@orders',
      'drop@orders',
      'rename@orders',
      'invalidate@orders',
    ]);

    // A handler without operation types (and no pipeline) receives DDL events too.
    expect(names(await tester.emit('orders', { operationType: 'createIndexes' }))).toEqual([
      'OrderAuditListener.record',
    ]);

    // invoices has a user pipeline: a handler without types does not get lifecycle events; one that lists them does.
    const invoices = await tester.emitMany('invoices', [
      changeEvents.insert('invoices', { _id: 'i1', status: 'paid' }),
      changeEvents.drop('invoices'),
      changeEvents.dropDatabase(),
    ]);
    expect(invoices.map(names)).toEqual([
      ['PaidInvoicesListener.onPaid'],
      ['PaidInvoicesListener.onGone'],
      [],
    ]);
    expect(moduleRef.get(PaidInvoicesListener).seen).toEqual(['onPaid:insert', 'onGone:drop']);
  });

  it('drives a listener whose dependency is faked with overrideProvider, with its per-handler options', async () => {
    const search = {
      upsert: jest.fn(async (_id: string, _order: OrderDoc) => undefined),
      remove: jest.fn(async (_id: string) => undefined),
    };
    const moduleRef = await Test.createTestingModule({
      imports: [ChangeStreamTestingModule.forRoot()],
      providers: [SearchIndex, OrderSearchListener, OrderTotalsListener],
    })
      .overrideProvider(SearchIndex)
      .useValue(search)
      .setLogger(new CapturingLogger())
      .compile();
    opened.push(moduleRef);
    const tester = moduleRef.get(ChangeStreamTester);

    const inserted = await tester.emit(
      'orders',
      changeEvents.insert<OrderDoc>('orders', order('o1', 'ada', 30)),
    );
    expect(inserted.handlers.map((h) => h.handler)).toEqual(['OrderSearchListener.index', TOTALS]);
    expect(search.upsert).toHaveBeenCalledWith('o1', order('o1', 'ada', 30));

    const deleted = await tester.emit(
      'orders',
      changeEvents.delete<OrderDoc>('orders', { _id: 'o1' }),
    );
    expect(deleted.handlers.map((h) => h.handler)).toEqual(['OrderSearchListener.unindex', TOTALS]);
    expect(search.remove).toHaveBeenCalledWith('o1');

    // index has retries: 1 and onFailure: 'dead-letter' of its own; the module default is 'stop' with 3 retries.
    search.upsert.mockRejectedValue(new Error('cluster red'));
    const updated = await tester.emit(
      'orders',
      changeEvents.update<OrderDoc>('orders', order('o2', 'bob', 20)),
    );
    expect(updated.acknowledged).toBe(true);
    expect(updated.handlers.map((h) => [h.handler, h.status, h.attempts])).toEqual([
      ['OrderSearchListener.index', 'dead-lettered', 2],
      [TOTALS, 'succeeded', 1],
    ]);
    expect((await tester.deadLetters()).map((l) => l.handler)).toEqual([
      'OrderSearchListener.index',
    ]);
    expect(moduleRef.get(OrderTotalsListener).totals()).toEqual({ bob: 20 });
  });

  it('handles the events of one stream one at a time, in emission order, awaited or not', async () => {
    const { tester, totals } = await sample();
    const log: string[] = [];
    const gate = deferred();
    // eslint-disable-next-line @typescript-eslint/no-misused-promises -- the module awaits what a handler returns, whatever its declared type
    jest.spyOn(totals, 'onOrderChange').mockImplementation(async (change) => {
      const id = (change as { documentKey: { _id: string } }).documentKey._id;
      log.push(`start ${id}`);
      if (id === 'o1') await gate.promise;
      log.push(`end ${id}`);
    });
    const first = tester.emit(
      'orders',
      changeEvents.insert<OrderDoc>('orders', order('o1', 'ada', 30)),
    );
    const second = tester.emit(
      'orders',
      changeEvents.insert<OrderDoc>('orders', order('o2', 'bob', 20)),
    );
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(log).toEqual(['start o1']);
    gate.resolve();
    await Promise.all([first, second]);
    expect(log).toEqual(['start o1', 'end o1', 'start o2', 'end o2']);
  });

  it('aborts context.signal when the module closes; a failure then is neither retried nor recorded', async () => {
    const { tester, totals, moduleRef } = await sample({ onHandlerFailure: 'dead-letter' });
    const running = deferred();
    // eslint-disable-next-line @typescript-eslint/no-misused-promises -- the module awaits what a handler returns, whatever its declared type
    jest.spyOn(totals, 'onOrderChange').mockImplementation(async (_change, context) => {
      running.resolve();
      await new Promise((resolve) =>
        context.signal.addEventListener('abort', resolve, { once: true }),
      );
      throw new Error('aborted');
    });
    const pending = tester.emit(
      'orders',
      changeEvents.insert<OrderDoc>('orders', order('o1', 'ada', 30)),
    );
    await running.promise;
    opened.splice(opened.indexOf(moduleRef), 1);
    await moduleRef.close();
    const outcome = await pending;
    expect(outcome).toMatchObject({ delivered: true, acknowledged: false, deadLetters: [] });
    expect(outcome.handlers[0]).toMatchObject({ status: 'failed', attempts: 1 });
    expect(outcome.failure).toBeUndefined();
    expect(await tester.deadLetters()).toEqual([]);
    await expect(
      tester.emit('orders', changeEvents.insert<OrderDoc>('orders', order('o2', 'bob', 20))),
    ).rejects.toThrow('The testing module is closed');
  });
});

describe('ChangeStreamTestingModule configuration', () => {
  it('validates @OnChange options with the production planner: init() fails, and so does the first emit without init()', async () => {
    const message = `@OnChange('orders') on NegativeRetriesListener.onOrder: "retries" must be an integer >= 0.`;
    const withInit = await compile([NegativeRetriesListener]);
    await expect(withInit.init()).rejects.toThrow(new ChangeStreamConfigError(message));
    const withoutInit = await compile([NegativeRetriesListener]);
    await expect(
      withoutInit.get(ChangeStreamTester).emit('orders', changeEvents.drop('orders')),
    ).rejects.toThrow(ChangeStreamConfigError);
  });

  it('fails on handlers that disagree on a stream-level option, naming both', async () => {
    const moduleRef = await compile([OrderTotalsListener, RequiredFullDocumentListener]);
    await expect(moduleRef.init()).rejects.toThrow(
      `@OnChange('orders'): OrderTotalsListener.onOrderChange and RequiredFullDocumentListener.onOrder share one stream but set different "fullDocument" ("updateLookup" vs "required")`,
    );
  });

  it('validates its own options with production messages, and rejects options that do not apply', () => {
    expect(() => ChangeStreamTestingModule.forRoot({ handlerRetry: { retries: -1 } })).toThrow(
      new ChangeStreamConfigError(
        'ChangeStreamModule: option "handlerRetry.retries" is -1; expected an integer >= 0.',
      ),
    );
    expect(() => ChangeStreamTestingModule.forRoot({ onHandlerFailure: 'skip' as never })).toThrow(
      '"stop", "dead-letter" or a function',
    );
    expect(() => ChangeStreamTestingModule.forRoot({ consumer: 'a:b' })).toThrow(
      'ChangeStreamModule: option "consumer" is "a:b"',
    );
    expect(() =>
      ChangeStreamTestingModule.forRoot({ redis: 'redis://localhost' } as never),
    ).toThrow(
      /^ChangeStreamTestingModule: unknown option\(s\) "redis"\. Known options: .*Stores, Redis, leases and timeouts do not apply/,
    );
    expect(() => ChangeStreamTestingModule.forRoot({ database: 'a.b' })).toThrow(
      'ChangeStreamTestingModule: option "database" is "a.b"',
    );
    expect(() => ChangeStreamTestingModule.forRoot({ fence: 0 })).toThrow(
      'ChangeStreamTestingModule: option "fence" is 0; expected an integer >= 1, or null (no leases).',
    );
  });

  it('gives handlers a context.fence: 1 by default, as configured, or null as without leases', async () => {
    for (const [options, fence] of [
      [{}, 1],
      [{ fence: 42 }, 42],
      [{ fence: null }, null],
    ] as const) {
      const { tester } = await sample(options);
      const outcome = await tester.emit(
        'orders',
        changeEvents.insert('orders', order('o1', 'ada', 30)),
      );
      expect(outcome.handlers[0].contexts[0].fence).toBe(fence);
    }
  });

  it('labels consumer, connections and databases as configured, without resolving any connection', async () => {
    const { tester, moduleRef } = await sample(
      { consumer: 'billing', database: { default: 'shop', archive: 'history' } },
      [ArchiveListener],
    );
    const shop = changeEvents.forDatabase('shop');
    const outcome = await tester.emit(
      'orders',
      shop.insert<OrderDoc>('orders', order('o1', 'ada', 30)),
    );
    expect(outcome.handlers[0].contexts[0]).toMatchObject({
      consumer: 'billing',
      connectionName: 'default',
      database: 'shop',
    });

    const archived = await tester.emit(
      'orders',
      changeEvents.forDatabase('history').delete('orders', { _id: 'o1' }),
      { connectionName: 'archive' },
    );
    expect(archived.handlers.map((h) => h.handler)).toEqual(['ArchiveListener.onArchived']);
    expect(moduleRef.get(ArchiveListener).contexts[0]).toMatchObject({
      consumer: 'billing',
      connectionName: 'archive',
      database: 'history',
    });

    await expect(
      tester.emit('orders', changeEvents.insert('orders', order('o2', 'bob', 1))),
    ).rejects.toThrow(
      'has ns.db "test", but that stream watches database "shop". Build it with changeEvents.forDatabase(\'shop\')',
    );
  });

  it('rejects an event for a collection nobody watches, naming the watched streams', async () => {
    const { tester } = await sample();
    await expect(
      tester.emit('order', changeEvents.insert('order', order('o1', 'ada', 1))),
    ).rejects.toThrow(
      'No @OnChange handler watches "order" on connection "default". Watched: "orders" (connection "default").',
    );
    const empty = await compile([SearchIndex]);
    await expect(
      empty.get(ChangeStreamTester).emit('orders', changeEvents.drop('orders')),
    ).rejects.toThrow('No handlers were found: are their providers in the testing module?');
  });
});

describe('changeEvents and partial events', () => {
  it('builds events shaped like the driver delivers them', () => {
    const insert = changeEvents.insert<OrderDoc>('orders', order('o1', 'ada', 30));
    expect(Object.keys(insert)).toEqual([
      '_id',
      'operationType',
      'clusterTime',
      'wallTime',
      'fullDocument',
      'ns',
      'documentKey',
    ]);
    expect(insert._id).toEqual({ _data: expect.stringMatching(/^82[0-9A-F]{16}2B[0-9A-F]+$/) });
    expect(insert.clusterTime).toBeInstanceOf(Timestamp);
    expect(insert.wallTime).toBeInstanceOf(Date);
    expect(insert).toMatchObject({
      operationType: 'insert',
      ns: { db: 'test', coll: 'orders' },
      documentKey: { _id: 'o1' },
      fullDocument: order('o1', 'ada', 30),
    });

    const update = changeEvents.update<OrderDoc>(
      'orders',
      { _id: 'o1' },
      { updatedFields: { status: 'paid' } },
    );
    expect(Object.keys(update)).toEqual([
      '_id',
      'operationType',
      'clusterTime',
      'wallTime',
      'ns',
      'documentKey',
      'updateDescription',
    ]);
    expect(update.updateDescription).toEqual({
      updatedFields: { status: 'paid' },
      removedFields: [],
      truncatedArrays: [],
    });
    const looked = changeEvents.update<OrderDoc>('orders', order('o1', 'ada', 45));
    expect(looked).toMatchObject({
      fullDocument: order('o1', 'ada', 45),
      updateDescription: { updatedFields: { customer: 'ada', total: 45, status: 'open' } },
    });

    expect(changeEvents.delete<OrderDoc>('orders', order('o1', 'ada', 45))).not.toHaveProperty(
      'fullDocument',
    );
    expect(changeEvents.dropDatabase()).toMatchObject({
      operationType: 'dropDatabase',
      ns: { db: 'test' },
    });
    expect(changeEvents.invalidate()).not.toHaveProperty('ns');
    expect(changeEvents.forDatabase('shop').drop('orders').ns).toEqual({
      db: 'shop',
      coll: 'orders',
    });

    // Tokens and cluster times increase in emission order, within one second too.
    const later = changeEvents.drop('orders');
    const data = (event: { _id: unknown }) => (event._id as { _data: string })._data;
    expect(data(later) > data(insert)).toBe(true);
    expect(later.clusterTime!.greaterThan(insert.clusterTime!)).toBe(true);

    const given = changeEvents.insert<OrderDoc>('orders', order('o9', 'x', 1), {
      _id: { _data: 'AA' },
      wallTime: new Date(0),
      txnNumber: 7,
    });
    expect(given).toMatchObject({ _id: { _data: 'AA' }, wallTime: new Date(0), txnNumber: 7 });
  });

  it('completes a partial event with what the driver would send, and refuses one it cannot complete', async () => {
    const { tester } = await sample();
    const outcome = await tester.emit<OrderDoc>('orders', {
      operationType: 'update',
      fullDocument: order('o1', 'ada', 12),
    });
    expect(outcome.change).toMatchObject({
      _id: { _data: expect.any(String) },
      operationType: 'update',
      ns: { db: 'test', coll: 'orders' },
      documentKey: { _id: 'o1' },
      updateDescription: {
        updatedFields: { customer: 'ada', total: 12, status: 'open' },
        removedFields: [],
      },
    });
    expect(outcome.acknowledged).toBe(true);

    await expect(tester.emit('orders', { operationType: 'delete' })).rejects.toThrow(
      'The "delete" event emitted on test.orders needs a "documentKey" ({ _id: … }) or a "fullDocument" with an _id.',
    );
    await expect(tester.emit('orders', { operationType: 'insert' })).rejects.toThrow(
      'needs a "fullDocument"',
    );
    await expect(tester.emit('orders', {} as never)).rejects.toThrow('needs an "operationType"');
    await expect(
      tester.emit('orders', changeEvents.insert('customers', { _id: 'c1' })),
    ).rejects.toThrow('has ns.coll "customers": emit it on "customers"');
    // emitMany checks every event before delivering any.
    await expect(
      tester.emitMany('orders', [
        changeEvents.insert('orders', order('o1', 'ada', 1)),
        { operationType: 'rename' },
      ]),
    ).rejects.toThrow('needs "to"');
    expect((await tester.emit('orders', changeEvents.drop('orders'))).handlers).toEqual([]);
  });
});
