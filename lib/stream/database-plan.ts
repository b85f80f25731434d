import { ChangeStreamConfigError } from '../change-stream.errors.js';
import { messages } from '../change-stream.messages.js';
import type { StreamPlan } from './stream-plan.js';
import { DATABASE_STREAM, type StreamMode } from './stream-scope.js';
import { deploymentPlans } from './deployment-plan.js';

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

/** The operation types that change or end a watched collection without being about one document. */
export const COLLECTION_LIFECYCLE = ['drop', 'rename'];
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

/** One stream for several collection plans (a database's, or a deployment's): what they share, merged. */
export function mergedPlan(
  parts: StreamPlan[],
  stream: {
    collection: string;
    scope: StreamPlan['scope'];
    match: object;
    conflict: Parameters<typeof agreeAcross>[2];
  },
): StreamPlan {
  const splitLargeEvents = parts.some((p) => p.splitLargeEvents);
  return {
    connectionName: parts[0].connectionName,
    collection: stream.collection,
    scope: stream.scope,
    pipeline: [
      { $match: stream.match },
      ...(splitLargeEvents ? [{ $changeStreamSplitLargeEvent: {} }] : []),
    ],
    hasUserPipeline: parts.some((p) => p.hasUserPipeline),
    concurrencyCap: parts.reduce<number | undefined>(
      (cap, p) =>
        p.concurrencyCap === undefined ? cap : Math.min(cap ?? Infinity, p.concurrencyCap),
      undefined,
    ),
    fullDocument: agreeAcross(parts, 'fullDocument', stream.conflict),
    fullDocumentBeforeChange: agreeAcross(parts, 'fullDocumentBeforeChange', stream.conflict),
    splitLargeEvents,
    handlers: parts.flatMap((p) => p.handlers),
  };
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

/** A collection plan's `$match` conditions (its pipeline is `$match` stages, then maybe the split stage). */
export function matchesOf(plan: StreamPlan): object[] {
  return plan.pipeline
    .filter((stage): stage is { $match: object } => '$match' in stage)
    .map((stage) => stage.$match);
}

/** One database (or deployment) stream has one `fullDocument` (and pre-image) setting: its collections' handlers must agree. */
export function agreeAcross<K extends 'fullDocument' | 'fullDocumentBeforeChange'>(
  parts: readonly StreamPlan[],
  option: K,
  conflict: typeof messages.databaseStreamOptionConflict,
): StreamPlan[K] {
  let chosen: { plan: StreamPlan; value: StreamPlan[K] } | undefined;
  for (const plan of parts) {
    const value = plan[option];
    if (value === undefined) continue;
    if (!chosen) chosen = { plan, value };
    else if (value !== chosen.value) {
      const setter = (p: StreamPlan, v: unknown) =>
        `${p.handlers.find((h) => h.options[option] === v)?.name} ('${p.collection}')`;
      throw new ChangeStreamConfigError(
        conflict(
          plan.connectionName,
          setter(chosen.plan, chosen.value),
          setter(plan, value),
          option,
          chosen.value,
          value,
        ),
      );
    }
  }
  // 'required' makes the server fail the whole stream on an event without its image: a collection
  // that did not ask for it (pre-images off, say) must not get it by sharing the stream.
  const unset = chosen?.value === 'required' && parts.find((p) => p[option] === undefined);
  if (chosen && unset)
    throw new ChangeStreamConfigError(
      messages.databaseStreamOptionConflict(
        chosen.plan.connectionName,
        setterOf(chosen.plan, option, chosen.value),
        `${unset.handlers.map((h) => h.name).join(', ')} ('${unset.collection}')`,
        option,
        chosen.value,
        undefined,
      ),
    );
  return chosen?.value;
}

function setterOf(plan: StreamPlan, option: string, value: unknown): string {
  const handler = plan.handlers.find(
    (h) => (h.options as Record<string, unknown>)[option] === value,
  );
  return `${handler?.name} ('${plan.collection}')`;
}
