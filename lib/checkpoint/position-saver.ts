import type { Notifier } from '../common/notifier.js';
import { isFencedWriteError, type FencedWriteError } from '../change-stream.errors.js';
import type { StreamLease } from '../interfaces/lease-store.interface.js';
import type { StreamPosition } from '../interfaces/position-store.interface.js';
import type { CheckpointerContext } from './checkpointer-context.js';
import type { SaveHealth } from './save-health.js';
import type { SaveTimer } from './save-timer.js';

/** A position to store, the event it covers, and the lease it is written under (leases on). */
export interface PendingSave {
  position: StreamPosition;
  seq: number;
  lease: StreamLease | null;
}

/** What a `PositionSaver` saves from: its checkpointer's acknowledged position. */
export interface SaveSource {
  /** What to store now; null when nothing is (or the lease term ended). */
  nextSave(): PendingSave | null;
  /** The value the store keeps for `save` (with its backfill record and coverage). */
  storedForm(save: PendingSave): StreamPosition;
  /** Between lease terms (the lease was lost): nothing is saved. */
  suspended(): boolean;
  /** `save` is stored; `sameTerm` tells whether the lease term it was taken in still runs. */
  saved(save: PendingSave, sameTerm: () => boolean): void;
  /** The store refused the write: another instance holds the stream now. */
  fenced(error: FencedWriteError): void;
  /** Something acknowledged is not stored yet. */
  dirty(): boolean;
  /** The next save in `delayMs` (unless disposed). */
  schedule(delayMs: number): void;
}

/**
 * Saves a stream's position: one save at a time (a flush asked for meanwhile is answered by the
 * save under way, which saves once more), a failed one retried with backoff, a fenced one never.
 * A save still under way from a previous lease term does not touch the current one.
 */
export class PositionSaver {
  private saving: Promise<boolean> | undefined;
  /** A flush was asked for while a save was under way: save again once it ends. */
  private saveRequestedWhileSaving = false;
  /** Bumped by `begin`: a save still under way from the previous lease term must not touch this one. */
  private epoch = 0;

  constructor(
    private readonly context: CheckpointerContext,
    private readonly health: SaveHealth,
    private readonly timer: SaveTimer,
    private readonly progress: Notifier,
    private readonly source: SaveSource,
  ) {}

  /** A save is under way. */
  get busy(): boolean {
    return this.saving !== undefined;
  }

  /** A new lease term: a save under way belongs to the previous one. */
  begin(): void {
    this.epoch++;
    this.saving = undefined;
    this.saveRequestedWhileSaving = false;
  }

  /** Something the save under way may not hold changed: save once more after it. */
  saveAgainIfSaving(): void {
    if (this.saving) this.saveRequestedWhileSaving = true;
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

  private async saveUntilCurrent(): Promise<boolean> {
    const epoch = this.epoch;
    const { intervalMs } = this.context.settings;
    do {
      this.saveRequestedWhileSaving = false;
      const save = this.source.nextSave();
      if (save === null) return !this.source.suspended();
      const slow = this.health.watchSlowSave();
      const started = performance.now();
      try {
        const { store, key } = this.context;
        const stored = this.source.storedForm(save);
        await (save.lease ? store.save(key, stored, save.lease) : store.save(key, stored));
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
          this.source.fenced(error);
          return false;
        }
        this.source.schedule(this.health.failed(error, intervalMs));
        return false;
      } finally {
        clearTimeout(slow);
      }
      this.source.saved(save, () => epoch === this.epoch);
      this.health.stored();
      this.progress.notify();
    } while (this.saveRequestedWhileSaving);
    if (this.source.dirty()) this.source.schedule(intervalMs);
    return true;
  }
}
