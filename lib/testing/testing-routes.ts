import type { mongo } from 'mongoose';
import { messages } from '../change-stream.messages.js';
import { quotedDatabase } from '../messages/database-name.js';
import { matchesDatabase } from '../stream/database-pattern.js';
import { servesCollection } from '../stream/stream-scope.js';
import type { ChangeOutcome } from './change-outcome.js';
import type { TestingStream } from './testing-streams.js';

type ChangeEvent = mongo.ChangeStreamDocument;

/** Where an emitted event comes from: the namespace it is completed for and reported under. */
export interface EmitTarget {
  readonly connectionName: string;
  readonly database: string;
  readonly collection: string;
}

type Namespaced = { ns?: { db?: unknown }; to?: { db?: unknown; coll?: unknown } };

/** Who named an emitted event's database: the emit (its options, or the object form's database), the event (`ns.db` of another database than the app's), or nobody (the app's). */
export type DatabaseNamer = 'emit' | 'event' | 'none';

/**
 * The database an emitted event is of, and the event for it. The database the emit names wins; an
 * event built for the app's database (`changeEvents`) is moved there (its `ns.db`, and a rename's
 * `to.db`), and an event built for a third database is refused. Without one, the event's own
 * `ns.db`, else the app's database.
 */
export function emittedDatabase<C>(
  change: C,
  named: string | undefined,
  own: string,
): { database: string; change: C; namedBy: DatabaseNamer } {
  const ns = (change as Namespaced | null)?.ns;
  const built = typeof ns?.db === 'string' ? ns.db : undefined;
  if (named === undefined) {
    const database = built ?? own;
    return { database, change, namedBy: database === own ? 'none' : 'event' };
  }
  if (built === undefined || built === named) return { database: named, change, namedBy: 'emit' };
  if (built !== own) {
    const type = String((change as { operationType?: unknown }).operationType);
    throw new Error(messages.emitDatabaseConflict(type, built, named, own));
  }
  const { to } = change as Namespaced;
  const moved = { ...change, ns: { ...ns, db: named } } as C & Namespaced;
  if (to?.db === own) moved.to = { ...to, db: named };
  return { database: named, change: moved, namedBy: 'emit' };
}

/**
 * The streams that read an event of `target` in production (`ownDatabase`: the connection's),
 * routed by the production routes; throws when none could (no handler watches that collection,
 * or that database).
 */
export function routeEvent(
  streams: readonly TestingStream[],
  target: EmitTarget,
  ownDatabase: string,
  change: ChangeEvent,
  namedBy: DatabaseNamer = 'emit',
): TestingStream[] {
  const candidates = candidateStreams(streams, target, ownDatabase, change);
  if (candidates.length > 0) {
    const reading = readingStreams(candidates, change);
    if (namedBy === 'none') refuseUnmatchedPatterns(reading, target, change);
    return reading;
  }
  const inOwnDatabase = streams.some(
    (s) =>
      s.plan.scope.kind !== 'deployment' &&
      candidateStreams([s], { ...target, database: ownDatabase }, ownDatabase, change).length > 0,
  );
  if (namedBy === 'event' && inOwnDatabase)
    throw new Error(
      `The "${change.operationType}" event emitted on ${target.database}.${target.collection} has ns.db ` +
        `"${target.database}", but that stream watches database "${ownDatabase}". Build it with ` +
        `changeEvents.forDatabase('${ownDatabase}'), or set the testing module's "database" option` +
        ' (a handler with a database pattern watches other databases).',
    );
  const watched = describeStreams(streams);
  throw new Error(
    `No @OnChange handler watches "${target.collection}" on connection "${target.connectionName}"` +
      `${target.database === ownDatabase ? '' : ` in database "${target.database}"`}. ` +
      (watched.length > 0
        ? `Watched: ${watched.join(', ')}.`
        : 'No handlers were found: are their providers in the testing module?'),
  );
}

/**
 * Throws when an event left in the app's database reaches only deployment streams whose patterns
 * for its collection do not match that database: the emit most likely forgot the tenant's database.
 */
