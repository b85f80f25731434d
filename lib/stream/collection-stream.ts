import { Logger } from '@nestjs/common';
import type { mongo } from 'mongoose';
import { isInvalidStoredTokenError } from '../change-stream.errors.js';
import { messages } from '../change-stream.messages.js';
import type { Checkpointer } from '../checkpoint/checkpointer.js';
import { backoffDelay, settlesWithin, sleep } from '../common/backoff.js';
import { errorText } from '../common/errors.js';
import type { ChangeStreamState, ChangeStreamStatus } from '../interfaces/change-stream-status.interface.js';
import type { ResumeToken, StreamPosition } from '../interfaces/resume-token-store.interface.js';
import { type LeftPosition, orphanStore, reportOrphanNotLeft, restoreCommand } from '../lease/orphan-position.js';
import type { StreamLeaseKeeper } from '../lease/stream-lease-keeper.js';
import type { StreamLease } from '../interfaces/lease-store.interface.js';
import type { ChangeCursor, ChangeEvent } from './change-cursor.js';
import { ChangeDispatcher } from './change-dispatcher.js';
import { readChanges, StreamOpenError } from './change-reader.js';
import { classifyOpenError, decideHistoryLost } from './history-lost.js';
import { clusterTimeOfToken } from './resume-token-time.js';
import { largeEventFailure, SplitEventCursor } from './split-events.js';
import { documentKeyOf } from './event-scheduler.js';
import { LeaseTerm } from './lease-term.js';
import { CatchUpReporter } from './catch-up-reporter.js';
import { LagTracker } from './lag-tracker.js';
import { StuckHandlerWatch } from './stuck-handler-watch.js';
import type { StreamPlan } from './stream-plan.js';
import type { CollectionStreamSetup } from './create-collection-stream.js';
import type { BaseState, StreamState } from './stream-state.js';

/** What a stream runs with; built by `createCollectionStream`. */
export interface CollectionStreamDeps extends CollectionStreamSetup {
  state: StreamState;
  checkpointer: Checkpointer;
  /** With leases on: this stream's lease on this instance. */
  lease?: StreamLeaseKeeper;
}

/** Where the next open starts: after a token, after an invalidate event, at a cluster time, or now. */
type StartAt = { resumeAfter: ResumeToken } | { startAfter: ResumeToken } | { startAtOperationTime: mongo.Timestamp } | null;

/** How long a shutdown step may take before the log says what shutdown waits for. */
const SHUTDOWN_NOTICE_MS = 1000;

/** A failure to read the stored position (the store is unreachable): retried quietly. */
class PositionLoadError extends Error {}

/**
 * One supervised change stream: (with leases, wait for the lease,) load the position, open,
 * read and dispatch (see `readChanges`), and reopen from the last acknowledged position when
 * the stream breaks.
 */
export class CollectionStream {
  private readonly logger = new Logger(CollectionStream.name);
  private readonly stopping = new AbortController();
  private readonly dispatcher: ChangeDispatcher;
  private readonly stuck: StuckHandlerWatch;
  private readonly lag = new LagTracker();
  private readonly catchUp: CatchUpReporter;
  private term: LeaseTerm | undefined;
  private readonly machine: StreamState;
  private eventsHandled = 0;
  /** Epoch ms of the last handled event (a number: set on every event, turned into a Date only for status). */
  private lastEventAt = 0;
  private lastInvalidatedAt: Date | null = null;
  /** Positions being left for the next holder after a lost lease (see `leaveOrphanPosition`): shutdown waits for them. */
  private readonly leavingOrphans = new Map<Promise<void>, LeftPosition>();
  /** The store's recovery methods for lost data, if it has all three. */
  private readonly leftPositionStore: ReturnType<typeof orphanStore>;
  /** Set after an invalidate event: the next open must use `startAfter`. */
  private invalidatedAt: ResumeToken | null = null;
  /** The server did not find this stored token (its pipeline changed since): resume at the token's cluster time instead. */
  private tokenFallback: { position: StreamPosition; startAt: StartAt } | null = null;
  /** Reopen attempts in a row that failed with the same error, and that error. */
  private consecutiveFailures = 0;
  private lastFailure: string | null = null;
  private cursor: ChangeCursor | undefined;
  private running: Promise<void> | undefined;
  private stopped: Promise<void> | undefined;

