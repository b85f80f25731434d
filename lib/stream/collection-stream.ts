import { Logger } from '@nestjs/common';
import type { Checkpointer } from '../checkpoint/checkpointer.js';
import type {
  ChangeStreamState,
  ChangeStreamStatus,
  StreamPause,
} from '../interfaces/change-stream-status.interface.js';
import type { StreamHeadroom } from '../headroom/stream-headroom.js';
import type { StreamBackfill } from '../backfill/stream-backfill.js';
import { BackfillWiring } from './backfill-wiring.js';
import { streamLoggerContext } from './stream-scope.js';
import { CatchUpReporter } from './catch-up-reporter.js';
import type { CollectionStreamDeps } from './collection-stream-deps.js';
import type { ChangeEvent } from '../common/change-event.js';
import { HeldStreamActions } from './held-stream-actions.js';
import { LagTracker } from './lag-tracker.js';
import { acquireStreamLease } from './lease-acquisition.js';
import { LeaseTerm } from './lease-term.js';
import { LeavingPositions } from './leaving-positions.js';
import { ReopeningReader } from './reopening-reader.js';
import { shutDownStream } from './stream-shutdown.js';
import type { PauseGate } from './pause-gate.js';
import type { StreamPlan } from './stream-plan.js';
import { StreamPauses } from './stream-pauses.js';
import type { StreamState } from './stream-state.js';
import { streamStatus } from './stream-status.js';
import { StuckHandlerWatch } from './stuck-handler-watch.js';

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
    return streamStatus({
      deps: this.deps,
      state: this.streamState,
      events: this.term?.scheduler.events ?? [],
      eventsHandled: this.eventsHandled,
      lastEventAt: this.lastEventAt,
      lag: this.lag,
      reader: this.reader,
      paused: this.state === 'paused' ? this.pauses.current : null,
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

  private shutdown(deadline: number, timeoutMs: number): Promise<void> {
    this.stopping.abort();
    return shutDownStream(
      {
        ...this.deps,
        logger: this.logger,
        leftPositions: this.leftPositions,
        reader: this.reader,
        running: () => this.running,
        term: () => this.term,
        stopWatching: () => {
          this.stuck.stop();
          this.catchUp.stop();
          this.backfills.stop();
        },
      },
      deadline,
      timeoutMs,
    );
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
        const acquired = await acquireStreamLease({
          ...this.deps,
          lease,
          logger: this.logger,
          pauses: this.pauses,
          stopping: this.stopping.signal,
          fleetPauseSeen: (value) => this.fleetPauseSeen(value),
        });
        if (this.stopping.signal.aborted) break;
        if (!acquired) continue; // paused on this instance meanwhile
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
