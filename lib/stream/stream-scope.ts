import type { ChangeHandler } from './change-handler.js';
import { describeDatabasePattern } from './database-pattern.js';
import type { StreamPlan } from './stream-plan.js';

// The modes and the names of multi-collection streams live in common/ (options and redis read them too).
export {
  DATABASE_STREAM,
  DEPLOYMENT_STREAM,
  STREAM_MODES,
  type StreamMode,
} from '../common/stream-names.js';

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

/** The Nest logger context of a stream's lines: what kind of stream it is. */
export function streamLoggerContext(scope: StreamScope): string {
  return LOGGER_CONTEXTS[scope.kind];
}

const LOGGER_CONTEXTS = {
  collection: 'CollectionStream',
  database: 'DatabaseStream',
  deployment: 'DeploymentStream',
} as const;

/**
 * How status names a stream's handler: `Class.method` on a collection stream; with its collection
 * on a database stream (`orders: Class.method`), and its database pattern on a deployment stream
 * (`/^tenant_/.orders: Class.method`), so one method declared for two collections is told apart.
 */
export function handlerLabel(
  kind: StreamScope['kind'],
  handler: Pick<ChangeHandler, 'name' | 'collection' | 'database'>,
): string {
  if (kind === 'collection') return handler.name;
  const where =
    kind === 'deployment' && handler.database !== undefined
      ? `${describeDatabasePattern(handler.database)}.${handler.collection}`
      : handler.collection;
  return `${where}: ${handler.name}`;
}
