import type { mongo } from 'mongoose';
import { ON_CHANGE_BATCH_METADATA } from '../change-stream.constants.js';
import type { ChangeContext } from '../interfaces/change-context.interface.js';
import type {
  BatchLimits,
  OnChangeBatchOptions,
} from '../interfaces/on-change-batch-options.interface.js';
import type {
  ChangeOperationType,
  OnChangeOptions,
} from '../interfaces/on-change-options.interface.js';
import { splitBatchOptions, validateBatchDeclaration } from '../options/batch-options.js';
import { validateDeclaration } from '../options/handler-options.js';
import {
  type CollectionSource,
  type CollectionToken,
  type DocumentOf,
  type SchemaClass,
  describeCollection,
  storedCollection,
  storedDatabase,
} from './collection-source.js';
import type { DatabasePattern } from '../stream/database-pattern.js';
import { describeTarget } from './decorator-target.js';
import type {
  AnyMethod,
  ChangeOf,
  ChangeOrBackfill,
  NoBackfill,
  ParametersAccept,
  WithBackfill,
} from './on-change.decorator.js';

/** What `@OnChangeBatch` records on a method; one entry per decorator on it. */
export interface OnChangeBatchMetadata {
  /** The collection's name, or the `@Schema()` class / Mongoose model it is resolved from at startup. */
  collection: string | SchemaClass;
  /** The object form's database pattern: the handler is on a deployment stream. */
  database?: DatabasePattern;
  options: OnChangeOptions;
  batch: BatchLimits;
}

/**
 * What an `@OnChangeBatch` method must accept: the changes of one batch, in stream order, and
 * the context (the decorator checks it with `BatchHandlerAccepts`).
 */
export type OnChangeBatchHandler<
  T extends mongo.Document = any,
  Op extends ChangeOperationType = ChangeOperationType,
> = (changes: Array<ChangeOf<T, Op>>, context: ChangeContext) => unknown;

/**
 * The method decorator `@OnChangeBatch` returns: the method must take an array of
 * `ChangeOf<T, Op>` (with `Backfill` true, of `ChangeOrBackfill<T, Op>`) and the context.
 */
export type OnChangeBatchDecorator<
  T extends mongo.Document = any,
  Op extends ChangeOperationType = ChangeOperationType,
  Backfill extends boolean = false,
> = <M extends AnyMethod>(
  target: object,
  propertyKey: string | symbol,
  descriptor: TypedPropertyDescriptor<M> &
    BatchHandlerAccepts<M, Backfill extends true ? ChangeOrBackfill<T, Op> : ChangeOf<T, Op>>,
) => TypedPropertyDescriptor<M> | void;

/**
 * `unknown` when method `M` takes an array of every change `C` and the context; otherwise a type
 * the descriptor lacks, whose key says what is wrong (checked also without `strictFunctionTypes`).
 */
export type BatchHandlerAccepts<M, C> = ParametersAccept<M, C[], ChangeContext, '@OnChangeBatch'>;

/** `OnChangeBatchOptions` with `operationTypes` declared, so they can narrow the element type. */
export type OnChangeBatchOptionsFor<Op extends ChangeOperationType> = Omit<
  OnChangeBatchOptions,
  'operationTypes'
> & {
  /** Only these operation types reach the handler, which is typed for them. */
  operationTypes: readonly Op[];
};

/**
 * Calls the decorated method with batches of the changes of `source`'s collection, as
 * `(changes: ChangeOf<T, Op>[], context: ChangeContext)`, in stream order and one batch at a
 * time. A batch is cut at `maxSize` events, after `maxWaitMs` without a new event, before an
 * event without a document (drop, rename, invalidate, DDL: it comes as a batch of one) and at
 * shutdown. When the method resolves, every event of the batch counts as handled. Takes every
 * `@OnChange` option (with `backfill`, the existing documents come as `BackfillEvent`s in the
 * batches); a failing batch is retried whole, then bisected so that only the failing events
 * meet `onFailure` (see docs/failure-policies.md).
 *
 * Typed as `@OnChange`: `source` gives the document type (a `collection<T>()` token, a
 * `@Schema()` class or a model), `operationTypes` the operation types:
 * `@OnChangeBatch(Orders, { maxSize: 500, maxWaitMs: 50, operationTypes: ['insert', 'update'] })`.
 */
