/*
 * Compile-time tests of the typed collection sources of @OnChange: a `collection<T>()` token, a
 * `@nestjs/mongoose` `@Schema()` class and a Mongoose model give the document type, and the
 * operation types are inferred from `operationTypes`, with nothing written twice. Compiled by
 * `npm run typecheck` with the strict and the loose tsconfig (see on-change.types.ts): every
 * `// @ts-expect-error` must meet an error.
 */
import { Prop, Schema } from '@nestjs/mongoose';
import type { Model, mongo } from 'mongoose';
import {
  type ChangeContext,
  type ChangeOf,
  type ChangeOperationType,
  type CollectionToken,
  type DocumentOf,
  type ExplicitDocumentHint,
  type HandlerAccepts,
  type OnChangeDecorator,
  collection,
  OnChange,
} from '../../lib/index.js';
import type { ChangeStreamTester } from '../../lib/testing/index.js';

interface Order {
  _id: string;
  total: number;
}
interface Invoice {
  _id: string;
  total: string;
}

@Schema()
class Customer {
  @Prop()
  name!: string;
}

declare const OrderModel: Model<Order>;

type Equal<A, B> =
  (<X>() => X extends A ? 1 : 2) extends <X>() => X extends B ? 1 : 2 ? true : false;
function expectType<T extends true>(): T | void {}

const Orders = collection<Order>('orders');
const Invoices = collection<Invoice>('invoices');

// The document type of each source.
expectType<Equal<typeof Orders, CollectionToken<Order>>>();
expectType<Equal<DocumentOf<typeof Orders>, Order>>();
expectType<Equal<DocumentOf<typeof Customer>, Customer>>();
expectType<Equal<DocumentOf<typeof OrderModel>, Order>>();
expectType<Equal<DocumentOf<'orders'>, any>>();
expectType<Equal<DocumentOf<{ collectionName: string }>, any>>();

// The decorators the sources give: document type from the source, operation types from the list.
export const onOrderInsert = OnChange(Orders, { operationTypes: ['insert'] });
expectType<Equal<typeof onOrderInsert, OnChangeDecorator<Order, 'insert'>>>();
export const onCustomer = OnChange(Customer);
expectType<Equal<typeof onCustomer, OnChangeDecorator<Customer>>>();
export const onModelDelete = OnChange(OrderModel, { operationTypes: ['delete', 'insert'] });
expectType<Equal<typeof onModelDelete, OnChangeDecorator<Order, 'delete' | 'insert'>>>();

// The old short form: the error names the new one (the key is what TypeScript prints).
export const shortForm = OnChange<Order>('orders', { operationTypes: ['insert'] });
type Hint = ExplicitDocumentHint<Order, ChangeOperationType>;
expectType<Equal<typeof shortForm, OnChangeDecorator<Order, ChangeOperationType, Hint>>>();
expectType<
  Equal<
    Hint,
    "@OnChange<T>('name', { operationTypes }) infers no operation types (the handler gets all); write @OnChange(collection<T>('name'), { operationTypes }) to infer them"
  >
>();
expectType<
  Equal<
    HandlerAccepts<
      (change: mongo.ChangeStreamInsertDocument<Order>) => void,
      ChangeOf<Order>,
      Hint
    >,
    { [K in `${Hint}. The handler's first parameter must accept`]: ChangeOf<Order> }
  >
>();
// No hint where nothing was given explicitly, or `Op` was.
expectType<Equal<ExplicitDocumentHint<any, ChangeOperationType>, never>>();
expectType<Equal<ExplicitDocumentHint<Order, 'insert'>, never>>();
// A required third parameter is named too (strict projects used to get a long assignability error).
expectType<
  Equal<
    HandlerAccepts<
      (change: ChangeOf<Order>, context: ChangeContext, extra: string) => void,
      ChangeOf<Order>
    >,
    { '@OnChange: the handler must not require more than two parameters': [extra: string] }
  >
>();

/** Handlers that fit: none of these may be an error. */
export class Accepted {
  @OnChange(Orders, { operationTypes: ['insert'] })
  onInsert(change: mongo.ChangeStreamInsertDocument<Order>, context: ChangeContext) {
    expectType<Equal<typeof change.fullDocument.total, number>>();
    void context.attempt;
  }

  // Inline token: the type is still given once.
  @OnChange(collection<Order>('orders'), { operationTypes: ['insert', 'update'] })
  onInsertOrUpdate(change: ChangeOf<Order, 'insert' | 'update'>) {}

  // No operationTypes: every change of Orders.
  @OnChange(Orders)
  onAny(change: mongo.ChangeStreamDocument<Order>) {}

