import { Logger } from '@nestjs/common';
import type { mongo } from 'mongoose';
import { InvalidStoredTokenError } from '../change-stream.errors.js';
import type { ChangeStreamEvent } from '../change-stream.events.js';
import { messages } from '../change-stream.messages.js';
import type { ResolvedChangeStreamOptions } from '../change-stream.options.js';
import type { Checkpointer } from '../checkpoint/checkpointer.js';
import type { ChangeStreamState, ChangeStreamStatus } from '../interfaces/change-stream-status.interface.js';
import type { DeadLetterStore } from '../interfaces/dead-letter.interface.js';
import type { HistoryLost, HistoryLostAction } from '../interfaces/failure-policies.interface.js';
import type { ResumeToken } from '../interfaces/resume-token-store.interface.js';
import { backoffDelay, settlesWithin, sleep } from './backoff.js';
import type { ChangeCursor, CursorFactory } from './change-cursor.js';
import { ChangeDispatcher, errorText } from './change-dispatcher.js';
import { isHistoryLost } from './history-lost.js';
import type { StreamPlan } from './stream-plan.js';

export interface CollectionStreamDeps {
  plan: StreamPlan;
  database: string;
  deadLetters: DeadLetterStore;
  checkpointer: Checkpointer;
  options: ResolvedChangeStreamOptions;
  openCursor: CursorFactory;
  emit: (event: ChangeStreamEvent) => void;
}

class StreamClosedError extends Error {}

/** Where the next open starts: after a token, after an invalidate event, or now. */
type StartAt = { resumeAfter: ResumeToken } | { startAfter: ResumeToken } | null;

/**
 * One supervised change stream: load the position, open, read, dispatch, acknowledge,
 * and reopen from the last acknowledged position when the stream breaks.
 */
export class CollectionStream {
  private readonly logger = new Logger(CollectionStream.name);
  private readonly dispatcher: ChangeDispatcher;
  private readonly stopping = new AbortController();
  private state: ChangeStreamState = 'starting';
  private eventsHandled = 0;
  private lastEventAt: Date | null = null;
  private lastError: string | null = null;
  private lastInvalidatedAt: Date | null = null;
  private positionLoaded = false;
  /** Set after an invalidate event: the next open must use `startAfter`. */
  private invalidatedAt: ResumeToken | null = null;
  private cursor: ChangeCursor | undefined;
  private running: Promise<void> | undefined;
  private readonly settleWaiters: Array<() => void> = [];

