import { Logger } from '@nestjs/common';
import type { mongo } from 'mongoose';
import { InvalidStoredTokenError } from '../change-stream.errors.js';
import type { ChangeStreamEvent } from '../change-stream.events.js';
import { messages } from '../change-stream.messages.js';
import type { ResolvedChangeStreamOptions } from '../change-stream.options.js';
import type { Checkpointer } from '../checkpoint/checkpointer.js';
import { backoffDelay, settlesWithin, sleep } from '../common/backoff.js';
import { errorText } from '../common/errors.js';
import type { ChangeStreamState, ChangeStreamStatus } from '../interfaces/change-stream-status.interface.js';
import type { DeadLetterStore } from '../interfaces/dead-letter.interface.js';
import type { HistoryLost, HistoryLostAction } from '../interfaces/failure-policies.interface.js';
import type { ResumeToken, StreamPosition } from '../interfaces/resume-token-store.interface.js';
import type { ChangeCursor, CursorFactory } from './change-cursor.js';
import { ChangeDispatcher } from './change-dispatcher.js';
import { readChanges, StreamOpenError } from './change-reader.js';
import { EventScheduler } from './event-scheduler.js';
import { isHistoryLost } from './history-lost.js';
import { StuckHandlerWatch } from './stuck-handler-watch.js';
import type { StreamPlan } from './stream-plan.js';

export interface CollectionStreamDeps {
  plan: StreamPlan;
  database: string;
  deadLetters: DeadLetterStore;
  checkpointer: Checkpointer;
  options: ResolvedChangeStreamOptions;
  openCursor: CursorFactory;
  emit: (event: ChangeStreamEvent) => void;
  /** Resolves once the providers the handlers depend on are bootstrapped. */
  handlersReady?: Promise<void>;
}

/** Where the next open starts: after a token, after an invalidate event, at a cluster time, or now. */
type StartAt = { resumeAfter: ResumeToken } | { startAfter: ResumeToken } | { startAtOperationTime: mongo.Timestamp } | null;

/** A failure to read the stored position (the store is unreachable): retried quietly. */
class PositionLoadError extends Error {}

/**
 * One supervised change stream: load the position, open, read and dispatch (see
 * `readChanges`), and reopen from the last acknowledged position when the stream breaks.
 */
export class CollectionStream {
  private readonly logger = new Logger(CollectionStream.name);
  private readonly stopping = new AbortController();
  private readonly scheduler: EventScheduler;
  private readonly stuck: StuckHandlerWatch;
  private base: Exclude<ChangeStreamState, 'degraded'> = 'starting';
  /** Why an open stream shows `degraded` (store trouble, a stuck handler). */
  private readonly degradedBy = new Map<'store' | 'handler', string>();
  private eventsHandled = 0;
  /** Epoch ms of the last handled event (a number: set on every event, turned into a Date only for status). */
  private lastEventAt = 0;
  private lastError: string | null = null;
  private lastInvalidatedAt: Date | null = null;
  private positionLoaded = false;
  /** Set after an invalidate event: the next open must use `startAfter`. */
  private invalidatedAt: ResumeToken | null = null;
  private cursor: ChangeCursor | undefined;
  private running: Promise<void> | undefined;
  private stopped: Promise<void> | undefined;
  private readonly settleWaiters: Array<() => void> = [];

  constructor(private readonly deps: CollectionStreamDeps) {
    const { plan, options, database, checkpointer } = deps;
    const dispatcher = new ChangeDispatcher(
      plan.handlers,
      {
        ...options.handlerRetry,
        onFailure: options.onHandlerFailure,
        deadLetters: deps.deadLetters,
        hasUserPipeline: plan.hasUserPipeline,
        onDeadLetter: (id, handler) => deps.emit({ type: 'dead-lettered', key: this.key, id, handler }),
      },
      { consumer: options.consumer, connectionName: plan.connectionName, database, collection: plan.collection },
      checkpointer.key,
    );
    this.scheduler = new EventScheduler({
      concurrency: Math.min(options.concurrency, plan.concurrencyCap ?? Infinity),
      signalPerEvent: options.onHandlerTimeout === 'abort',
      dispatcher,
      checkpointer,
      stopping: this.stopping.signal,
      onHandled: () => {
        this.eventsHandled++;
        this.lastEventAt = Date.now();
      },
      onFailed: (error) => (this.lastError = error.message),
    });
    this.stuck = new StuckHandlerWatch(this.key, options, () => this.scheduler.events, (reason) => this.degrade('handler', reason));
    checkpointer.onSaveTrouble = (error) => this.degrade('store', error === null ? null : messages.cannotSave(error));
  }

