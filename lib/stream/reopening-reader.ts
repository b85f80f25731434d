import type { Logger } from '@nestjs/common';
import type { mongo } from 'mongoose';
import { messages } from '../change-stream.messages.js';
import { backoffDelay, sleep } from '../common/backoff.js';
import { BACKFILL_MAX_AWAIT_MS } from '../options/defaults.js';
import { errorText } from '../common/errors.js';
import type { ResumeToken, StreamPosition } from '../interfaces/position-store.interface.js';
import type { ChangeCursor } from '../common/change-event.js';
import { readChanges, StreamOpenError } from './change-reader.js';
import type { CollectionStreamDeps } from './collection-stream-deps.js';
import {
  classifyOpenError,
  CollectionsHistoryLostError,
  decideHistoryLost,
} from './history-lost.js';
import type { LagTracker } from './lag-tracker.js';
import type { LeaseTerm } from './lease-term.js';
import { clusterTimeOfToken } from '../position/resume-token-time.js';
import { largeEventFailure, SplitEventCursor } from './split-events.js';
import { isStartVerdict } from './start-verdicts.js';

/** Where the next open starts: after a token, after an invalidate event, at a cluster time, or now. */
type StartAt =
  | { resumeAfter: ResumeToken }
  | { startAfter: ResumeToken }
  | { startAtOperationTime: mongo.Timestamp }
  | null;

/** A failure to read the stored position (the store is unreachable): retried quietly. */
class PositionLoadError extends Error {}

/**
 * Reads a lease term's events (see `readChanges`): loads the position, opens the cursor where
 * it says, and reopens from the last acknowledged position what breaks (with backoff, a verdict
 * on a lost history, a fallback for a token the server no longer finds).
 */
export class ReopeningReader {
  /** Set after an invalidate event: opens use `startAfter` it until the position moves past `invalidatedPosition`. */
  private invalidatedAt: ResumeToken | null = null;
  /** The position when the invalidate came (its token is never one: see `startAt`). */
  private invalidatedPosition: StreamPosition | null = null;
  /** The server did not find this stored token (its pipeline changed since): resume at the token's cluster time instead. */
  private tokenFallback: { position: StreamPosition; startAt: StartAt } | null = null;
  /** Reopen attempts in a row that failed with the same error, and that error. */
  consecutiveFailures = 0;
  private lastFailure: string | null = null;
  lastInvalidatedAt: Date | null = null;
  private cursor: ChangeCursor | undefined;
  /** The cursor was opened with the backfill's shorter maxAwaitTimeMS. */
  private shortAwait = false;

  constructor(
    private readonly deps: CollectionStreamDeps,
    private readonly lag: LagTracker,
    private readonly logger: Logger,
  ) {}

  private get key(): string {
    return this.deps.key;
  }

  /** A new lease term starts from the stored position, not after an invalidate of the previous one. */
  beginTerm(): void {
    this.invalidatedAt = null;
  }

  /** Reads until the lease term ends (shutdown, lease lost, hand-over) or the stream fails; reopens what breaks. */
  async consume(term: LeaseTerm): Promise<void> {
    const signal = term.abort.signal;
    for (let attempt = 1; !signal.aborted && this.deps.state.baseState !== 'failed'; attempt++) {
      try {
        await this.loadPosition(term);
        const startAt = this.startAt();
        const end = await readChanges({
          cursor: this.openCursor(startAt, term),
          fromStoredPosition: startAt !== null,
          notAPosition: startAt && 'startAfter' in startAt ? startAt.startAfter : null,
          checkpointer: this.deps.checkpointer,
          scheduler: term.scheduler,
          handlersReady: this.deps.handlersReady ?? Promise.resolve(),
          signal,
          lag: this.lag,
          onOpen: () => {
            this.deps.state.setBase('open');
            this.logger.log(messages.streamOpened(this.key, openedFrom(startAt)));
          },
          // Not at the open: an error that repeats on the first read after every open must back off.
          onProgress: () => {
            attempt = 0;
            this.consecutiveFailures = 0;
            this.lastFailure = null;
          },
          // A backfill started (on demand) or ended since the open: idle reads change their maxAwaitTimeMS.
          reopenWhenIdle: () => this.awaitChanged(),
        });
        if (end.kind === 'reopen') {
          attempt = 0;
        } else if (end.kind === 'invalidated') {
          // The server closed this cursor; reopen after the invalidate (resuming after it is refused).
          await term.scheduler.drain();
          this.logger.warn(messages.invalidated(this.key));
          this.invalidatedAt = end.token;
          this.invalidatedPosition = this.deps.checkpointer.position;
          this.lastInvalidatedAt = new Date();
          attempt = 0;
        } else if (end.kind === 'failed') {
          await term.scheduler.drain();
          // The failure itself: `lastError` may since have been cleared (a stuck handler that recovered).
          this.fail(term.scheduler.failure?.message ?? 'a handler failed');
        }
      } catch (error) {
        if (signal.aborted) break;
        await this.recover(term, error, attempt);
      } finally {
        await this.closeCursor();
      }
    }
  }

