import { Logger } from '@nestjs/common';
import { messages } from '../change-stream.messages.js';
import type { Checkpointer } from '../checkpoint/checkpointer.js';
import type {
  ChangeStreamState,
  ChangeStreamStatus,
  StreamPause,
} from '../interfaces/change-stream-status.interface.js';
import type { StreamHeadroom } from '../headroom/stream-headroom.js';
import type { StreamLeaseKeeper } from '../lease/stream-lease-keeper.js';
import type { StreamBackfill } from '../backfill/stream-backfill.js';
import { BackfillWiring } from './backfill-wiring.js';
import { streamLoggerContext } from './stream-scope.js';
import { CatchUpReporter } from './catch-up-reporter.js';
import type { ChangeEvent } from '../common/change-event.js';
import type { ChangeDispatcher } from './change-dispatcher.js';
import type { CollectionStreamSetup } from './create-collection-stream.js';
import { HeldStreamActions } from './held-stream-actions.js';
import { LagTracker } from './lag-tracker.js';
import { LeaseTerm } from './lease-term.js';
import { LeavingPositions } from './leaving-positions.js';
import { ReopeningReader } from './reopening-reader.js';
import { shutdownStep } from './shutdown-step.js';
import type { PauseGate } from './pause-gate.js';
import type { StreamPlan } from './stream-plan.js';
import { StreamPauses } from './stream-pauses.js';
import type { StreamState } from './stream-state.js';
import { streamStatus } from './stream-status.js';
import { StuckHandlerWatch } from './stuck-handler-watch.js';

/** What a stream runs with; built by `createCollectionStream`. */
export interface CollectionStreamDeps extends CollectionStreamSetup {
  state: StreamState;
  checkpointer: Checkpointer;
  dispatcher: ChangeDispatcher;
  /** With leases on: this stream's lease on this instance. */
  lease?: StreamLeaseKeeper;
  /** Its history headroom, updated by its connection's oplog sampler. */
  headroom?: StreamHeadroom;
  /** Handlers declared with `backfill`: their runs. */
  backfill?: StreamBackfill;
}

/**
 * One supervised change stream: (with leases, wait for the lease,) load the position, open,
 * read and dispatch (see `readChanges`), and reopen from the last acknowledged position when
 * the stream breaks.
 */
export class CollectionStream {
  private readonly logger: Logger;
  private readonly stopping = new AbortController();
  private readonly stuck: StuckHandlerWatch;
  private readonly lag = new LagTracker();
  private readonly catchUp: CatchUpReporter;
  private readonly backfills: BackfillWiring;
  private readonly held: HeldStreamActions;
  private term: LeaseTerm | undefined;
  private readonly streamState: StreamState;
  private eventsHandled = 0;
  /** Epoch ms of the last handled event (a number: set on every event, turned into a Date only for status). */
  private lastEventAt = 0;
  private readonly leftPositions: LeavingPositions;
  private readonly reader: ReopeningReader;
  private running: Promise<void> | undefined;
  private stopped: Promise<void> | undefined;
  private readonly pausing: StreamPauses;
  /** Paused at run time, here or fleet-wide (see `pause`). */
  readonly pauses: PauseGate;

