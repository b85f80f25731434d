import { describe, expect, it } from '@jest/globals';
import { ChangeStreamConfigError } from '../../lib/index.js';
import type { OnChangeOptions } from '../../lib/index.js';
import {
  isHandlerFailurePolicy,
  validateDeclaration,
  validateHandlerOptions,
} from '../../lib/options/handler-options.js';

const where = "@OnChange('orders') on Listener.onOrder";

describe('validateHandlerOptions (every @OnChange option, at startup)', () => {
  it.each<[string, OnChangeOptions]>([
    ['no options', {}],
    [
      'every option',
      {
        operationTypes: ['insert', 'update'],
        pipeline: [{ $match: { 'fullDocument.status': 'paid' } }],
        fullDocument: 'updateLookup',
        fullDocumentBeforeChange: 'whenAvailable',
        splitLargeEvents: true,
        connectionName: 'main',
        retries: 0,
        concurrency: 4,
        onFailure: () => undefined,
      },
    ],
    ["onFailure 'dead-letter'", { onFailure: 'dead-letter' }],
  ])('accepts %s', (_case, options) => {
    expect(() => validateHandlerOptions('orders', 'Listener.onOrder', options)).not.toThrow();
  });

  it.each<[string, unknown, string]>([
    ['operationTypes', ['insert', 1], 'must be a non-empty array of operation type names'],
    [
      'pipeline',
      [{ $match: [] }],
      'may hold only { $match: {…} } stages (other stages can drop the resume token or reorder events)',
    ],
    ['fullDocument', 'always', 'must be one of default, updateLookup, whenAvailable, required'],
    ['fullDocumentBeforeChange', 'default', 'must be one of off, whenAvailable, required'],
    ['splitLargeEvents', 'yes', 'must be true or false'],
    ['concurrency', 0, 'must be an integer >= 1'],
    ['retries', 1.5, 'must be an integer >= 0'],
    ['onFailure', 'retry', 'must be "stop", "dead-letter" or a function'],
  ])('rejects %s %p, naming the handler, the option and the rule', (option, value, rule) => {
    const validate = () =>
      validateHandlerOptions('orders', 'Listener.onOrder', { [option]: value } as OnChangeOptions);
    expect(validate).toThrow(new ChangeStreamConfigError(`${where}: "${option}" ${rule}.`));
  });

  it.each<[string, string]>([
    ['inserted', " (did you mean 'insert'?)"],
    ['Update', " (did you mean 'update'?)"],
    ['upsert', ''],
  ])(
    'rejects the operation type %p that matches no event, naming the handler, the value and the known types',
    (value, hint) => {
      const validate = () =>
        validateHandlerOptions('orders', 'Listener.onOrder', {
          operationTypes: ['update', value],
        } as unknown as OnChangeOptions);
      expect(validate).toThrow(
        new ChangeStreamConfigError(
          `${where}: "operationTypes" holds '${value}', which is no change stream operation type, so the handler would never be called${hint}. ` +
            'Known types: insert, update, replace, delete, drop, rename, dropDatabase, invalidate, create, modify, createIndexes, dropIndexes, shardCollection, reshardCollection, refineCollectionShardKey.',
        ),
      );
    },
  );

  it('accepts every operation type the driver declares', () => {
    const operationTypes = [
      'insert',
      'update',
      'replace',
      'delete',
      'drop',
      'rename',
      'dropDatabase',
      'invalidate',
      'create',
      'modify',
      'createIndexes',
      'dropIndexes',
      'shardCollection',
      'reshardCollection',
      'refineCollectionShardKey',
    ] as const;
    expect(() =>
      validateHandlerOptions('orders', 'Listener.onOrder', { operationTypes }),
    ).not.toThrow();
  });

  it('rejects an unknown option as the decorator does (metadata written by hand)', () => {
    expect(() =>
      validateHandlerOptions('orders', 'Listener.onOrder', { retry: 2 } as OnChangeOptions),
    ).toThrow(
      `${where}: unknown option(s) "retry". Known options: operationTypes, pipeline, fullDocument, fullDocumentBeforeChange, splitLargeEvents, connectionName, retries, concurrency, onFailure, enabled, backfill.`,
    );
  });
});

describe('validateDeclaration (what @OnChange checks when the class is defined)', () => {
  it('checks the member, then the collection name, then the option names', () => {
    expect(() => validateDeclaration('', 'Listener.field', 42, { retry: 1 })).toThrow(
      "@OnChange('') on Listener.field: it decorates methods only.",
    );
    expect(() =>
      validateDeclaration('', 'Listener.onOrder', () => undefined, { retry: 1 }),
    ).toThrow('@OnChange on Listener.onOrder: the collection name must be a non-empty string.');
    expect(() =>
      validateDeclaration('orders', 'Listener.onOrder', () => undefined, { retry: 1 }),
    ).toThrow(`${where}: unknown option(s) "retry".`);
  });

  it('leaves values to startup: a bad value passes here', () => {
    expect(() =>
      validateDeclaration('orders', 'Listener.onOrder', () => undefined, { retries: -1 }),
    ).not.toThrow();
  });
});

describe('isHandlerFailurePolicy', () => {
  it.each<[unknown, boolean]>([
    ['stop', true],
    ['dead-letter', true],
    [() => undefined, true],
    ['fail', false],
    [undefined, false],
  ])('%p → %p', (value, expected) => {
    expect(isHandlerFailurePolicy(value)).toBe(expected);
  });
});