  /** After a broken stream: a verdict on the position (only at open), or a reopen with backoff. */
  private async recover(term: LeaseTerm, error: unknown, attempt: number): Promise<void> {
    // Events still in flight would be read again by the reopened stream: let them finish first.
    await term.scheduler.drain();
    // The policy said `fail` for a collection whose history fell off the oplog (see `readStartPosition`).
    if (error instanceof CollectionsHistoryLostError) return this.fail(error.message);
    const atOpen = error instanceof StreamOpenError ? error.cause : undefined;
    if (
      atOpen !== undefined &&
      classifyOpenError(atOpen) === 'token-not-found' &&
      this.fallBackToTokenTime(atOpen)
    )
      return;
    const beyondRetry = largeEventFailure(
      this.key,
      atOpen ?? error,
      atOpen !== undefined,
      this.deps.plan.splitLargeEvents,
    );
    if (beyondRetry) return this.fail(beyondRetry);
    const verdict = await decideHistoryLost(error, atOpen, this.startAt() !== null, {
      ...this.deps,
      key: this.key,
      position: this.invalidatedAt
        ? { token: this.invalidatedAt }
        : this.deps.checkpointer.position,
    });
    if (verdict?.action === 'fail') return this.fail(verdict.reason);
    if (verdict?.action === 'restart-from-now') {
      this.deps.checkpointer.restore(null);
      this.invalidatedAt = null;
      term.positionLoaded = true;
      return;
    }
    const { initialDelayMs, maxDelayMs } = this.deps.options.reconnect;
    const delay = backoffDelay(attempt, initialDelayMs, maxDelayMs);
    const cause = atOpen ?? error;
    const text = errorText(cause);
    this.consecutiveFailures = text === this.lastFailure ? this.consecutiveFailures + 1 : 1;
    this.lastFailure = text;
    if (error instanceof PositionLoadError) {
      // The store's unavailability is reported once, at startup or by the client; here only the state says it.
      this.deps.state.setBase('reconnecting', messages.waitingForStore(errorText(cause)));
      this.logger.debug(messages.waitingForStore(errorText(cause)));
    } else {
      this.deps.state.setBase('reconnecting', errorText(cause));
      this.logger.warn(messages.streamReconnecting(this.key, attempt, delay, errorText(cause)));
      this.deps.telemetry?.reconnected({
        consumer: this.deps.options.consumer,
        database: this.deps.database,
        collection: this.deps.plan.collection,
      });
    }
    await sleep(delay, term.abort.signal);
  }

  private async loadPosition(term: LeaseTerm): Promise<void> {
    if (term.positionLoaded) return;
    try {
      await this.deps.checkpointer.load();
      this.deps.backfill?.beginTerm(this.deps.checkpointer.backfill.loaded);
    } catch (error) {
      // Not the store: an oplog read that failed at the start is retried like a broken stream, and said so.
      if (isStartVerdict(error)) throw error;
      throw new PositionLoadError(errorText(error));
    }
    term.positionLoaded = true;
  }

  /**
   * After an invalidate, `startAfter` it until an event (or a later post-batch token) moved the
   * position: `resumeAfter` an invalidate is refused (InvalidResumeToken), so a reopen before
   * anything new was read (a network error on a quiet collection) must not fall back to a position.
   */
  private startAt(): StartAt {
    const position = this.deps.checkpointer.position;
    if (this.invalidatedAt && sameOrBothNull(this.invalidatedPosition, position))
      return { startAfter: this.invalidatedAt };
    this.invalidatedAt = null;
    if (this.tokenFallback && samePosition(this.tokenFallback.position, position))
      return this.tokenFallback.startAt;
    return startAtOf(position);
  }