function refuseUnmatchedPatterns(
  reading: readonly TestingStream[],
  target: EmitTarget,
  change: ChangeEvent,
): void {
  if (reading.some((s) => s.plan.scope.kind !== 'deployment')) return;
  const patterns = reading.flatMap(({ plan }) =>
    plan.scope.kind === 'deployment'
      ? plan.scope.parts.filter((p) => p.collection === target.collection).map((p) => p.database!)
      : [],
  );
  if (patterns.length === 0 || patterns.some((p) => matchesDatabase(p, target.database))) return;
  throw new Error(
    messages.emitOnlyPatternsWatch(
      change.operationType,
      target.database,
      target.collection,
      patterns,
      target.connectionName,
    ),
  );
}

/**
 * The streams of the connection that could read an event of `target` (before routing): a
 * collection or database stream of the connection's own database that serves the collection (or,
 * for a rename, its target), and the deployment stream when it watches that collection.
 */
export function candidateStreams(
  streams: readonly TestingStream[],
  target: EmitTarget,
  ownDatabase: string,
  change: unknown,
): TestingStream[] {
  const to = (change as Namespaced).to;
  const renamedInto =
    typeof to?.coll === 'string' && to.db === target.database ? to.coll : undefined;
  return streams.filter(({ plan }) => {
    if (plan.connectionName !== target.connectionName) return false;
    if (plan.scope.kind === 'deployment') {
      const { collections } = plan.scope;
      return (
        collections.includes(target.collection) ||
        (renamedInto !== undefined && collections.includes(renamedInto))
      );
    }
    if (target.database !== ownDatabase) return false;
    return (
      servesCollection(plan, target.collection) ||
      (renamedInto !== undefined && servesCollection(plan, renamedInto))
    );
  });
}

/**
 * The streams that read `change` in production, among its candidates: every collection or database
 * stream (their events reach them whatever the handlers want), and the deployment stream when its
 * routes (production's, through its dispatcher) give the event a handler. The server's filter keeps
 * other events off a deployment stream; when it is the only candidate, the event still goes to it,
 * so that the outcome shows that no handler ran.
 */
export function readingStreams(candidates: TestingStream[], change: ChangeEvent): TestingStream[] {
  const reading = candidates.filter(
    ({ plan, dispatcher }) =>
      plan.scope.kind !== 'deployment' ||
      dispatcher.hasPerEventHandlers(change) ||
      dispatcher.batchHandlersFor(change).length > 0,
  );
  return reading.length > 0 ? reading : candidates.slice(0, 1);
}

/** One outcome for `change`, which two streams may read (a tenant pattern that matches the app's own database). */
export function mergedOutcome<C>(change: C, outcomes: Array<ChangeOutcome<C>>): ChangeOutcome<C> {
  const [first] = outcomes;
  if (outcomes.length === 1 && first.change === change) return first;
  const failure = outcomes.find((o) => o.failure)?.failure;
  return {
    ...first,
    change,
    delivered: outcomes.some((o) => o.delivered),
    acknowledged: outcomes.every((o) => o.acknowledged),
    handlers: outcomes.flatMap((o) => o.handlers),
    deadLetters: outcomes.flatMap((o) => o.deadLetters),
    ...(failure && { failure }),
  };
}

/** `"orders" (connection "default")`, or `"orders" in databases /^tenant_/ (connection "default")`. */
export function describeStreams(streams: readonly TestingStream[]): string[] {
  return streams.flatMap(({ plan }) => {
    const on = `(connection "${plan.connectionName}")`;
    if (plan.scope.kind === 'deployment')
      return plan.scope.parts.map(
        (p) => `"${p.collection}" in databases ${quotedDatabase(p.database!, '"')} ${on}`,
      );
    return plan.scope.kind === 'database'
      ? plan.scope.collections.map((c) => `"${c}" ${on}`)
      : [`"${plan.collection}" ${on}`];
  });
}