  constructor(private readonly deps: CollectionStreamDeps) {
    const { plan, options, database, checkpointer } = deps;
    this.machine = deps.state;
    this.leftPositionStore = orphanStore(deps.store);
    this.dispatcher = new ChangeDispatcher(
      plan.handlers,
      {
        ...options.handlerRetry,
        onFailure: options.onHandlerFailure,
        deadLetters: deps.deadLetters,
        hasUserPipeline: plan.hasUserPipeline,
        onDeadLetter: (id, handler) => deps.emit({ type: 'dead-lettered', key: this.key, id, handler }),
        telemetry: deps.telemetry,
      },
      { consumer: options.consumer, connectionName: plan.connectionName, database, collection: plan.collection },
      checkpointer.key,
    );
    this.stuck = new StuckHandlerWatch(this.key, options, () => this.term?.scheduler.events ?? [], (reason) => this.machine.degrade('handler', reason));
    this.catchUp = new CatchUpReporter(this.key, () => ({
      handled: this.eventsHandled,
      lagMs: this.state === 'open' || this.state === 'degraded' ? this.lag.lagMs() : null,
      inFlightForMs: this.status().inFlightForMs,
    }));
  }

  get key(): string {
    return this.deps.key;
  }

  /** Its position: the unit specs read it. */
  get checkpointer(): Checkpointer {
    return this.deps.checkpointer;
  }

  get plan(): StreamPlan {
    return this.deps.plan;
  }

  get database(): string {
    return this.deps.database;
  }

  get state(): ChangeStreamState {
    return this.machine.current;
  }

  private get base(): BaseState {
    return this.machine.baseState;
  }

  start(): void {
    this.running ??= this.supervise();
  }

  /** Resolves once the stream is open, standing by, failed or closed (whichever comes first). */
  whenSettled(): Promise<void> {
    return this.machine.whenSettled();
  }

  /**
   * Stop reading, let in-flight handlers finish, save the position, release the lease, close the
   * cursor: all within `timeoutMs`. Handlers still running then are aborted (`context.signal`)
   * and their events are not acknowledged. Idempotent.
   */
  stop(timeoutMs: number): Promise<void> {
    this.stopped ??= this.shutdown(Date.now() + timeoutMs, timeoutMs);
    return this.stopped;
  }

  /**
   * Hand the stream to another instance (this one holds more than its fair share): drain, save,
   * release. Only an open stream with nothing in flight is handed over (a failed one keeps its lease,
   * so its `stop` stays visible here rather than moving on to fail elsewhere), and only once it has a
   * position: on a server that gives none at open (no post-batch token, no operationTime) the next
   * holder would start from "now" and skip what this one read but did not handle. False otherwise.
   */
  handOver(reason: string): boolean {
    if (!this.term || !this.deps.lease?.current || this.base !== 'open') return false;
    return this.term.handOver(reason);
  }

  status(): ChangeStreamStatus {
    const { plan, database, checkpointer, lease } = this.deps;
    const events = this.term?.scheduler.events ?? [];
    const holder = lease?.holder;
    return {
      key: this.key,
      connectionName: plan.connectionName,
      database,
      collection: plan.collection,
      state: this.state,
      role: lease ? (lease.current ? 'active' : 'standby') : null,
      instanceId: lease?.instanceId ?? null,
      holder: holder?.holder ?? null,
      fence: holder?.fence ?? null,
      handlers: plan.handlers.map((h) => h.name),
      eventsHandled: this.eventsHandled,
      lastEventAt: this.lastEventAt === 0 ? null : new Date(this.lastEventAt),
      lastCheckpointAt: checkpointer.lastSavedAt,
      unsavedEvents: checkpointer.unsavedCount,
      lagMs: this.base === 'open' ? this.lag.lagMs() : null,
      lastCheckpointAgeMs: checkpointer.lastSavedAt ? Date.now() - checkpointer.lastSavedAt.getTime() : null,
      inFlightEvents: events.length,
      inFlightForMs: events.length === 0 ? null : Date.now() - Math.min(...events.map((e) => e.startedAt)),
      lastInvalidatedAt: this.lastInvalidatedAt,
      lastError: this.machine.lastError,
      consecutiveFailures: this.consecutiveFailures,
    };
  }

