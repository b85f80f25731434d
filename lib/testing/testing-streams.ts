import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
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
import { createDispatcher } from '../stream/create-collection-stream.js';
import type { ChangeHandler } from '../stream/change-handler.js';
import { planStreams, type StreamPlan } from '../stream/stream-plan.js';
import { positionKey } from '../redis/redis-keys.js';
import type { ChangeOutcome, HandlerRun } from './change-outcome.js';
import { type EventRuns, HandlerRuns, summarize } from './handler-runs.js';
import { dispatchWithBatches } from './testing-batches.js';
import { CHANGE_STREAM_TESTING_OPTIONS, type ResolvedTestingOptions } from './testing-options.js';

type ChangeEvent = mongo.ChangeStreamDocument;

/** One stream as production would open it for a (connection, collection), minus the cursor and the checkpointer. */
export interface TestingStream {
  readonly plan: StreamPlan;
  readonly database: string;
  readonly key: string;
  readonly dispatcher: ChangeDispatcher;
  /** Shared by the stream's handler calls, as in production (`context.signal`); aborted when the module closes. */
  readonly abort: AbortController;
  /** Events are dispatched one at a time, in emission order (production's default `concurrency: 1`). */
  tail: Promise<unknown>;
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
    this.streams?.forEach((stream) => stream.abort.abort());
  }

  /** Every stream; discovered on first use, so tests that never call `init()` work too. */
  all(): TestingStream[] {
    this.streams ??= this.discover();
    return this.streams;
  }

  find(collection: string, connectionName = this.options.defaultConnection): TestingStream {
    const stream = this.all().find(
      (s) => s.plan.collection === collection && s.plan.connectionName === connectionName,
    );
    if (stream) return stream;
    const watched = this.all().map(
      (s) => `"${s.plan.collection}" (connection "${s.plan.connectionName}")`,
    );
    throw new Error(
      `No @OnChange handler watches "${collection}" on connection "${connectionName}". ` +
        (watched.length > 0
          ? `Watched: ${watched.join(', ')}.`
          : 'No handlers were found: are their providers in the testing module?'),
    );
  }

  /** The original (unrecorded) handler, for dead-letter replays. */
  handlerOf(streamKey: string, name: string): ChangeHandler | undefined {
    return this.all()
      .find((s) => s.key === streamKey)
      ?.plan.handlers.find((h) => h.name === name);
  }

  /** Queues `change` behind the stream's earlier events; resolves once its handlers are done. */
  deliver<C extends ChangeEvent>(stream: TestingStream, change: C): Promise<ChangeOutcome<C>> {
    if (stream.dispatcher.batching) return this.deliverMany(stream, [change]).then(([o]) => o);
    if (this.closing.signal.aborted)
      return Promise.reject(new Error('The testing module is closed: nothing more is delivered.'));
    const run = stream.tail.then(() => this.dispatch(stream, change));
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
  ): Promise<Array<ChangeOutcome<C>>> {
    if (!stream.dispatcher.batching)
      return Promise.all(changes.map((change) => this.deliver(stream, change)));
    if (this.closing.signal.aborted)
      return Promise.reject(new Error('The testing module is closed: nothing more is delivered.'));
    const run = stream.tail.then(() => this.dispatchBatched(stream, changes));
    stream.tail = run.catch(() => undefined);
    return run;
  }

  private async dispatchBatched<C extends ChangeEvent>(
    stream: TestingStream,
    changes: C[],
  ): Promise<Array<ChangeOutcome<C>>> {
    if (stream.failure) return changes.map((change) => this.notDelivered(stream, change));
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

  private notDelivered<C extends ChangeEvent>(stream: TestingStream, change: C): ChangeOutcome<C> {
    const { plan, database } = stream;
    return {
      change,
      connectionName: plan.connectionName,
      database,
      collection: plan.collection,
      delivered: false,
      acknowledged: false,
      handlers: [],
      deadLetters: [],
    };
  }

  private outcomeOf<C extends ChangeEvent>(
    stream: TestingStream,
    change: C,
    runs: EventRuns,
    outcome: DispatchOutcome,
  ): ChangeOutcome<C> {
    const { plan, database } = stream;
    const failure = !outcome.ok && 'error' in outcome ? outcome.error : undefined;
    const handlers: HandlerRun[] = plan.handlers
      .filter((h) => runs.has(h.name))
      .map((h) => summarize(h.name, runs.get(h.name)!));
    return {
      change,
      connectionName: plan.connectionName,
      database,
      collection: plan.collection,
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
  ): Promise<ChangeOutcome<C>> {
    if (stream.failure) return this.notDelivered(stream, change);
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
      return this.outcomeOf(stream, change, runs, outcome);
    } finally {
      this.runs.end(change);
    }
  }

  private discover(): TestingStream[] {
    const { module, databaseOf, defaultConnection } = this.options;
    const plans = planStreams(this.explorer.explore(defaultConnection, modelCollectionResolver()));
    const deadLetters = this.runs.recordingDeadLetters(this.deadLetterStore);
    return plans.map((plan) => {
      const database = databaseOf(plan.connectionName);
      const key = positionKey(module.keyPrefix, module.consumer, database, plan.collection);
      const dispatcher = createDispatcher({
        plan,
        database,
        key,
        options: module,
        deadLetters,
        handlers: plan.handlers.map((handler) => this.runs.recorded(handler)),
        onFailure: this.runs.recordedPolicy(module.onHandlerFailure),
      });
      return {
        plan,
        database,
        key,
        dispatcher,
        abort: new AbortController(),
        tail: Promise.resolve(),
        failure: null,
      };
    });
  }
}
