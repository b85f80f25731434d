import type { mongo } from 'mongoose';
import { ON_CHANGE_METADATA } from '../change-stream.constants.js';
import type { BackfillEvent, BackfillOptions } from '../interfaces/backfill.interface.js';
import type { ChangeContext } from '../interfaces/change-context.interface.js';
import type {
  ChangeOperationType,
  OnChangeOptions,
} from '../interfaces/on-change-options.interface.js';
import { validateDeclaration } from '../options/handler-options.js';

/** What `@OnChange` records on a method; one entry per decorator on it. */
export interface OnChangeMetadata {
  collection: string;
  options: OnChangeOptions;
}

/**
 * The change event a handler of documents `T` receives when it accepts the operation
 * types `Op`: `ChangeOf<Order, 'insert'>` is `ChangeStreamInsertDocument<Order>`,
 * `ChangeOf<Order>` is `ChangeStreamDocument<Order>`.
 */
export type ChangeOf<
  T extends mongo.Document = any,
  Op extends ChangeOperationType = ChangeOperationType,
> = Extract<
  mongo.ChangeStreamDocument<T>,
  {
    /** The operation types the handler accepts. */
    operationType: Op;
  }
>;

/**
 * What an `@OnChange` method must accept. A function type on purpose (not a method
 * signature), so under `strictFunctionTypes` parameters are checked contravariantly: a
 * handler that only takes inserts cannot be declared for inserts and updates (`HandlerAccepts`
 * checks the same without that flag). Fewer parameters and any return type are fine.
 */
export type OnChangeHandler<
  T extends mongo.Document = any,
  Op extends ChangeOperationType = ChangeOperationType,
> = (change: ChangeOf<T, Op>, context: ChangeContext) => unknown;

/** The method decorator `@OnChange` returns: it accepts only methods that are `OnChangeHandler<T, Op>`. */
export type OnChangeDecorator<
  T extends mongo.Document = any,
  Op extends ChangeOperationType = ChangeOperationType,
> = <M extends OnChangeHandler<T, Op>>(
  target: object,
  propertyKey: string | symbol,
  descriptor: TypedPropertyDescriptor<M> & HandlerAccepts<M, ChangeOf<T, Op>>,
) => TypedPropertyDescriptor<M> | void;

/**
 * `unknown` when method `M` takes every change `C` and the context; otherwise a type the
 * method's descriptor lacks, whose key says what is wrong. The `M extends OnChangeHandler`
 * constraint already does this under `strictFunctionTypes`; without it (Nest's default
 * tsconfig has no `strict`) parameters compare bivariantly, and a handler that takes only
 * inserts would pass for inserts and updates. This check compares the types themselves.
 */
export type HandlerAccepts<M, C> = M extends (
  change: infer P,
  context: infer Q,
  ...rest: any[]
) => unknown
  ? [C] extends [P]
    ? [ChangeContext] extends [Q]
      ? unknown
      : {
          /** Reported when the method's second parameter does not accept `ChangeContext`. */
          "@OnChange: the handler's second parameter must accept": ChangeContext;
        }
    : {
        /** Reported when the method's first parameter does not accept every change `C`. */
        "@OnChange: the handler's first parameter must accept": C;
      }
  : unknown;

/** `OnChangeOptions` with `operationTypes` declared, so they can narrow the handler's change type. */
export type OnChangeOptionsFor<Op extends ChangeOperationType> = Omit<
  OnChangeOptions,
  'operationTypes'
> & {
  /** Only these operation types reach the handler, which is typed for them. */
  operationTypes: readonly Op[];
};

/** What a handler declared with `backfill` receives: its changes, and each existing document once. */
export type ChangeOrBackfill<
  T extends mongo.Document = any,
  Op extends ChangeOperationType = ChangeOperationType,
> = ChangeOf<T, Op> | BackfillEvent<T>;

/**
 * `@OnChange` with `backfill` set: the method must also accept `BackfillEvent<T>`.
 * @typeParam M - the decorated method's type
 */
