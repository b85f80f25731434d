import { HandlerFailedError } from '../change-stream.errors.js';
import { errorText } from '../common/errors.js';
import type { ChangeEvent } from '../common/change-event.js';

/**
 * `aborted`: shutdown began, so a failure is neither retried nor recorded; the event is simply
 * not acknowledged and is delivered again on the next start.
 */
export type DispatchOutcome =
  { ok: true } | { ok: false; error: HandlerFailedError } | { ok: false; aborted: true };

export const OK: DispatchOutcome = { ok: true };
export const ABORTED: DispatchOutcome = { ok: false, aborted: true };

export type MaybePromise<T> = T | Promise<T>;

/** The dispatcher records handler errors itself; anything else is a bug: stop rather than skip. */
export function dispatchBug(change: ChangeEvent, error: unknown): DispatchOutcome {
  return {
    ok: false,
    error: new HandlerFailedError(
      `Dispatching event ${JSON.stringify(change._id)} failed: ${errorText(error)}`,
      error,
    ),
  };
}
