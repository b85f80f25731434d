import {
  Inject,
  Injectable,
  Logger,
  type OnModuleDestroy,
  type OnModuleInit,
} from '@nestjs/common';
import type { mongo } from 'mongoose';
import type { HandlerFailedError } from '../change-stream.errors.js';
import { ChangeStreamExplorer } from '../change-stream.explorer.js';
import { modelCollectionResolver } from '../change-stream.planning.js';
import { InMemoryDeadLetterStore } from '../memory/in-memory-dead-letter.store.js';
import type {
  ChangeDispatcher,
  DispatchOutcome,
  EventInFlight,
} from '../stream/change-dispatcher.js';
import type { ChangeHandler } from '../stream/change-handler.js';
import type { StreamPlan } from '../stream/stream-plan.js';
import type { ChangeOutcome, HandlerRun } from './change-outcome.js';
import { ConcurrentDelivery } from './concurrent-delivery.js';
import { type EventRuns, HandlerRuns, summarize } from './handler-runs.js';
import { dispatchWithBatches } from './testing-batches.js';
import { CHANGE_STREAM_TESTING_OPTIONS, type ResolvedTestingOptions } from './testing-options.js';
import {
  type DatabaseNamer,
  describeStreams,
  type EmitTarget,
  routeEvent,
} from './testing-routes.js';
import { plannedStreams } from './testing-plans.js';

type ChangeEvent = mongo.ChangeStreamDocument;

/**
 * One stream as production would open it (per collection, per database with `streams: 'database'`,
 * or the deployment stream of tenant patterns), minus the cursor and the checkpointer.
 */
export interface TestingStream {
  readonly plan: StreamPlan;
  /** The stream's database (`$deployment` for a deployment stream, whose events name theirs). */
  readonly database: string;
  readonly key: string;
  readonly dispatcher: ChangeDispatcher;
  /** Shared by the stream's handler calls, as in production (`context.signal`); aborted when the module closes. */
  readonly abort: AbortController;
  /** The stream's cap, as production computes it: the module's `concurrency`, lowered by a handler's. */
  readonly concurrency: number;
  /**
   * With `concurrency` 1 (production's default) or batch handlers, events are dispatched one at a
   * time, in emission order (for the whole stream, also a database stream): this is the last one's run.
   */
  tail: Promise<unknown>;
  /** With `concurrency` above 1: production's scheduler, for this run of the stream (until a `restart()`). */
  concurrent?: ConcurrentDelivery;
  /** Set when a handler failed for good under `'stop'`: nothing more is delivered until `restart()`. */
  failure: HandlerFailedError | null;
}

/**
 * Internal: discovers `@OnChange` handlers with the production explorer, plans their streams with
 * the production planner (same validation, same messages) and dispatches each emitted event
 * through the production `ChangeDispatcher` (routing, retries with backoff, failure policies,
 * dead letters). Handlers, failure callbacks and the dead-letter store are wrapped only to record
 * what happened to each event.
 */
@Injectable()
export class TestingStreams implements OnModuleInit, OnModuleDestroy {
  /** Dead letters as the application would read them back (EJSON round trip, like Redis). */
  readonly deadLetterStore = new InMemoryDeadLetterStore();
  private streams: TestingStream[] | undefined;
  private readonly runs = new HandlerRuns();
  private readonly closing = new AbortController();
  private readonly logger = new Logger('ChangeStreamTestingModule');

  constructor(
    private readonly explorer: ChangeStreamExplorer,
    @Inject(CHANGE_STREAM_TESTING_OPTIONS) readonly options: ResolvedTestingOptions,
  ) {}

  /** Discovery at `init()` (if the test calls it), so a bad `@OnChange` fails it as it fails `app.init()` in production. */
  onModuleInit(): void {
    this.all();
  }

