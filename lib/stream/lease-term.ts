import type { Logger } from '@nestjs/common';
import type { ChangeStreamEvent } from '../change-stream.events.js';
import { messages } from '../change-stream.messages.js';
import type { ResolvedChangeStreamOptions } from '../options/module-options.js';
import type { Checkpointer } from '../checkpoint/checkpointer.js';
import type { StreamLease } from '../interfaces/lease-store.interface.js';
import type { StreamLeaseKeeper } from '../lease/stream-lease-keeper.js';
import type { ChangeEvent } from '../common/change-event.js';
import type { ChangeDispatcher } from './change-dispatcher.js';
import { EventScheduler } from './event-scheduler.js';
import type { StreamPlan } from './stream-plan.js';
import type { LeavingPositions } from './leaving-positions.js';
import type { StreamState } from './stream-state.js';
import { collectionDocumentKeyOf, namespaceDocumentKeyOf } from '../common/document-key.js';

/** What a lease term works with: its stream's parts, shared by every term of the stream. */
export interface LeaseTermContext {
  key: string;
  plan: StreamPlan;
  options: ResolvedChangeStreamOptions;
  dispatcher: ChangeDispatcher;
  checkpointer: Checkpointer;
  state: StreamState;
  logger: Logger;
  emit: (event: ChangeStreamEvent) => void;
  /** With leases on: this stream's lease on this instance. */
  lease?: StreamLeaseKeeper;
  /** Aborted at shutdown: ends the term. */
  stopping: AbortSignal;
  /** Positions left for the next holder when the store lost the stream's data. */
  leftPositions: LeavingPositions;
  /** After each handled event. */
  onHandled: (change: ChangeEvent) => void;
}

/**
 * Why a term ended early: the lease was lost (nothing more may be saved), handed over (drain and
 * save first), paused (as a hand-over, then the stream waits to be resumed), or an instance left a
 * position when the store lost this stream's data (drain, keep the lease, resume from it).
 */
export interface LeaseTermEnd {
  kind: 'lost' | 'handover' | 'pause' | 'reload';
  reason: string;
}

/**
 * One period in which this instance consumes the stream: the whole process lifetime without
 * leases, else from acquiring the lease to losing or releasing it. Its scheduler numbers events
 * from 1, and its signal stops reading (shutdown, lease lost, hand-over, reload).
 */
export class LeaseTerm {
  readonly abort = new AbortController();
  readonly scheduler: EventScheduler;
  /** The lease it runs under (leases on). */
  readonly lease: StreamLease | null;
  /** Set when it ended early (see `LeaseTermEnd`). */
  end?: LeaseTermEnd;
  /** The stored position was read in this term (or a history-lost verdict replaced it). */
  positionLoaded = false;
  /** A pause asked for before the stream had a position (see `pause`). */
  private pendingPause: string | null = null;
  /** The look-out for a left position, cleared when the term ends. */
  private timer?: NodeJS.Timeout;

  constructor(private readonly context: LeaseTermContext) {
    const { lease, options, plan, stopping, checkpointer, state } = context;
    const abort = this.abort;
    const stop = () => abort.abort();
    if (stopping.aborted) abort.abort();
    stopping.addEventListener('abort', stop, { once: true });
    abort.signal.addEventListener('abort', () => stopping.removeEventListener('abort', stop), {
      once: true,
    });
    this.lease = lease?.current ?? null;
    this.scheduler = new EventScheduler({
      mayDispatch: lease && (() => lease.stillValid()),
      fence: this.lease?.fence ?? null,
      concurrency: Math.min(options.concurrency, plan.concurrencyCap ?? Infinity),
      signalPerAttempt: options.onHandlerTimeout === 'abort',
      dispatcher: context.dispatcher,
      ...(plan.scope.kind === 'database' && { documentKeyOf: collectionDocumentKeyOf }),
      ...(plan.scope.kind === 'deployment' && { documentKeyOf: namespaceDocumentKeyOf }),
      checkpointer,
      stopping: abort.signal,
      onHandled: (change) => {
        context.onHandled(change);
        // After the acknowledgement that follows (same tick): the position a deferred pause waits for.
        if (this.pendingPause !== null) queueMicrotask(() => this.pauseOncePositioned());
      },
      onFailed: (error) => (state.lastError = error.message),
    });
  }

  /** Not ended and not stopping: it may still read and dispatch. */
  get active(): boolean {
    return !this.end && !this.abort.signal.aborted;
  }

  /** Starts the term: the checkpointer forgets the previous one, and the lease-lost reaction and the left-position watch are set. */
  begin(): void {
    const { lease, checkpointer } = this.context;
    checkpointer.begin(this.lease);
    this.abort.signal.addEventListener('abort', () => clearTimeout(this.timer), { once: true });
    lease?.whenLost((reason) => this.leaseLost(reason));
    this.watchForLeftPosition();
  }

