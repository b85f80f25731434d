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
import type { ChangeOf } from './on-change.decorator.js';

/** What `@OnChangeBatch` records on a method; one entry per decorator on it. */
export interface OnChangeBatchMetadata {
  collection: string;
  options: OnChangeOptions;
  batch: BatchLimits;
}

/**
 * What an `@OnChangeBatch` method must accept: the changes of one batch, in stream order, and
 * the context. A function type, so parameters are checked contravariantly under `strictFunctionTypes`.
 */
export type OnChangeBatchHandler<
  T extends mongo.Document = any,
  Op extends ChangeOperationType = ChangeOperationType,
> = (changes: Array<ChangeOf<T, Op>>, context: ChangeContext) => unknown;

/** The method decorator `@OnChangeBatch` returns: it accepts only methods that are `OnChangeBatchHandler<T, Op>`. */
export type OnChangeBatchDecorator<
  T extends mongo.Document = any,
  Op extends ChangeOperationType = ChangeOperationType,
> = <M extends OnChangeBatchHandler<T, Op>>(
  target: object,
  propertyKey: string | symbol,
  descriptor: TypedPropertyDescriptor<M> & BatchHandlerAccepts<M, ChangeOf<T, Op>>,
) => TypedPropertyDescriptor<M> | void;

/**
 * `unknown` when method `M` takes an array of every change `C` and the context; otherwise a type
 * the descriptor lacks, whose key says what is wrong (checked also without `strictFunctionTypes`).
 */
export type BatchHandlerAccepts<M, C> = M extends (
  changes: infer P,
  context: infer Q,
  ...rest: any[]
) => unknown
  ? [C[]] extends [P]
    ? [ChangeContext] extends [Q]
      ? unknown
      : {
          /** Reported when the method's second parameter does not accept `ChangeContext`. */
          "@OnChangeBatch: the handler's second parameter must accept": ChangeContext;
        }
    : {
        /** Reported when the method's first parameter does not accept an array of every change `C`. */
        "@OnChangeBatch: the handler's first parameter must accept": C[];
      }
  : unknown;

/** `OnChangeBatchOptions` with `operationTypes` declared, so they can narrow the element type. */
export type OnChangeBatchOptionsFor<Op extends ChangeOperationType> = Omit<
  OnChangeBatchOptions,
  'operationTypes'
> & {
  /** Only these operation types reach the handler, which is typed for them. */
  operationTypes: readonly Op[];
};

/**
 * Calls the decorated method with batches of the changes of `collection`, as
 * `(changes: ChangeOf<T, Op>[], context: ChangeContext)`, in stream order and one batch at a
 * time. A batch is cut at `maxSize` events, after `maxWaitMs` without a new event, before an
 * event without a document (drop, rename, invalidate, DDL: it comes as a batch of one) and at
 * shutdown. When the method resolves, every event of the batch counts as handled. Takes every
 * `@OnChange` option; a failing batch is retried whole, then bisected so that only the failing
 * events meet `onFailure` (see docs/failure-policies.md).
 *
 * Typed as `@OnChange`: `@OnChangeBatch<Order, 'insert' | 'update'>('orders', { maxSize: 500,
 * maxWaitMs: 50, operationTypes: ['insert', 'update'] })`.
 */
export function OnChangeBatch<
  T extends mongo.Document = any,
  Op extends ChangeOperationType = ChangeOperationType,
>(collection: string, options: OnChangeBatchOptionsFor<Op>): OnChangeBatchDecorator<T, Op>;
/** Calls the decorated method with batches of every change of `collection` (no `operationTypes`). */
export function OnChangeBatch<T extends mongo.Document = any>(
  collection: string,
  options: OnChangeBatchOptions,
): OnChangeBatchDecorator<T>;
export function OnChangeBatch(
  collection: string,
  options: OnChangeBatchOptions | OnChangeBatchOptionsFor<ChangeOperationType>,
): OnChangeBatchDecorator {
  return (target, propertyKey, descriptor) => {
    const where = `${describeTarget(target)}.${String(propertyKey)}`;
    const given = (options ?? {}) as OnChangeBatchOptions;
    const { limits, options: shared } = splitBatchOptions(given);
    validateBatchDeclaration(collection, where, given);
    validateDeclaration(collection, where, descriptor?.value, shared);
    const method = descriptor.value as object;
    const existing: OnChangeBatchMetadata[] =
      Reflect.getMetadata(ON_CHANGE_BATCH_METADATA, method) ?? [];
    Reflect.defineMetadata(
      ON_CHANGE_BATCH_METADATA,
      [...existing, { collection, options: shared, batch: limits as BatchLimits }],
      method,
    );
    return descriptor;
  };
}

function describeTarget(target: object): string {
  return typeof target === 'function' ? target.name : target.constructor.name;
}
