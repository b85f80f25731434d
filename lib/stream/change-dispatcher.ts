import { Logger } from '@nestjs/common';
import mongoose from 'mongoose';
import { HandlerFailedError } from '../change-stream.errors.js';
import { messages } from '../change-stream.messages.js';
import { backoffDelay, sleep } from '../common/backoff.js';
import { errorText } from '../common/errors.js';
import { deadLetterId } from '../dead-letter/dead-letter-id.js';
import type { ChangeContext } from '../interfaces/change-context.interface.js';
import type { DeadLetter, DeadLetterStore } from '../interfaces/dead-letter.interface.js';
import type { HandlerFailurePolicy } from '../interfaces/failure-policies.interface.js';
import type { ChangeEvent } from './change-cursor.js';
import type { ChangeHandler } from './change-handler.js';
import { isLifecycleEvent } from './stream-plan.js';
import type { ChangeStreamTelemetry } from '../telemetry/change-stream-telemetry.js';
import { DEAD_LETTER_RETRY_INITIAL_MS, RETRY_MAX_DELAY_MS } from '../options/defaults.js';

export interface DispatchSettings {
  retries: number;
  initialDelayMs: number;
  maxDelayMs: number;
  onFailure: HandlerFailurePolicy;
  deadLetters: DeadLetterStore;
  /** The stream has a user `pipeline`: lifecycle events pass it only to reach the stream itself. */
  hasUserPipeline: boolean;
  /** Called after an event was dead-lettered. */
  onDeadLetter?: (id: string, handler: string) => void;
  telemetry?: ChangeStreamTelemetry;
}

/**
 * `aborted`: shutdown began, so a failure is neither retried nor recorded; the event is simply
 * not acknowledged and is delivered again on the next start.
 */
export type DispatchOutcome = { ok: true } | { ok: false; error: HandlerFailedError } | { ok: false; aborted: true };

/** One handler call of an event, with its own `context.signal` (`onHandlerTimeout: 'abort'`). */
export interface Attempt {
  readonly handler: string;
  readonly startedAt: number;
  readonly abort: AbortController;
}

/** One event being handled: which handlers are still running, for stuck-handler reports. */
export interface EventInFlight {
  readonly change: ChangeEvent;
  /** When it was submitted, then (if it waited for its document's previous event) when its handlers started. */
  startedAt: number;
  /** The handlers still running (a `RunningHandlers`, or any Set). */
  readonly pending: { add(name: string): unknown; delete(name: string): unknown; readonly size: number } & Iterable<string>;
  /** Aborted at shutdown (past its timeout) and when the lease is lost; shared by the stream's events. */
  readonly abort: AbortController;
  /**
   * With `onHandlerTimeout: 'abort'`: the calls running now, each with its own signal (a timed-out
   * call must not abort a retry or another handler); null otherwise, when calls share `abort`.
   */
  readonly attempts: Set<Attempt> | null;
}

/** What a dispatch runs under: one per tenure (the period under one lease), fixed while it lasts. */
export interface DispatchScope {
  /** Shutdown began (or the tenure ended): a failure is no longer retried or recorded. */
  readonly stopping: AbortSignal;
  /** Leases: false once this instance may no longer start a handler call; asked before every retry, failure callback and dead letter. */
  readonly mayDispatch?: () => boolean;
  /** `context.fence`: the lease's fencing number, null without leases. */
  readonly fence: number | null;
}

type Context = Omit<ChangeContext, 'handler' | 'attempt' | 'signal' | 'fence'>;

const OK: DispatchOutcome = { ok: true };
const ABORTED: DispatchOutcome = { ok: false, aborted: true };

export type MaybePromise<T> = T | Promise<T>;

const same = <T>(value: T): T => value;

