import { Logger } from '@nestjs/common';
import type { mongo } from 'mongoose';
import type { ChangeStreamEvent } from '../change-stream.events.js';
import { messages } from '../change-stream.messages.js';
import type { ResolvedChangeStreamOptions } from '../options/module-options.js';
import { Checkpointer } from '../checkpoint/checkpointer.js';
import type { ReplacedStreams } from '../checkpoint/replaced-position.js';
import type { DeadLetterStore } from '../interfaces/dead-letter.interface.js';
import type { HandlerFailurePolicy } from '../interfaces/failure-policies.interface.js';
import type { PositionStore } from '../interfaces/position-store.interface.js';
import type { LeaseBalancer, LeaseTiming } from '../lease/lease-balancer.js';
import { StreamHeadroom } from '../headroom/stream-headroom.js';
import { StreamLeaseKeeper } from '../lease/stream-lease-keeper.js';
import type { ChangeStreamTelemetry } from '../telemetry/change-stream-telemetry.js';
import type { ChunkReader } from '../backfill/chunk-reader.js';
import { StreamBackfill } from '../backfill/stream-backfill.js';
import type { CursorFactory } from './change-cursor.js';
import { ChangeDispatcher } from './change-dispatcher.js';
import type { ChangeHandler } from './change-handler.js';
import { CollectionStream } from './collection-stream.js';
import { letFellOffCollectionsGo } from './history-lost.js';
import { withAttemptBudget } from '../headroom/oplog-start-budget.js';
import { StreamState } from './stream-state.js';
import type { StreamPlan } from './stream-plan.js';
import { streamLoggerContext } from './stream-scope.js';

/** What one stream is built from: used by the orchestrator, the unit-spec harness and the bench. */
export interface CollectionStreamSetup {
  plan: StreamPlan;
  database: string;
  /** The stream's position key (see `positionKey`). */
  key: string;
  /** The streams that share its collections in the other shape: their records decide, with its own, where it starts (see `readStartPosition`). */
  replaces?: ReplacedStreams;
  /**
   * Reads the oplog's oldest entry of its connection (null: it cannot be read): a database stream
   * then lets a collection whose position fell off the oplog go (see `FellOffGuard`).
   */
  oldestOplogEntry?: () => Promise<mongo.Timestamp | null>;
  /** The position store (and, with leases on, the lease store behind `store.leases`). */
  store: PositionStore;
  deadLetters: DeadLetterStore;
  options: ResolvedChangeStreamOptions;
  openCursor: CursorFactory;
  /** Reads the collection for backfills (needed when a handler is declared with `backfill`). */
  chunks?: ChunkReader;
  emit: (event: ChangeStreamEvent) => void;
  /** Resolves once the providers the handlers depend on are bootstrapped. */
  handlersReady?: Promise<void>;
  /** With leases on: the balancer of this consumer's streams (the lease store is `store.leases`). */
  balancer?: LeaseBalancer;
  telemetry?: ChangeStreamTelemetry;
}

