import type { ChangeEvent } from '../common/change-event.js';
import type { ChangeHandler } from './change-handler.js';
import { type DatabasePattern, matchesDatabase } from './database-pattern.js';
import { HandlerRoutes } from './handler-routes.js';

/** One (database pattern, collection) of a deployment stream, and its handlers' routes. */
interface Part {
  pattern: DatabasePattern;
  collection: string;
  routes: HandlerRoutes;
}

type Namespaced = { ns?: { db?: unknown; coll?: unknown }; to?: { db?: unknown; coll?: unknown } };

/** Namespaces remembered (a deployment may hold many tenant databases): past it, the memo starts over. */
const MEMO_LIMIT = 10_000;

/**
 * Which handlers of a deployment stream want an event: those of the parts whose pattern matches
 * its `ns.db` and whose collection is its `ns.coll` (a rename into a watched collection: `to`'s);
 * a `dropDatabase` goes to every part of that database, an `invalidate` to every part. Within a
 * part, `HandlerRoutes` decides by operation type.
 */
export class DeploymentRoutes {
  private readonly parts: Part[];
  private readonly byNamespace = new Map<string, Part[]>();
  readonly batching: boolean;

  constructor(
    parts: ReadonlyArray<{
      database?: DatabasePattern;
      collection: string;
      handlers: ChangeHandler[];
    }>,
    withUserPipeline: (part: { collection: string; hasUserPipeline?: boolean }) => boolean,
  ) {
    this.parts = parts.map((p) => ({
      pattern: p.database!,
      collection: p.collection,
      routes: new HandlerRoutes(p.handlers, { hasUserPipeline: withUserPipeline(p) }),
    }));
    this.batching = parts.some((p) => p.handlers.some((h) => h.batch !== undefined));
  }

  interested(change: ChangeEvent): ChangeHandler[] {
    const parts = this.partsOf(change);
    if (parts.length === 1) return parts[0].routes.interested(change);
    return parts.flatMap((p) => p.routes.interested(change));
  }

  batchesFor(change: ChangeEvent): ChangeHandler[] {
    const parts = this.partsOf(change);
    if (parts.length === 1) return parts[0].routes.batchesFor(change);
    return parts.flatMap((p) => p.routes.batchesFor(change));
  }

  /** The event's database: `ns.db` (none for an `invalidate`). */
  static databaseOf(change: unknown): string | undefined {
    const db = (change as Namespaced).ns?.db;
    return typeof db === 'string' ? db : undefined;
  }

  private partsOf(change: ChangeEvent): Part[] {
    const { ns, to } = change as Namespaced;
    if (change.operationType === 'invalidate') return this.parts;
    if (typeof ns?.db !== 'string') return [];
    if (typeof ns.coll !== 'string')
      return change.operationType === 'dropDatabase' ? this.matching(ns.db, undefined) : [];
    const parts = this.matching(ns.db, ns.coll);
    if (parts.length > 0 || change.operationType !== 'rename') return parts;
    return typeof to?.db === 'string' && typeof to.coll === 'string'
      ? this.matching(to.db, to.coll)
      : [];
  }

  /** The parts of `db` (and of `coll`, when given), remembered per namespace. */
  private matching(db: string, coll: string | undefined): Part[] {
    const id = coll === undefined ? db : `${db}\u0000${coll}`;
    let parts = this.byNamespace.get(id);
    if (!parts) {
      parts = this.parts.filter(
        (p) => (coll === undefined || p.collection === coll) && matchesDatabase(p.pattern, db),
      );
      if (this.byNamespace.size >= MEMO_LIMIT) this.byNamespace.clear();
      this.byNamespace.set(id, parts);
    }
    return parts;
  }
}
