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
import { type ChangeStreamTester, changeEvents } from '../../lib/testing/index.js';

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

/** The testing module's `emit` takes the same object form, and a tenant's database. */
export async function emitForTenant(tester: ChangeStreamTester) {
  const tenantOrders = { collection: 'orders', database: /^tenant_/ };
  const _outcome = await tester.emit<Order>(
    tenantOrders,
    { operationType: 'insert', fullDocument: { _id: 'o1', total: 1 } },
    { database: 'tenant_a' },
  );
  expectType<Equal<typeof _outcome.database, string>>();
  expectType<Equal<typeof _outcome.change, ChangeOf<Order>>>();
  await tester.emit(
    'orders',
    changeEvents.forDatabase('tenant_a').insert<Order>('orders', { _id: 'o2', total: 2 }),
  );
  // @ts-expect-error the database is a name
  await tester.emit(tenantOrders, { operationType: 'drop' }, { database: /^tenant_/ });
  // @ts-expect-error an Order's total is a number
  await tester.emitMany<Order>(
    tenantOrders,
    [{ operationType: 'insert', fullDocument: { _id: 'o3', total: '3' } }],
    {
      database: 'tenant_a',
    },
  );
}
