/*
 * Compile-time tests of the object form `{ collection, database }` (a database per tenant): the
 * handler's event type is the one of a plain collection name, and the operation types are still
 * inferred from `operationTypes`. Compiled by `npm run typecheck` with the strict and the loose
 * tsconfig (see on-change.types.ts): every `// @ts-expect-error` must meet an error.
 */
import type { mongo } from 'mongoose';
import {
  type ChangeContext,
  type ChangeOf,
  type DocumentOf,
  type TenantCollection,
  OnChange,
  OnChangeBatch,
} from '../../lib/index.js';

interface Order {
  _id: string;
  total: number;
}

type Equal<A, B> =
  (<X>() => X extends A ? 1 : 2) extends <X>() => X extends B ? 1 : 2 ? true : false;
function expectType<T extends true>(): T | void {}

// As a plain name: documents of any type.
expectType<Equal<DocumentOf<TenantCollection>, any>>();

export class TenantListener {
  @OnChange({ collection: 'orders', database: /^tenant_/ })
  everyChange(change: ChangeOf, context: ChangeContext) {
    return [change.operationType, context.database];
  }

  @OnChange({ collection: 'orders', database: 'tenant_a' }, { operationTypes: ['insert'] })
  inserts(change: mongo.ChangeStreamInsertDocument) {
    return change.fullDocument;
  }

  @OnChange(
    { collection: 'orders', database: /^tenant_/ },
    { operationTypes: ['insert', 'update'] },
  )
  typedByHand(change: ChangeOf<Order, 'insert' | 'update'>) {
    return change.documentKey;
  }

  // @ts-expect-error a delete is not an insert: the handler must take what operationTypes lets through
  @OnChange(
    { collection: 'orders', database: /^tenant_/ },
    { operationTypes: ['insert', 'delete'] },
  )
  tooNarrow(change: mongo.ChangeStreamInsertDocument) {}

  @OnChangeBatch(
    { collection: 'orders', database: /^tenant_/ },
    { maxSize: 10, maxWaitMs: 5, operationTypes: ['insert'] },
  )
  batches(changes: mongo.ChangeStreamInsertDocument[], context: ChangeContext) {
    return [changes.length, context.database];
  }

  // @ts-expect-error the database is a name or a RegExp
  @OnChange({ collection: 'orders', database: 42 })
  notAPattern() {}
}
