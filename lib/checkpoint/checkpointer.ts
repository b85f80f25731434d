import { Logger } from '@nestjs/common';
import { messages } from '../change-stream.messages.js';
import { backoffDelay, sleep } from '../common/backoff.js';
import { Notifier } from '../common/notifier.js';
import { isFencedWriteError } from '../change-stream.errors.js';
import type { StreamLease } from '../interfaces/lease-store.interface.js';
import type {
  ResumeToken,
  StreamCoverage,
  StreamPosition,
} from '../interfaces/position-store.interface.js';
import { BackfillRecord } from './backfill-record.js';
import type { CheckpointerContext, CheckpointSettings } from './checkpointer-context.js';
import { AdoptedLeftPosition, readStartPosition } from './start-position.js';
import { RETRY_MAX_DELAY_MS } from '../options/defaults.js';
import { SaveHealth } from './save-health.js';
import { SaveTimer } from './save-timer.js';
import { coverageForTerm, withoutCoverage } from './stream-coverage.js';

/**
 * Holds one stream's position. Events are numbered in stream order (`seq`); `ack` is called
 * for the newest event such that it and every earlier one were handled. Saves are batched by
 * count and time, never run concurrently, and a failed save is retried with backoff while the
 * position stays in memory. `waitForRunAheadRoom` enforces the crash bound: at most `2 × maxEvents`
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
  private saving: Promise<boolean> | undefined;
  /** A flush was asked for while a save was under way: save again once it ends. */
  private saveRequestedWhileSaving = false;
  private disposed = false;
  /** Between lease terms (the lease was lost): nothing is acknowledged or saved. */
  private suspended = false;
  /** Saves are fenced writes under this lease (leases on). */
  private lease: StreamLease | null = null;
  /** The newest position of the previous lease term, for a store that lost everything meanwhile. */
  private remembered: StreamPosition | null = null;
  /** Bumped by `begin`: a save still under way from the previous lease term must not touch this one. */
  private epoch = 0;
  /** A left position this lease term resumed from (see `load`). */
  private readonly leftPosition: AdoptedLeftPosition;
  /** A position was stored in this lease term (under its lease, with leases on). */
  savedThisTerm = false;
  private readonly progress = new Notifier();
  lastSavedAt: Date | null = null;
  private lastSaved: StreamPosition | null = null;
  /** The backfill record stored with the position. */
  readonly backfill = new BackfillRecord();
  /** What a database stream's positions cover in this lease term (set by `load`). */
  private coverage: StreamCoverage | undefined;
  /** Keys whose missing coverage was said (once each). */
  private readonly coverageWarned = new Set<string>();
  readonly key: string;
  private readonly settings: CheckpointSettings;

  constructor(private readonly context: CheckpointerContext) {
    this.key = context.key;
    this.settings = context.settings;
    this.logger = context.logger ?? new Logger(Checkpointer.name);
    this.leftPosition = new AdoptedLeftPosition(context.store, context.key);
    this.health = new SaveHealth(context, this.logger);
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
    return position && this.withCoverage(this.backfill.storedWith(position, this.ackedSeq));
  }

  /** A database stream's positions carry the collections they cover (see `StreamCoverage`). */
  private withCoverage(position: StreamPosition): StreamPosition {
    return this.coverage ? { ...position, coverage: this.coverage } : position;
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
    this.epoch++;
    this.saving = undefined;
    this.saveRequestedWhileSaving = false;
    this.timer.clear();
    this.lease = lease;
    this.suspended = false;
    this.leftPosition.pending = false;
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
    return this.leftPosition.pending;
  }

  /**
   * Reads where this lease term starts (see `readStartPosition`). A left position is stored at once,
   * and removed once stored; one from memory is stored with the next save.
   */
  async load(): Promise<void> {
    const { replaces } = this.context;
    const start = await readStartPosition(
      this.context.store,
      this.key,
      this.lease !== null,
      this.remembered,
      this.logger,
      replaces,
      this.coverageWarned,
      this.context.fellOff,
    );
    this.coverage =
      replaces && 'collections' in replaces
        ? coverageForTerm(
            start.base,
            replaces.collections.map((c) => c.collection),
          )
        : undefined;
    this.restore(this.backfill.read(start.position && withoutCoverage(start.position)));
    // A left position is where a restart would resume too; one from memory is in no store yet.
    this.lastSaved = start.from === 'memory' ? null : this.acked;
    this.dirty = start.from !== 'stored';
    if (start.from === 'left') {
      this.leftPosition.pending = true;
      void this.flush();
    }
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
    this.ackedSeq = seq;
    this.dirty = true;
    this.progress.notify();
    // After a failed save, wait for the backoff timer instead of hammering the store.
    if (this.unsavedCount >= this.settings.maxEvents && this.health.failures === 0)
      void this.flush();
    else this.schedule(this.settings.intervalMs);
  }

  /** Events up to `seq` were handled, none of them a new resume point (backfill events): the position stays, progress is saved. */
  ackSeq(seq: number): void {
    if (this.disposed || this.suspended) return;
    this.ackedSeq = seq;
    this.dirty = true;
    this.progress.notify();
    if (this.unsavedCount >= this.settings.maxEvents && this.health.failures === 0)
      void this.flush();
    else this.schedule(this.settings.intervalMs);
  }

  /** Something besides events (backfill progress) is worth storing: save with the next interval. */
  requestSave(): void {
    if (this.disposed || this.suspended) return;
    this.dirty = true;
    if (this.saving) this.saveRequestedWhileSaving = true; // the save under way may not hold it
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
      if (!this.saving && this.health.failures === 0 && this.dirty) void this.flush();
      if (!(await this.progress.next(signal))) return false;
    }
    return !signal.aborted;
  }

  /** Saves the newest acknowledged position if it is not saved yet; true once it is stored. */
  flush(): Promise<boolean> {
    this.timer.clear();
    if (this.saving) {
      this.saveRequestedWhileSaving = true;
      return this.saving;
    }
    const done = (): boolean => {
      const current = this.saving === saving; // not a newer lease term's save
      if (current) this.saving = undefined;
      this.progress.notify();
      return current;
    };
    const saving: Promise<boolean> = this.saveUntilCurrent().then(
      // An ack between the save's last look and now found it still saving and set `saveRequestedWhileSaving`: save that too, as part of this flush.
      (stored) => (done() && stored && this.saveRequestedWhileSaving ? this.flush() : stored),
      (error: unknown) => {
        done();
        throw error;
      },
    );
    this.saving = saving;
    return saving;
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

  private async saveUntilCurrent(): Promise<boolean> {
    const epoch = this.epoch;
    do {
      this.saveRequestedWhileSaving = false;
      const position = this.position;
      if (position === null && !this.suspended && this.ackedSeq > this.savedSeq) {
        // Backfill events acknowledged before the stream had a position (a server that gives none at open):
        // nothing can be stored, and reading must not wait for a save that cannot come.
        this.savedSeq = this.ackedSeq;
        this.progress.notify();
      }
      if (!this.dirty || position === null || this.suspended) return !this.suspended;
      const seq = this.ackedSeq;
      const slow = this.health.watchSlowSave();
      const started = performance.now();
      try {
        const { store } = this.context;
        const stored = this.withCoverage(this.backfill.storedWith(position, seq));
        await (this.lease
          ? store.save(this.key, stored, this.lease)
          : store.save(this.key, stored));
        this.context.onWrite?.('stored', performance.now() - started);
        if (epoch !== this.epoch) return false; // a previous lease term's save: this term's counts are not its
      } catch (error) {
        this.context.onWrite?.(
          isFencedWriteError(error) ? 'refused' : 'failed',
          performance.now() - started,
        );
        if (epoch !== this.epoch) return false;
        if (isFencedWriteError(error)) {
          // Not an outage: another instance owns the stream now. Never retried.
          this.suspend();
          this.context.onFenced?.(error);
          return false;
        }
        this.schedule(this.health.failed(error, this.settings.intervalMs));
        return false;
      } finally {
        clearTimeout(slow);
      }
      if (this.leftPosition.pending) this.leftPosition.drop(() => epoch === this.epoch);
      this.savedThisTerm = true;
      this.lastSaved = position;
      this.savedSeq = Math.max(this.savedSeq, seq);
      // Still dirty if anything came during the save (a token, or backfill events that move no token).
      if (this.ackedToken === null && this.acked === position && this.ackedSeq === seq)
        this.dirty = false;
      this.lastSavedAt = new Date();
      this.health.stored();
      this.progress.notify();
    } while (this.saveRequestedWhileSaving);
    if (this.dirty) this.schedule(this.settings.intervalMs);
    return true;
  }

  private schedule(delayMs: number): void {
    if (!this.disposed) this.timer.schedule(delayMs);
  }
}

const samePosition = (a: StreamPosition | null, b: StreamPosition | null) =>
  JSON.stringify(a) === JSON.stringify(b);