  /**
   * @internal A dead-letter replay: runs `task` under this stream's lease and in the order of
   * `change`'s document among the live events; refused (with who holds the stream) when this
   * instance is not consuming it.
   */
  replayInOrder<T>(change: ChangeEvent, task: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const { lease } = this.deps;
    const term = this.term;
    const refused = () => {
      const { state, holder } = this.status();
      return new Error(messages.replayRefused(this.key, state, lease && holder !== lease.instanceId ? holder ?? null : null));
    };
    const consuming = term && term.active && this.base !== 'failed' && (!lease || lease.current !== null);
    if (!consuming) return Promise.reject(refused());
    const key = term.scheduler.sequential ? null : documentKeyOf(change);
    return term.scheduler.runInOrder(change, key, task, refused);
  }

  private async shutdown(deadline: number, timeoutMs: number): Promise<void> {
    const left = () => Math.max(0, deadline - Date.now());
    const step = (what: string, work: Promise<unknown>) => this.shutdownStep(what, work, left);
    this.stopping.abort();
    const drained = await step('in-flight handlers to finish', this.stopReading());
    if (!drained) {
      this.logger.warn(messages.drainTimedOut(this.key, timeoutMs));
      this.term?.scheduler.abortInFlight();
    }
    const { checkpointer, lease } = this.deps;
    // A standby (or an instance that lost its lease) has nothing of its own to save.
    const holding = !lease || lease.current !== null;
    const flushed = !holding || (await step('the final save of the position', checkpointer.flush()));
    const saved = holding && flushed && checkpointer.unsavedCount === 0;
    if (holding && !saved) await this.reportFinalSaveFailed(step);
    // A lease lost before or during that flush: the position it reached may still have to be left.
    if (!(await step('the position to be left for the next holder', Promise.all(this.leavingOrphans.keys())))) {
      for (const pending of this.leavingOrphans.values()) reportOrphanNotLeft(this.key, pending, `no answer within shutdownTimeoutMs (${timeoutMs} ms)`, this.logger);
    }
    checkpointer.dispose();
    this.stuck.stop();
    this.catchUp.stop();
    // Handlers still running after the timeout: keep the lease until it expires (no more renewals),
    // or the next holder would handle their events while they still run.
    if (lease && drained) await step('the release of the lease', lease.release());
    else lease?.abandon();
    await step('the cursor to close', this.closeCursor());
    if (this.base !== 'failed') this.machine.setBase('closed');
    this.logger.log(messages.streamClosed(this.key, drained && saved, holding, checkpointer.position !== null));
  }

  /**
   * Resolves once reading stopped and nothing is in flight. A read the server never answers (a
   * hung getMore) must not hold that up: the cursor is closed at once, and a read still pending
   * once nothing is in flight is abandoned (the term is aborted: it can dispatch nothing more).
   */
  private stopReading(): Promise<void> {
    if (!this.running) return Promise.resolve();
    void this.closeCursor();
    const term = this.term;
    return term ? Promise.race([this.running, term.scheduler.drain()]) : this.running;
  }

  /** Waits for one shutdown step within what is left; says what it waits for once that takes more than a moment. */
  private async shutdownStep(what: string, work: Promise<unknown>, left: () => number): Promise<boolean> {
    const notice = setTimeout(() => this.logger.log(messages.shutdownWaiting(this.key, what, left())), SHUTDOWN_NOTICE_MS);
    notice.unref();
    try {
      return await settlesWithin(work, left());
    } finally {
      clearTimeout(notice);
    }
  }

