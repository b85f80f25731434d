import { describe, expect, it } from '@jest/globals';
import { ChangeStreamConfigError } from '../../lib/index.js';
import type { OnChangeOptions } from '../../lib/index.js';
import type { ChangeHandler } from '../../lib/stream/change-handler.js';
import { planStreams } from '../../lib/stream/stream-plan.js';

const LIFECYCLE = ['drop', 'rename', 'dropDatabase', 'invalidate'];

function handler(
  name: string,
  collection: string,
  options: OnChangeOptions = {},
  connectionName = 'default',
): ChangeHandler {
  return { name, collection, connectionName, options, invoke: () => undefined };
}

describe('planStreams', () => {
  it('opens one stream per connection and collection, sharing it between handlers', () => {
    const plans = planStreams([
      handler('A.onOrder', 'orders'),
      handler('B.onOrder', 'orders'),
      handler('A.onCustomer', 'customers'),
      handler('C.onOrder', 'orders', {}, 'archive'),
    ]);
    expect(
      plans.map((p) => [p.connectionName, p.collection, p.handlers.map((h) => h.name)]),
    ).toEqual([
      ['default', 'orders', ['A.onOrder', 'B.onOrder']],
      ['default', 'customers', ['A.onCustomer']],
      ['archive', 'orders', ['C.onOrder']],
    ]);
  });

  it('filters operation types on the server only when every handler restricts them', () => {
    const [restricted] = planStreams([
      handler('A.a', 'orders', { operationTypes: ['insert'] }),
      handler('B.b', 'orders', { operationTypes: ['delete', 'insert'] }),
    ]);
    expect(restricted.pipeline).toEqual([
      { $match: { operationType: { $in: ['insert', 'delete', ...LIFECYCLE] } } },
    ]);
    const [open] = planStreams([
      handler('A.a', 'orders', { operationTypes: ['insert'] }),
      handler('B.b', 'orders'),
    ]);
    expect(open.pipeline).toEqual([]);
  });

  it('appends the shared $match pipeline after the operation type filter; lifecycle events pass both', () => {
    const pipeline = [{ $match: { 'fullDocument.status': 'paid' } }];
    const [plan] = planStreams([
      handler('A.a', 'orders', { operationTypes: ['insert'], pipeline }),
    ]);
    expect(plan.pipeline).toEqual([
      { $match: { operationType: { $in: ['insert', ...LIFECYCLE] } } },
      {
        $match: { $or: [{ 'fullDocument.status': 'paid' }, { operationType: { $in: LIFECYCLE } }] },
      },
    ]);
    expect(plan.hasUserPipeline).toBe(true);
  });

  it('combines several $match stages into one that lifecycle events still pass', () => {
    const pipeline = [{ $match: { a: 1 } }, { $match: { b: 2 } }];
    const [plan] = planStreams([handler('A.a', 'orders', { pipeline })]);
    expect(plan.pipeline).toEqual([
      { $match: { $or: [{ $and: [{ a: 1 }, { b: 2 }] }, { operationType: { $in: LIFECYCLE } }] } },
    ]);
  });

  it('lets handlers that leave fullDocument unset share the stream of one that sets it', () => {
    const [plan] = planStreams([
      handler('A.a', 'orders'),
      handler('B.b', 'orders', { fullDocument: 'updateLookup' }),
    ]);
    expect(plan.fullDocument).toBe('updateLookup');
  });

  it.each<[string, OnChangeOptions, OnChangeOptions, string]>([
    [
      'fullDocument',
      { fullDocument: 'updateLookup' },
      { fullDocument: 'required' },
      '"fullDocument" ("updateLookup" vs "required")',
    ],
    [
      'fullDocumentBeforeChange',
      { fullDocumentBeforeChange: 'off' },
      { fullDocumentBeforeChange: 'required' },
      '"fullDocumentBeforeChange"',
    ],
    [
      'pipeline vs none',
      { pipeline: [{ $match: { a: 1 } }] },
      {},
      '"pipeline" ([{"$match":{"a":1}}] vs [])',
    ],
  ])('fails on conflicting %s, naming both handlers', (_case, first, second, detail) => {
    const plan = () =>
      planStreams([handler('A.a', 'orders', first), handler('B.b', 'orders', second)]);
    expect(plan).toThrow(ChangeStreamConfigError);
    expect(plan).toThrow(
      `@OnChange('orders'): A.a and B.b share one stream but set different ${detail}`,
    );
  });

  it.each<[string, OnChangeOptions, string]>([
    [
      'a $project stage',
      { pipeline: [{ $project: { a: 1 } }] as never },
      '"pipeline" may hold only { $match: {…} } stages',
    ],
    [
      'a stage with two keys',
      { pipeline: [{ $match: {}, $limit: 1 }] as never },
      '"pipeline" may hold only { $match: {…} } stages',
    ],
    ['empty operationTypes', { operationTypes: [] }, '"operationTypes" must be a non-empty array'],
    [
      'an unknown fullDocument',
      { fullDocument: 'always' as never },
      '"fullDocument" must be one of default, updateLookup',
    ],
    ['negative retries', { retries: -2 }, '"retries" must be an integer >= 0'],
  ])('rejects %s, naming the handler', (_case, options, message) => {
    expect(() => planStreams([handler('Listener.onOrder', 'orders', options)])).toThrow(
      `@OnChange('orders') on Listener.onOrder: ${message}`,
    );
  });
});