  constructor(private readonly deps: CollectionStreamDeps) {
    const { plan, options, database, checkpointer } = deps;
    this.dispatcher = new ChangeDispatcher(
      plan.handlers,
      {
        ...options.handlerRetry,
        onFailure: options.onHandlerFailure,
        deadLetters: deps.deadLetters,
        onDeadLetter: (id, handler) => deps.emit({ type: 'dead-lettered', key: this.key, id, handler }),
      },
      { consumer: options.consumer, connectionName: plan.connectionName, database, collection: plan.collection },
      checkpointer.key,
    );
    checkpointer.onSaveTrouble = (error) => {
      if (error !== null && this.state === 'open') this.setState('degraded', `cannot save the position: ${error}`);
      if (error === null && this.state === 'degraded') this.setState('open');
    };
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

  start(): void {
    this.running ??= this.supervise();
  }

  /** Resolves once the stream is open, failed or closed (whichever comes first). */
  whenSettled(): Promise<void> {
    if (this.state !== 'starting' && this.state !== 'reconnecting') return Promise.resolve();
    return new Promise((resolve) => this.settleWaiters.push(resolve));
  }

  /** Stop reading, let the in-flight event finish (bounded), save the position, close the cursor. */
  async stop(timeoutMs: number): Promise<void> {
    this.stopping.abort();
    if (this.running && !(await settlesWithin(this.running, timeoutMs))) {
      this.logger.warn(messages.drainTimedOut(this.key, timeoutMs));
    }
    await this.deps.checkpointer.flush();
    this.deps.checkpointer.dispose();
    await this.closeCursor();
    if (this.state !== 'failed') this.setState('closed');
  }

  status(): ChangeStreamStatus {
    const { plan, database, checkpointer } = this.deps;
    return {
      key: this.key,
      connectionName: plan.connectionName,
      database,
      collection: plan.collection,
      state: this.state,
      handlers: plan.handlers.map((h) => h.name),
      eventsHandled: this.eventsHandled,
      lastEventAt: this.lastEventAt,
      lastCheckpointAt: checkpointer.lastSavedAt,
      unsavedEvents: checkpointer.unsavedCount,
      lastInvalidatedAt: this.lastInvalidatedAt,
      lastError: this.lastError,
    };
  }

  private async supervise(): Promise<void> {
    const signal = this.stopping.signal;
    for (let attempt = 1; !signal.aborted && this.state !== 'failed'; attempt++) {
      let startAt: StartAt = null;
      try {
        await this.loadPosition();
        startAt = this.startAt();
        await this.consume(this.openCursor(startAt), startAt, signal, () => (attempt = 0));
      } catch (error) {
        if (signal.aborted) break;
        const lost = error instanceof InvalidStoredTokenError || (startAt !== null && isHistoryLost(error));
        if (lost) {
          if ((await this.onHistoryLost(error, startAt)) === 'fail') return;
          attempt = 0;
          continue;
        }
        const delay = backoffDelay(attempt, this.deps.options.reconnect.initialDelayMs, this.deps.options.reconnect.maxDelayMs);
        this.setState('reconnecting', errorText(error));
        this.logger.warn(messages.streamReconnecting(this.key, attempt, delay, errorText(error)));
        await sleep(delay, signal);
      } finally {
        await this.closeCursor();
      }
    }
  }

  private async loadPosition(): Promise<void> {
    if (this.positionLoaded) return;
    await this.deps.checkpointer.load();
    this.positionLoaded = true;
  }

  private startAt(): StartAt {
    if (this.invalidatedAt) return { startAfter: this.invalidatedAt };
    const position = this.deps.checkpointer.position;
    return position ? { resumeAfter: position } : null;
  }

  /** Reads until stopped or a handler fails for good (returns), or the stream breaks (throws). */
  private async consume(cursor: ChangeCursor, startAt: StartAt, signal: AbortSignal, onOpen: () => void): Promise<void> {
    const { checkpointer } = this.deps;
    // The first read runs the aggregate: once it returns, the stream is established.
    let change = await cursor.tryNext();
    this.invalidatedAt = null;
    if (startAt === null && change === null && cursor.resumeToken) {
      // Store the start position at once, so a crash before the first event cannot skip writes.
      checkpointer.advanceIdle(cursor.resumeToken);
      await checkpointer.flush();
    }
    this.setState(checkpointer.failing ? 'degraded' : 'open');
    onOpen();
    this.logger.log(messages.streamOpened(this.key, startAt ? 'stored' : 'now'));
    while (!signal.aborted) {
      if (change === null) {
        if (cursor.closed) throw new StreamClosedError(messages.streamClosedByServer(this.key));
        // Nothing in flight: the post-batch token keeps a quiet collection's position fresh.
        if (cursor.resumeToken) checkpointer.advanceIdle(cursor.resumeToken);
      } else {
        const outcome = await this.dispatcher.dispatch(change, signal);
        if (!outcome.ok) {
          if ('error' in outcome) this.fail(outcome.error.message);
          return;
        }
        this.eventsHandled++;
        this.lastEventAt = new Date();
        if (change.operationType === 'invalidate') {
          // Not acknowledged: resuming after an invalidate is refused; a restart replays drop + invalidate.
          this.logger.warn(messages.invalidated(this.key));
          this.invalidatedAt = change._id;
          this.lastInvalidatedAt = new Date();
          return; // the server closed this cursor; the supervisor reopens with `startAfter`
        }
        checkpointer.ack(change._id);
      }
      if (signal.aborted) return;
      if (checkpointer.unsavedCount >= this.deps.options.checkpoint.maxUnsavedEvents && !(await this.waitForCheckpointRoom(signal))) return;
      change = await cursor.tryNext();
    }
  }

  /** Called once the run-ahead bound is reached: waits for a save, so memory stays bounded while saves fail. */
  private async waitForCheckpointRoom(signal: AbortSignal): Promise<boolean> {
    const { checkpointer, options } = this.deps;
    this.logger.warn(messages.readingPaused(this.key, checkpointer.unsavedCount));
    for (let attempt = 1; checkpointer.unsavedCount >= options.checkpoint.maxUnsavedEvents; attempt++) {
      if (await checkpointer.flush()) break;
      if (!(await sleep(backoffDelay(attempt, options.checkpoint.intervalMs, 30_000), signal))) return false;
    }
    return !signal.aborted;
  }

  private async onHistoryLost(error: unknown, startAt: StartAt): Promise<HistoryLostAction> {
    const { plan, database, options, checkpointer } = this.deps;
    const reason = error instanceof InvalidStoredTokenError ? error.message : messages.historyLost(this.key, errorText(error));
    const position = startAt ? ('resumeAfter' in startAt ? startAt.resumeAfter : startAt.startAfter) : null;
    const lost: HistoryLost = { key: this.key, connectionName: plan.connectionName, database, collection: plan.collection, reason, position };
    let action: HistoryLostAction;
    try {
      action = typeof options.onHistoryLost === 'function' ? await options.onHistoryLost(lost) : options.onHistoryLost;
    } catch (callbackError) {
      this.logger.error(`onHistoryLost callback threw: ${errorText(callbackError)}`, (callbackError as Error)?.stack);
      action = 'fail';
    }
    this.deps.emit({ type: 'history-lost', action, ...lost });
    if (action === 'restart-from-now') {
      this.logger.error(messages.historyLostRestart(this.key, errorText(error)));
      checkpointer.restore(null);
      this.invalidatedAt = null;
      this.positionLoaded = true;
      return action;
    }
    this.fail(reason);
    return 'fail';
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
    this.setState('failed', reason);
    this.logger.error(`Stream ${this.key} failed: ${reason}`);
  }

  private setState(state: ChangeStreamState, reason: string | null = null): void {
    const previous = this.state;
    this.state = state;
    if (state === 'open') this.lastError = null;
    else if (reason) this.lastError = reason;
    if (previous !== state) this.deps.emit({ type: 'state', key: this.key, state, previous, reason });
    if (state !== 'starting' && state !== 'reconnecting') this.settleWaiters.splice(0).forEach((resolve) => resolve());
  }
}
