import type { ChangeEvent } from './change-cursor.js';

/**
 * How far behind the newest change a stream is: now minus the time of the last handled event
 * while events are pending; 0 once a read came back empty with nothing in flight. Event time is
 * `wallTime` (MongoDB 6.0+), else the `clusterTime` seconds. Cheap on the hot path: only a
 * reference to the last event is kept, its time is read when asked.
 */
export class LagTracker {
  private last: ChangeEvent | null = null;
  private caughtUp = true;
  private handledAtCatchUpStart = 0;
  private catchUpStartedAt = 0;

  /** An event was read (so more may be pending). */
  read(): void {
    this.caughtUp = false;
  }

  handled(change: ChangeEvent): void {
    this.last = change;
  }

  /** A read came back empty and nothing is in flight. */
  idle(): void {
    this.caughtUp = true;
  }

  get isCaughtUp(): boolean {
    return this.caughtUp;
  }

  lagMs(now = Date.now()): number | null {
    if (this.caughtUp) return 0;
    const time = this.last && eventTime(this.last);
    return time == null ? null : Math.max(0, now - time);
  }

  /** Events per second since this catch-up began (for progress logs); resets once caught up. */
  rate(handled: number, now = Date.now()): number {
    if (this.caughtUp || this.catchUpStartedAt === 0) {
      this.catchUpStartedAt = now;
      this.handledAtCatchUpStart = handled;
      return 0;
    }
    const seconds = (now - this.catchUpStartedAt) / 1000;
    return seconds <= 0 ? 0 : (handled - this.handledAtCatchUpStart) / seconds;
  }
}

/** Epoch ms of an event: `wallTime`, else the seconds of its `clusterTime`. */
export function eventTime(change: ChangeEvent): number | null {
  const { wallTime, clusterTime } = change as { wallTime?: Date; clusterTime?: { getHighBits(): number } };
  if (wallTime instanceof Date) return wallTime.getTime();
  return clusterTime && typeof clusterTime.getHighBits === 'function' ? clusterTime.getHighBits() * 1000 : null;
}