  get key(): string {
    return this.deps.checkpointer.key;
  }

  get plan(): StreamPlan {
    return this.deps.plan;
  }

  get database(): string {
    return this.deps.database;
  }

  get state(): ChangeStreamState {
    return this.base === 'open' && this.degradedBy.size > 0 ? 'degraded' : this.base;
  }

  start(): void {
    this.running ??= this.supervise();
  }

  /** Resolves once the stream is open, failed or closed (whichever comes first). */
  whenSettled(): Promise<void> {
    if (this.base !== 'starting' && this.base !== 'reconnecting') return Promise.resolve();
    return new Promise((resolve) => this.settleWaiters.push(resolve));
  }

  /**
   * Stop reading, let in-flight handlers finish, save the position, close the cursor: all within
   * `timeoutMs`. Handlers still running then are aborted (`context.signal`) and their events are
   * not acknowledged. Idempotent.
   */
  stop(timeoutMs: number): Promise<void> {
    this.stopped ??= this.shutdown(Date.now() + timeoutMs, timeoutMs);
    return this.stopped;
  }

  status(): ChangeStreamStatus {
    const { plan, database, checkpointer } = this.deps;
    const events = this.scheduler.events;
    return {
      key: this.key,
      connectionName: plan.connectionName,
      database,
      collection: plan.collection,
      state: this.state,
      handlers: plan.handlers.map((h) => h.name),
      eventsHandled: this.eventsHandled,
      lastEventAt: this.lastEventAt === 0 ? null : new Date(this.lastEventAt),
      lastCheckpointAt: checkpointer.lastSavedAt,
      unsavedEvents: checkpointer.unsavedCount,
      inFlightEvents: events.length,
      inFlightForMs: events.length === 0 ? null : Date.now() - Math.min(...events.map((e) => e.startedAt)),
      lastInvalidatedAt: this.lastInvalidatedAt,
      lastError: this.lastError,
    };
  }

  private async shutdown(deadline: number, timeoutMs: number): Promise<void> {
    const left = () => Math.max(0, deadline - Date.now());
    this.stopping.abort();
    if (this.running && !(await settlesWithin(this.running, left()))) {
      this.logger.warn(messages.drainTimedOut(this.key, timeoutMs));
      this.scheduler.abortInFlight();
    }
    const { checkpointer } = this.deps;
    const flushed = await settlesWithin(checkpointer.flush(), left());
    if (!flushed || checkpointer.unsavedCount > 0) this.logger.warn(messages.finalSaveFailed(this.key, checkpointer.unsavedCount));
    checkpointer.dispose();
    this.stuck.stop();
    await settlesWithin(this.closeCursor(), left());
    if (this.base !== 'failed') this.setBase('closed');
  }

  private async supervise(): Promise<void> {
    const signal = this.stopping.signal;
    this.stuck.start();
    for (let attempt = 1; !signal.aborted && this.base !== 'failed'; attempt++) {
      try {
        await this.loadPosition();
        const startAt = this.startAt();
        const end = await readChanges({
          cursor: this.openCursor(startAt),
          fromStoredPosition: startAt !== null,
          checkpointer: this.deps.checkpointer,
          scheduler: this.scheduler,
          handlersReady: this.deps.handlersReady ?? Promise.resolve(),
          signal,
          onOpen: () => {
            attempt = 0;
            this.invalidatedAt = null;
            this.setBase('open');
            this.logger.log(messages.streamOpened(this.key, startAt === null ? 'now' : 'stored'));
          },
        });
        if (end.kind === 'invalidated') {
          // The server closed this cursor; reopen after the invalidate (resuming after it is refused).
          await this.scheduler.drain();
          this.logger.warn(messages.invalidated(this.key));
          this.invalidatedAt = end.token;
          this.lastInvalidatedAt = new Date();
          attempt = 0;
        } else if (end.kind === 'failed') {
          await this.scheduler.drain();
          this.fail(this.lastError ?? 'a handler failed');
        }
      } catch (error) {
        if (signal.aborted) break;
        await this.recover(error, attempt, signal);
      } finally {
        await this.closeCursor();
      }
    }
    await this.scheduler.drain();
  }

