import type { Logger } from '@nestjs/common';
import { messages } from '../change-stream.messages.js';
import type { KeyedPlan } from '../change-stream.planning.js';
import type { ChangeStreamRegistry } from '../change-stream.registry.js';
import type { ChangeStreamStatus } from '../interfaces/change-stream-status.interface.js';
import type { ChangeHandler } from '../stream/change-handler.js';
import type { StreamPlan } from '../stream/stream-plan.js';
import { collectionsOf, DEPLOYMENT_STREAM, handlerLabel } from '../stream/stream-scope.js';
import { describeDatabasePattern } from '../stream/database-pattern.js';
import { statusIdentity } from '../stream/stream-status.js';

// What `enabled: false` leaves out: handlers (left out of their stream's plan by `planStreams`) and
// whole streams (every handler disabled, or the module disabled). Status shows them as such.

const streamId = (h: { connectionName: string; collection: string }) =>
  JSON.stringify([h.connectionName, h.collection]);
/** A handler's stream: a tenant handler's (database pattern) is its connection's deployment stream. */
const handlerStreamId = (h: ChangeHandler) =>
  streamId(h.database === undefined ? h : { ...h, collection: DEPLOYMENT_STREAM });
/** The collections (or, for a deployment stream, the one id) a plan's disabled handlers are filed under. */
const planCollections = (p: Pick<StreamPlan, 'scope' | 'collection'>) =>
  p.scope.kind === 'deployment' ? [DEPLOYMENT_STREAM] : collectionsOf(p);

/** The disabled handlers of each planned stream, and a plan (for its key) per stream none of whose handlers is enabled. */
export function disabledParts(
  handlers: ChangeHandler[],
  plans: StreamPlan[],
): { byStream: Map<string, ChangeHandler[]>; idlePlans: StreamPlan[]; handlers: string[] } {
  const planned = new Set(
    plans.flatMap((p) => planCollections(p).map((collection) => streamId({ ...p, collection }))),
  );
  const byStream = new Map<string, ChangeHandler[]>();
  const idle = new Map<string, ChangeHandler[]>();
  const disabled = handlers.filter((h) => h.options.enabled === false);
  for (const handler of disabled) {
    const id = handlerStreamId(handler);
    byStream.set(id, [...(byStream.get(id) ?? []), handler]);
    if (!planned.has(id)) idle.set(id, [...(idle.get(id) ?? []), handler]);
  }
  const idlePlans = [...idle.values()].map((group): StreamPlan => ({
    connectionName: group[0].connectionName,
    ...idleScope(group),
    pipeline: [],
    hasUserPipeline: false,
    splitLargeEvents: false,
    handlers: group,
  }));
  return { byStream, idlePlans, handlers: disabled.map((h) => h.name) };
}

/** An idle stream's collection and scope: a deployment stream's for tenant handlers (for its key and status). */
function idleScope(group: ChangeHandler[]): Pick<StreamPlan, 'collection' | 'scope'> {
  if (group[0].database === undefined)
    return { collection: group[0].collection, scope: { kind: 'collection' } };
  return {
    collection: DEPLOYMENT_STREAM,
    scope: {
      kind: 'deployment',
      collections: [...new Set(group.map((h) => h.collection))].sort(),
      databases: [...new Set(group.map((h) => describeDatabasePattern(h.database!)))].sort(),
      parts: [],
    },
  };
}

/** The disabled handlers of `plan`'s stream, as its status names them (none: undefined). */
export function disabledOf(
  byStream: Map<string, ChangeHandler[]>,
  plan: Pick<StreamPlan, 'connectionName' | 'collection' | 'scope'>,
): string[] | undefined {
  // A database stream's: those of each of its collections.
  const names = planCollections(plan)
    .flatMap(
      (collection) =>
        byStream.get(streamId({ connectionName: plan.connectionName, collection })) ?? [],
    )
    .map((h) => handlerLabel(plan.scope.kind, h));
  return names.length > 0 ? names : undefined;
}

/** How status shows a stream this instance does not open. */
export function disabledStatus(
  { plan, database, key }: KeyedPlan,
  disabledHandlers: string[] | undefined,
): ChangeStreamStatus {
  return {
    ...statusIdentity(plan, database, key),
    state: 'disabled',
    role: null,
    instanceId: null,
    holder: null,
    fence: null,
    // Every handler declared on it (none runs here); `disabledHandlers` names those disabled themselves.
    handlers: [
      ...plan.handlers
        .filter((h) => h.options.enabled !== false)
        .map((h) => handlerLabel(plan.scope.kind, h)),
      ...(disabledHandlers ?? []),
    ],
    eventsHandled: 0,
    lastEventAt: null,
    lastCheckpointAt: null,
    lastInvalidatedAt: null,
    unsavedEvents: 0,
    lagMs: null,
    lastCheckpointAgeMs: null,
    inFlightEvents: 0,
    inFlightForMs: null,
    lastError: null,
    consecutiveFailures: 0,
    historyHeadroomMs: null,
    oplogWindowMs: null,
    historyHeadroomUnknown: null,
    backfill: null,
    ...(disabledHandlers ? { disabledHandlers } : {}),
  };
}

/**
 * Records what is disabled in the registry (status, health) and says so in one log line: the
 * module (`moduleEnabled` false: every keyed stream is disabled) or some handlers.
 */
export function recordDisabled(
  keyed: KeyedPlan[],
  openCount: number,
  moduleEnabled: boolean,
  parts: ReturnType<typeof disabledParts>,
  registry: Pick<ChangeStreamRegistry, 'disabled' | 'disabledHandlers'>,
  logger: Pick<Logger, 'log'>,
  handlerCount: number,
): void {
  const open = moduleEnabled ? keyed.slice(0, openCount) : [];
  const closed = keyed.slice(open.length);
  for (const k of open) {
    const names = disabledOf(parts.byStream, k.plan);
    if (names) registry.disabledHandlers.set(k.key, names);
  }
  for (const k of closed)
    registry.disabled.push(disabledStatus(k, disabledOf(parts.byStream, k.plan)));
  if (!moduleEnabled)
    logger.log(
      messages.moduleDisabled(
        handlerCount,
        keyed.slice(0, openCount).map((k) => k.key),
      ),
    );
  else if (parts.handlers.length > 0)
    logger.log(
      messages.handlersDisabled(
        parts.handlers,
        closed.map((k) => k.key),
      ),
    );
}
