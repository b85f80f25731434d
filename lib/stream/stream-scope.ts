import type { StreamPlan } from './stream-plan.js';

/** How a connection's handlers (without a database pattern) are grouped into streams: one per collection, or one per database. */
export type StreamMode = 'collection' | 'database';

/** The stream modes, as the `streams` option accepts them. */
export const STREAM_MODES: readonly StreamMode[] = ['collection', 'database'];

/**
 * The `plan.collection` of a deployment stream (handlers with a database pattern), and the
 * database part of its key `<prefix>:{<consumer>:$deployment:<connectionName>}`: no database is
 * named `$deployment` (MongoDB forbids `$`), so no other stream's key can be the same.
 */
export const DEPLOYMENT_STREAM = '$deployment';

/**
 * The `plan.collection` of a database stream, so its position key is
 * `<prefix>:{<consumer>:<db>:$database}`: no collection is named `$database` (MongoDB forbids `$`).
 */
export const DATABASE_STREAM = '$database';

/** What one stream watches: one collection, several collections of one database, or collections of the databases that match patterns. */
export type StreamScope =
  | { kind: 'collection' }
  | {
      kind: 'database';
      /** Sorted. */
      collections: readonly string[];
      /** Each collection's own plan (its handlers, operation types and pipeline), by name. */
      parts: ReadonlyMap<string, StreamPlan>;
    }
  | {
      kind: 'deployment';
      /** Sorted. */
      collections: readonly string[];
      /** The database patterns, as `describeDatabasePattern` shows them, sorted. */
      databases: readonly string[];
      /** Each (database pattern, collection)'s own plan, in filter order. */
      parts: readonly StreamPlan[];
    };

/** The collections a stream serves, sorted. */
export function collectionsOf(plan: Pick<StreamPlan, 'scope' | 'collection'>): readonly string[] {
  return plan.scope.kind === 'collection' ? [plan.collection] : plan.scope.collections;
}

/**
 * The stream serves `collection` (named by a user: a database stream serves each of its
 * collections; a deployment stream is named by its key only, its collections are in other databases).
 */
export function servesCollection(
  plan: Pick<StreamPlan, 'scope' | 'collection'>,
  collection: string,
): boolean {
  if (plan.scope.kind === 'deployment') return false;
  return plan.collection === collection || collectionsOf(plan).includes(collection);
}
