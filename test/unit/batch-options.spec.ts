import { describe, expect, it } from '@jest/globals';
import 'reflect-metadata';
import { ON_CHANGE_BATCH_METADATA } from '../../lib/change-stream.constants.js';
import { ChangeStreamConfigError, OnChangeBatch } from '../../lib/index.js';
import type { ChangeHandler } from '../../lib/stream/change-handler.js';
import { planStreams } from '../../lib/stream/stream-plan.js';

const batchHandler = (batch: { maxSize: number; maxWaitMs: number }): ChangeHandler => ({
  name: 'Sink.onOrders',
  collection: 'orders',
  connectionName: 'default',
  options: {},
  batch,
  invoke: () => undefined,
});

describe('@OnChangeBatch options', () => {
  it('records the batch limits apart from the @OnChange options', () => {
    class Sink {
      @OnChangeBatch('orders', { maxSize: 500, maxWaitMs: 50, operationTypes: ['insert'] })
      onOrders() {}
    }
    expect(Reflect.getMetadata(ON_CHANGE_BATCH_METADATA, Sink.prototype.onOrders)).toEqual([
      {
        collection: 'orders',
        options: { operationTypes: ['insert'] },
        batch: { maxSize: 500, maxWaitMs: 50 },
      },
    ]);
  });

  it.each([
    [{ maxSize: 0, maxWaitMs: 10 }, '"maxSize" must be an integer >= 1 (got 0)'],
    [{ maxSize: 1.5, maxWaitMs: 10 }, '"maxSize" must be an integer >= 1 (got 1.5)'],
    [{ maxWaitMs: 10 }, '"maxSize" must be an integer >= 1 (got undefined)'],
    [{ maxSize: 10, maxWaitMs: -1 }, '"maxWaitMs" must be a number of milliseconds >= 0 (got -1)'],
    [{ maxSize: 10 }, '"maxWaitMs" must be a number of milliseconds >= 0 (got undefined)'],
  ])('refuses %j when the class is defined', (options, rule) => {
    expect(() => {
      class Sink {
        @OnChangeBatch('orders', options as never)
        onOrders() {}
      }
      return Sink;
    }).toThrow(new ChangeStreamConfigError(`@OnChangeBatch('orders') on Sink.onOrders: ${rule}.`));
  });

  it('refuses an unknown option, listing the known ones with the batch limits', () => {
    expect(() => {
      class Sink {
        @OnChangeBatch('orders', { maxSize: 10, maxWaitMs: 10, maxsize: 5 } as never)
        onOrders() {}
      }
      return Sink;
    }).toThrow(
      /^@OnChangeBatch\('orders'\) on Sink\.onOrders: unknown option\(s\) "maxsize"\. Known options: .*retries.*, maxSize, maxWaitMs\.$/,
    );
  });

  it('refuses at startup a maxSize above checkpoint.maxEvents, naming both', () => {
    expect(() => planStreams([batchHandler({ maxSize: 1001, maxWaitMs: 10 })], 1000)).toThrow(
      /^@OnChangeBatch\('orders'\) on Sink\.onOrders: maxSize 1001 is larger than checkpoint\.maxEvents 1000\..*at most 1000.*at least 1001\.$/,
    );
    expect(planStreams([batchHandler({ maxSize: 1000, maxWaitMs: 10 })], 1000)).toHaveLength(1);
  });

  it('refuses at startup an operation type that matches no event, as for @OnChange', () => {
    const handler = {
      ...batchHandler({ maxSize: 10, maxWaitMs: 10 }),
      options: { operationTypes: ['inserted'] },
    } as unknown as ChangeHandler;
    expect(() => planStreams([handler], 1000)).toThrow(
      /on Sink\.onOrders: "operationTypes" holds 'inserted', .*\(did you mean 'insert'\?\)\. Known types: insert, update, /,
    );
  });
});