  /**
   * The final save did not reach the store. If the store lost its data (Redis restarted empty) the
   * next holder would start from now: make the same last attempt as after a lost lease (leave the
   * position for the next holder), and log it with its restore command if that fails too.
   */
  private async reportFinalSaveFailed(step: (what: string, work: Promise<unknown>) => Promise<boolean>): Promise<void> {
    const { checkpointer } = this.deps;
    const position = checkpointer.position;
    const lease = this.term?.lease ?? null;
    const orphans = this.leftPositionStore;
    if (position === null || this.leavingOrphans.size > 0) {
      // Nothing reached, or a lost lease already leaves (or reports) the position.
      this.logger.warn(messages.finalSaveFailed(this.key, checkpointer.unsavedCount, null));
      return;
    }
    const restore = restoreCommand(this.key, position, lease !== null);
    if (orphans && lease) {
      let settled = false;
      const attempt = orphans.leaveOrphan(this.key, position, lease, checkpointer.savedThisTerm).then((kept) => {
        settled = true;
        if (kept) this.logger.warn(messages.orphanLeft(this.key, lease.holder));
      });
      await step('the position to be left for the next holder', attempt.catch(() => undefined));
      if (settled) {
        // The store answered: it kept its data (the events come again), or it now holds the position that was left.
        this.logger.warn(messages.finalSaveFailed(this.key, checkpointer.unsavedCount, null));
        return;
      }
    }
    this.logger.warn(messages.finalSaveFailed(this.key, checkpointer.unsavedCount, restore));
  }

  private async supervise(): Promise<void> {
    const { lease } = this.deps;
    this.stuck.start();
    this.catchUp.start();
    while (!this.stopping.signal.aborted && this.base !== 'failed') {
      if (lease && !lease.current) {
        // Stays `starting` until the first attempt answered: bootstrap then waits for the stream to open.
        const acquired = await lease.acquire(this.stopping.signal, (why) => {
          // Cannot even ask (Redis away): nobody may be consuming, so not a healthy standby.
          if ('error' in why) return this.machine.setBase('reconnecting', messages.waitingForLease(why.error));
          if (this.base !== 'standby') this.logger.log(messages.leaseStandby(this.key, lease.instanceId, why.heldBy?.holder ?? null));
          this.machine.setBase('standby');
        });
        if (!acquired || this.stopping.signal.aborted) break;
        this.logger.log(messages.leaseAcquired(this.key, lease.instanceId, acquired.fence));
        this.deps.emit({ type: 'role', key: this.key, role: 'active', instanceId: lease.instanceId, fence: acquired.fence, reason: 'lease acquired' });
      }
      const term = this.beginTerm();
      await this.consume(term);
      await term.finish();
    }
  }

  private beginTerm(): LeaseTerm {
    const { deps } = this;
    const term = new LeaseTerm({
      ...deps,
      dispatcher: this.dispatcher,
      logger: this.logger,
      stopping: this.stopping.signal,
      leftPositionStore: this.leftPositionStore,
      leaving: this.leavingOrphans,
      onHandled: (change) => {
        this.eventsHandled++;
        this.lastEventAt = Date.now();
        this.lag.handled(change);
      },
    });
    this.term = term;
    this.lag.reset();
    this.invalidatedAt = null;
    term.begin();
    return term;
  }

