import type { StoredBackfill } from '../interfaces/backfill.interface.js';
import type { StreamPosition } from '../interfaces/position-store.interface.js';

/**
 * The backfill record stored with a stream's position (`StreamPosition.backfill`): read with the
 * position at load, and written with every save (as read, unless `at` says what it is at the
 * event saved). A copy of the position kept elsewhere (left for the next holder, remembered for a
 * store that lost its data) carries it too: else the backfill would start over.
 */
export class BackfillRecord {
  /** The record read by the last `load`, or produced for a position since (stored again as it is unless `at` says otherwise). */
  loaded: StoredBackfill | undefined;
  /** The record to store with the position of event `seq` (see `StreamBackfill.recordAt`). */
  at: ((seq: number) => StoredBackfill | undefined) | undefined;

  /** Keeps the record of a position read from the store (as `loaded`); the position without it. */
  read(stored: StreamPosition | null): StreamPosition | null {
    const { backfill, ...position } = stored ?? {};
    this.loaded = backfill;
    return stored && (position as StreamPosition);
  }

  /** What to store for `position`, the position of event `seq`: with the record, if there is one. */
  storedWith(position: StreamPosition, seq: number): StreamPosition {
    const backfill = (this.loaded = this.at?.(seq) ?? this.loaded);
    return backfill ? { ...position, backfill } : position;
  }
}