export function OnChangeBatch<S extends CollectionSource, Op extends ChangeOperationType>(
  source: S,
  options: OnChangeBatchOptionsFor<Op> & NoBackfill,
): OnChangeBatchDecorator<DocumentOf<S>, Op>;
/** With `backfill` (and `operationTypes`): the elements are `ChangeOf<T, Op> | BackfillEvent<T>`. */
export function OnChangeBatch<S extends CollectionSource, Op extends ChangeOperationType>(
  source: S,
  options: OnChangeBatchOptionsFor<Op> & WithBackfill,
): OnChangeBatchDecorator<DocumentOf<S>, Op, true>;
/** Batches of every change of `source`'s collection (no `operationTypes`). */
export function OnChangeBatch<S extends CollectionSource>(
  source: S,
  options: OnChangeBatchOptions & NoBackfill,
): OnChangeBatchDecorator<DocumentOf<S>>;
/** With `backfill`: the elements are `ChangeStreamDocument<T> | BackfillEvent<T>`. */
export function OnChangeBatch<S extends CollectionSource>(
  source: S,
  options: OnChangeBatchOptions & WithBackfill,
): OnChangeBatchDecorator<DocumentOf<S>, ChangeOperationType, true>;
/**
 * The older typed form: `T` given for a plain name, with the operation types named too
 * (`@OnChangeBatch<Order, 'insert' | 'update'>('orders', { …, operationTypes: ['insert', 'update'] })`).
 */
export function OnChangeBatch<
  T extends mongo.Document = any,
  Op extends ChangeOperationType = ChangeOperationType,
>(
  collection: string,
  options: OnChangeBatchOptionsFor<Op> & NoBackfill,
): OnChangeBatchDecorator<T, Op>;
/** The older typed form with `backfill` and `operationTypes`. */
export function OnChangeBatch<
  T extends mongo.Document = any,
  Op extends ChangeOperationType = ChangeOperationType,
>(
  collection: string,
  options: OnChangeBatchOptionsFor<Op> & WithBackfill,
): OnChangeBatchDecorator<T, Op, true>;
/** The older typed form with `backfill`, every change. */
export function OnChangeBatch<T extends mongo.Document = any>(
  collection: string,
  options: OnChangeBatchOptions & WithBackfill,
): OnChangeBatchDecorator<T, ChangeOperationType, true>;
/** The older typed form: batches of every change of the collection. */
export function OnChangeBatch<T extends mongo.Document = any>(
  collection: string | CollectionToken<T> | SchemaClass<T>,
  options: OnChangeBatchOptions & NoBackfill,
): OnChangeBatchDecorator<T>;
export function OnChangeBatch(
  source: CollectionSource,
  options: OnChangeBatchOptions | OnChangeBatchOptionsFor<ChangeOperationType>,
): OnChangeBatchDecorator<any, ChangeOperationType, boolean> {
  const collection = storedCollection(source);
  return (
    target: object,
    propertyKey: string | symbol,
    descriptor: TypedPropertyDescriptor<any>,
  ) => {
    const where = `${describeTarget(target)}.${String(propertyKey)}`;
    const given = (options ?? {}) as OnChangeBatchOptions;
    const { limits, options: shared } = splitBatchOptions(given);
    if (collection !== undefined)
      validateBatchDeclaration(describeCollection(collection), where, given);
    validateDeclaration(collection, where, descriptor?.value, shared, source);
    const database = storedDatabase(source, where);
    const method = descriptor.value as object;
    const existing: OnChangeBatchMetadata[] =
      Reflect.getMetadata(ON_CHANGE_BATCH_METADATA, method) ?? [];
    Reflect.defineMetadata(
      ON_CHANGE_BATCH_METADATA,
      [
        ...existing,
        {
          collection: collection!,
          ...(database !== undefined && { database }),
          options: shared,
          batch: limits as BatchLimits,
        },
      ],
      method,
    );
    return descriptor;
  };
}
