import { Logger } from '@nestjs/common';
import type { Connection, mongo } from 'mongoose';
import { InvalidStoredTokenError } from '../change-stream.errors.js';
import { messages } from '../change-stream.messages.js';
import type { ResolvedChangeStreamOptions } from '../change-stream.options.js';
import type { Checkpointer } from '../checkpoint/checkpointer.js';
import type { ChangeStreamState, ChangeStreamStatus } from '../interfaces/change-stream-status.interface.js';
import type { ResumeTokenStore } from '../interfaces/resume-token-store.interface.js';
import { backoffDelay, settlesWithin, sleep } from './backoff.js';
import { ChangeDispatcher, errorText } from './change-dispatcher.js';
import type { StreamPlan } from './stream-plan.js';

/** Server errors after which reopening cannot help: the position is gone. */
const HISTORY_LOST_CODES = new Set([286 /* ChangeStreamHistoryLost */, 280 /* ChangeStreamFatalError */]);

class StreamClosedError extends Error {}

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
  private positionLoaded = false;
  private cursor: mongo.ChangeStream | undefined;
  private running: Promise<void> | undefined;
  private readonly openWaiters: Array<() => void> = [];

  constructor(
    readonly plan: StreamPlan,
    private readonly connection: Connection,
    readonly database: string,
    private readonly store: ResumeTokenStore,
    private readonly checkpointer: Checkpointer,
    private readonly options: ResolvedChangeStreamOptions,
  ) {
    this.dispatcher = new ChangeDispatcher(
      plan.handlers,
      options.handlerRetry,
      { consumer: options.consumer, connectionName: plan.connectionName, database, collection: plan.collection },
      checkpointer.key,
    );
  }

  get key(): string {
    return this.checkpointer.key;
  }

  start(): void {
    this.running ??= this.supervise();
  }

  /** Resolves once the stream is open, failed or closed (whichever comes first). */
  whenSettled(): Promise<void> {
    if (this.state !== 'starting' && this.state !== 'reconnecting') return Promise.resolve();
    return new Promise((resolve) => this.openWaiters.push(resolve));
  }

  /** Stop reading, let the in-flight event finish (bounded), save the position, close the cursor. */
  async stop(timeoutMs: number): Promise<void> {
    this.stopping.abort();
    if (this.running) {
      const drained = await settlesWithin(this.running, timeoutMs);
      if (!drained) this.logger.warn(messages.drainTimedOut(this.key, timeoutMs));
    }
    await this.checkpointer.flush();
    this.checkpointer.dispose();
    await this.closeCursor();
    if (this.state !== 'failed') this.setState('closed');
  }

  status(): ChangeStreamStatus {
    return {
      key: this.key,
      connectionName: this.plan.connectionName,
      database: this.database,
      collection: this.plan.collection,
      state: this.state,
      handlers: this.plan.handlers.map((h) => h.name),
      eventsHandled: this.eventsHandled,
      lastEventAt: this.lastEventAt,
      lastCheckpointAt: this.checkpointer.lastSavedAt,
      lastError: this.lastError,
    };
  }

  private async supervise(): Promise<void> {
    const signal = this.stopping.signal;
    for (let attempt = 1; !signal.aborted; attempt++) {
      try {
        await this.loadPosition();
        await this.consume(signal, () => (attempt = 0));
      } catch (error) {
        if (signal.aborted) break;
        if (error instanceof InvalidStoredTokenError || HISTORY_LOST_CODES.has(codeOf(error) ?? 0)) {
          const text = error instanceof InvalidStoredTokenError ? error.message : messages.historyLost(this.key, errorText(error));
          return this.fail(text);
        }
        const delay = backoffDelay(attempt, this.options.reconnect.initialDelayMs, this.options.reconnect.maxDelayMs);
        this.lastError = errorText(error);
        this.setState('reconnecting');
        this.logger.warn(messages.streamReconnecting(this.key, attempt, delay, this.lastError));
        await sleep(delay, signal);
      } finally {
        await this.closeCursor();
      }
      if (this.state === 'failed') return;
    }
  }

  private async loadPosition(): Promise<void> {
    if (this.positionLoaded) return;
    this.checkpointer.restore(await this.store.load(this.key));
    this.positionLoaded = true;
  }

  /** Reads until stopped, a handler fails for good (returns), or the stream breaks (throws). */
  private async consume(signal: AbortSignal, onOpen: () => void): Promise<void> {
    const resumeAfter = this.checkpointer.position;
    const cursor = this.open(resumeAfter);
    // The first read runs the aggregate: once it returns, the stream is established.
    let change = await cursor.tryNext();
    if (resumeAfter === null && change === null && cursor.resumeToken) {
      // Store the start position at once, so a crash before the first event cannot skip writes.
      this.checkpointer.advanceIdle(cursor.resumeToken);
      await this.checkpointer.flush();
    }
    this.lastError = null;
    this.setState('open');
    onOpen();
    this.logger.log(messages.streamOpened(this.key, resumeAfter ? 'stored' : 'now'));
    while (!signal.aborted) {
      if (change === null) {
        if (cursor.closed) throw new StreamClosedError(messages.streamClosedByServer(this.key));
        // Nothing in flight: the post-batch token keeps a quiet collection's position fresh.
        if (cursor.resumeToken) this.checkpointer.advanceIdle(cursor.resumeToken);
      } else {
        const outcome = await this.dispatcher.dispatch(change, signal);
        if (!outcome.ok) {
          if ('error' in outcome) this.fail(outcome.error.message);
          return;
        }
        this.checkpointer.ack(change._id);
        this.eventsHandled++;
        this.lastEventAt = new Date();
      }
      if (signal.aborted) return;
      change = await cursor.tryNext();
    }
  }

  private open(resumeAfter: mongo.ResumeToken | null): mongo.ChangeStream {
    const { plan, options } = this;
    const db = this.connection.db;
    if (!db) throw new Error(`mongoose connection "${plan.connectionName}" is not connected`);
    this.cursor = db.collection(plan.collection).watch(plan.pipeline, {
      ...(resumeAfter ? { resumeAfter } : {}),
      ...(plan.fullDocument && plan.fullDocument !== 'default' ? { fullDocument: plan.fullDocument } : {}),
      ...(plan.fullDocumentBeforeChange && plan.fullDocumentBeforeChange !== 'off'
        ? { fullDocumentBeforeChange: plan.fullDocumentBeforeChange }
        : {}),
      maxAwaitTimeMS: options.maxAwaitTimeMS,
      ...(options.batchSize ? { batchSize: options.batchSize } : {}),
    });
    // Errors also surface through tryNext; this listener only keeps them from being unhandled.
    this.cursor.on('error', () => undefined);
    return this.cursor;
  }

  private async closeCursor(): Promise<void> {
    const cursor = this.cursor;
    this.cursor = undefined;
    await cursor?.close().catch(() => undefined);
  }

  private fail(reason: string): void {
    this.lastError = reason;
    this.setState('failed');
    this.logger.error(`Stream ${this.key} failed: ${reason}`);
  }

  private setState(state: ChangeStreamState): void {
    this.state = state;
    if (state !== 'starting' && state !== 'reconnecting') this.openWaiters.splice(0).forEach((resolve) => resolve());
  }
}

function codeOf(error: unknown): number | undefined {
  return typeof error === 'object' && error !== null ? (error as { code?: number }).code : undefined;
}
