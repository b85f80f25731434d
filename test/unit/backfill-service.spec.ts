import { afterEach, describe, expect, it } from '@jest/globals';
import { ChangeStreamBackfill, InMemoryPositionStore } from '../../lib/index.js';
import type { ChangeStreamRegistry } from '../../lib/change-stream.registry.js';
import type { ChangeStreamStatus } from '../../lib/interfaces/change-stream-status.interface.js';
import { resolveOptions } from '../../lib/options/module-options.js';
import type { CollectionStream } from '../../lib/stream/collection-stream.js';
import {
  backfillStream,
  BACKFILL_KEY,
  changeOf,
  FakeCollection,
  startToken,
  stopBackfillStreams,
} from '../fixtures/backfill-harness.js';
import { deferred } from '../fixtures/stream-harness.js';
import { eventually } from '../fixtures/test-env.js';

afterEach(stopBackfillStreams);

const ids = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
const service = (...streams: CollectionStream[]) =>
  new ChangeStreamBackfill(
    { streams, disabled: [], disabledHandlers: new Map() } as unknown as ChangeStreamRegistry,
    resolveOptions({ consumer: 'svc' }),
  );
const completed = async (store: InMemoryPositionStore) =>
  (await store.load(BACKFILL_KEY))?.backfill?.completed ?? [];

describe('ChangeStreamBackfill (on demand) and backfill progress in status', () => {
  it('starts a run again for the handlers declared with backfill, shows its progress, and completes it', async () => {
    const store = new InMemoryPositionStore();
    await store.save(BACKFILL_KEY, {
      token: startToken,
      backfill: { completed: ['Listener.onOrder'] },
    });
    const collection = new FakeCollection(ids(6));
    const gate = deferred();
    const { stream, seen } = backfillStream({
      scripts: [{}],
      collection,
      store,
      handlers: {
        onOrder: { backfill: { batchSize: 4 }, fullDocument: 'updateLookup' },
        other: {},
      },
      handle: (s) => (s.id === 5 ? gate.promise : undefined),
    });
    const backfills = service(stream);
    stream.start();
    await eventually('open', () => stream.state === 'open');
    expect(collection.queries).toEqual([]); // completed before: nothing runs on its own
    expect(backfills.progress('orders')).toBeNull();
    const started = backfills.start('orders');
    expect(started).toMatchObject({ handlers: ['Listener.onOrder'], done: 0 });
    expect(() => backfills.start('orders')).toThrow(/still running; cancel it first/);
    await eventually('the first chunk is done', () => (stream.status().backfill?.done ?? 0) === 4);
    expect(stream.status().backfill).toMatchObject({
      run: started.run,
      total: 6,
      handlers: ['Listener.onOrder'],
    });
    gate.resolve();
    await eventually('completed', async () => stream.status().backfill === null);
    expect(seen.map((s) => `${s.handler}:${s.id}`)).toEqual(ids(6).map((id) => `onOrder:${id}`));
    expect(await completed(store)).toEqual(['Listener.onOrder']);
    expect(() => backfills.start('orders', { handler: 'Listener.other' })).toThrow(
      /handler Listener.other of .* is not declared with backfill \(those that are: Listener.onOrder\)/,
    );
  });

  it('cancels a run: no chunk read starts after it, and it does not start again on its own', async () => {
    const store = new InMemoryPositionStore();
    const collection = new FakeCollection(ids(20));
    const gate = deferred();
    const getMores = [[], [], [], [], [], [changeOf(1, 'insert', { _id: 100, v: 1 })]];
    const { stream, seen } = backfillStream({
      scripts: [{ aggregate: { postBatchResumeToken: startToken }, getMores }],
      collection,
      store,
      handlers: { onOrder: { backfill: { batchSize: 2 }, fullDocument: 'updateLookup' } },
      handle: (s) => (s.id === 1 ? gate.promise : undefined),
    });
    const backfills = service(stream);
    stream.start();
    await eventually(
      'the first document is being handled',
      () => stream.status().inFlightEvents > 0,
    );
    const reads = collection.queries.length;
    const cancelled = backfills.cancel('orders');
    expect(cancelled?.handlers).toEqual(['Listener.onOrder']);
    gate.resolve();
    await eventually('the insert after the cancel', () => seen.some((s) => s.id === 100));
    expect(collection.queries.length).toBe(reads);
    expect(backfills.progress('orders')).toBeNull();
    await eventually(
      'stored without a run',
      async () => (await store.load(BACKFILL_KEY))?.backfill?.run === undefined,
    );
    expect(await completed(store)).toEqual(['Listener.onOrder']);
  });

  it('refuses on an instance that does not consume the stream, and names the stream', () => {
    const { stream } = backfillStream({ scripts: [{}], collection: new FakeCollection() });
    expect(() => service(stream).start('orders')).toThrow(
      /Backfill request refused: this instance is not consuming stream/,
    );
    expect(() => service(stream).start('invoices')).toThrow(/no stream of collection 'invoices'/);
  });
});

describe('ChangeStreamBackfill and disabled handlers (enabled: false)', () => {
  const registry = (parts: Partial<ChangeStreamRegistry>) =>
    ({ streams: [], disabled: [], disabledHandlers: new Map(), ...parts }) as ChangeStreamRegistry;
  const idle = {
    key: 'cs:{svc:db:payments}',
    collection: 'payments',
    connectionName: 'default',
    disabledHandlers: ['Listener.onPayment'],
  } as ChangeStreamStatus;

  it('a disabled handler of a running stream is refused naming it and why, not as undeclared', async () => {
    const { stream } = backfillStream({
      scripts: [{}],
      collection: new FakeCollection(ids(2)),
      handlers: {
        onOrder: { backfill: true, fullDocument: 'updateLookup' },
        audit: { backfill: true, fullDocument: 'updateLookup', enabled: false },
      },
    });
    const backfills = new ChangeStreamBackfill(
      registry({
        streams: [stream],
        disabledHandlers: new Map([[stream.key, ['Listener.audit']]]),
      }),
      resolveOptions({ consumer: 'svc' }),
    );
    expect(() => backfills.start('orders', { handler: 'Listener.audit' })).toThrow(
      `ChangeStreamBackfill: handler Listener.audit of ${BACKFILL_KEY} cannot be backfilled on this instance: the handler is disabled here (enabled: false), so it is not called. Start the backfill on an instance where it is enabled and that holds the stream.`,
    );
  });

  it('a stream whose handlers are all disabled, or a disabled module, is refused saying so, not as unknown', () => {
    const backfills = new ChangeStreamBackfill(
      registry({ disabled: [idle] }),
      resolveOptions({ consumer: 'svc' }),
    );
    expect(() => backfills.start('payments')).toThrow(
      'ChangeStreamBackfill: stream cs:{svc:db:payments} cannot be backfilled on this instance: every handler of the stream is disabled here (enabled: false), so the stream does not run. Start the backfill on an instance where they are enabled and that holds the stream.',
    );
    expect(() => backfills.start('payments', { handler: 'Listener.onPayment' })).toThrow(
      'handler Listener.onPayment of cs:{svc:db:payments} cannot be backfilled on this instance: the handler is disabled here',
    );
    const offModule = new ChangeStreamBackfill(
      registry({ disabled: [{ ...idle, disabledHandlers: undefined } as ChangeStreamStatus] }),
      resolveOptions({ consumer: 'svc', enabled: false }),
    );
    expect(() => offModule.start('payments', { handler: 'Listener.onPayment' })).toThrow(
      'the module is disabled here (enabled: false), so no stream runs',
    );
  });
});
