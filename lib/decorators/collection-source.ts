import type { Model, mongo } from 'mongoose';
import type { SchemaClass } from '../common/stored-collection.js';

export { describeCollection, type SchemaClass } from '../common/stored-collection.js';

/**
 * A collection name that carries its document type, made by {@link collection}:
 * `@OnChange(Orders, { operationTypes: ['insert'] })` then types the handler for inserts of
 * `T`, with nothing written twice.
 */
export interface CollectionToken<T extends mongo.Document = any> {
  /** The MongoDB collection's name. */
  readonly collectionName: string;
  /** Never set: it only carries the document type `T` for the compiler. */
  readonly documentType?: T;
}

/** What `@OnChange` (and decorators built like it) accepts as the collection. */
export type CollectionSource<T extends mongo.Document = any> =
  string | CollectionToken<T> | SchemaClass<T> | Model<T>;

/**
 * The document type a collection source carries: `T` of `collection<T>()`, of a `Model<T>` or of
 * a `@Schema()` class; `any` for a plain name.
 */
export type DocumentOf<S> =
  S extends CollectionToken<infer T>
    ? mongo.Document extends T
      ? any
      : T
    : S extends Model<infer T, any, any, any, any, any>
      ? T
      : S extends SchemaClass<infer T>
        ? T
        : any;

/**
 * A typed collection name: `const Orders = collection<Order>('orders')`, then
 * `@OnChange(Orders, { operationTypes: ['insert', 'update'] })` infers the handler's change type
 * (`ChangeOf<Order, 'insert' | 'update'>`) from the options.
 */
export function collection<T extends mongo.Document>(name: string): CollectionToken<T> {
  return Object.freeze({ collectionName: name });
}

/**
 * What the decorator records: the name of a string or token, or the class or model to resolve at
 * startup. `undefined` for anything else (the decorator reports it).
 */
export function storedCollection(source: unknown): string | SchemaClass | undefined {
  if (typeof source === 'string') return source;
  if (typeof source === 'function') return source as SchemaClass;
  if (
    typeof source === 'object' &&
    source !== null &&
    typeof (source as CollectionToken).collectionName === 'string'
  )
    return (source as CollectionToken).collectionName;
  return undefined;
}
