import { messages } from '../change-stream.messages.js';
import type { StreamPlan } from './stream-plan.js';
import { DATABASE_STREAM, type StreamMode } from './stream-scope.js';
import { deploymentPlans } from './deployment-plan.js';
import { matchesOf, mergedPlan } from './merged-plan.js';
import { COLLECTION_LIFECYCLE } from '../common/change-event.js';

/**
 * In `'database'` mode a connection's collection plans become one database stream, except those
 * with a `backfill` handler: they keep their own collection stream (a chunk's document is matched
 * to the stream's events by `_id`, which is unique only within one collection).
 */
export function databasePlans(
  plans: StreamPlan[],
  modeOf: (connectionName: string) => StreamMode,
): StreamPlan[] {
  const kept: StreamPlan[] = [];
  const byConnection = new Map<string, StreamPlan[]>();
  const tenants = plans.filter((plan) => plan.database !== undefined);
  for (const plan of plans) {
    if (plan.database !== undefined) continue;
    if (modeOf(plan.connectionName) !== 'database' || plan.handlers.some((h) => h.options.backfill))
      kept.push(plan);
    else
      byConnection.set(plan.connectionName, [
        ...(byConnection.get(plan.connectionName) ?? []),
        plan,
      ]);
  }
  return [...kept, ...[...byConnection.values()].map(databasePlan), ...deploymentPlans(tenants)];
}

/** Events of the database itself: they carry no `ns.coll`. */
const DATABASE_LIFECYCLE = ['dropDatabase', 'invalidate'];

function databasePlan(unsorted: StreamPlan[]): StreamPlan {
  const parts = [...unsorted].sort((a, b) => (a.collection < b.collection ? -1 : 1));
  const collections = parts.map((p) => p.collection);
  return mergedPlan(parts, {
    collection: DATABASE_STREAM,
    scope: { kind: 'database', collections, parts: new Map(parts.map((p) => [p.collection, p])) },
    match: namespaceFilter(parts, collections),
    conflict: messages.databaseStreamOptionConflict,
  });
}

/**
 * Stable and sorted: the same handlers give the same filter. A collection whose handlers take
 * every event is one name in `$in`; one with operation types or a `pipeline` gets its own branch.
 * Lifecycle events always pass: a drop or rename of a watched collection (or a rename into one),
 * and the database's own events.
 */
export function namespaceFilter(parts: StreamPlan[], collections: readonly string[]): object {
  const open = parts.filter((p) => matchesOf(p).length === 0).map((p) => p.collection);
  const restricted = parts
    .filter((p) => matchesOf(p).length > 0)
    .map((p) => ({ $and: [{ 'ns.coll': p.collection }, ...matchesOf(p)] }));
  return {
    $or: [
      ...(open.length > 0 ? [{ 'ns.coll': { $in: open } }] : []),
      ...restricted,
      { operationType: { $in: COLLECTION_LIFECYCLE }, 'ns.coll': { $in: collections } },
      { operationType: 'rename', 'to.coll': { $in: collections } },
      { operationType: { $in: DATABASE_LIFECYCLE } },
    ],
  };
}
