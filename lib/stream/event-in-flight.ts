import type { ChangeEvent } from '../common/change-event.js';

/** One handler call of an event, with its own `context.signal` (`onHandlerTimeout: 'abort'`). */
export interface Attempt {
  readonly handler: string;
  readonly startedAt: number;
  readonly abort: AbortController;
}

/** One event being handled: which handlers are still running, for stuck-handler reports. */
export interface EventInFlight {
  readonly change: ChangeEvent;
  /** When it was submitted, then (if it waited for its document's previous event) when its handlers started. */
  startedAt: number;
  /** The handlers still running (a `RunningHandlers`, or any Set). */
  readonly pending: {
    add(name: string): unknown;
    delete(name: string): unknown;
    readonly size: number;
  } & Iterable<string>;
  /** Aborted at shutdown (past its timeout) and when the lease is lost; shared by the stream's events. */
  readonly abort: AbortController;
  /**
   * With `onHandlerTimeout: 'abort'`: the calls running now, each with its own signal (a timed-out
   * call must not abort a retry or another handler); null otherwise, when calls share `abort`.
   */
  readonly attempts: Set<Attempt> | null;
}

/** What a dispatch runs under: one per tenure (the period under one lease), fixed while it lasts. */
export interface DispatchScope {
  /** Shutdown began (or the tenure ended): a failure is no longer retried or recorded. */
  readonly stopping: AbortSignal;
  /** Leases: false once this instance may no longer start a handler call; asked before every retry, failure callback and dead letter. */
  readonly mayDispatch?: () => boolean;
  /** `context.fence`: the lease's fencing number, null without leases. */
  readonly fence: number | null;
}
