import { Logger } from '@nestjs/common';
import { messages } from '../change-stream.messages.js';
import { backoffDelay, sleep } from '../common/backoff.js';
import { Notifier } from '../common/notifier.js';
import type { StreamLease } from '../interfaces/lease-store.interface.js';
import type { ResumeToken, StreamPosition } from '../interfaces/position-store.interface.js';
import { BackfillRecord } from './backfill-record.js';
import type { CheckpointerContext, CheckpointSettings } from './checkpointer-context.js';
import { RETRY_MAX_DELAY_MS } from '../options/defaults.js';
import { type PendingSave, PositionSaver } from './position-saver.js';
import { SaveHealth } from './save-health.js';
import { SaveTimer } from './save-timer.js';
import { withoutCoverage } from './stream-coverage.js';
import { TermStart } from './term-start.js';

/**
 * Holds one stream's position. Events are numbered in stream order (`seq`); `ack` is called
 * for the newest event such that it and every earlier one were handled. Saves are batched by
 * count and time (a `PositionSaver` runs them one at a time and retries a failed one with
 * backoff while the position stays in memory). `waitForRunAheadRoom` enforces the crash bound: at most `2 × maxEvents`
 * events are dispatched past the stored position (`maxUnsavedEvents` while saves fail).
 */
export class Checkpointer {
  private readonly logger: Logger;
  private readonly health: SaveHealth;
  /** The newest position: an acknowledged event's token is kept bare (no object per event) until it is read. */
  private acked: StreamPosition | null = null;
  private ackedToken: ResumeToken | null = null;
  private ackedSeq = 0;
  private savedSeq = 0;
  /** The acknowledged position differs from the stored one (an event or an idle token). */
  private dirty = false;
  private readonly timer = new SaveTimer(() => void this.flush());
  private readonly saver: PositionSaver;
  private disposed = false;
  /** Between lease terms (the lease was lost): nothing is acknowledged or saved. */
  private suspended = false;
  /** Saves are fenced writes under this lease (leases on). */
  private lease: StreamLease | null = null;
  /** The newest position of the previous lease term, for a store that lost everything meanwhile. */
  private remembered: StreamPosition | null = null;
  /** A position was stored in this lease term (under its lease, with leases on). */
  savedThisTerm = false;
  private readonly progress = new Notifier();
  lastSavedAt: Date | null = null;
  private lastSaved: StreamPosition | null = null;
  /** The backfill record stored with the position. */
  readonly backfill = new BackfillRecord();
  private readonly start: TermStart;
  readonly key: string;
  private readonly settings: CheckpointSettings;

  constructor(private readonly context: CheckpointerContext) {
    this.key = context.key;
    this.settings = context.settings;
    this.logger = context.logger ?? new Logger(Checkpointer.name);
    this.health = new SaveHealth(context, this.logger);
    this.start = new TermStart(context, this.logger);
    this.saver = new PositionSaver(context, this.health, this.timer, this.progress, {
      nextSave: () => this.nextSave(),
      storedForm: ({ position, seq }) =>
        this.start.withCoverage(this.backfill.storedWith(position, seq)),
      suspended: () => this.suspended,
      saved: (save, sameTerm) => this.saved(save, sameTerm),
      fenced: (error) => {
        this.suspend();
        context.onFenced?.(error);
      },
      dirty: () => this.dirty,
      schedule: (delayMs) => this.schedule(delayMs),
    });
  }

  /** Where a reopened stream must resume: the newest acknowledged position, else the stored one. */
  get position(): StreamPosition | null {
    if (this.ackedToken !== null) {
      this.acked = { token: this.ackedToken };
      this.ackedToken = null;
    }
    return this.acked;
  }

  /**
   * The newest position with the backfill record that goes with it: what a copy of the position
   * kept elsewhere (left for the next holder, remembered across lease terms) must hold.
   */
  get positionWithBackfill(): StreamPosition | null {
    const position = this.position;
    return position && this.start.withCoverage(this.backfill.storedWith(position, this.ackedSeq));
  }