  /**
   * Resume tokens are tied to the pipeline that produced them: after a deploy changed the
   * server-side filter (another handler set), mongod may not find the stored token (280). Its
   * cluster time still says where the stream was: reopen there (inclusive, so events at that time
   * come again) instead of calling the position lost. False when the token's time is unknown.
   */
  private fallBackToTokenTime(refusal: unknown): boolean {
    const position = this.deps.checkpointer.position;
    if (
      this.invalidatedAt ||
      !position ||
      !('token' in position) ||
      (this.tokenFallback && samePosition(this.tokenFallback.position, position))
    )
      return false;
    const time = clusterTimeOfToken(position.token);
    if (!time) return false;
    this.tokenFallback = { position, startAt: { startAtOperationTime: time } };
    this.logger.warn(
      messages.tokenNotFoundResumingAtTime(this.key, { t: time.t, i: time.i }, errorText(refusal)),
    );
    return true;
  }

  /** An idle getMore waits maxAwaitTimeMS, and every backfill chunk's window waits for one. */
  private maxAwaitTimeMS(): number {
    const { maxAwaitTimeMS } = this.deps.options;
    return this.deps.backfill?.active
      ? Math.min(maxAwaitTimeMS, BACKFILL_MAX_AWAIT_MS)
      : maxAwaitTimeMS;
  }

  /** The cursor's maxAwaitTimeMS is no longer the one a backfill (or its end) wants. */
  private awaitChanged(): boolean {
    const short = this.maxAwaitTimeMS() < this.deps.options.maxAwaitTimeMS;
    return short !== this.shortAwait;
  }

  private openCursor(startAt: StartAt, term: LeaseTerm): ChangeCursor {
    const { plan, options, backfill, checkpointer } = this.deps;
    const maxAwaitTimeMS = this.maxAwaitTimeMS();
    this.shortAwait = maxAwaitTimeMS < options.maxAwaitTimeMS;
    const cursor = this.deps.openCursor(plan.pipeline, {
      ...(startAt ?? {}),
      ...(plan.fullDocument && plan.fullDocument !== 'default'
        ? { fullDocument: plan.fullDocument }
        : {}),
      ...(plan.fullDocumentBeforeChange && plan.fullDocumentBeforeChange !== 'off'
        ? { fullDocumentBeforeChange: plan.fullDocumentBeforeChange }
        : {}),
      maxAwaitTimeMS,
      ...(options.batchSize ? { batchSize: options.batchSize } : {}),
    } as mongo.ChangeStreamOptions);
    this.cursor = plan.splitLargeEvents ? new SplitEventCursor(cursor, this.key) : cursor;
    if (backfill) {
      const { dispatchedSeq } = term.scheduler;
      const acknowledged = checkpointer.acknowledgedSeq;
      this.cursor = backfill.wrap(this.cursor, dispatchedSeq, acknowledged, term.abort.signal);
    }
    return this.cursor;
  }

  async closeCursor(): Promise<void> {
    const cursor = this.cursor;
    this.cursor = undefined;
    await cursor?.close().catch(() => undefined);
  }

  private fail(reason: string): void {
    this.deps.state.setBase('failed', reason);
    this.logger.error(messages.streamFailed(this.key, reason));
  }
}

function samePosition(a: StreamPosition, b: StreamPosition | null): boolean {
  return a === b || (b !== null && JSON.stringify(a) === JSON.stringify(b));
}

function sameOrBothNull(a: StreamPosition | null, b: StreamPosition | null): boolean {
  return a === null ? b === null : samePosition(a, b);
}

function openedFrom(startAt: StartAt): Parameters<typeof messages.streamOpened>[1] {
  if (startAt === null) return 'now';
  return 'resumeAfter' in startAt
    ? 'token'
    : 'startAtOperationTime' in startAt
      ? 'time'
      : 'invalidate';
}

function startAtOf(position: StreamPosition | null): StartAt {
  if (position === null) return null;
  return 'token' in position
    ? { resumeAfter: position.token }
    : { startAtOperationTime: position.operationTime };
}