/** The one wiring of a stream: its state, its checkpointer (told about trouble and fencing), its lease. */
export function createCollectionStream(setup: CollectionStreamSetup): CollectionStream {
  const { plan, database, key, store, options, telemetry, balancer } = setup;
  const state = new StreamState(key, setup.emit);
  const lease =
    balancer && new StreamLeaseKeeper(key, store.leases!, options.leases as LeaseTiming, balancer);
  const labels = { consumer: options.consumer, database, collection: plan.collection };
  const logger = new Logger(streamLoggerContext(plan.scope));
  const checkpointer = new Checkpointer({
    store,
    key,
    replaces: setup.replaces,
    ...(setup.oldestOplogEntry &&
      plan.scope.kind === 'database' && {
        fellOff: {
          oldestOplogEntry: withAttemptBudget(setup.oldestOplogEntry, (attempts, error) =>
            logger.error(messages.oplogStartGivenUp(key, attempts, error)),
          ),
          letGo: (fellOff, oplogOldest, startsAt) =>
            letFellOffCollectionsGo(fellOff, oplogOldest, startsAt, {
              key,
              plan,
              database,
              options,
              emit: setup.emit,
            }),
        },
      }),
    settings: options.checkpoint,
    logger,
    onSaveTrouble: (reason) =>
      state.degrade('store', reason === null ? null : messages.cannotSave(reason)),
    onFenced: (error) => {
      logger.warn(messages.writeRefused(key, error.message));
      lease?.lose(error.message);
    },
    ...(telemetry && { onWrite: (outcome, ms) => telemetry.positionWritten(labels, outcome, ms) }),
  });
  const dispatcher = createDispatcher({
    ...setup,
    onDeadLetter: (id, handler) => setup.emit({ type: 'dead-lettered', key, id, handler }),
  });
  const holding = () => !lease || lease.current !== null;
  const { historyHeadroom } = options;
  const headroom = new StreamHeadroom(
    {
      key,
      warnMs: historyHeadroom === false ? 0 : historyHeadroom.warnMs,
      holding,
      // What a restart would resume from: the position last stored (a standby: the holder's).
      position: async () => (holding() && checkpointer.savedPosition) || store.load(key),
      degrade: (reason) => state.degrade('headroom', reason),
      logger,
    },
    historyHeadroom === false ? messages.headroomOff() : undefined,
  );
  const backfill =
    setup.chunks && plan.handlers.some((h) => h.options.backfill)
      ? new StreamBackfill({
          key,
          ns: { db: database, coll: plan.collection },
          handlers: plan.handlers,
          reader: setup.chunks,
          requestSave: () => checkpointer.requestSave(),
          ...(telemetry && { onDone: (n: number) => telemetry.backfilled(labels, n) }),
        })
      : undefined;
  if (backfill) checkpointer.backfill.at = (seq) => backfill.recordAt(seq);
  return new CollectionStream({
    ...setup,
    state,
    checkpointer,
    lease,
    dispatcher,
    headroom,
    backfill,
  });
}

/** What a stream's dispatcher is built from: the stream's setup, with the handlers and failure policy it calls. */
export interface DispatcherSetup {
  plan: StreamPlan;
  database: string;
  key: string;
  options: Pick<ResolvedChangeStreamOptions, 'consumer' | 'handlerRetry' | 'onHandlerFailure'>;
  deadLetters: DeadLetterStore;
  /** Default: the plan's handlers (the testing module passes recording wrappers). */
  handlers?: ChangeHandler[];
  /** Default: `options.onHandlerFailure`. */
  onFailure?: HandlerFailurePolicy;
  onDeadLetter?: (id: string, handler: string) => void;
  telemetry?: ChangeStreamTelemetry;
}

/** A stream's dispatcher, as production builds it: used by `createCollectionStream` and the testing module. */
export function createDispatcher(setup: DispatcherSetup): ChangeDispatcher {
  const { plan, database, key, options } = setup;
  return new ChangeDispatcher(
    setup.handlers ?? plan.handlers,
    {
      ...options.handlerRetry,
      onFailure: setup.onFailure ?? options.onHandlerFailure,
      deadLetters: setup.deadLetters,
      hasUserPipeline: plan.hasUserPipeline,
      ...(plan.scope.kind === 'deployment' && { routeByNamespace: { parts: plan.scope.parts } }),
      ...(plan.scope.kind === 'database' && {
        routeByCollection: {
          withUserPipeline: new Set(
            [...plan.scope.parts.values()]
              .filter((p) => p.hasUserPipeline)
              .map((p) => p.collection),
          ),
        },
      }),
      ...(setup.onDeadLetter && { onDeadLetter: setup.onDeadLetter }),
      ...(setup.telemetry && { telemetry: setup.telemetry }),
    },
    {
      consumer: options.consumer,
      connectionName: plan.connectionName,
      database,
      collection: plan.collection,
    },
    key,
  );
}