  /**
   * The position a restart would resume from: the last one this instance stored in this lease
   * term (or read from the store at its start); null before that.
   */
  get savedPosition(): StreamPosition | null {
    return this.lastSaved;
  }

  /**
   * A new lease term over the stream (with its lease when leases are on): everything in memory is
   * forgotten, since another instance may have moved the position; the next `load` reads it.
   */
  begin(lease: StreamLease | null): void {
    this.remembered = this.positionWithBackfill ?? this.remembered;
    this.lastSaved = null;
    this.saver.begin();
    this.timer.clear();
    this.lease = lease;
    this.suspended = false;
    this.start.leftPosition.pending = false;
    this.savedThisTerm = false;
    this.acked = null;
    this.ackedToken = null;
    this.ackedSeq = this.savedSeq = 0;
    this.dirty = false;
    this.health.failures = 0;
    this.progress.notify();
  }

  /** The lease term ended without a final save (lease lost): acknowledgements from now on are dropped; the next holder redoes them. */
  suspend(): void {
    this.suspended = true;
    this.timer.clear();
    this.progress.notify();
  }

  /** Resumed from a position an instance left (see `load`) that is not stored and removed yet. */
  get leftPositionPending(): boolean {
    return this.start.leftPosition.pending;
  }

  /**
   * Reads where this lease term starts (see `readStartPosition`). A left position is stored at once,
   * and removed once stored; one from memory is stored with the next save. A start that let
   * collections go is saved before opening (retried on failure): a restart then does not ask again.
   */
  async load(): Promise<void> {
    const start = await this.start.read(this.lease !== null, this.remembered);
    this.restore(this.backfill.read(start.position && withoutCoverage(start.position)));
    // A left position is where a restart would resume too; one from memory is in no store yet.
    this.lastSaved = start.from === 'memory' ? null : this.acked;
    this.dirty = start.from !== 'stored';
    if (start.from === 'left') {
      this.start.leftPosition.pending = true;
      void this.flush();
    }
    if (start.letGo) await this.flush();
  }

  /** The position read from the store at start (or null to start over); it counts as saved. */
  restore(position: StreamPosition | null): void {
    this.acked = position;
    this.ackedToken = null;
    this.savedSeq = this.ackedSeq;
    this.dirty = false;
  }

  /** Event `seq` and every event before it were handled; `token` is its resume token. */
  ack(token: ResumeToken, seq: number): void {
    if (this.disposed || this.suspended) return;
    this.ackedToken = token;
    this.acknowledged(seq);
  }

  /** Events up to `seq` were handled, none of them a new resume point (backfill events): the position stays, progress is saved. */
  ackSeq(seq: number): void {
    if (this.disposed || this.suspended) return;
    this.acknowledged(seq);
  }

  private acknowledged(seq: number): void {
    this.ackedSeq = seq;
    this.dirty = true;
    this.progress.notify();
    // After a failed save, wait for the backoff timer instead of hammering the store.
    if (this.unsavedCount >= this.settings.maxEvents && this.health.failures === 0)
      void this.flush();
    else this.schedule(this.settings.intervalMs);
  }

  /** Something besides events (backfill progress) is worth storing: save with the next interval. */
  requestSave(): void {
    if (this.disposed || this.suspended) return;
    this.dirty = true;
    this.saver.saveAgainIfSaving(); // the save under way may not hold it
    this.schedule(this.settings.intervalMs);
  }

  /** The newest event such that it and every earlier one were handled (this lease term's numbering). */
  get acknowledgedSeq(): number {
    return this.ackedSeq;
  }

  /**
   * A position with no event behind it (a post-batch token while nothing is in flight):
   * worth saving, but not worth an immediate write.
   */
  advanceIdle(position: StreamPosition): void {
    if (this.disposed || this.suspended || samePosition(position, this.position)) return;
    this.acked = position;
    this.dirty = true;
    this.schedule(this.settings.intervalMs);
  }

