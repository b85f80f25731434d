import type { ChangeEvent } from '../common/change-event.js';
import type { ChangeHandler } from './change-handler.js';
import { HandlerRoutes } from './handler-routes.js';

interface Targets {
  perEvent: ChangeHandler[];
  batches: ChangeHandler[];
}

const NONE: Targets = { perEvent: [], batches: [] };

type Namespaced = { ns?: { coll?: unknown }; to?: { coll?: unknown } };

/**
 * Which handlers of a database stream want an event: those of its collection (`ns.coll`, one map
 * lookup), as `HandlerRoutes` decides within it; a rename into a watched collection goes to that
 * collection's. Events of the database itself (`dropDatabase`, `invalidate`: no `ns.coll`) go to
 * every handler that asked for them.
 */
export class DatabaseRoutes {
  private readonly byCollection = new Map<string, HandlerRoutes>();
  private readonly ofDatabase = new Map<string, Targets>();
  /** The last event's collection and its routes: a busy collection's events come in runs. */
  private lastCollection: string | undefined;
  private lastRoutes: HandlerRoutes | null = null;
  readonly batching: boolean;

  constructor(handlers: ChangeHandler[], withUserPipeline: ReadonlySet<string>) {
    const groups = new Map<string, ChangeHandler[]>();
    for (const h of handlers) groups.set(h.collection, [...(groups.get(h.collection) ?? []), h]);
    for (const [collection, group] of groups)
      this.byCollection.set(
        collection,
        new HandlerRoutes(group, { hasUserPipeline: withUserPipeline.has(collection) }),
      );
    this.batching = handlers.some((h) => h.batch !== undefined);
  }

  interested(change: ChangeEvent): ChangeHandler[] {
    if (change.operationType === 'rename') return this.renameTargets(change).perEvent;
    const routes = this.routesOf(change);
    if (routes === null) return NONE.perEvent;
    return routes ? routes.interested(change) : this.databaseEvent(change).perEvent;
  }

  batchesFor(change: ChangeEvent): ChangeHandler[] {
    if (change.operationType === 'rename') return this.renameTargets(change).batches;
    const routes = this.routesOf(change);
    if (routes === null) return NONE.batches;
    return routes ? routes.batchesFor(change) : this.databaseEvent(change).batches;
  }

  /** The event's collection's routes; undefined for an event of the database, null for an unwatched collection. */
  private routesOf(change: ChangeEvent): HandlerRoutes | undefined | null {
    const collection = (change as Namespaced).ns?.coll;
    if (typeof collection !== 'string') return undefined;
    if (collection === this.lastCollection) return this.lastRoutes;
    const routes = this.byCollection.get(collection);
    if (!routes) {
      const to = (change as Namespaced).to?.coll;
      return typeof to === 'string' ? (this.byCollection.get(to) ?? null) : null;
    }
    this.lastCollection = collection;
    this.lastRoutes = routes;
    return routes;
  }

  /**
   * A rename concerns both collections: a collection stream of either one gets it (mongod matches
   * the target's stream on the oplog's `to`), so the handlers of both watched ones get it here.
   */
  private renameTargets(change: ChangeEvent): Targets {
    const { ns, to } = change as Namespaced;
    const both = new Set([ns?.coll, to?.coll]);
    const routes = [...both].flatMap((c) => {
      const found = typeof c === 'string' ? this.byCollection.get(c) : undefined;
      return found ? [found] : [];
    });
    return {
      perEvent: routes.flatMap((r) => r.interested(change)),
      batches: routes.flatMap((r) => r.batchesFor(change)),
    };
  }

  private databaseEvent(change: ChangeEvent): Targets {
    let targets = this.ofDatabase.get(change.operationType);
    if (!targets) {
      const all = [...this.byCollection.values()];
      targets = {
        perEvent: all.flatMap((r) => r.interested(change)),
        batches: all.flatMap((r) => r.batchesFor(change)),
      };
      this.ofDatabase.set(change.operationType, targets);
    }
    return targets;
  }
}