/** The dispatcher records handler errors itself; anything else is a bug: stop rather than skip. */
export function dispatchBug(change: ChangeEvent, error: unknown): DispatchOutcome {
  return { ok: false, error: new HandlerFailedError(`Dispatching event ${JSON.stringify(change._id)} failed: ${errorText(error)}`, error) };
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

/** How logs name an event: its operation, the document's _id (to find it), and the resume token (to find the event). */
export function describeEvent(change: ChangeEvent): string {
  const id = (change as { documentKey?: { _id?: unknown } }).documentKey?._id;
  const document = id === undefined ? '' : ` of document ${mongoose.mongo.BSON.EJSON.stringify(id)}`;
  return `${change.operationType}${document} (token ${JSON.stringify(change._id)})`;
}

/** Runs the handlers of one stream for one event: retries, then the failure policy. */
export class ChangeDispatcher {
  private readonly logger = new Logger(ChangeDispatcher.name);
  /** Interested handlers by operation type, computed once per type. */
  private readonly routes = new Map<string, ChangeHandler[]>();

  constructor(
    private readonly handlers: ChangeHandler[],
    private readonly settings: DispatchSettings,
    private readonly context: Context,
    private readonly streamKey: string,
  ) {}

  /**
   * Succeeds only when every interested handler succeeded or its failure was recorded per
   * policy. `scope.stopping` aborts at shutdown: from then on a failure is only "not acknowledged";
   * so is one this instance may no longer act on (`scope.mayDispatch`). The first attempt's
   * `mayDispatch` is the caller's to check (the scheduler does, as each event starts).
   * `then` gets the outcome: synchronously when every handler returned no promise and succeeded,
   * else in the one callback chained on the handler's promise (each extra hop costs per event).
   */
  dispatch<T = DispatchOutcome>(flight: EventInFlight, scope: DispatchScope, then: (outcome: DispatchOutcome) => T = same as (o: DispatchOutcome) => T): MaybePromise<T> {
    const interested = this.route(flight.change);
    if (interested.length === 1) return this.run(interested[0], flight, scope, then); // the common case
    if (interested.length === 0) return then(OK);
    return Promise.all(interested.map((h) => this.run(h, flight, scope, same))).then((outcomes) =>
      then(outcomes.find((o) => !o.ok && 'aborted' in o) ?? outcomes.find((o) => !o.ok) ?? OK),
    );
  }

  /** Calls one handler once, outside any stream (dead-letter replay). */
  static invokeOnce(handler: ChangeHandler, change: unknown, context: Context, fence: number | null = null): Promise<unknown> {
    const call: ChangeContext = { ...context, handler: handler.name, attempt: 1, signal: new AbortController().signal, fence };
    return Promise.resolve(handler.invoke(change, call));
  }

  private get telemetry(): ChangeStreamTelemetry | undefined {
    return this.settings.telemetry;
  }

  private labels(handler: ChangeHandler, change: ChangeEvent) {
    return { consumer: this.context.consumer, database: this.context.database, collection: this.context.collection, handler: handler.name, operationType: change.operationType };
  }

  private tracedCall(handler: ChangeHandler, change: ChangeEvent, context: ChangeContext): Promise<unknown> {
    const eventId = String((change._id as { _data?: unknown })?._data ?? JSON.stringify(change._id));
    return this.telemetry!.handlerCall({ ...this.labels(handler, change), eventId, attempt: context.attempt }, () => handler.invoke(change, context));
  }

  private route(change: ChangeEvent): ChangeHandler[] {
    let interested = this.routes.get(change.operationType);
    if (!interested) {
      interested = this.handlers.filter((h) => this.wants(h, change));
      this.routes.set(change.operationType, interested);
    }
    return interested;
  }

  /**
   * Operation types stay per handler. Lifecycle events (drop, rename, …) always pass the server
   * filter so the stream sees them; a handler gets them if it asked: it lists them, or it lists
   * no types and the stream has no user pipeline that would have filtered them out.
   */
  private wants(handler: ChangeHandler, change: ChangeEvent): boolean {
    const types = handler.options.operationTypes as readonly string[] | undefined;
    if (types !== undefined) return types.includes(change.operationType);
    return !(this.settings.hasUserPipeline && isLifecycleEvent(change.operationType));
  }

  /**
   * The first attempt without async machinery (almost every call succeeds at once); a failure
   * goes on in `runWithRetries`. With telemetry collecting, or a signal per attempt, every attempt takes that path.
   */
  private run<T>(handler: ChangeHandler, flight: EventInFlight, scope: DispatchScope, then: (outcome: DispatchOutcome) => T): MaybePromise<T> {
    if (this.telemetry?.active || flight.attempts) return this.retry(handler, flight, scope, then);
    const context = this.contextFor(handler, 1, flight.abort.signal, scope);
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

  private retry<T>(handler: ChangeHandler, flight: EventInFlight, scope: DispatchScope, then: (outcome: DispatchOutcome) => T, failed?: { error: unknown; context: ChangeContext }): Promise<T> {
    return this.runWithRetries(handler, flight, scope, failed).then(then, (error: unknown) => then(dispatchBug(flight.change, error)));
  }

  /** Telemetry off (see `run`): nothing to count. */
  private succeeded(handler: ChangeHandler, flight: EventInFlight): DispatchOutcome {
    flight.pending.delete(handler.name);
    return OK;
  }

  private contextFor(handler: ChangeHandler, attempt: number, signal: AbortSignal, scope: DispatchScope): ChangeContext {
    const { consumer, connectionName, database, collection } = this.context;
    return { consumer, connectionName, database, collection, handler: handler.name, attempt, signal, fence: scope.fence };
  }

  /** A call with its own signal (see `EventInFlight.attempts`), aborted at once if the event's already is. */
  private beginAttempt(handler: ChangeHandler, attempts: Set<Attempt>, shared: AbortSignal): Attempt {
    const attempt: Attempt = { handler: handler.name, startedAt: Date.now(), abort: new AbortController() };
    if (shared.aborted) attempt.abort.abort(shared.reason);
    attempts.add(attempt);
    return attempt;
  }

  /** Attempts, retries with backoff, then the failure policy; `failed`: how attempt 1 already failed (see `run`). */
  private async runWithRetries(handler: ChangeHandler, flight: EventInFlight, scope: DispatchScope, failed?: { error: unknown; context: ChangeContext }): Promise<DispatchOutcome> {
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
          const own = flight.attempts && this.beginAttempt(handler, flight.attempts, flight.abort.signal);
          context = this.contextFor(handler, attempt, own ? own.abort.signal : flight.abort.signal, scope);
          try {
            if (this.telemetry?.active) await this.tracedCall(handler, change, context);
            else await handler.invoke(change, context);
            if (this.telemetry?.metering) this.telemetry.handled(this.labels(handler, change));
            return OK;
          } catch (thrown) {
            error = thrown;
          } finally {
            if (own) flight.attempts!.delete(own);
          }
        }
        if (this.telemetry?.metering) this.telemetry.handlerFailed(this.labels(handler, change));
        const eventId = describeEvent(change);
        if (scope.stopping.aborted) {
          this.logger.warn(messages.handlerFailedDuringShutdown(handler.name, this.streamKey, eventId, errorText(error)));
          return ABORTED;
        }
        if (attempt > retries) return await this.giveUp(handler, change, error, context, scope);
        const delay = backoffDelay(attempt, this.settings.initialDelayMs, this.settings.maxDelayMs);
        if (this.telemetry?.metering) this.telemetry.retried(this.labels(handler, change));
        // One line per retry; the stack once, with the final failure (and here at debug level).
        this.logger.warn(messages.handlerAttemptFailed(handler.name, eventId, attempt, delay, errorText(error)));
        this.logger.debug((error as Error)?.stack ?? String(error));
        if (!(await sleep(delay, scope.stopping))) return ABORTED;
      }
    } finally {
      flight.pending.delete(handler.name);
    }
  }

  private async giveUp(handler: ChangeHandler, change: ChangeEvent, error: unknown, context: ChangeContext, scope: DispatchScope): Promise<DispatchOutcome> {
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
    const text = messages.handlerFailed(handler.name, this.streamKey, eventId, context.attempt, errorText(error));
    this.logger.error(text, (error as Error)?.stack);
    return { ok: false, error: new HandlerFailedError(text, error) };
  }

  /** The event is acknowledged only once its dead letter is stored; until then, retry (or give way to shutdown). */
  private async deadLetter(handler: ChangeHandler, change: ChangeEvent, error: unknown, context: ChangeContext, scope: DispatchScope): Promise<DispatchOutcome> {
    const id = deadLetterId(context.consumer, this.streamKey, change._id, handler.name);
    const failure = error instanceof Error ? error : new Error(String(error));
    const letter: DeadLetter = {
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
      if (scope.stopping.aborted || (attempt > 1 && scope.mayDispatch && !scope.mayDispatch())) return ABORTED;
      try {
        await this.settings.deadLetters.add(letter);
        this.logger.error(messages.deadLettered(handler.name, this.streamKey, describeEvent(change), id), failure.stack);
        this.settings.onDeadLetter?.(id, handler.name);
        if (this.telemetry?.metering) this.telemetry.deadLettered(this.labels(handler, change));
        return { ok: true };
      } catch (storeError) {
        const delay = backoffDelay(attempt, this.settings.initialDelayMs || DEAD_LETTER_RETRY_INITIAL_MS, RETRY_MAX_DELAY_MS);
        this.logger.warn(messages.deadLetterSaveFailed(this.streamKey, errorText(storeError), delay));
        if (!(await sleep(delay, scope.stopping))) return ABORTED;
      }
    }
  }
}
