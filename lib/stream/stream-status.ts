import { messages } from '../change-stream.messages.js';
import type {
  ChangeStreamStatus,
  StreamPause,
} from '../interfaces/change-stream-status.interface.js';
import type { CollectionStreamDeps } from './collection-stream-deps.js';
import type { LagTracker } from './lag-tracker.js';
import type { ReopeningReader } from './reopening-reader.js';
import type { StreamPlan } from './stream-plan.js';
import type { StreamState } from './stream-state.js';
import { collectionsOf, handlerLabel } from './stream-scope.js';

/** What a stream's status snapshot is read from. */
export interface StreamStatusSources {
  deps: Pick<
    CollectionStreamDeps,
    'key' | 'plan' | 'database' | 'checkpointer' | 'lease' | 'headroom' | 'backfill'
  >;
  state: StreamState;
  /** The events in flight now. */
  events: readonly { startedAt: number }[];
  eventsHandled: number;
  /** Epoch ms of the last handled event; 0 for none. */
  lastEventAt: number;
  lag: LagTracker;
  reader: ReopeningReader;
  /** The pause in force while the stream is paused. */
  paused: StreamPause | null;
}

const NOT_SAMPLED = {
  historyHeadroomMs: null,
  oplogWindowMs: null,
  historyHeadroomUnknown: messages.headroomNotSampled(),
};

/** What names a stream in status: its key, connection, database and what it watches. */
export function statusIdentity(
  plan: Pick<StreamPlan, 'connectionName' | 'collection' | 'scope'>,
  database: string,
  key: string,
): Pick<
  ChangeStreamStatus,
  'key' | 'connectionName' | 'database' | 'collection' | 'collections' | 'databases'
> {
  return {
    key,
    connectionName: plan.connectionName,
    database,
    collection: plan.collection,
    collections: [...collectionsOf(plan)],
    ...(plan.scope.kind === 'deployment' && { databases: [...plan.scope.databases] }),
  };
}

export function streamStatus(sources: StreamStatusSources): ChangeStreamStatus {
  const { deps, state, events, lag, reader } = sources;
  const { key, plan, database, checkpointer, lease } = deps;
  const holder = lease?.holder;
  return {
    ...statusIdentity(plan, database, key),
    state: state.current,
    role: lease ? (lease.current ? 'active' : 'standby') : null,
    instanceId: lease?.instanceId ?? null,
    holder: holder?.holder ?? null,
    fence: holder?.fence ?? null,
    handlers: plan.handlers.map((h) => handlerLabel(plan.scope.kind, h)),
    eventsHandled: sources.eventsHandled,
    lastEventAt: sources.lastEventAt === 0 ? null : new Date(sources.lastEventAt),
    lastCheckpointAt: checkpointer.lastSavedAt,
    unsavedEvents: checkpointer.unsavedCount,
    lagMs: state.baseState === 'open' ? lag.lagMs() : null,
    lastCheckpointAgeMs: checkpointer.lastSavedAt
      ? Date.now() - checkpointer.lastSavedAt.getTime()
      : null,
    inFlightEvents: events.length,
    inFlightForMs:
      events.length === 0 ? null : Date.now() - Math.min(...events.map((e) => e.startedAt)),
    lastInvalidatedAt: reader.lastInvalidatedAt,
    lastError: state.lastError,
    consecutiveFailures: reader.consecutiveFailures,
    ...(deps.headroom?.snapshot ?? NOT_SAMPLED),
    backfill: deps.backfill?.status() ?? null,
    ...(sources.paused ? { paused: sources.paused } : {}),
  };
}
