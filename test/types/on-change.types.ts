/*
 * Compile-time tests of @OnChange's handler typing. Nothing here runs: `tsc -p tsconfig.json`
 * (the first step of `npm test`) compiles this file, and every `// @ts-expect-error` below
 * must meet an error, or the build fails with "Unused '@ts-expect-error' directive". So a
 * regression in either direction (a bad handler accepted, a good one rejected) breaks the build.
 * `npx tsc -p test/types/tsconfig.loose.json` compiles it again without `strict`, as a
 * project with Nest's default tsconfig would, where parameters compare bivariantly.
 *
 * The directive goes on the line above the decorator: that is where TypeScript reports a
 * handler that does not fit.
 */
import { Injectable, SetMetadata, applyDecorators } from '@nestjs/common';
import type { mongo } from 'mongoose';
import {
  type ChangeContext,
  type ChangeOf,
  type ChangeOperationType,
  type OnChangeDecorator,
  type OnChangeHandler,
  OnChange,
} from '../../lib/index.js';
import type { HandlerAccepts } from '../../lib/decorators/on-change.decorator.js';

interface Order {
  _id: string;
  total: number;
}
interface Invoice {
  _id: string;
  total: string;
}

type Equal<A, B> =
  (<X>() => X extends A ? 1 : 2) extends <X>() => X extends B ? 1 : 2 ? true : false;
function expectType<T extends true>(): T | void {}

// ChangeOf picks the driver's event types.
expectType<Equal<ChangeOf<Order, 'insert'>, mongo.ChangeStreamInsertDocument<Order>>>();
expectType<
  Equal<
    ChangeOf<Order, 'insert' | 'delete'>,
    mongo.ChangeStreamInsertDocument<Order> | mongo.ChangeStreamDeleteDocument<Order>
  >
>();
expectType<Equal<ChangeOf<Order>, mongo.ChangeStreamDocument<Order>>>();
expectType<
  Equal<
    ChangeOf<Order, 'drop' | 'rename'>,
    mongo.ChangeStreamDropDocument | mongo.ChangeStreamRenameDocument
  >
>();
expectType<Equal<ChangeOf<Order, 'createIndexes'>, mongo.ChangeStreamCreateIndexDocument>>();
expectType<
  Equal<
    OnChangeHandler<Order, 'update'>,
    (change: mongo.ChangeStreamUpdateDocument<Order>, context: ChangeContext) => unknown
  >
>();

const ORDER_WRITES = ['insert', 'replace'] as const;
function someOperationTypes(): ChangeOperationType[] {
  return ['insert'];
}

// The check that holds without `strictFunctionTypes` (see also tsconfig.loose.json here).
type Insert = mongo.ChangeStreamInsertDocument;
expectType<Equal<HandlerAccepts<(change: Insert) => void, ChangeOf<any, 'insert'>>, unknown>>();
expectType<
  Equal<
    HandlerAccepts<
      (change: mongo.ChangeStreamDocument, context: ChangeContext) => void,
      ChangeOf<any, 'insert'>
    >,
    unknown
  >
>();
expectType<Equal<HandlerAccepts<() => void, ChangeOf<any, 'insert'>>, unknown>>();
expectType<Equal<HandlerAccepts<(change: any) => void, ChangeOf<any, 'insert'>>, unknown>>();
expectType<
  Equal<
    HandlerAccepts<(change: Insert) => void, ChangeOf<any, 'insert' | 'update'>>,
    { "@OnChange: the handler's first parameter must accept": ChangeOf<any, 'insert' | 'update'> }
  >
>();
expectType<
  Equal<
    HandlerAccepts<
      (change: Insert, context: ChangeContext & { extra: string }) => void,
      ChangeOf<any, 'insert'>
    >,
    { "@OnChange: the handler's second parameter must accept": ChangeContext }
  >
>();

/** Handlers that fit: none of these may be an error. */
export class Accepted {
  // Operation types inferred from `operationTypes`; the document type comes from the handler.
  @OnChange('orders', { operationTypes: ['insert'] })
  onInsert(change: mongo.ChangeStreamInsertDocument<Order>, context: ChangeContext): void {
    expectType<Equal<typeof change.fullDocument.total, number>>();
    void context.attempt;
  }