export type OnChangeBackfillDecorator<
  T extends mongo.Document = any,
  Op extends ChangeOperationType = ChangeOperationType,
> = <M extends (change: ChangeOrBackfill<T, Op>, context: ChangeContext) => unknown>(
  target: object,
  propertyKey: string | symbol,
  descriptor: TypedPropertyDescriptor<M> & HandlerAccepts<M, ChangeOrBackfill<T, Op>>,
) => TypedPropertyDescriptor<M> | void;

/** `@OnChange` options that ask for a backfill: the handler also takes `BackfillEvent`s. */
export type WithBackfill = {
  /** `true` or the backfill's options. */
  backfill: true | BackfillOptions;
};
/** `@OnChange` options that do not ask for a backfill: the handler is typed for changes only. */
export type NoBackfill = {
  /** Unset or `false`. */
  backfill?: false;
};

/**
 * Calls the decorated method with every change of `collection`, as
 * `(change: ChangeOf<T, Op>, context: ChangeContext)`; it may be sync or async.
 * Stack several on one method to watch several collections.
 *
 * The method's parameters are type-checked. `T` (the document type) is yours to state;
 * without it the document is `any`. The operation types come from `operationTypes`:
 * `@OnChange('orders', { operationTypes: ['insert'] })` requires a handler that accepts
 * `ChangeStreamInsertDocument`. With `T` given, TypeScript cannot also infer them, so name
 * them: `@OnChange<Order, 'insert' | 'update'>('orders', { operationTypes: ['insert', 'update'] })`
 * (or leave them out and accept every `ChangeStreamDocument<Order>`).
 */
export function OnChange<
  T extends mongo.Document = any,
  Op extends ChangeOperationType = ChangeOperationType,
>(collection: string, options: OnChangeOptionsFor<Op> & NoBackfill): OnChangeDecorator<T, Op>;
/**
 * Calls the decorated method with every change of `collection` (no `operationTypes`: all
 * of them), as `(change: ChangeStreamDocument<T>, context: ChangeContext)`.
 */
export function OnChange<T extends mongo.Document = any>(
  collection: string,
  options?: OnChangeOptions & NoBackfill,
): OnChangeDecorator<T>;
/**
 * With `backfill` (and `operationTypes`): the method takes `ChangeOf<T, Op> | BackfillEvent<T>`.
 */
export function OnChange<
  T extends mongo.Document = any,
  Op extends ChangeOperationType = ChangeOperationType,
>(
  collection: string,
  options: OnChangeOptionsFor<Op> & WithBackfill,
): OnChangeBackfillDecorator<T, Op>;
/** With `backfill`: the method takes `ChangeStreamDocument<T> | BackfillEvent<T>`. */
export function OnChange<T extends mongo.Document = any>(
  collection: string,
  options: OnChangeOptions & WithBackfill,
): OnChangeBackfillDecorator<T>;
export function OnChange(
  collection: string,
  options: OnChangeOptions | OnChangeOptionsFor<ChangeOperationType> = {},
): OnChangeDecorator & OnChangeBackfillDecorator {
  return (
    target: object,
    propertyKey: string | symbol,
    descriptor: TypedPropertyDescriptor<any>,
  ) => {
    validateDeclaration(
      collection,
      `${describeTarget(target)}.${String(propertyKey)}`,
      descriptor?.value,
      options ?? {},
    );
    const method = descriptor.value as object;
    const existing: OnChangeMetadata[] = Reflect.getMetadata(ON_CHANGE_METADATA, method) ?? [];
    // Stored as given; the library only reads `operationTypes`, so a readonly array is fine.
    Reflect.defineMetadata(
      ON_CHANGE_METADATA,
      [...existing, { collection, options: options as OnChangeOptions }],
      method,
    );
    return descriptor;
  };
}

function describeTarget(target: object): string {
  return typeof target === 'function' ? target.name : target.constructor.name;
}
