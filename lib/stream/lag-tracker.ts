import type { ChangeEvent } from '../common/change-event.js';

/**
 * How far behind the newest change a stream is: while events are pending, now minus the time
 * of the last handled event, or of the first event read since the stream was last caught up if
 * that is newer (so a quiet collection's first event in an hour is not an hour behind); 0 once a
 * read came back empty with nothing in flight. Event time is `wallTime` (MongoDB 6.0+), else the
 * `clusterTime` seconds. Cheap on the hot path: only references to events are kept, their times
 * are read when asked.
 */
export class LagTracker {
  private last: ChangeEvent | null = null;
  /** The first event read since the stream was caught up. */
  private firstPending: ChangeEvent | null = null;
  private caughtUp = true;

  /** An event was read (so more may be pending). */
  read(change: ChangeEvent): void {
    if (this.caughtUp) this.firstPending = change;
    this.caughtUp = false;
  }

  handled(change: ChangeEvent): void {
    this.last = change;
  }

  /** A read came back empty and nothing is in flight. */
  idle(): void {
    this.caughtUp = true;
  }

  /** A new lease term: nothing known yet. */
  reset(): void {
    this.last = this.firstPending = null;
    this.caughtUp = true;
  }

  lagMs(now = Date.now()): number | null {
    if (this.caughtUp) return 0;
    const handled = this.last && eventTime(this.last);
    const pending = this.firstPending && eventTime(this.firstPending);
    const since =
      handled == null ? pending : pending == null ? handled : Math.max(handled, pending);
    return since == null ? null : Math.max(0, now - since);
  }
}

/** Epoch ms of an event: `wallTime`, else the seconds of its `clusterTime`. */
export function eventTime(change: ChangeEvent): number | null {
  const { wallTime, clusterTime } = change as {
    wallTime?: Date;
    clusterTime?: { getHighBits(): number };
  };
  if (wallTime instanceof Date) return wallTime.getTime();
  return clusterTime && typeof clusterTime.getHighBits === 'function'
    ? clusterTime.getHighBits() * 1000
    : null;
}