  @OnChange(Orders, { operationTypes: ['delete'], fullDocumentBeforeChange: 'whenAvailable' })
  onDelete(change: mongo.ChangeStreamDocument<Order>) {}

  @OnChange(Customer, { operationTypes: ['insert'] })
  onCustomer(change: mongo.ChangeStreamInsertDocument<Customer>) {
    expectType<Equal<typeof change.fullDocument.name, string>>();
  }

  @OnChange(Customer)
  onAnyCustomer(change: ChangeOf<Customer>, context: ChangeContext) {}

  @OnChange(OrderModel, { operationTypes: ['replace'] })
  onModelReplace(change: mongo.ChangeStreamReplaceDocument<Order>) {}

  @OnChange(Orders, { operationTypes: ['insert'] })
  @OnChange(Invoices, { operationTypes: ['insert'] })
  onStacked(change: ChangeOf<Order | Invoice, 'insert'>) {}

  @OnChange(Orders, { operationTypes: ['insert'] })
  noParameters() {}

  // A redundant type argument that agrees with the token is fine.
  @OnChange<Order>(Orders)
  typeArgumentWithToken(change: ChangeOf<Order>) {}
}

/** Handlers that do not fit: each line after a directive must be an error. */
export class Rejected {
  // @ts-expect-error only inserts are declared, the handler takes only updates
  @OnChange(Orders, { operationTypes: ['insert'] })
  updateForInsert(change: mongo.ChangeStreamUpdateDocument<Order>) {}

  // @ts-expect-error inserts and updates are declared, the handler takes only inserts
  @OnChange(Orders, { operationTypes: ['insert', 'update'] })
  tooNarrow(change: mongo.ChangeStreamInsertDocument<Order>) {}

  // @ts-expect-error no operationTypes means every operation type
  @OnChange(Orders)
  insertForAll(change: mongo.ChangeStreamInsertDocument<Order>) {}

  // @ts-expect-error the documents are Orders, the handler takes Invoices (total: string)
  @OnChange(Orders, { operationTypes: ['insert'] })
  wrongDocument(change: mongo.ChangeStreamInsertDocument<Invoice>) {}

  // @ts-expect-error the schema class's documents are Customers
  @OnChange(Customer, { operationTypes: ['insert'] })
  wrongSchemaDocument(change: mongo.ChangeStreamInsertDocument<Invoice>) {}

  // @ts-expect-error the model's documents are Orders
  @OnChange(OrderModel)
  wrongModelDocument(change: mongo.ChangeStreamDocument<Invoice>) {}

  // @ts-expect-error the second parameter cannot take the context
  @OnChange(Orders)
  wrongContext(change: ChangeOf<Order>, context: number) {}

  // @ts-expect-error a required third parameter is never given
  @OnChange(Orders)
  thirdParameter(change: ChangeOf<Order>, context: ChangeContext, extra: string) {}

  @OnChange(Orders, { operationTypes: ['insert'] })
  // @ts-expect-error stacked: Invoices' inserts do not fit a handler of Orders
  @OnChange(Invoices, { operationTypes: ['insert'] })
  stackedWrong(change: ChangeOf<Order, 'insert'>) {}

  // @ts-expect-error the old short form still types the handler for every operation type (the error names the new form)
  @OnChange<Order>('orders', { operationTypes: ['insert'] })
  shortForm(change: mongo.ChangeStreamInsertDocument<Order>) {}

  // A type argument must agree with the token's.
  // @ts-expect-error Invoices' documents are not Orders
  @OnChange<Order>(Invoices)
  typeArgumentAgainstToken(change: ChangeOf<Order>) {}

  // @ts-expect-error a number is not a collection source
  @OnChange(42)
  notASource() {}

  // @ts-expect-error 'upsert' is not an operation type
  @OnChange(Orders, { operationTypes: ['insert', 'upsert'] })
  unknownType(change: ChangeOf<Order>) {}
}

/** The testing module's `emit` types the event from a token or a class. */
export async function emitTyped(tester: ChangeStreamTester) {
  const _outcome = await tester.emit(Orders, {
    operationType: 'insert',
    fullDocument: { _id: 'o1', total: 1 },
  });
  expectType<Equal<typeof _outcome.change, ChangeOf<Order>>>();
  await tester.emit(Customer, { operationType: 'insert', fullDocument: { name: 'ada' } });
  // @ts-expect-error Orders' total is a number
  await tester.emit(Orders, { operationType: 'insert', fullDocument: { _id: 'o2', total: 'one' } });
  // @ts-expect-error Customers have no total
  await tester.emitMany(Customer, [{ operationType: 'insert', fullDocument: { total: 1 } }]);
}