  constructor(private readonly deps: CollectionStreamDeps) {
    this.logger = new Logger(streamLoggerContext(deps.plan.scope));
    const { options } = deps;
    this.streamState = deps.state;
    this.reader = new ReopeningReader(deps, this.lag, this.logger);
    this.leftPositions = new LeavingPositions(
      deps.key,
      deps.store,
      this.stopping.signal,
      this.logger,
    );
    this.stuck = new StuckHandlerWatch(
      this.key,
      options,
      () => this.term?.scheduler.events ?? [],
      (reason) => this.streamState.degrade('handler', reason),
    );
    this.pausing = new StreamPauses({ ...deps, logger: this.logger, term: () => this.term });
    this.pauses = this.pausing.gate;
    deps.lease?.whenPauseSeen((value) => this.fleetPauseSeen(value));
    this.catchUp = new CatchUpReporter(this.key, () => ({
      handled: this.eventsHandled,
      lagMs: this.state === 'open' || this.state === 'degraded' ? this.lag.lagMs() : null,
      inFlightForMs: this.status().inFlightForMs,
      headroomMs: deps.headroom?.snapshot.historyHeadroomMs ?? null,
    }));
    this.backfills = new BackfillWiring(this.key, deps.backfill);
    this.held = new HeldStreamActions({
      key: deps.key,
      lease: deps.lease,
      state: deps.state,
      backfills: this.backfills,
      term: () => this.term,
      status: () => this.status(),
    });
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

  /** Its history headroom (the orchestrator hands it to its connection's oplog sampler). */
  get headroom(): StreamHeadroom | undefined {
    return this.deps.headroom;
  }

  get state(): ChangeStreamState {
    return this.streamState.current;
  }

  start(): void {
    this.running ??= this.supervise();
  }

  /** Resolves once the stream is open, standing by, failed or closed (whichever comes first). */
  whenSettled(): Promise<void> {
    return this.streamState.whenSettled();
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
    if (!this.term || !this.deps.lease?.current || this.streamState.baseState !== 'open')
      return false;
    return this.term.handOver(reason);
  }

  /**
   * Pause on this instance: stop reading, drain in-flight handlers, save the position and release
   * the lease (another instance may take the stream over); take no lease until `resume`. Resolves
   * once that is done (or the stream stopped). Idempotent.
   */
  pause(pause: Omit<StreamPause, 'scope'>): Promise<void> {
    const settled = this.pauses.whenSettled();
    if (!this.pausing.pauseLocally(pause) && (this.state === 'paused' || !this.running))
      return Promise.resolve();
    // A stream that stopped supervising (failed, stopped) will not get to the pause: do not wait for it.
    return this.running ? Promise.race([settled, this.whenStopped()]) : settled;
  }

  /** @internal Resolves once the supervision ended (stopped or failed); at once if it never started. */
  whenStopped(): Promise<void> {
    return this.running ?? Promise.resolve();
  }

  /** Ends a pause on this instance; false when it was not paused here. */
  resume(): boolean {
    return this.pausing.resumeLocally();
  }

  /**
   * What the store said of the fleet-wide pause (the pause key's value, or null), with a renewal
   * or an acquisition attempt, or because this instance set it: a holder ends its term as for a
   * local pause; a standby stays out (the store hands out no lease meanwhile).
   */
  fleetPauseSeen(value: string | null): void {
    this.pausing.fleetSeen(value);
  }

  status(): ChangeStreamStatus {
    const pause = this.state === 'paused' ? this.pauses.current : null;
    return {
      ...this.baseStatus(),
      ...(pause ? { paused: pause } : {}),
    };
  }

  private baseStatus(): ChangeStreamStatus {
    return streamStatus({
      deps: this.deps,
      state: this.streamState,
      events: this.term?.scheduler.events ?? [],
      eventsHandled: this.eventsHandled,
      lastEventAt: this.lastEventAt,
      lag: this.lag,
      reader: this.reader,
    });
  }

  /**
   * @internal A dead-letter replay: runs `task` under this stream's lease and in the order of
   * `change`'s document among the live events; refused (with who holds the stream) when this
   * instance is not consuming it.
   */
  replayInOrder<T>(change: ChangeEvent, task: (signal: AbortSignal) => Promise<T>): Promise<T> {
    return this.held.replayInOrder(change, task);
  }

  /**
   * @internal `ChangeStreamBackfill`: acts on this stream's backfills, only while this instance
   * consumes the stream (a run is written under its lease); refused naming the holder otherwise.
   */
  backfillAction<T>(act: (backfill: StreamBackfill) => T): T {
    return this.held.backfillAction(act);
  }

  private async shutdown(deadline: number, timeoutMs: number): Promise<void> {
    const left = () => Math.max(0, deadline - Date.now());
    const step = (what: string, work: Promise<unknown>) =>
      shutdownStep(this.logger, this.key, what, work, left);
    this.stopping.abort();
    const drained = await step('in-flight handlers to finish', this.stopReading());
    if (!drained) {
      this.logger.warn(messages.drainTimedOut(this.key, timeoutMs));
      this.term?.scheduler.abortInFlight();
    }
    const { checkpointer, lease } = this.deps;
    // A standby (or an instance that lost its lease) has nothing of its own to save.
    const holding = !lease || lease.current !== null;
    const flushed =
      !holding || (await step('the final save of the position', checkpointer.flush()));
    const saved = holding && flushed && checkpointer.unsavedCount === 0;
    if (holding && !saved) {
      await this.leftPositions.finalSaveFailed(
        checkpointer.positionWithBackfill,
        checkpointer.unsavedCount,
        this.term?.lease ?? null,
        checkpointer.savedThisTerm,
        step,
      );
    }
    // A lease lost before or during that flush: the position it reached may still have to be left.
    await this.leftPositions.settle(step, timeoutMs);
    checkpointer.dispose();
    this.stuck.stop();
    this.catchUp.stop();
    this.backfills.stop();
    // Handlers still running after the timeout: keep the lease until it expires (no more renewals),
    // or the next holder would handle their events while they still run.
    if (lease && drained) await step('the release of the lease', lease.release());
    else lease?.abandon();
    await step('the cursor to close', this.reader.closeCursor());
    if (this.streamState.baseState !== 'failed') this.streamState.setBase('closed');
    this.logger.log(
      messages.streamClosed(this.key, drained && saved, holding, checkpointer.position !== null),
    );
  }

  /**
   * Resolves once reading stopped and nothing is in flight. A read the server never answers (a
   * hung getMore) must not hold that up: the cursor is closed at once, and a read still pending
   * once nothing is in flight is abandoned (the term is aborted: it can dispatch nothing more).
   */
  private stopReading(): Promise<void> {
    if (!this.running) return Promise.resolve();
    void this.reader.closeCursor();
    const term = this.term;
    return term ? Promise.race([this.running, term.scheduler.drain()]) : this.running;
  }

  private async supervise(): Promise<void> {
    try {
      await this.superviseTerms();
    } finally {
      this.pauses.settled();
    }
  }

  private async superviseTerms(): Promise<void> {
    const { lease } = this.deps;
    this.stuck.start();
    this.catchUp.start();
    this.backfills.start();
    while (!this.stopping.signal.aborted && this.streamState.baseState !== 'failed') {
      if (this.pauses.local) {
        await this.pausing.whilePausedLocally(this.streamState, this.stopping.signal);
        continue;
      }
      if (lease && !lease.current) {
        // Stays `starting` until the first attempt answered: bootstrap then waits for the stream to open.
        const signal = this.pauses.interruptible(this.stopping.signal);
        const acquired = await lease.acquire(signal, (why) => {
          if ('paused' in why) this.fleetPauseSeen(why.paused);
          // Cannot even ask (Redis away): nobody may be consuming, so not a healthy standby.
          else if ('error' in why)
            return this.streamState.setBase('reconnecting', messages.waitingForLease(why.error));
          else if (why.answered) this.fleetPauseSeen(null);
          // Paused fleet-wide (as last answered): stays out, shown as paused rather than standing by.
          if (this.pauses.fleet) {
            this.streamState.setBase('paused');
            return this.pauses.settled();
          }
          if (this.streamState.baseState !== 'standby' && 'heldBy' in why)
            this.logger.log(
              messages.leaseStandby(this.key, lease.instanceId, why.heldBy?.holder ?? null),
            );
          this.streamState.setBase('standby');
        });
        if (this.stopping.signal.aborted) break;
        if (!acquired) continue; // paused on this instance meanwhile
        this.fleetPauseSeen(null);
        this.logger.log(messages.leaseAcquired(this.key, lease.instanceId, acquired.fence));
        this.deps.emit({
          type: 'role',
          key: this.key,
          role: 'active',
          instanceId: lease.instanceId,
          fence: acquired.fence,
          reason: 'lease acquired',
        });
      }
      const term = this.beginTerm();
      // A fleet-wide pause seen between two terms of one lease (no term to end then) ends this one.
      const fleet = this.pauses.fleet;
      if (fleet) term.pause(`paused fleet-wide: ${fleet.reason ?? 'pause key set'}`);
      await this.reader.consume(term);
      await term.finish();
      this.backfills.termEnded();
    }
  }

  private beginTerm(): LeaseTerm {
    const { deps } = this;
    const term = new LeaseTerm({
      ...deps,
      logger: this.logger,
      stopping: this.stopping.signal,
      leftPositions: this.leftPositions,
      onHandled: (change) => {
        this.eventsHandled++;
        this.lastEventAt = Date.now();
        this.lag.handled(change);
      },
    });
    this.term = term;
    this.lag.reset();
    this.reader.beginTerm();
    term.begin();
    return term;
  }
}
