import 'reflect-metadata';
import { describe, expect, it } from '@jest/globals';
import { ON_CHANGE_METADATA } from '../../lib/change-stream.constants.js';
import { type ChangeOf, ChangeStreamConfigError, OnChange } from '../../lib/index.js';

describe('@OnChange', () => {
  it('records the collection and options on the method, once per decorator', () => {
    class Listener {
      @OnChange('orders', { operationTypes: ['insert'] })
      @OnChange('customers')
      handle() {}
    }
    const metadata = Reflect.getMetadata(ON_CHANGE_METADATA, Listener.prototype.handle);
    expect(metadata).toEqual([
      { collection: 'customers', options: {} },
      { collection: 'orders', options: { operationTypes: ['insert'] } },
    ]);
  });

  it('records typed uses the same way, keeping the options object as given', () => {
    const operationTypes = ['insert', 'update'] as const;
    const options = { operationTypes, fullDocument: 'updateLookup' as const };
    class Listener {
      @OnChange<{ _id: number }, 'insert' | 'update'>('orders', options)
      handle(change: ChangeOf<{ _id: number }, 'insert' | 'update'>) {
        return change;
      }
    }
    const metadata = Reflect.getMetadata(ON_CHANGE_METADATA, Listener.prototype.handle);
    expect(metadata).toEqual([{ collection: 'orders', options }]);
    expect(metadata[0].options).toBe(options);
    expect(metadata[0].options.operationTypes).toBe(operationTypes);
  });

  it('returns the descriptor it was given', () => {
    const handle = () => {};
    const descriptor = { value: handle, writable: true, enumerable: false, configurable: true };
    expect(OnChange('orders')({}, 'handle', descriptor)).toBe(descriptor);
    expect(descriptor.value).toBe(handle);
  });

  it('rejects an empty collection name, naming the method', () => {
    expect(() => {
      class Listener {
        @OnChange('  ')
        handle() {}
      }
      return Listener;
    }).toThrow(
      new ChangeStreamConfigError(
        '@OnChange on Listener.handle: the collection name must be a non-empty string.',
      ),
    );
  });

  it('rejects use on something that is not a method', () => {
    const decorate = OnChange('orders') as (
      target: object,
      key: string,
      descriptor?: PropertyDescriptor,
    ) => void;
    expect(() => decorate({ constructor: { name: 'Listener' } }, 'field', { value: 42 })).toThrow(
      "@OnChange('orders') on Listener.field: it decorates methods only.",
    );
    expect(() => decorate({ constructor: { name: 'Listener' } }, 'field')).toThrow(
      ChangeStreamConfigError,
    );
  });

  it('rejects an unknown option (options built as any), naming the method and the known ones', () => {
    const options = { fullDocumnet: 'updateLookup' } as never;
    expect(() => {
      class Listener {
        @OnChange('orders', options)
        handle() {}
      }
      return Listener;
    }).toThrow(
      new ChangeStreamConfigError(
        `@OnChange('orders') on Listener.handle: unknown option(s) "fullDocumnet". Known options: operationTypes, pipeline, fullDocument, fullDocumentBeforeChange, splitLargeEvents, connectionName, retries, concurrency, onFailure, enabled, backfill.`,
      ),
    );
  });
});
