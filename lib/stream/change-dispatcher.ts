import { randomUUID } from 'node:crypto';
import { Logger } from '@nestjs/common';
import type { mongo } from 'mongoose';
import { HandlerFailedError } from '../change-stream.errors.js';
import { messages } from '../change-stream.messages.js';
import type { ChangeContext } from '../interfaces/change-context.interface.js';
import type { DeadLetterStore } from '../interfaces/dead-letter.interface.js';
import type { HandlerFailurePolicy } from '../interfaces/failure-policies.interface.js';
import { backoffDelay, sleep } from './backoff.js';
import type { ChangeHandler } from './change-handler.js';

export interface DispatchSettings {
  retries: number;
  initialDelayMs: number;
  maxDelayMs: number;
  onFailure: HandlerFailurePolicy;
  deadLetters: DeadLetterStore;
  /** Called after an event was dead-lettered. */
  onDeadLetter?: (id: string, handler: string) => void;
}

/** `aborted`: shutdown interrupted a retry wait; the event is simply not acknowledged. */
export type DispatchOutcome = { ok: true } | { ok: false; error: HandlerFailedError } | { ok: false; aborted: true };

export type ChangeEvent = mongo.ChangeStreamDocument;

/** Runs the handlers of one stream for one event: retries, then the failure policy. */
export class ChangeDispatcher {
  private readonly logger = new Logger(ChangeDispatcher.name);

  constructor(
    private readonly handlers: ChangeHandler[],
    private readonly settings: DispatchSettings,
    private readonly context: Omit<ChangeContext, 'handler' | 'attempt'>,
    private readonly streamKey: string,
  ) {}

  /** Succeeds only when every interested handler succeeded or its failure was recorded per policy. */
  async dispatch(change: ChangeEvent, signal: AbortSignal): Promise<DispatchOutcome> {
    const interested = this.handlers.filter((h) => wants(h, change.operationType));
    const outcomes = await Promise.all(interested.map((h) => this.runWithRetries(h, change, signal)));
    return outcomes.find((o) => !o.ok) ?? { ok: true };
  }

  /** Calls one handler once, outside any stream (dead-letter replay). */
  static invokeOnce(handler: ChangeHandler, change: unknown, context: Omit<ChangeContext, 'handler' | 'attempt'>): Promise<unknown> {
    return Promise.resolve(handler.invoke(change, { ...context, handler: handler.name, attempt: 1 } satisfies ChangeContext));
  }

  private async runWithRetries(handler: ChangeHandler, change: ChangeEvent, signal: AbortSignal): Promise<DispatchOutcome> {
    const retries = handler.options.retries ?? this.settings.retries;
    for (let attempt = 1; ; attempt++) {
      const context: ChangeContext = { ...this.context, handler: handler.name, attempt };
      try {
        await handler.invoke(change, context);
        return { ok: true };
      } catch (error) {
        const eventId = JSON.stringify(change._id);
        if (attempt > retries) return this.giveUp(handler, change, error, context, signal);
        const delay = backoffDelay(attempt, this.settings.initialDelayMs, this.settings.maxDelayMs);
        this.logger.warn(messages.handlerAttemptFailed(handler.name, eventId, attempt, delay));
        this.logger.warn((error as Error)?.stack ?? String(error));
        if (!(await sleep(delay, signal))) return { ok: false, aborted: true };
      }
    }
  }

  private async giveUp(handler: ChangeHandler, change: ChangeEvent, error: unknown, context: ChangeContext, signal: AbortSignal): Promise<DispatchOutcome> {
    const policy = handler.options.onFailure ?? this.settings.onFailure;
    const eventId = JSON.stringify(change._id);
    if (policy === 'dead-letter') return this.deadLetter(handler, change, error, context, signal);
    if (typeof policy === 'function') {
      try {
        await policy({ change, error, context });
        return { ok: true };
      } catch (callbackError) {
        const text = messages.failureCallbackThrew(handler.name, eventId, errorText(callbackError));
        this.logger.error(text, (callbackError as Error)?.stack);
        return { ok: false, error: new HandlerFailedError(text, callbackError) };
      }
    }
    const text = messages.handlerFailed(handler.name, this.streamKey, eventId, context.attempt, errorText(error));
    this.logger.error(text, (error as Error)?.stack);
    return { ok: false, error: new HandlerFailedError(text, error) };
  }

  /** The event is acknowledged only once its dead letter is stored; until then, retry (or give way to shutdown). */
  private async deadLetter(handler: ChangeHandler, change: ChangeEvent, error: unknown, context: ChangeContext, signal: AbortSignal): Promise<DispatchOutcome> {
    const id = randomUUID();
    const failure = error instanceof Error ? error : new Error(String(error));
    const letter = {
      id,
      streamKey: this.streamKey,
      connectionName: context.connectionName,
      database: context.database,
      collection: context.collection,
      handler: handler.name,
      change,
      error: { name: failure.name, message: failure.message, ...(failure.stack ? { stack: failure.stack } : {}) },
      attempts: context.attempt,
      failedAt: new Date(),
    };
    for (let attempt = 1; ; attempt++) {
      try {
        await this.settings.deadLetters.add(letter);
        this.logger.error(messages.deadLettered(handler.name, this.streamKey, JSON.stringify(change._id), id), failure.stack);
        this.settings.onDeadLetter?.(id, handler.name);
        return { ok: true };
      } catch (storeError) {
        const delay = backoffDelay(attempt, this.settings.initialDelayMs || 100, 30_000);
        this.logger.warn(messages.deadLetterSaveFailed(this.streamKey, errorText(storeError), delay));
        if (!(await sleep(delay, signal))) return { ok: false, aborted: true };
      }
    }
  }
}

function wants(handler: ChangeHandler, operationType: string): boolean {
  const types = handler.options.operationTypes as string[] | undefined;
  return types === undefined || types.includes(operationType);
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