  /** Stores where a fresh stream started, before its first event is handled; retries until stored or aborted. */
  async persistStart(position: StreamPosition, signal: AbortSignal): Promise<boolean> {
    this.restore(position);
    this.dirty = true;
    for (let attempt = 1; ; attempt++) {
      if (await this.flush()) return true;
      if (
        !(await sleep(backoffDelay(attempt, this.settings.intervalMs, RETRY_MAX_DELAY_MS), signal))
      )
        return false;
    }
  }

  /** Event `dispatchedSeq + 1` may be dispatched now (see `waitForRunAheadRoom`). */
  hasRunAheadRoom(dispatchedSeq: number): boolean {
    return dispatchedSeq - this.savedSeq < this.runAheadLimit();
  }

  /**
   * Waits until event `dispatchedSeq + 1` may be dispatched: fewer than `2 × maxEvents` events
   * past the stored position (`maxUnsavedEvents` while saves fail). False if aborted.
   */
  async waitForRunAheadRoom(dispatchedSeq: number, signal: AbortSignal): Promise<boolean> {
    let paused = false;
    while (dispatchedSeq - this.savedSeq >= this.runAheadLimit()) {
      if (signal.aborted || this.disposed || this.suspended) return false;
      if (this.health.failures > 0 && !paused)
        this.logger.warn(messages.readingPaused(this.key, this.unsavedCount));
      paused = true;
      if (!this.saver.busy && this.health.failures === 0 && this.dirty) void this.flush();
      if (!(await this.progress.next(signal))) return false;
    }
    return !signal.aborted;
  }

  /** Saves the newest acknowledged position if it is not saved yet; true once it is stored. */
  flush(): Promise<boolean> {
    return this.saver.flush();
  }

  /** Acknowledged events not stored yet. */
  get unsavedCount(): number {
    return this.ackedSeq - this.savedSeq;
  }

  /** True from a failed save until the next successful one. */
  get failing(): boolean {
    return this.health.failures > 0;
  }

  /** After the final flush: a handler that outlived the drain can no longer move the position. */
  dispose(): void {
    this.disposed = true;
    this.health.silence();
    this.timer.clear();
    this.progress.notify();
  }

  /** How many events may be dispatched past the stored position. */
  private runAheadLimit(): number {
    const bound = 2 * this.settings.maxEvents;
    return this.health.failures > 0 ? Math.max(bound, this.settings.maxUnsavedEvents) : bound;
  }

  /** What the next save stores (see `PositionSaver`): null when nothing is to be stored. */
  private nextSave(): PendingSave | null {
    const position = this.position;
    if (position === null && !this.suspended && this.ackedSeq > this.savedSeq) {
      // Backfill events acknowledged before the stream had a position (a server that gives none at open):
      // nothing can be stored, and reading must not wait for a save that cannot come.
      this.savedSeq = this.ackedSeq;
      this.progress.notify();
    }
    if (!this.dirty || position === null || this.suspended) return null;
    return { position, seq: this.ackedSeq, lease: this.lease };
  }

  private saved({ position, seq }: PendingSave, sameTerm: () => boolean): void {
    if (this.start.leftPosition.pending) this.start.leftPosition.drop(sameTerm);
    this.savedThisTerm = true;
    this.lastSaved = position;
    this.savedSeq = Math.max(this.savedSeq, seq);
    // Still dirty if anything came during the save (a token, or backfill events that move no token).
    if (this.ackedToken === null && this.acked === position && this.ackedSeq === seq)
      this.dirty = false;
    this.lastSavedAt = new Date();
  }

  private schedule(delayMs: number): void {
    if (!this.disposed) this.timer.schedule(delayMs);
  }
}

const samePosition = (a: StreamPosition | null, b: StreamPosition | null) =>
  JSON.stringify(a) === JSON.stringify(b);
