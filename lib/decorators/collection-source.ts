import type { Model, mongo } from 'mongoose';
import { ChangeStreamConfigError } from '../change-stream.errors.js';
import { messages } from '../change-stream.messages.js';
import type { SchemaClass } from '../common/stored-collection.js';
import { type DatabasePattern, databasePatternProblem } from '../stream/database-pattern.js';

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

/**
 * A collection in every database the pattern matches (a database per tenant):
 * `@OnChange({ collection: 'orders', database: /^tenant_/ })`. All such handlers of a connection
 * share one deployment-level change stream; see the README, "A database per tenant".
 */
export interface TenantCollection {
  /** The collection's name, in each matching database. */
  readonly collection: string;
  /** A database name, or a RegExp (flags among `i`, `m`, `s`) the server matches against each event's database. */
  readonly database: string | RegExp;
}

/** What `@OnChange` (and decorators built like it) accepts as the collection. */
export type CollectionSource<T extends mongo.Document = any> =
  string | CollectionToken<T> | SchemaClass<T> | Model<T> | TenantCollection;

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
  if (isTenantCollection(source)) return source.collection;
  if (typeof source === 'function') return source as SchemaClass;
  if (
    typeof source === 'object' &&
    source !== null &&
    typeof (source as CollectionToken).collectionName === 'string'
  )
    return (source as CollectionToken).collectionName;
  return undefined;
}

/** `source` is the object form `{ collection, database }`. */
export function isTenantCollection(source: unknown): source is TenantCollection {
  return (
    typeof source === 'object' &&
    source !== null &&
    typeof (source as TenantCollection).collection === 'string' &&
    'database' in source
  );
}

/** The database pattern of the object form (undefined for any other source), checked: throws a `ChangeStreamConfigError`. */
export function storedDatabase(source: unknown, where: string): DatabasePattern | undefined {
  if (!isTenantCollection(source)) return undefined;
  const problem = databasePatternProblem(source.database);
  if (problem)
    throw new ChangeStreamConfigError(
      messages.databasePatternInvalid(where, source.collection, source.database, problem),
    );
  return source.database;
}