  @OnChange('orders', { operationTypes: ['insert', 'update'], fullDocument: 'updateLookup' })
  async onInsertOrUpdate(change: ChangeOf<Order, 'insert' | 'update'>): Promise<void> {
    if (change.operationType === 'insert')
      expectType<Equal<typeof change, mongo.ChangeStreamInsertDocument<Order>>>();
  }

  // A handler may accept more than it is given.
  @OnChange('orders', { operationTypes: ['delete'] })
  onDelete(change: mongo.ChangeStreamDocument<Order>) {
    return change.operationType;
  }

  @OnChange('orders')
  onAny(change: mongo.ChangeStreamDocument) {}

  @OnChange('orders')
  onAnything(change: unknown, context: unknown) {}

  @OnChange('orders')
  noParameters() {}

  @OnChange('orders', { operationTypes: ['insert'] })
  withOptionalThird(
    change: mongo.ChangeStreamInsertDocument,
    context?: ChangeContext,
    extra?: string,
  ) {}

  // Explicit document type, every operation type.
  @OnChange<Order>('orders')
  onOrder(change: mongo.ChangeStreamDocument<Order>, context: ChangeContext) {}

  // Explicit document type with `operationTypes` but no explicit `Op`: still every type (wider is safe).
  @OnChange<Order>('orders', { operationTypes: ['insert'] })
  onOrderInsertWide(change: ChangeOf<Order>) {}

  // Both explicit; `operationTypes` may be a subset of `Op`.
  @OnChange<Order, 'insert' | 'update'>('orders', { operationTypes: ['insert', 'update'] })
  onOrderInsertOrUpdate(change: ChangeOf<Order, 'insert' | 'update'>) {}

  @OnChange<Order, 'insert' | 'update'>('orders', { operationTypes: ['insert'] })
  onOrderInsertSubset(change: ChangeOf<Order, 'insert' | 'update'>) {}

  // A readonly (`as const`) list narrows too.
  @OnChange('orders', { operationTypes: ORDER_WRITES })
  onOrderWrite(change: ChangeOf<Order, (typeof ORDER_WRITES)[number]>) {}

  // A list typed as the whole union still works, for every type.
  @OnChange('orders', { operationTypes: someOperationTypes() })
  onSome(change: mongo.ChangeStreamDocument) {}

  // Sync, async, any return type.
  @OnChange('orders')
  returnsNumber(): number {
    return 1;
  }

  @OnChange('orders')
  async returnsPromise(change: mongo.ChangeStreamDocument<Order>): Promise<string> {
    return change.operationType;
  }

  // Stacked: the handler must fit every decorator on it.
  @OnChange('orders', { operationTypes: ['insert'] })
  @OnChange('invoices', { operationTypes: ['insert', 'delete'] })
  onStacked(change: ChangeOf<Order | Invoice, 'insert' | 'delete'>) {}

  // Static methods type-check the same way.
  @OnChange('orders', { operationTypes: ['insert'] })
  static onStatic(change: mongo.ChangeStreamInsertDocument) {}
}

/** A Nest provider as users write it (emitDecoratorMetadata, constructor injection). */
@Injectable()
export class OrdersListener {
  constructor(private readonly seen: Set<string>) {}

  @OnChange<Order, 'insert' | 'replace'>('orders', {
    operationTypes: ['insert', 'replace'],
    fullDocument: 'updateLookup',
  })
  async onOrder(
    change: ChangeOf<Order, 'insert' | 'replace'>,
    context: ChangeContext,
  ): Promise<void> {
    this.seen.add(`${context.collection}:${change.fullDocument._id}`);
  }
}

/** A decorator of one's own that keeps the check: return `OnChangeDecorator<T, Op>`. */
function OnOrderInsert(): OnChangeDecorator<Order, 'insert'> {
  const onChange = OnChange<Order, 'insert'>('orders', { operationTypes: ['insert'] });
  const tag = SetMetadata('audit', true);
  return (target, propertyKey, descriptor) => {
    tag(target, propertyKey, descriptor);
    return onChange(target, propertyKey, descriptor);
  };
}

