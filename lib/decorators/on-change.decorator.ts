import type { mongo } from 'mongoose';
import { ON_CHANGE_METADATA } from '../change-stream.constants.js';
import type { BackfillEvent, BackfillOptions } from '../interfaces/backfill.interface.js';
import type { ChangeContext } from '../interfaces/change-context.interface.js';
import type {
  ChangeOperationType,
  OnChangeOptions,
} from '../interfaces/on-change-options.interface.js';
import { validateDeclaration } from '../options/handler-options.js';
import {
  type CollectionSource,
  type CollectionToken,
  type DocumentOf,
  type SchemaClass,
  storedCollection,
  storedDatabase,
} from './collection-source.js';
import type { DatabasePattern } from '../stream/database-pattern.js';
import { describeTarget } from './decorator-target.js';

/** What `@OnChange` records on a method; one entry per decorator on it. */
export interface OnChangeMetadata {
  /** The collection's name, or the `@Schema()` class / Mongoose model it is resolved from at startup. */
  collection: string | SchemaClass;
  /** The object form's database pattern: the handler is on a deployment stream. */
  database?: DatabasePattern;
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
 * What an `@OnChange` method must accept (the decorator checks it with `HandlerAccepts`, with
 * or without `strictFunctionTypes`). Fewer parameters and any return type are fine.
 */
export type OnChangeHandler<
  T extends mongo.Document = any,
  Op extends ChangeOperationType = ChangeOperationType,
> = (change: ChangeOf<T, Op>, context: ChangeContext) => unknown;

/**
 * The method decorator `@OnChange` returns: it accepts only methods that are `OnChangeHandler<T, Op>`.
 * `Hint` is added to the error about the first parameter (see `HandlerAccepts`).
 */
export type OnChangeDecorator<
  T extends mongo.Document = any,
  Op extends ChangeOperationType = ChangeOperationType,
  Hint extends string = never,
> = <M extends AnyMethod>(
  target: object,
  propertyKey: string | symbol,
  descriptor: TypedPropertyDescriptor<M> & HandlerAccepts<M, ChangeOf<T, Op>, Hint>,
) => TypedPropertyDescriptor<M> | void;

/** Any method; `HandlerAccepts` checks its parameters. */
export type AnyMethod = (...args: any[]) => unknown;

/**
 * `unknown` when method `M` takes every change `C` and the context, and needs no more
 * arguments; otherwise a type the method's descriptor lacks, whose key says what is wrong (so
 * the key is what TypeScript prints). It compares the parameter types themselves, so it holds
 * with and without `strictFunctionTypes` (Nest's default tsconfig has no `strict`, where
 * function parameters compare bivariantly). `Hint`, when given, replaces the decorator's name
 * before the first parameter's message (see `ExplicitDocumentHint`).
 */
export type HandlerAccepts<M, C, Hint extends string = never> = ParametersAccept<
  M,
  C,
  ChangeContext,
  '@OnChange',
  Hint
>;

/**
 * `HandlerAccepts` for any method decorator that calls `(item: C, context: X)`: `Decorator`
 * names it in the message (`'@OnChange'`). Exported for decorators built the same way.
 */
export type ParametersAccept<
  M,
  C,
  X,
  Decorator extends string,
  Hint extends string = never,
> = M extends (first: infer P, second: infer Q, ...rest: infer R) => unknown
  ? [C] extends [P]
    ? [X] extends [Q]
      ? [] extends R
        ? unknown
        : {
            [K in `${Decorator}: the handler must not require more than two parameters`]: R;
          }
      : {
          [K in `${Decorator}: the handler's second parameter must accept`]: X;
        }
    : {
        [
          K in [Hint] extends [never]
            ? `${Decorator}: the handler's first parameter must accept`
            : `${Hint}. The handler's first parameter must accept`
        ]: C;
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
> = <M extends AnyMethod>(
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
 * What the error names when a document type was given (`@OnChange<Order>('orders', { operationTypes })`):
 * TypeScript then infers no other type argument, so the operation types are all of them.
 */
export type ExplicitDocumentHint<T, Op extends ChangeOperationType> = 0 extends 1 & T
  ? never
  : [ChangeOperationType] extends [Op]
    ? "@OnChange<T>('name', { operationTypes }) infers no operation types (the handler gets all); write @OnChange(collection<T>('name'), { operationTypes }) to infer them"
    : never;

/**
 * Calls the decorated method with every change of `source`'s collection, as
 * `(change: ChangeOf<T, Op>, context: ChangeContext)`; it may be sync or async.
 * Stack several on one method to watch several collections.
 *
 * The method's parameters are type-checked. `source` gives the document type `T`: a
 * {@link collection} token (`collection<Order>('orders')`), a `@nestjs/mongoose` `@Schema()`
 * class or a Mongoose model (the collection is then resolved at startup, as Mongoose names the
 * model's collection); a plain name gives `any`. The operation types `Op` come from
 * `operationTypes`: `@OnChange(Orders, { operationTypes: ['insert'] })` requires a handler that
 * accepts `ChangeStreamInsertDocument<Order>`.
 */
export function OnChange<S extends CollectionSource, Op extends ChangeOperationType>(
  source: S,
  options: OnChangeOptionsFor<Op> & NoBackfill,
): OnChangeDecorator<DocumentOf<S>, Op>;
/** With `backfill` (and `operationTypes`): the method takes `ChangeOf<T, Op> | BackfillEvent<T>`. */
export function OnChange<S extends CollectionSource, Op extends ChangeOperationType>(
  source: S,
  options: OnChangeOptionsFor<Op> & WithBackfill,
): OnChangeBackfillDecorator<DocumentOf<S>, Op>;
/**
 * Calls the decorated method with every change of `source`'s collection (no `operationTypes`:
 * all of them), as `(change: ChangeStreamDocument<T>, context: ChangeContext)`, `T` being the
 * document type of the token, schema class or model (`any` for a plain name).
 */
export function OnChange<S extends CollectionSource>(
  source: S,
  options?: OnChangeOptions & NoBackfill,
): OnChangeDecorator<DocumentOf<S>>;
/** With `backfill`: the method takes `ChangeStreamDocument<T> | BackfillEvent<T>`. */
export function OnChange<S extends CollectionSource>(
  source: S,
  options: OnChangeOptions & WithBackfill,
): OnChangeBackfillDecorator<DocumentOf<S>>;
/**
 * The older typed form: `T` given for a plain name. TypeScript then infers no operation types:
 * name them (`@OnChange<Order, 'insert' | 'update'>('orders', { operationTypes: ['insert',
 * 'update'] })`), or give the type with the name: `@OnChange(collection<Order>('orders'),
 * { operationTypes: ['insert', 'update'] })`.
 */
export function OnChange<
  T extends mongo.Document = any,
  Op extends ChangeOperationType = ChangeOperationType,
>(
  collection: string,
  options: OnChangeOptionsFor<Op> & NoBackfill,
): OnChangeDecorator<T, Op, ExplicitDocumentHint<T, Op>>;
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
/**
 * The older typed form without `operationTypes`: every change of the collection, as
 * `(change: ChangeStreamDocument<T>, context: ChangeContext)`.
 */
export function OnChange<T extends mongo.Document = any>(
  collection: string | CollectionToken<T> | SchemaClass<T>,
  options?: OnChangeOptions & NoBackfill,
): OnChangeDecorator<T>;
export function OnChange(
  source: CollectionSource,
  options: OnChangeOptions | OnChangeOptionsFor<ChangeOperationType> = {},
): OnChangeDecorator & OnChangeBackfillDecorator {
  const collection = storedCollection(source);
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
      source,
    );
    const database = storedDatabase(source, `${describeTarget(target)}.${String(propertyKey)}`);
    const method = descriptor.value as object;
    const existing: OnChangeMetadata[] = Reflect.getMetadata(ON_CHANGE_METADATA, method) ?? [];
    // Stored as given; the library only reads `operationTypes`, so a readonly array is fine.
    Reflect.defineMetadata(
      ON_CHANGE_METADATA,
      [
        ...existing,
        {
          collection: collection!,
          ...(database !== undefined && { database }),
          options: options as OnChangeOptions,
        },
      ],
      method,
    );
    return descriptor;
  };
}
