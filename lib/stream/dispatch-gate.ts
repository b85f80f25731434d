import type { HandlerFailedError } from '../change-stream.errors.js';

/**
 * Whether a stream's scheduler may still start events: not after a handler failed for good (the
 * `stop` policy), not once shutdown began, and (with leases) not once this instance may no longer
 * dispatch. `halted` is aborted at shutdown or after the failure, for whatever waits to dispatch.
 */
export class DispatchGate {
  private failedWith: HandlerFailedError | null = null;
  /** `stopping.aborted`, as a plain field (the getter is slow enough to show per event). */
  private stoppingNow = false;
  private readonly halt = new AbortController();

  constructor(
    stopping: AbortSignal,
    private readonly mayDispatch?: () => boolean,
  ) {
    const stop = () => {
      this.stoppingNow = true;
      this.halt.abort();
    };
    if (stopping.aborted) stop();
    else stopping.addEventListener('abort', stop, { once: true });
  }

  get halted(): AbortSignal {
    return this.halt.signal;
  }

  /** The first failure for good, which ended dispatching. */
  get failure(): HandlerFailedError | null {
    return this.failedWith;
  }

  /** No failure for good, no shutdown, and (with leases) this instance may still dispatch. */
  mayStart(): boolean {
    return !this.failedWith && !this.stoppingNow && (this.mayDispatch?.() ?? true);
  }

  /** Records the first failure for good (a later one is not), tells `report`, then halts. */
  fail(error: HandlerFailedError, report: (error: HandlerFailedError) => void): void {
    if (this.failedWith) return;
    this.failedWith = error;
    report(error);
    this.halt.abort();
  }
}
