import { ChangeStreamConfigError } from '../change-stream.errors.js';
import { messages } from '../change-stream.messages.js';
import type { ChangeHandler } from './change-handler.js';
import { COLLECTION_LIFECYCLE } from '../common/change-event.js';
import { matchesOf, mergedPlan } from './merged-plan.js';
import {
  databaseCondition,
  type DatabasePattern,
  describeDatabasePattern,
} from './database-pattern.js';
import type { StreamPlan } from './stream-plan.js';
import { DEPLOYMENT_STREAM } from './stream-scope.js';

/** A backfill reads one collection of one database: a handler with a database pattern cannot have one. */
export function refuseTenantBackfill(handler: ChangeHandler): void {
  if (handler.database === undefined || !handler.options.backfill) return;
  throw new ChangeStreamConfigError(
    messages.tenantStreamBackfill(
      handler.batch ? '@OnChangeBatch' : '@OnChange',
      handler.collection,
      handler.database,
      [handler.name],
    ),
  );
}

/**
 * The plans of handlers with a database pattern (`plan.database`), whatever the `streams` mode:
 * one deployment stream per connection (`client.watch()`), its filter an `$or` of each pattern's
 * branch.
 */
export function deploymentPlans(tenantPlans: readonly StreamPlan[]): StreamPlan[] {
  const byConnection = new Map<string, StreamPlan[]>();
  for (const plan of tenantPlans)
    byConnection.set(plan.connectionName, [...(byConnection.get(plan.connectionName) ?? []), plan]);
  return [...byConnection.values()].map(deploymentPlan);
}

/** Parts in filter order: by pattern, then collection (the same handlers give the same filter). */
function partOrder(a: StreamPlan, b: StreamPlan): number {
  const [x, y] = [patternOf(a), patternOf(b)];
  if (x !== y) return x < y ? -1 : 1;
  return a.collection < b.collection ? -1 : a.collection > b.collection ? 1 : 0;
}

function patternOf(plan: StreamPlan): string {
  return describeDatabasePattern(plan.database!);
}

function deploymentPlan(unsorted: StreamPlan[]): StreamPlan {
  const parts = [...unsorted].sort(partOrder);
  return mergedPlan(parts, {
    collection: DEPLOYMENT_STREAM,
    scope: {
      kind: 'deployment',
      collections: [...new Set(parts.map((p) => p.collection))].sort(),
      databases: [...new Set(parts.map(patternOf))].sort(),
      parts,
    },
    match: deploymentFilter(parts),
    conflict: messages.deploymentStreamOptionConflict,
  });
}

/**
 * An `$or` of one branch per database pattern (sorted), then the deployment's `invalidate`. A
 * pattern's branch is the database stream's namespace filter (see `namespaceFilter`) with its
 * `ns.db` condition: its open collections in one `$in`, each restricted collection on its own,
 * the drop or rename of a watched collection, a rename into one, and the drop of a matching database.
 */
export function deploymentFilter(sortedParts: readonly StreamPlan[]): object {
  const byPattern = new Map<string, { pattern: DatabasePattern; parts: StreamPlan[] }>();
  for (const part of sortedParts) {
    const key = patternOf(part);
    const entry = byPattern.get(key) ?? { pattern: part.database!, parts: [] };
    entry.parts.push(part);
    byPattern.set(key, entry);
  }
  return {
    $or: [
      ...[...byPattern.values()].flatMap(({ pattern, parts }) => branch(pattern, parts)),
      { operationType: 'invalidate' },
    ],
  };
}

function branch(pattern: DatabasePattern, parts: StreamPlan[]): object[] {
  const db = databaseCondition(pattern);
  const collections = parts.map((p) => p.collection);
  const open = parts.filter((p) => matchesOf(p).length === 0).map((p) => p.collection);
  return [
    ...(open.length > 0 ? [{ 'ns.db': db, 'ns.coll': { $in: open } }] : []),
    ...parts
      .filter((p) => matchesOf(p).length > 0)
      .map((p) => ({ $and: [{ 'ns.db': db, 'ns.coll': p.collection }, ...matchesOf(p)] })),
    { operationType: { $in: COLLECTION_LIFECYCLE }, 'ns.db': db, 'ns.coll': { $in: collections } },
    { operationType: 'rename', 'to.db': db, 'to.coll': { $in: collections } },
    { operationType: 'dropDatabase', 'ns.db': db },
  ];
}