  /** Reads until the lease term ends (shutdown, lease lost, hand-over) or the stream fails; reopens what breaks. */
  private async consume(term: LeaseTerm): Promise<void> {
    const signal = term.abort.signal;
    for (let attempt = 1; !signal.aborted && this.base !== 'failed'; attempt++) {
      try {
        await this.loadPosition(term);
        const startAt = this.startAt();
        const end = await readChanges({
          cursor: this.openCursor(startAt),
          fromStoredPosition: startAt !== null,
          checkpointer: this.deps.checkpointer,
          scheduler: term.scheduler,
          handlersReady: this.deps.handlersReady ?? Promise.resolve(),
          signal,
          lag: this.lag,
          onOpen: () => {
            this.invalidatedAt = null;
            this.machine.setBase('open');
            this.logger.log(messages.streamOpened(this.key, openedFrom(startAt)));
          },
          // Not at the open: an error that repeats on the first read after every open must back off.
          onProgress: () => {
            attempt = 0;
            this.consecutiveFailures = 0;
            this.lastFailure = null;
          },
        });
        if (end.kind === 'invalidated') {
          // The server closed this cursor; reopen after the invalidate (resuming after it is refused).
          await term.scheduler.drain();
          this.logger.warn(messages.invalidated(this.key));
          this.invalidatedAt = end.token;
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
    const atOpen = error instanceof StreamOpenError ? error.cause : undefined;
    if (atOpen !== undefined && classifyOpenError(atOpen) === 'token-not-found' && this.fallBackToTokenTime(atOpen)) return;
    const beyondRetry = largeEventFailure(this.key, atOpen ?? error, atOpen !== undefined, this.plan.splitLargeEvents);
    if (beyondRetry) return this.fail(beyondRetry);
    const verdict = await decideHistoryLost(error, atOpen, this.startAt() !== null, {
      ...this.deps,
      key: this.key,
      position: this.invalidatedAt ? { token: this.invalidatedAt } : this.deps.checkpointer.position,
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
      this.machine.setBase('reconnecting', messages.waitingForStore(errorText(cause)));
      this.logger.debug(messages.waitingForStore(errorText(cause)));
    } else {
      this.machine.setBase('reconnecting', errorText(cause));
      this.logger.warn(messages.streamReconnecting(this.key, attempt, delay, errorText(cause)));
      this.deps.telemetry?.reconnected({ consumer: this.deps.options.consumer, database: this.database, collection: this.plan.collection });
    }
    await sleep(delay, term.abort.signal);
  }

  private async loadPosition(term: LeaseTerm): Promise<void> {
    if (term.positionLoaded) return;
    try {
      await this.deps.checkpointer.load();
    } catch (error) {
      if (isInvalidStoredTokenError(error)) throw error;
      throw new PositionLoadError(errorText(error));
    }
    term.positionLoaded = true;
  }

  private startAt(): StartAt {
    if (this.invalidatedAt) return { startAfter: this.invalidatedAt };
    const position = this.deps.checkpointer.position;
    if (this.tokenFallback && samePosition(this.tokenFallback.position, position)) return this.tokenFallback.startAt;
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
    if (this.invalidatedAt || !position || !('token' in position) || (this.tokenFallback && samePosition(this.tokenFallback.position, position))) return false;
    const time = clusterTimeOfToken(position.token);
    if (!time) return false;
    this.tokenFallback = { position, startAt: { startAtOperationTime: time } };
    this.logger.warn(messages.tokenNotFoundResumingAtTime(this.key, { t: time.t, i: time.i }, errorText(refusal)));
    return true;
  }

  private openCursor(startAt: StartAt): ChangeCursor {
    const { plan, options } = this.deps;
    const cursor = this.deps.openCursor(plan.pipeline, {
      ...(startAt ?? {}),
      ...(plan.fullDocument && plan.fullDocument !== 'default' ? { fullDocument: plan.fullDocument } : {}),
      ...(plan.fullDocumentBeforeChange && plan.fullDocumentBeforeChange !== 'off'
        ? { fullDocumentBeforeChange: plan.fullDocumentBeforeChange }
        : {}),
      maxAwaitTimeMS: options.maxAwaitTimeMS,
      ...(options.batchSize ? { batchSize: options.batchSize } : {}),
    } as mongo.ChangeStreamOptions);
    this.cursor = plan.splitLargeEvents ? new SplitEventCursor(cursor, this.key) : cursor;
    return this.cursor;
  }

  private async closeCursor(): Promise<void> {
    const cursor = this.cursor;
    this.cursor = undefined;
    await cursor?.close().catch(() => undefined);
  }

  private fail(reason: string): void {
    this.machine.setBase('failed', reason);
    this.logger.error(messages.streamFailed(this.key, reason));
  }
}

function samePosition(a: StreamPosition, b: StreamPosition | null): boolean {
  return a === b || (b !== null && JSON.stringify(a) === JSON.stringify(b));
}

function openedFrom(startAt: StartAt): Parameters<typeof messages.streamOpened>[1] {
  if (startAt === null) return 'now';
  return 'resumeAfter' in startAt ? 'token' : 'startAtOperationTime' in startAt ? 'time' : 'invalidate';
}

function startAtOf(position: StreamPosition | null): StartAt {
  if (position === null) return null;
  return 'token' in position ? { resumeAfter: position.token } : { startAtOperationTime: position.operationTime };
}