  /** From now on a failure is not retried or recorded, as at a production shutdown; calls still running see `context.signal` aborted. */
  onModuleDestroy(): void {
    this.closing.abort();
    this.streams?.forEach((stream) => {
      stream.abort.abort();
      stream.concurrent?.abortInFlight();
    });
  }

  /** Every stream; discovered on first use, so tests that never call `init()` work too. */
  all(): TestingStream[] {
    this.streams ??= this.discover();
    return this.streams;
  }

  /** The database of the connection's own streams (the `database` option). */
  databaseOf(connectionName: string): string {
    return this.options.databaseOf(connectionName);
  }

  /**
   * The streams that read an event of `target` in production, routed by the production routes;
   * throws when none could (no handler watches that collection, or that database), or when only
   * database patterns that do not match watch an event whose database nobody named (`namedBy`).
   */
  route(target: EmitTarget, change: ChangeEvent, namedBy?: DatabaseNamer): TestingStream[] {
    const own = this.databaseOf(target.connectionName);
    return routeEvent(this.all(), target, own, change, namedBy);
  }

  /** The stream of `collection` in the connection's own database that backfills run on (never a deployment stream). */
  find(collection: string, connectionName: string): TestingStream {
    const target = { connectionName, database: this.databaseOf(connectionName), collection };
    const found = this.route(target, { operationType: 'insert' } as ChangeEvent).find(
      (s) => s.plan.scope.kind !== 'deployment',
    );
    if (found) return found;
    throw new Error(
      `No @OnChange handler watches "${collection}" in database "${target.database}" on connection "${connectionName}". ` +
        `Watched: ${describeStreams(this.all()).join(', ')}.`,
    );
  }

  /** The original (unrecorded) handler, for dead-letter replays. */
  handlerOf(streamKey: string, name: string): ChangeHandler | undefined {
    return this.all()
      .find((s) => s.key === streamKey)
      ?.plan.handlers.find((h) => h.name === name);
  }

  /** Queues `change` behind the stream's earlier events; resolves once its handlers are done. */
  deliver<C extends ChangeEvent>(
    stream: TestingStream,
    change: C,
    target: EmitTarget,
  ): Promise<ChangeOutcome<C>> {
    if (stream.dispatcher.batching)
      return this.deliverMany(stream, [change], [target]).then(([o]) => o);
    if (this.closing.signal.aborted)
      return Promise.reject(new Error('The testing module is closed: nothing more is delivered.'));
    if (stream.concurrency > 1) return this.dispatchConcurrently(stream, change, target);
    const run = stream.tail.then(() => this.dispatch(stream, change, target));
    stream.tail = run.catch(() => undefined);
    return run;
  }

  /**
   * Queues `changes` behind the stream's earlier events, in order. With `@OnChangeBatch` handlers
   * they are one run of the stream: batch handlers get them in batches (see `dispatchWithBatches`).
   */
  deliverMany<C extends ChangeEvent>(
    stream: TestingStream,
    changes: C[],
    targets: EmitTarget[],
  ): Promise<Array<ChangeOutcome<C>>> {
    if (!stream.dispatcher.batching)
      return Promise.all(changes.map((change, i) => this.deliver(stream, change, targets[i])));
    if (this.closing.signal.aborted)
      return Promise.reject(new Error('The testing module is closed: nothing more is delivered.'));
    const run = stream.tail.then(() => this.dispatchBatched(stream, changes, targets));
    stream.tail = run.catch(() => undefined);
    return run;
  }