// Nest's `applyDecorators` takes plain `MethodDecorator`s: a typed decorator must be cast
// there, which gives up the handler check for that use.
export const OnOrderChangeAudited = () =>
  applyDecorators(OnChange<Order>('orders') as MethodDecorator, SetMetadata('audit', true));

export class Composed {
  @OnOrderInsert()
  onInsert(change: mongo.ChangeStreamInsertDocument<Order>) {}

  @OnOrderChangeAudited()
  onChange(change: mongo.ChangeStreamDocument<Order>) {}

  // @ts-expect-error the own decorator still checks: Order inserts, the handler takes Invoice inserts
  @OnOrderInsert()
  wrongDocument(change: mongo.ChangeStreamInsertDocument<Invoice>) {}
}

/** Handlers that do not fit: each line after a directive must be an error. */
export class Rejected {
  // @ts-expect-error the first parameter cannot take a change event
  @OnChange('orders')
  wrongFirst(change: string) {}

  // @ts-expect-error only inserts are declared, the handler takes only updates
  @OnChange('orders', { operationTypes: ['insert'] })
  updateForInsert(change: mongo.ChangeStreamUpdateDocument) {}

  // @ts-expect-error inserts and updates are declared, the handler takes only inserts (parameters are contravariant)
  @OnChange('orders', { operationTypes: ['insert', 'update'] })
  tooNarrow(change: mongo.ChangeStreamInsertDocument) {}

  // @ts-expect-error no operationTypes means every operation type, the handler takes only inserts
  @OnChange('orders')
  insertForAll(change: mongo.ChangeStreamInsertDocument) {}

  // @ts-expect-error the second parameter cannot take the context
  @OnChange('orders')
  wrongContext(change: mongo.ChangeStreamDocument, context: number) {}

  // @ts-expect-error a required third parameter is never given
  @OnChange('orders')
  thirdParameter(change: mongo.ChangeStreamDocument, context: ChangeContext, extra: string) {}

  // @ts-expect-error the documents are Orders, the handler takes Invoices (total: string)
  @OnChange<Order>('orders')
  wrongDocument(change: mongo.ChangeStreamDocument<Invoice>) {}

  // @ts-expect-error explicit Order without Op means every operation type, the handler takes only inserts
  @OnChange<Order>('orders', { operationTypes: ['insert'] })
  explicitDocumentNarrowHandler(change: mongo.ChangeStreamInsertDocument<Order>) {}

  // @ts-expect-error inserts of Orders declared, the handler takes inserts of Invoices
  @OnChange<Order, 'insert'>('orders', { operationTypes: ['insert'] })
  wrongDocumentForInsert(change: mongo.ChangeStreamInsertDocument<Invoice>) {}

  // @ts-expect-error inserts and deletes of several collections, the handler takes only inserts
  @OnChange('invoices', { operationTypes: ['insert', 'delete'] })
  @OnChange('orders', { operationTypes: ['insert'] })
  stackedTooNarrow(change: mongo.ChangeStreamInsertDocument) {}

  // `operationTypes` must stay within the declared `Op` (error on the list).
  @OnChange<Order, 'insert'>('orders', {
    // @ts-expect-error 'delete' is not one of the declared operation types
    operationTypes: ['insert', 'delete'],
  })
  outsideOp(change: ChangeOf<Order, 'insert'>) {}

  // A narrowed `Op` needs `operationTypes`, or the handler would be typed for less than it gets.
  // @ts-expect-error `Op` given without `operationTypes`
  @OnChange<Order, 'insert'>('orders')
  opWithoutList(change: ChangeOf<Order, 'insert'>) {}

  // @ts-expect-error `Op` given without `operationTypes` (other options do not count)
  @OnChange<Order, 'insert'>('orders', { fullDocument: 'updateLookup' })
  opWithoutListWithOptions(change: ChangeOf<Order, 'insert'>) {}
}
