import type { Logger } from '@nestjs/common';
import { HandlerFailedError } from '../change-stream.errors.js';
import { messages } from '../change-stream.messages.js';
import { backoffDelay, sleep } from '../common/backoff.js';
import { errorText } from '../common/errors.js';
import { deadLetterId } from '../dead-letter/dead-letter-id.js';
import type { ChangeContext } from '../interfaces/change-context.interface.js';
import type { DeadLetter } from '../interfaces/dead-letter.interface.js';
import { DEAD_LETTER_RETRY_INITIAL_MS, RETRY_MAX_DELAY_MS } from '../options/defaults.js';
import type { HandlerCall } from '../telemetry/telemetry-attributes.js';
import type { ChangeEvent } from '../common/change-event.js';
import type { ChangeHandler } from './change-handler.js';
import { eventIdentity } from '../backfill/backfill-event.js';
import { describeEvent } from './describe-event.js';
import { ABORTED, type DispatchOutcome } from './dispatch-outcome.js';
import type { DispatchSettings } from './dispatch-settings.js';
import type { DispatchScope } from './event-in-flight.js';

export type HandlerLabels = Omit<HandlerCall, 'eventId' | 'attempt'>;

/** What a handler's retries ended in: stop the stream, dead-letter the event, or the user's callback decides. */
export class FailurePolicyStep {
  constructor(
    private readonly settings: DispatchSettings,
    private readonly streamKey: string,
    private readonly logger: Logger,
    private readonly labels: (handler: ChangeHandler, change: ChangeEvent) => HandlerLabels,
  ) {}

  async apply(
    handler: ChangeHandler,
    change: ChangeEvent,
    error: unknown,
    context: ChangeContext,
    scope: DispatchScope,
  ): Promise<DispatchOutcome> {
    const policy = handler.options.onFailure ?? this.settings.onFailure;
    const eventId = describeEvent(change);
    // Recording a failure acts for the stream as much as a handler call does: only under a confirmed lease.
    if (scope.mayDispatch && !scope.mayDispatch()) return ABORTED;
    if (policy === 'dead-letter') return this.deadLetter(handler, change, error, context, scope);
    if (typeof policy === 'function') {
      try {
        await policy({ change, error, context });
        return { ok: true };
      } catch (callbackError) {
        if (scope.stopping.aborted) return ABORTED;
        const text = messages.failureCallbackThrew(handler.name, eventId, errorText(callbackError));
        this.logger.error(text, (callbackError as Error)?.stack);
        return { ok: false, error: new HandlerFailedError(text, callbackError) };
      }
    }
    const text = messages.handlerFailed(
      handler.name,
      this.streamKey,
      eventId,
      context.attempt,
      errorText(error),
    );
    this.logger.error(text, (error as Error)?.stack);
    return { ok: false, error: new HandlerFailedError(text, error) };
  }

  /** The event is acknowledged only once its dead letter is stored; until then, retry (or give way to shutdown). */
  private async deadLetter(
    handler: ChangeHandler,
    change: ChangeEvent,
    error: unknown,
    context: ChangeContext,
    scope: DispatchScope,
  ): Promise<DispatchOutcome> {
    const id = deadLetterId(context.consumer, this.streamKey, eventIdentity(change), handler.name);
    const failure = error instanceof Error ? error : new Error(String(error));
    const letter: DeadLetter = {
      id,
      streamKey: this.streamKey,
      connectionName: context.connectionName,
      database: context.database,
      collection: context.collection,
      handler: handler.name,
      change,
      error: {
        name: failure.name,
        message: failure.message,
        ...(failure.stack ? { stack: failure.stack } : {}),
      },
      attempts: context.attempt,
      failedAt: new Date(),
    };
    for (let attempt = 1; ; attempt++) {
      if (scope.stopping.aborted || (attempt > 1 && scope.mayDispatch && !scope.mayDispatch()))
        return ABORTED;
      try {
        await this.settings.deadLetters.add(letter);
        this.logger.error(
          messages.deadLettered(handler.name, this.streamKey, describeEvent(change), id),
          failure.stack,
        );
        this.settings.onDeadLetter?.(id, handler.name);
        if (this.settings.telemetry?.metering)
          this.settings.telemetry.deadLettered(this.labels(handler, change));
        return { ok: true };
      } catch (storeError) {
        const delay = backoffDelay(
          attempt,
          this.settings.initialDelayMs || DEAD_LETTER_RETRY_INITIAL_MS,
          RETRY_MAX_DELAY_MS,
        );
        this.logger.warn(
          messages.deadLetterSaveFailed(this.streamKey, errorText(storeError), delay),
        );
        if (!(await sleep(delay, scope.stopping))) return ABORTED;
      }
    }
  }
}
