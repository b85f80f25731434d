import type { StreamPlan } from './stream-plan.js';

/** How a connection's handlers are grouped into streams: one per collection, or one per database. */
export type StreamMode = 'collection' | 'database';

/** The stream modes, as the `streams` option accepts them. */
export const STREAM_MODES: readonly StreamMode[] = ['collection', 'database'];

/**
 * The `plan.collection` of a database stream, so its position key is
 * `<prefix>:{<consumer>:<db>:$database}`: no collection is named `$database` (MongoDB forbids `$`).
 */
export const DATABASE_STREAM = '$database';

/** What one stream watches: one collection, or several collections of one database. */
export type StreamScope =
  | { kind: 'collection' }
  | {
      kind: 'database';
      /** Sorted. */
      collections: readonly string[];
      /** Each collection's own plan (its handlers, operation types and pipeline), by name. */
      parts: ReadonlyMap<string, StreamPlan>;
    };

/** The collections a stream serves, sorted. */
export function collectionsOf(plan: Pick<StreamPlan, 'scope' | 'collection'>): readonly string[] {
  return plan.scope.kind === 'database' ? plan.scope.collections : [plan.collection];
}

/** The stream serves `collection` (named by a user: a database stream serves each of its collections). */
export function servesCollection(
  plan: Pick<StreamPlan, 'scope' | 'collection'>,
  collection: string,
): boolean {
  return plan.collection === collection || collectionsOf(plan).includes(collection);
}
