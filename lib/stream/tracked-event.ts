import type { ChangeEvent } from '../common/change-event.js';
import { type DispatchOutcome, OK } from './dispatch-outcome.js';
import type { Attempt, EventInFlight } from './event-in-flight.js';
import type { Linked } from './in-flight-list.js';
import { RunningHandlers } from './running-handlers.js';

/**
 * An event in flight, linked into the scheduler's list of them. With batch handlers it has
 * `parts`: its per-event dispatch (if a per-event handler wants it) and one per batch handler
 * that wants it; it is finished once every part is.
 */
export type TrackedEvent = EventInFlight &
  Linked<TrackedEvent> & {
    readonly seq: number;
    finished: boolean;
    parts: number;
    /** The worst outcome of the parts finished so far. */
    outcome: DispatchOutcome;
    /** Its per-event part finished. */
    eventPartDone: boolean;
    /** A resume point (all but an invalidate). */
    ack: boolean;
    /** With batch handlers: it runs alone and holds the `alone` slot until every part finished. */
    alone: boolean;
    whenDone: ((outcome: DispatchOutcome) => void) | null;
  };

/** Event number `seq` of the stream, not yet linked into a list. */
export function trackedEvent(
  change: ChangeEvent,
  seq: number,
  abort: AbortController,
  attempts: Set<Attempt> | null,
): TrackedEvent {
  return {
    change,
    startedAt: Date.now(),
    pending: new RunningHandlers(),
    abort,
    attempts,
    seq,
    finished: false,
    parts: 1,
    outcome: OK,
    eventPartDone: false,
    ack: true,
    alone: false,
    whenDone: null,
    prev: null,
    next: null,
  };
}

/** As the dispatcher combines handlers' outcomes: giving way (shutdown) wins over a failure, a failure over success. */
export function worse(a: DispatchOutcome, b: DispatchOutcome): DispatchOutcome {
  if (a.ok) return b;
  if (b.ok || 'aborted' in a) return a;
  return 'aborted' in b ? b : a;
}