  /** After a broken stream: a verdict on the position (only at open), or a reopen with backoff. */
  private async recover(error: unknown, attempt: number, signal: AbortSignal): Promise<void> {
    // Events still in flight would be read again by the reopened stream: let them finish first.
    await this.scheduler.drain();
    const atOpen = error instanceof StreamOpenError ? error.cause : undefined;
    if (error instanceof InvalidStoredTokenError || (atOpen !== undefined && this.startAt() !== null && isHistoryLost(atOpen))) {
      await this.onHistoryLost(atOpen ?? error);
      return;
    }
    const { initialDelayMs, maxDelayMs } = this.deps.options.reconnect;
    const delay = backoffDelay(attempt, initialDelayMs, maxDelayMs);
    const cause = atOpen ?? error;
    if (error instanceof PositionLoadError) {
      // The store's unavailability is reported once, at startup or by the client; here only the state says it.
      this.setBase('reconnecting', messages.waitingForStore(errorText(cause)));
      this.logger.debug(messages.waitingForStore(errorText(cause)));
    } else {
      this.setBase('reconnecting', errorText(cause));
      this.logger.warn(messages.streamReconnecting(this.key, attempt, delay, errorText(cause)));
    }
    await sleep(delay, signal);
  }

  private async loadPosition(): Promise<void> {
    if (this.positionLoaded) return;
    try {
      await this.deps.checkpointer.load();
    } catch (error) {
      if (error instanceof InvalidStoredTokenError) throw error;
      throw new PositionLoadError(errorText(error));
    }
    this.positionLoaded = true;
  }

  private startAt(): StartAt {
    if (this.invalidatedAt) return { startAfter: this.invalidatedAt };
    return startAtOf(this.deps.checkpointer.position);
  }

  private async onHistoryLost(error: unknown): Promise<void> {
    const { plan, database, options, checkpointer } = this.deps;
    const reason = error instanceof InvalidStoredTokenError ? error.message : messages.historyLost(this.key, errorText(error));
    const position = error instanceof InvalidStoredTokenError ? null : this.invalidatedAt ? { token: this.invalidatedAt } : checkpointer.position;
    const lost: HistoryLost = { key: this.key, connectionName: plan.connectionName, database, collection: plan.collection, reason, position };
    let action: HistoryLostAction;
    try {
      action = typeof options.onHistoryLost === 'function' ? await options.onHistoryLost(lost) : options.onHistoryLost;
    } catch (callbackError) {
      this.logger.error(`onHistoryLost callback threw: ${errorText(callbackError)}`, (callbackError as Error)?.stack);
      action = 'fail';
    }
    this.deps.emit({ type: 'history-lost', action, ...lost });
    if (action !== 'restart-from-now') {
      this.fail(reason);
      return;
    }
    this.logger.error(messages.historyLostRestart(this.key, errorText(error)));
    checkpointer.restore(null);
    this.invalidatedAt = null;
    this.positionLoaded = true;
  }

  private openCursor(startAt: StartAt): ChangeCursor {
    const { plan, options } = this.deps;
    this.cursor = this.deps.openCursor(plan.pipeline, {
      ...(startAt ?? {}),
      ...(plan.fullDocument && plan.fullDocument !== 'default' ? { fullDocument: plan.fullDocument } : {}),
      ...(plan.fullDocumentBeforeChange && plan.fullDocumentBeforeChange !== 'off'
        ? { fullDocumentBeforeChange: plan.fullDocumentBeforeChange }
        : {}),
      maxAwaitTimeMS: options.maxAwaitTimeMS,
      ...(options.batchSize ? { batchSize: options.batchSize } : {}),
    } as mongo.ChangeStreamOptions);
    return this.cursor;
  }

  private async closeCursor(): Promise<void> {
    const cursor = this.cursor;
    this.cursor = undefined;
    await cursor?.close().catch(() => undefined);
  }

  private fail(reason: string): void {
    this.setBase('failed', reason);
    this.logger.error(`Stream ${this.key} failed: ${reason}`);
  }

  private degrade(cause: 'store' | 'handler', reason: string | null): void {
    const before = this.state;
    if (reason === null) this.degradedBy.delete(cause);
    else this.degradedBy.set(cause, reason);
    this.announce(before, reason ?? [...this.degradedBy.values()][0] ?? null);
  }

  private setBase(state: Exclude<ChangeStreamState, 'degraded'>, reason: string | null = null): void {
    const before = this.state;
    this.base = state;
    if (state === 'open' && this.degradedBy.size === 0) this.lastError = null;
    else if (reason) this.lastError = reason;
    this.announce(before, reason);
    if (state !== 'starting' && state !== 'reconnecting') this.settleWaiters.splice(0).forEach((resolve) => resolve());
  }

  private announce(previous: ChangeStreamState, reason: string | null): void {
    const state = this.state;
    if (state === 'degraded' && reason) this.lastError = reason;
    if (previous !== state) this.deps.emit({ type: 'state', key: this.key, state, previous, reason });
  }
}

function startAtOf(position: StreamPosition | null): StartAt {
  if (position === null) return null;
  return 'token' in position ? { resumeAfter: position.token } : { startAtOperationTime: position.operationTime };
}