  private async dispatchBatched<C extends ChangeEvent>(
    stream: TestingStream,
    changes: C[],
    targets: EmitTarget[],
  ): Promise<Array<ChangeOutcome<C>>> {
    if (stream.failure) return changes.map((change, i) => this.notDelivered(change, targets[i]));
    const runs = changes.map((change) => this.runs.begin(change));
    try {
      const outcomes = await dispatchWithBatches(stream, changes, {
        stopping: this.closing.signal,
        fence: this.options.fence,
      });
      let stopped = false;
      return changes.map((change, i) => {
        const outcome = outcomes[i];
        const failure = !outcome.ok && 'error' in outcome ? outcome.error : undefined;
        if (failure && !stream.failure) stream.failure = failure;
        // After the first failure for good, production acknowledges nothing more.
        const result = this.outcomeOf(
          stream,
          targets[i],
          change,
          runs[i],
          stopped ? { ok: false, aborted: true } : outcome,
        );
        stopped ||= failure !== undefined;
        return result;
      });
    } finally {
      changes.forEach((change) => this.runs.end(change));
    }
  }

  /** Through production's scheduler (see `ConcurrentDelivery`). */
  private async dispatchConcurrently<C extends ChangeEvent>(
    stream: TestingStream,
    change: C,
    target: EmitTarget,
  ): Promise<ChangeOutcome<C>> {
    if (stream.failure) return this.notDelivered(change, target);
    stream.concurrent ??= new ConcurrentDelivery({
      plan: stream.plan,
      dispatcher: stream.dispatcher,
      concurrency: stream.concurrency,
      stopping: this.closing.signal,
      fence: this.options.fence,
      onFailed: (error) => (stream.failure ??= error),
    });
    const runs = this.runs.begin(change);
    try {
      const outcome = await stream.concurrent.deliver(change);
      // Queued behind the event that stopped the stream: production never handed it to a handler.
      if (!outcome.ok && 'aborted' in outcome && runs.size === 0 && stream.failure)
        return this.notDelivered(change, target);
      return this.outcomeOf(stream, target, change, runs, outcome);
    } finally {
      this.runs.end(change);
    }
  }

  private notDelivered<C extends ChangeEvent>(change: C, target: EmitTarget): ChangeOutcome<C> {
    return {
      change,
      ...target,
      delivered: false,
      acknowledged: false,
      handlers: [],
      deadLetters: [],
    };
  }

  private outcomeOf<C extends ChangeEvent>(
    stream: TestingStream,
    target: EmitTarget,
    change: C,
    runs: EventRuns,
    outcome: DispatchOutcome,
  ): ChangeOutcome<C> {
    const { plan } = stream;
    const failure = !outcome.ok && 'error' in outcome ? outcome.error : undefined;
    const handlers: HandlerRun[] = plan.handlers
      .filter((h) => runs.has(h.name))
      .map((h) => summarize(h.name, runs.get(h.name)!));
    return {
      change,
      ...target,
      delivered: true,
      acknowledged: outcome.ok && change.operationType !== 'invalidate',
      handlers,
      deadLetters: handlers.flatMap((h) => (h.deadLetterId ? [h.deadLetterId] : [])),
      ...(failure && { failure }),
    };
  }

  private async dispatch<C extends ChangeEvent>(
    stream: TestingStream,
    change: C,
    target: EmitTarget,
  ): Promise<ChangeOutcome<C>> {
    if (stream.failure) return this.notDelivered(change, target);
    const runs = this.runs.begin(change);
    try {
      const flight: EventInFlight = {
        change,
        startedAt: Date.now(),
        pending: new Set(),
        abort: stream.abort,
        attempts: null,
      };
      const outcome = await stream.dispatcher.dispatch(flight, {
        stopping: this.closing.signal,
        fence: this.options.fence,
      });
      if (!outcome.ok && 'error' in outcome) stream.failure = outcome.error;
      return this.outcomeOf(stream, target, change, runs, outcome);
    } finally {
      this.runs.end(change);
    }
  }

  private discover(): TestingStream[] {
    const { defaultConnection } = this.options;
    return plannedStreams({
      handlers: this.explorer.explore(defaultConnection, modelCollectionResolver()),
      options: this.options,
      runs: this.runs,
      deadLetters: this.runs.recordingDeadLetters(this.deadLetterStore),
      logger: this.logger,
    });
  }
}