  /** Ends the term for a hand-over when nothing is in flight and a position exists (see `CollectionStream.handOver`). */
  handOver(reason: string): boolean {
    if (this.end || this.scheduler.events.length > 0 || this.context.checkpointer.position === null)
      return false;
    this.end = { kind: 'handover', reason };
    this.abort.abort();
    return true;
  }

  /**
   * Ends the term for a pause: in-flight handlers finish, the position is saved, the lease released.
   * With no position at all yet (a server that gives none at open, and nothing handled), whoever
   * reads next would start from now and skip what is written during the pause: it waits for the
   * first acknowledged event instead.
   */
  pause(reason: string): boolean {
    if (this.end || this.abort.signal.aborted) return false;
    if (this.positionLoaded && this.context.checkpointer.position === null) {
      if (this.pendingPause === null)
        this.context.logger.warn(messages.streamPauseDeferred(this.context.key));
      this.pendingPause = reason;
      return true;
    }
    this.pendingPause = null;
    this.end = { kind: 'pause', reason };
    this.abort.abort();
    return true;
  }

  /** Resumed before a deferred pause took effect. */
  cancelPause(): void {
    this.pendingPause = null;
  }

  private pauseOncePositioned(): void {
    if (this.pendingPause !== null && this.context.checkpointer.position !== null)
      this.pause(this.pendingPause);
  }

  /**
   * Shutdown: in-flight handlers finish in `CollectionStream.stop` (bounded). Lease lost: their
   * context.signal is aborted and nothing more is saved (the new holder redoes them). Hand-over:
   * they finish, the position is saved, and the lease released.
   */
  async finish(): Promise<void> {
    const { lease, checkpointer, state, logger, key, emit, stopping, options } = this.context;
    clearTimeout(this.timer);
    const end = this.end;
    const emitStandby = (reason: string) =>
      emit({
        type: 'role',
        key,
        role: 'standby',
        instanceId: lease!.instanceId,
        fence: null,
        reason,
      });
    if (!end || stopping.aborted || end.kind === 'reload') {
      // Reload: still the holder, the next term's `load` resumes from the position that was left.
      await this.scheduler.drain();
      return;
    }
    if (end.kind === 'lost') {
      // Lost for want of answers: nobody is known to read the stream, so not a healthy standby.
      if (lease!.storeSilent)
        state.setBase(
          'reconnecting',
          messages.waitingForLease(
            messages.leaseStoreSilent(options.leases ? options.leases.ttlMs : 0),
          ),
        );
      else state.setBase('standby');
      logger.warn(messages.leaseLost(key, lease!.instanceId, end.reason));
      emitStandby(`lease lost: ${end.reason}`);
      await this.scheduler.drain();
      return;
    }
    await this.scheduler.drain();
    const saved = await checkpointer.flush();
    if (end.kind === 'pause') {
      await lease?.release();
      state.setBase('paused');
      logger.log(messages.streamPauseDrained(key, saved, lease !== undefined));
      if (lease) emitStandby(`paused: ${end.reason}`);
      return;
    }
    await lease!.release();
    state.setBase('standby');
    logger.log(messages.leaseHandedOver(key, lease!.instanceId, end.reason, saved));
    emitStandby(`handed over: ${end.reason}`);
  }

  /** At once, not when the reader next looks: nothing more is acknowledged, running handlers are told. */
  private leaseLost(reason: string): void {
    const { checkpointer, leftPositions } = this.context;
    if (!this.end || this.end.kind === 'reload') this.end = { kind: 'lost', reason };
    const position = checkpointer.positionWithBackfill;
    checkpointer.suspend();
    this.scheduler.abortInFlight();
    this.abort.abort();
    // If the store lost its data, the next holder would start from nothing: leave it where this one got to.
    if (position && this.lease)
      leftPositions.leave(position, this.lease, checkpointer.savedThisTerm);
  }

  /**
   * A holder that did not find a left position at its start (the instance that lost its lease
   * when the store lost its data leaves it once it notices and Redis answers, up to a TTL and more
   * later) looks for one every renew interval, and resumes from it when it appears.
   */
  private watchForLeftPosition(): void {
    const { options, checkpointer, leftPositions } = this.context;
    if (!this.lease || options.leases === false || !leftPositions.supported) return;
    let looking = false;
    this.timer = setInterval(() => {
      if (looking || !this.active || !this.positionLoaded || checkpointer.leftPositionPending)
        return;
      looking = true;
      leftPositions
        .find()
        .then(
          (left) => {
            if (!left || !this.active) return;
            this.end = {
              kind: 'reload',
              reason: 'an instance left a position when the store lost its data',
            };
            this.abort.abort();
          },
          () => undefined, // the store is away: the lease and the saves report it
        )
        .finally(() => (looking = false));
    }, options.leases.renewIntervalMs);
    this.timer.unref();
  }
}
