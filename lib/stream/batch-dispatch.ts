import type { Logger } from '@nestjs/common';
import { messages } from '../change-stream.messages.js';
import { backoffDelay, sleep } from '../common/backoff.js';
import { errorText } from '../common/errors.js';
import type { ChangeContext } from '../interfaces/change-context.interface.js';
import type { ChangeHandler } from './change-handler.js';
import { describeEvent } from './describe-event.js';
import { ABORTED, type DispatchOutcome, OK } from './dispatch-outcome.js';
import type { DispatchSettings } from './dispatch-settings.js';
import type { DispatchScope, EventInFlight } from './event-in-flight.js';
import type { FailurePolicyStep } from './failure-policy-step.js';
import { beginAttempt, type CallContexts } from './call-contexts.js';

export interface BatchDispatchDeps {
  settings: DispatchSettings;
  logger: Logger;
  failurePolicy: FailurePolicyStep;
  /** Each call's context (a deployment stream's `context.database`: the batch's first event's database) and labels. */
  calls: Pick<CallContexts, 'contextFor' | 'labels'>;
  streamKey: string;
}

/** How the calls of one part of a batch ended: it succeeded, it gave way (shutdown, lease), or it failed for good. */
type PartEnd =
  | { ok: true }
  | { ok: false; aborted: true }
  | { ok: false; error: unknown; context: ChangeContext };

/**
 * Runs one batch of an `@OnChangeBatch` handler: the whole batch with the handler's retries and
 * backoff; when they are used up, bisects it (halves, in stream order, each called once) down to
 * single events, which get the full retries again before the failure policy meets them. So only
 * failing events are dead-lettered (or stop the stream, or reach the callback), and an event is
 * given up only after it failed alone as often as a per-event handler's would.
 */
export class BatchDispatch {
  constructor(private readonly deps: BatchDispatchDeps) {}

  /** One outcome per event, in the batch's order: handled, failed for good (`stop`), or not acknowledged. */
  async run(
    handler: ChangeHandler,
    flights: EventInFlight[],
    scope: DispatchScope,
  ): Promise<DispatchOutcome[]> {
    const outcomes: DispatchOutcome[] = [];
    for (const flight of flights) flight.pending.add(handler.name);
    try {
      await this.part(handler, flights, scope, true, outcomes);
    } finally {
      for (const flight of flights) flight.pending.delete(handler.name);
    }
    while (outcomes.length < flights.length) outcomes.push(ABORTED); // after a stop: never acknowledged
    return outcomes;
  }

  /** Handles `flights` (a batch, or part of one); false when nothing after them may run. */
  private async part(
    handler: ChangeHandler,
    flights: EventInFlight[],
    scope: DispatchScope,
    whole: boolean,
    outcomes: DispatchOutcome[],
  ): Promise<boolean> {
    const retries = whole || flights.length === 1 ? this.retriesOf(handler) : 0;
    const end = await this.attempts(handler, flights, scope, retries);
    if (end.ok) {
      for (const flight of flights) {
        outcomes.push(OK);
        if (this.deps.settings.telemetry?.metering)
          this.deps.settings.telemetry.handled(this.deps.calls.labels(handler, flight.change));
      }
      return true;
    }
    if ('aborted' in end) return false;
    if (flights.length === 1) {
      const outcome = await this.deps.failurePolicy.apply(
        handler,
        flights[0].change,
        end.error,
        end.context,
        scope,
      );
      outcomes.push(outcome);
      return outcome.ok;
    }
    const middle = Math.ceil(flights.length / 2);
    this.deps.logger.warn(
      messages.batchBisected(handler.name, describeBatch(flights), middle, errorText(end.error)),
    );
    return (
      (await this.part(handler, flights.slice(0, middle), scope, false, outcomes)) &&
      this.part(handler, flights.slice(middle), scope, false, outcomes)
    );
  }

  private retriesOf(handler: ChangeHandler): number {
    return handler.options.retries ?? this.deps.settings.retries;
  }

  /** Calls the handler with `flights` up to `retries + 1` times, with backoff, as long as this instance may. */
  private async attempts(
    handler: ChangeHandler,
    flights: EventInFlight[],
    scope: DispatchScope,
    retries: number,
  ): Promise<PartEnd> {
    const { settings, logger } = this.deps;
    const telemetry = settings.telemetry;
    const changes = flights.map((flight) => flight.change);
    const labels = telemetry?.metering ? this.deps.calls.labels(handler, changes[0]) : undefined;
    for (let attempt = 1; ; attempt++) {
      // Every call, also a batch's first: it may have waited behind the handler's previous batch.
      if (scope.mayDispatch && !scope.mayDispatch()) return { ok: false, aborted: true };
      const own =
        flights[0].attempts &&
        beginAttempt(handler, flights[0].abort.signal, ...flights.map((f) => f.attempts!));
      const context = this.deps.calls.contextFor(
        handler,
        attempt,
        own ? own.abort.signal : flights[0].abort.signal,
        scope,
        changes[0],
      );
      let error: unknown;
      try {
        if (labels) telemetry!.batchCalled(labels, changes.length);
        if (telemetry?.active) {
          // One span and one duration per call, named by its first event.
          const first = changes[0]._id as { _data?: unknown };
          await telemetry.handlerCall(
            {
              ...this.deps.calls.labels(handler, changes[0]),
              eventId: String(first?._data ?? JSON.stringify(first)),
              attempt,
            },
            () => handler.invoke(changes, context),
          );
        } else await handler.invoke(changes, context);
        return { ok: true };
      } catch (thrown) {
        error = thrown;
      } finally {
        if (own) for (const flight of flights) flight.attempts!.delete(own);
      }
      if (labels) telemetry!.handlerFailed(labels);
      if (scope.stopping.aborted) {
        logger.warn(
          messages.handlerFailedDuringShutdown(
            handler.name,
            this.deps.streamKey,
            describeBatch(flights),
            errorText(error),
          ),
        );
        return { ok: false, aborted: true };
      }
      if (attempt > retries) return { ok: false, error, context };
      const delay = backoffDelay(attempt, settings.initialDelayMs, settings.maxDelayMs);
      if (labels) telemetry!.retried(labels);
      logger.warn(
        messages.handlerAttemptFailed(
          handler.name,
          describeBatch(flights),
          attempt,
          delay,
          errorText(error),
        ),
      );
      logger.debug((error as Error)?.stack ?? String(error));
      if (!(await sleep(delay, scope.stopping))) return { ok: false, aborted: true };
    }
  }
}

/** How logs name a batch: its one event, or its first and last and how many. */
export function describeBatch(flights: EventInFlight[]): string {
  if (flights.length === 1) return describeEvent(flights[0].change);
  return `a batch of ${flights.length} events, ${describeEvent(flights[0].change)} to ${describeEvent(flights[flights.length - 1].change)}`;
}
