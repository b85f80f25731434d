import { Logger } from '@nestjs/common';
import { messages } from '../change-stream.messages.js';
import { backoffDelay, sleep } from '../common/backoff.js';
import { errorText } from '../common/errors.js';
import type { ChangeContext } from '../interfaces/change-context.interface.js';
import type { ChangeEvent } from '../common/change-event.js';
import type { ChangeHandler } from './change-handler.js';
import { eventIdText } from '../backfill/backfill-event.js';
import { describeEvent } from './describe-event.js';
import { HandlerRoutes } from './handler-routes.js';
import { DatabaseRoutes } from './database-routes.js';
import { DeploymentRoutes } from './deployment-routes.js';
import type { ChangeStreamTelemetry } from '../telemetry/change-stream-telemetry.js';
import {
  ABORTED,
  dispatchBug,
  type DispatchOutcome,
  type MaybePromise,
  OK,
} from './dispatch-outcome.js';
import type { DispatchSettings } from './dispatch-settings.js';
import type { DispatchScope, EventInFlight } from './event-in-flight.js';
import { FailurePolicyStep } from './failure-policy-step.js';
import { beginAttempt, CallContexts, type StreamContext } from './call-contexts.js';
import { BatchDispatch } from './batch-dispatch.js';

export { describeEvent } from './describe-event.js';
export { dispatchBug, type DispatchOutcome, type MaybePromise } from './dispatch-outcome.js';
export type { DispatchSettings } from './dispatch-settings.js';
export type { Attempt, DispatchScope, EventInFlight } from './event-in-flight.js';

const same = <T>(value: T): T => value;

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

/** Runs the handlers of one stream for one event: retries, then the failure policy. */
export class ChangeDispatcher {
  private readonly logger = new Logger(ChangeDispatcher.name);
  private readonly routes: HandlerRoutes | DatabaseRoutes | DeploymentRoutes;
  private readonly calls: CallContexts;
  private readonly failurePolicy: FailurePolicyStep;
  private readonly batches: BatchDispatch;

  constructor(
    handlers: ChangeHandler[],
    private readonly settings: DispatchSettings,
    context: StreamContext,
    private readonly streamKey: string,
  ) {
    this.calls = new CallContexts(context, settings.routeByNamespace !== undefined);
    this.routes = settings.routeByNamespace
      ? new DeploymentRoutes(settings.routeByNamespace.parts, (p) => p.hasUserPipeline === true)
      : settings.routeByCollection
        ? new DatabaseRoutes(handlers, settings.routeByCollection.withUserPipeline)
        : new HandlerRoutes(handlers, settings);
    this.failurePolicy = new FailurePolicyStep(
      settings,
      streamKey,
      this.logger,
      (handler, change) => this.calls.labels(handler, change),
    );
    this.batches = new BatchDispatch({
      settings,
      logger: this.logger,
      failurePolicy: this.failurePolicy,
      calls: this.calls,
      streamKey,
    });
  }

  /** The stream has `@OnChangeBatch` handlers: events go through the scheduler's batch collectors. */
  get batching(): boolean {
    return this.routes.batching;
  }

  /** Some `@OnChange` (per-event) handler wants `change`. */
  hasPerEventHandlers(change: ChangeEvent): boolean {
    return this.routes.interested(change).length > 0;
  }

  /** The `@OnChangeBatch` handlers that want `change`. */
  batchHandlersFor(change: ChangeEvent): ChangeHandler[] {
    return this.routes.batchesFor(change);
  }

  /**
   * Runs one batch of a batch handler (retries, then bisection and the failure policy per failing
   * event); one outcome per event, in order. Never rejects: a bug is every event's failure.
   */
  dispatchBatch(
    handler: ChangeHandler,
    flights: EventInFlight[],
    scope: DispatchScope,
  ): Promise<DispatchOutcome[]> {
    return this.batches
      .run(handler, flights, scope)
      .catch((error: unknown) => flights.map((flight) => dispatchBug(flight.change, error)));
  }

  /**
   * Succeeds only when every interested handler succeeded or its failure was recorded per
   * policy. `scope.stopping` aborts at shutdown: from then on a failure is only "not acknowledged";
   * so is one this instance may no longer act on (`scope.mayDispatch`). The first attempt's
   * `mayDispatch` is the caller's to check (the scheduler does, as each event starts).
   * `then` gets the outcome: synchronously when every handler returned no promise and succeeded,
   * else in the one callback chained on the handler's promise (each extra hop costs per event).
   */
  dispatch<T = DispatchOutcome>(
    flight: EventInFlight,
    scope: DispatchScope,
    then: (outcome: DispatchOutcome) => T = same as (o: DispatchOutcome) => T,
  ): MaybePromise<T> {
    const interested = this.routes.interested(flight.change);
    if (interested.length === 1) return this.run(interested[0], flight, scope, then); // the common case
    if (interested.length === 0) return then(OK);
    // Some handlers answer synchronously (no promise): Promise.all takes plain values as they are.
    // eslint-disable-next-line @typescript-eslint/await-thenable
    return Promise.all(interested.map((h) => this.run(h, flight, scope, same))).then((outcomes) =>
      then(outcomes.find((o) => !o.ok && 'aborted' in o) ?? outcomes.find((o) => !o.ok) ?? OK),
    );
  }

