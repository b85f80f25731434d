import mongoose, { type Connection } from 'mongoose';
import type { SchemaClass } from './collection-source.js';

/** Where `@nestjs/mongoose` keeps `@Schema()` options: one store per process, on `globalThis`. */
interface SchemaMetadataStore {
  getSchemaMetadataByTarget(target: unknown): { options?: { collection?: unknown } } | undefined;
}

/** The collection name, or why there is none. */
export type ModelCollection = { name: string } | { reason: string };

/**
 * The collection Mongoose stores `source`'s documents in, on `connection` (none in the testing
 * module): a Mongoose model's own collection; else the model registered under the class's name
 * on the connection (`MongooseModule.forFeature([{ name: Order.name, … }])`, whose `collection`
 * option counts); else, for a `@Schema()` class, its `collection` option or the class name as
 * Mongoose would turn it into a collection name (`utils.toCollectionName` with the connection's
 * `pluralize()`).
 */
export function modelCollection(source: SchemaClass, connection?: Connection): ModelCollection {
  const own = ownCollectionName(source);
  if (own !== undefined) return { name: own };
  const className = source.name;
  const registered = className ? connection?.models[className] : undefined;
  if (registered) return { name: registered.collection.collectionName };
  const schema = schemaMetadata()?.getSchemaMetadataByTarget(source);
  if (!schema)
    return {
      reason: `it is not a @Schema() class, not a Mongoose model${connection ? `, and no model is registered as "${className}"` : ''}`,
    };
  const explicit = schema.options?.collection;
  if (typeof explicit === 'string' && explicit !== '') return { name: explicit };
  if (!className) return { reason: 'the class has no name and its @Schema() no collection option' };
  return { name: toCollectionName(className, (connection?.base ?? mongoose).pluralize()) };
}

/** Mongoose's `utils.toCollectionName` (not exported by Mongoose): its own exceptions, then `pluralize`. */
export function toCollectionName(
  modelName: string,
  pluralize: ((name: string) => string) | null,
): string {
  if (modelName === 'system.profile' || modelName === 'system.indexes') return modelName;
  return typeof pluralize === 'function' ? pluralize(modelName) : modelName;
}

/** A Mongoose model (a function with `modelName` and a collection) names its collection itself. */
function ownCollectionName(source: SchemaClass): string | undefined {
  const model = source as unknown as {
    modelName?: unknown;
    collection?: { collectionName?: unknown };
  };
  const name = model.collection?.collectionName;
  return typeof model.modelName === 'string' && typeof name === 'string' ? name : undefined;
}

function schemaMetadata(): SchemaMetadataStore | undefined {
  return (globalThis as { MongoTypeMetadataStorage?: SchemaMetadataStore })
    .MongoTypeMetadataStorage;
}
