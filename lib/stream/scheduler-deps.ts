import type { HandlerFailedError } from '../change-stream.errors.js';
import type { Checkpointer } from '../checkpoint/checkpointer.js';
import type { ChangeEvent } from '../common/change-event.js';
import type { ChangeDispatcher } from './change-dispatcher.js';

/** What an `EventScheduler` works with: its limits, the stream's dispatcher and checkpointer, and whom it tells. */
export interface SchedulerDeps {
  /** Events whose handlers run at once (events waiting for their document's previous event take no slot). */
  concurrency: number;
  /** Give each handler call its own `context.signal` (`onHandlerTimeout: 'abort'`); else the stream's calls share one. */
  signalPerAttempt: boolean;
  dispatcher: ChangeDispatcher;
  checkpointer: Checkpointer;
  /** Shutdown began: failures are no longer retried or recorded. */
  stopping: AbortSignal;
  /** Leases: false once this instance may no longer dispatch; checked right before each event starts and before every retry. */
  mayDispatch?: () => boolean;
  /** `context.fence`: the fencing number of the lease this term runs under, null without leases. */
  fence?: number | null;
  /** The document key events are ordered by (default `documentKeyOf`; a database stream's includes the collection). */
  documentKeyOf?: (change: ChangeEvent) => string | null;
  /** Every handler of this event succeeded (or its failure was recorded per policy). */
  onHandled(change: ChangeEvent): void;
  /** A handler failed for good under the `stop` policy: nothing more is dispatched. */
  onFailed(error: HandlerFailedError): void;
}
