import { ChangeStreamConfigError } from '../change-stream.errors.js';
import { messages } from '../change-stream.messages.js';
import type { MatchStage, OnChangeOptions } from '../interfaces/on-change-options.interface.js';
import { validateBatchLimits } from '../options/batch-options.js';
import { validateHandlerOptions } from '../options/handler-options.js';
import { LIFECYCLE_EVENTS } from '../common/change-event.js';
import type { ChangeHandler } from './change-handler.js';
import type { StreamScope } from './stream-scope.js';
import type { DatabasePattern } from './database-pattern.js';
import { describeDatabasePattern } from './database-pattern.js';
import { refuseTenantBackfill } from './deployment-plan.js';

/** Everything needed to open one stream: one per (connection, collection), or per (connection, database). */
export interface StreamPlan {
  connectionName: string;
  /** The watched collection; `$database` (`DATABASE_STREAM`) for a database stream, whose collections are in `scope`. */
  collection: string;
  scope: StreamScope;
  /** A tenant plan's database pattern (its handlers'): it becomes a part of the connection's deployment stream. */
  database?: DatabasePattern;
  /**
   * Server-side pipeline: the union of operation types (when all handlers restrict them), then
   * the shared `$match` stages; lifecycle events always pass both (see `LIFECYCLE_EVENTS`).
   */
  pipeline: object[];
  /** Handlers declared a `pipeline`. */
  hasUserPipeline: boolean;
  /** The lowest `concurrency` a handler asked for, if any (the module's value applies otherwise). */
  concurrencyCap?: number;
  fullDocument?: OnChangeOptions['fullDocument'];
  fullDocumentBeforeChange?: OnChangeOptions['fullDocumentBeforeChange'];
  /** A handler asked for `splitLargeEvents`: the pipeline ends with `$changeStreamSplitLargeEvent`. */
  splitLargeEvents: boolean;
  handlers: ChangeHandler[];
}

/**
 * Groups handlers into streams. Merge rule: operation types stay per handler (filtered
 * client-side too); `pipeline`, `fullDocument` and `fullDocumentBeforeChange` shape the
 * whole stream, so handlers that set them must agree, and a disagreement fails startup.
 * `checkpointMaxEvents` (the module's): no batch handler's `maxSize` may exceed it.
 */
export function planStreams(handlers: ChangeHandler[], checkpointMaxEvents?: number): StreamPlan[] {
  const groups = new Map<string, ChangeHandler[]>();
  for (const handler of handlers) {
    validateHandlerOptions(handler.collection, handler.name, handler.options);
    if (handler.batch)
      validateBatchLimits(handler.collection, handler.name, handler.batch, checkpointMaxEvents);
    // Validated all the same, but left out of the plan: the stream is what the others make it.
    refuseTenantBackfill(handler);
    if (handler.options.enabled === false) continue;
    const id = JSON.stringify([
      handler.connectionName,
      handler.collection,
      ...(handler.database === undefined ? [] : [describeDatabasePattern(handler.database)]),
    ]);
    groups.set(id, [...(groups.get(id) ?? []), handler]);
  }
  const plans = [...groups.values()].map(planOne);
  plans.forEach(checkBackfill);
  return plans;
}

/** Fresh documents on updates, or a dropped chunk document could leave a handler with an older state. */
// Not `whenAvailable`: an update without its post-image (null) would drop the chunk's copy for nothing.
const BACKFILL_FULL_DOCUMENT: readonly string[] = ['updateLookup', 'required'];
/** The events that carry a document's state: a backfill handler must get all of them (see `checkBackfill`). */
const DOCUMENT_EVENTS: readonly string[] = ['insert', 'update', 'replace', 'delete'];

function checkBackfill(plan: StreamPlan): void {
  const asking = plan.handlers.filter((h) => h.options.backfill);
  // A chunk's copy of a document is dropped for any change of it read inside the chunk's window:
  // the handler must get that change, or it gets neither.
  for (const handler of asking) {
    const types = handler.options.operationTypes as readonly string[] | undefined;
    const missing = types ? DOCUMENT_EVENTS.filter((t) => !types.includes(t)) : [];
    if (missing.length > 0)
      throw new ChangeStreamConfigError(
        messages.backfillNeedsDocumentEvents(plan.collection, handler.name, missing),
      );
  }
  if (asking.length === 0 || BACKFILL_FULL_DOCUMENT.includes(plan.fullDocument ?? 'default'))
    return;
  throw new ChangeStreamConfigError(
    messages.backfillNeedsFullDocument(
      plan.collection,
      asking.map((h) => h.name),
      plan.fullDocument ?? 'default',
    ),
  );
}

function planOne(handlers: ChangeHandler[]): StreamPlan {
  const [first] = handlers;
  const pipeline = agree(handlers, 'pipeline', (h) => h.options.pipeline ?? [], true) ?? [];
  const restrictsAll = handlers.every((h) => h.options.operationTypes !== undefined);
  const operationTypes = [
    ...new Set([...handlers.flatMap((h) => h.options.operationTypes ?? []), ...LIFECYCLE_EVENTS]),
  ];
  const splitLargeEvents = handlers.some((h) => h.options.splitLargeEvents === true);
  return {
    connectionName: first.connectionName,
    collection: first.collection,
    scope: { kind: 'collection' },
    ...(first.database !== undefined && { database: first.database }),
    pipeline: [
      ...(restrictsAll ? [{ $match: { operationType: { $in: operationTypes } } }] : []),
      ...userStages(pipeline),
      // The server requires it last.
      ...(splitLargeEvents ? [{ $changeStreamSplitLargeEvent: {} }] : []),
    ],
    hasUserPipeline: pipeline.length > 0,
    concurrencyCap: minimum(handlers.map((h) => h.options.concurrency)),
    fullDocument: agree(handlers, 'fullDocument', (h) => h.options.fullDocument, false),
    fullDocumentBeforeChange: agree(
      handlers,
      'fullDocumentBeforeChange',
      (h) => h.options.fullDocumentBeforeChange,
      false,
    ),
    splitLargeEvents,
    handlers,
  };
}

function minimum(values: Array<number | undefined>): number | undefined {
  const set = values.filter((v): v is number => v !== undefined);
  return set.length === 0 ? undefined : Math.min(...set);
}

/** The user's `$match` stages as one stage that lifecycle events always pass. */
function userStages(pipeline: MatchStage[]): object[] {
  if (pipeline.length === 0) return [];
  const match =
    pipeline.length === 1 ? pipeline[0].$match : { $and: pipeline.map((stage) => stage.$match) };
  return [{ $match: { $or: [match, { operationType: { $in: LIFECYCLE_EVENTS } }] } }];
}

/** The one value all handlers agree on; with `everyone` false, handlers that leave it unset do not count. */
function agree<T>(
  handlers: ChangeHandler[],
  option: string,
  read: (h: ChangeHandler) => T | undefined,
  everyone: boolean,
): T | undefined {
  let chosen: { handler: ChangeHandler; value: T } | undefined;
  for (const handler of handlers) {
    const value = read(handler);
    if (value === undefined && !everyone) continue;
    if (chosen === undefined) {
      chosen = { handler, value: value as T };
    } else if (JSON.stringify(value) !== JSON.stringify(chosen.value)) {
      throw new ChangeStreamConfigError(
        messages.streamOptionConflict(
          handler.collection,
          chosen.handler.name,
          handler.name,
          option,
          chosen.value,
          value,
        ),
      );
    }
  }
  return chosen?.value;
}
