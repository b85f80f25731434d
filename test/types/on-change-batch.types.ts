/*
 * Compile-time tests of @OnChangeBatch's handler typing, as on-change.types.ts does for
 * @OnChange: every `// @ts-expect-error` must meet an error, in `tsc -p tsconfig.json` (strict)
 * and `tsc -p test/types/tsconfig.loose.json` (Nest's default, no `strictFunctionTypes`).
 */
import type { mongo } from 'mongoose';
import {
  type BatchHandlerAccepts,
  type ChangeContext,
  type ChangeOf,
  type ChangeOrBackfill,
  type OnChangeBatchHandler,
  OnChangeBatch,
  collection,
} from '../../lib/index.js';

interface Order {
  _id: string;
  total: number;
}

type Equal<A, B> =
  (<X>() => X extends A ? 1 : 2) extends <X>() => X extends B ? 1 : 2 ? true : false;
function expectType<T extends true>(): T | void {}

expectType<
  Equal<
    OnChangeBatchHandler<Order, 'insert'>,
    (changes: Array<mongo.ChangeStreamInsertDocument<Order>>, context: ChangeContext) => unknown
  >
>();
type Insert = mongo.ChangeStreamInsertDocument;
expectType<
  Equal<BatchHandlerAccepts<(changes: Insert[]) => void, ChangeOf<any, 'insert'>>, unknown>
>();
expectType<
  Equal<
    BatchHandlerAccepts<(changes: Insert[]) => void, ChangeOf<any, 'insert' | 'update'>>,
    {
      "@OnChangeBatch: the handler's first parameter must accept": Array<
        ChangeOf<any, 'insert' | 'update'>
      >;
    }
  >
>();
// One change where an array is due.
expectType<
  Equal<
    BatchHandlerAccepts<(change: Insert) => void, ChangeOf<any, 'insert'>>,
    { "@OnChangeBatch: the handler's first parameter must accept": Array<ChangeOf<any, 'insert'>> }
  >
>();

/** Batch handlers that fit: none of these may be an error. */
export class AcceptedBatches {
  @OnChangeBatch('orders', { maxSize: 500, maxWaitMs: 50, operationTypes: ['insert'] })
  onInserts(changes: Array<mongo.ChangeStreamInsertDocument<Order>>, context: ChangeContext): void {
    expectType<Equal<(typeof changes)[number]['fullDocument']['total'], number>>();
    void context.attempt;
  }

  // A readonly array parameter takes the batch too.
  @OnChangeBatch<Order, 'insert' | 'update'>('orders', {
    maxSize: 100,
    maxWaitMs: 0,
    operationTypes: ['insert', 'update'],
    fullDocument: 'updateLookup',
    onFailure: 'dead-letter',
    retries: 2,
  })
  async onWrites(changes: ReadonlyArray<ChangeOf<Order, 'insert' | 'update'>>): Promise<void> {
    for (const change of changes)
      if (change.operationType === 'insert')
        expectType<Equal<typeof change, mongo.ChangeStreamInsertDocument<Order>>>();
  }

  // No operation types: every change, drop and rename included.
  @OnChangeBatch<Order>('orders', { maxSize: 10, maxWaitMs: 10 })
  onAll(changes: Array<mongo.ChangeStreamDocument<Order>>) {}

  @OnChangeBatch('orders', { maxSize: 10, maxWaitMs: 10 })
  noParameters() {}
}

/** Batch handlers that do not fit: each must be an error. */
export class RejectedBatches {
  // @ts-expect-error one change, not an array
  @OnChangeBatch('orders', { maxSize: 10, maxWaitMs: 10, operationTypes: ['insert'] })
  onOne(change: mongo.ChangeStreamInsertDocument) {}

  // @ts-expect-error takes inserts only, given updates too
  @OnChangeBatch('orders', { maxSize: 10, maxWaitMs: 10, operationTypes: ['insert', 'update'] })
  onInsertsOnly(changes: mongo.ChangeStreamInsertDocument[]) {}

  // @ts-expect-error the document type does not match
  @OnChangeBatch<Order, 'insert'>('orders', {
    maxSize: 10,
    maxWaitMs: 10,
    operationTypes: ['insert'],
  })
  onWrongDocument(changes: Array<mongo.ChangeStreamInsertDocument<{ _id: number }>>) {}

  // @ts-expect-error the second parameter cannot take the context
  @OnChangeBatch('orders', { maxSize: 10, maxWaitMs: 10 })
  onBadContext(changes: mongo.ChangeStreamDocument[], context: string) {}
}

// @ts-expect-error maxSize and maxWaitMs are required
OnChangeBatch('orders', { operationTypes: ['insert'] });

// Typed sources and backfill, as for @OnChange: the document type comes with the collection, the
// operation types from `operationTypes`; with `backfill` the elements include `BackfillEvent<T>`.
const Orders = collection<Order>('orders');
export class SourcedBatches {
  @OnChangeBatch(Orders, { maxSize: 10, maxWaitMs: 5, operationTypes: ['insert'] })
  inserts(changes: Array<ChangeOf<Order, 'insert'>>) {
    return changes.map((c) => c.fullDocument.total);
  }

  @OnChangeBatch(Orders, {
    maxSize: 10,
    maxWaitMs: 5,
    operationTypes: ['insert', 'update'],
    backfill: true,
    fullDocument: 'updateLookup',
  })
  synced(changes: Array<ChangeOrBackfill<Order, 'insert' | 'update'>>, context: ChangeContext) {
    return [changes, context];
  }

  // @ts-expect-error: with backfill the elements include BackfillEvent<Order>
  @OnChangeBatch(Orders, {
    maxSize: 10,
    maxWaitMs: 5,
    backfill: true,
    fullDocument: 'updateLookup',
  })
  changesOnly(changes: Array<ChangeOf<Order>>) {
    return changes;
  }

  // @ts-expect-error: updates too, but the method takes inserts only
  @OnChangeBatch(Orders, { maxSize: 10, maxWaitMs: 5, operationTypes: ['insert', 'update'] })
  tooNarrow(changes: Array<ChangeOf<Order, 'insert'>>) {
    return changes;
  }

  // @ts-expect-error: the token's documents are orders, not anything else
  @OnChangeBatch(Orders, { maxSize: 10, maxWaitMs: 5, operationTypes: ['insert'] })
  wrongDocument(changes: Array<ChangeOf<{ _id: string; name: number }, 'insert'>>) {
    return changes;
  }
}