  /** Calls one handler once, outside any stream (dead-letter replay): a batch handler with a batch of one. */
  static invokeOnce(
    handler: ChangeHandler,
    change: unknown,
    context: StreamContext,
    fence: number | null = null,
  ): Promise<unknown> {
    const call: ChangeContext = {
      ...context,
      handler: handler.name,
      attempt: 1,
      signal: new AbortController().signal,
      fence,
    };
    return Promise.resolve(handler.invoke(handler.batch ? [change] : change, call));
  }

  private get telemetry(): ChangeStreamTelemetry | undefined {
    return this.settings.telemetry;
  }

  private tracedCall(
    handler: ChangeHandler,
    change: ChangeEvent,
    context: ChangeContext,
  ): Promise<unknown> {
    const eventId = eventIdText(change);
    return this.telemetry!.handlerCall(
      { ...this.calls.labels(handler, change), eventId, attempt: context.attempt },
      () => handler.invoke(change, context),
    );
  }

  /**
   * The first attempt without async machinery (almost every call succeeds at once); a failure
   * goes on in `runWithRetries`. With telemetry collecting, or a signal per attempt, every attempt takes that path.
   */
  private run<T>(
    handler: ChangeHandler,
    flight: EventInFlight,
    scope: DispatchScope,
    then: (outcome: DispatchOutcome) => T,
  ): MaybePromise<T> {
    if (this.telemetry?.active || flight.attempts) return this.retry(handler, flight, scope, then);
    const context = this.calls.contextFor(handler, 1, flight.abort.signal, scope, flight.change);
    flight.pending.add(handler.name);
    let pending: Promise<unknown> | null = null;
    try {
      const result = handler.invoke(flight.change, context);
      // Inside the try: a thenable whose `then` throws is a handler failure, as it was for `await`.
      if (result instanceof Promise) pending = result;
      else if (isThenable(result)) pending = Promise.resolve(result);
    } catch (error) {
      return this.retry(handler, flight, scope, then, { error, context });
    }
    if (pending === null) return then(this.succeeded(handler, flight));
    return pending.then(
      () => then(this.succeeded(handler, flight)),
      (error: unknown) => this.retry(handler, flight, scope, then, { error, context }),
    );
  }

  private retry<T>(
    handler: ChangeHandler,
    flight: EventInFlight,
    scope: DispatchScope,
    then: (outcome: DispatchOutcome) => T,
    failed?: { error: unknown; context: ChangeContext },
  ): Promise<T> {
    return this.runWithRetries(handler, flight, scope, failed).then(then, (error: unknown) =>
      then(dispatchBug(flight.change, error)),
    );
  }

  /** Telemetry off (see `run`): nothing to count. */
  private succeeded(handler: ChangeHandler, flight: EventInFlight): DispatchOutcome {
    flight.pending.delete(handler.name);
    return OK;
  }

  /** Attempts, retries with backoff, then the failure policy; `failed`: how attempt 1 already failed (see `run`). */
  private async runWithRetries(
    handler: ChangeHandler,
    flight: EventInFlight,
    scope: DispatchScope,
    failed?: { error: unknown; context: ChangeContext },
  ): Promise<DispatchOutcome> {
    const retries = handler.options.retries ?? this.settings.retries;
    const { change } = flight;
    flight.pending.add(handler.name);
    try {
      for (let attempt = 1; ; attempt++) {
        let context: ChangeContext;
        let error: unknown;
        if (failed) {
          ({ context, error } = failed);
          failed = undefined;
        } else {
          // A retry due after a pause (GC, a blocked loop) may come after another instance took the stream.
          if (attempt > 1 && scope.mayDispatch && !scope.mayDispatch()) return ABORTED;
          const own =
            flight.attempts && beginAttempt(handler, flight.abort.signal, flight.attempts);
          context = this.calls.contextFor(
            handler,
            attempt,
            own ? own.abort.signal : flight.abort.signal,
            scope,
            change,
          );
          try {
            if (this.telemetry?.active) await this.tracedCall(handler, change, context);
            else await handler.invoke(change, context);
            if (this.telemetry?.metering)
              this.telemetry.handled(this.calls.labels(handler, change));
            return OK;
          } catch (thrown) {
            error = thrown;
          } finally {
            if (own) flight.attempts!.delete(own);
          }
        }
        if (this.telemetry?.metering)
          this.telemetry.handlerFailed(this.calls.labels(handler, change));
        const eventId = describeEvent(change);
        if (scope.stopping.aborted) {
          this.logger.warn(
            messages.handlerFailedDuringShutdown(
              handler.name,
              this.streamKey,
              eventId,
              errorText(error),
            ),
          );
          return ABORTED;
        }
        if (attempt > retries)
          return await this.failurePolicy.apply(handler, change, error, context, scope);
        const delay = backoffDelay(attempt, this.settings.initialDelayMs, this.settings.maxDelayMs);
        if (this.telemetry?.metering) this.telemetry.retried(this.calls.labels(handler, change));
        // One line per retry; the stack once, with the final failure (and here at debug level).
        this.logger.warn(
          messages.handlerAttemptFailed(handler.name, eventId, attempt, delay, errorText(error)),
        );
        this.logger.debug((error as Error)?.stack ?? String(error));
        if (!(await sleep(delay, scope.stopping))) return ABORTED;
      }
    } finally {
      flight.pending.delete(handler.name);
    }
  }
}
