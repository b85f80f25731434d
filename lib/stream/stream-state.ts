import type { ChangeStreamEvent } from '../change-stream.events.js';
import type { ChangeStreamState } from '../interfaces/change-stream-status.interface.js';

/** Every state but `degraded`, which is an open stream with a degradation. */
export type BaseState = Exclude<ChangeStreamState, 'degraded'>;

/** What makes an open stream show `degraded`: the position store's trouble, a stuck handler, low history headroom. */
export type Degradation = 'store' | 'handler' | 'headroom';

/**
 * One stream's state: the base state the supervision sets, the degradations on top of it, the
 * `lastError` they leave, the `state` events announcing each change, and the waiters for the
 * stream to settle (open, standing by, failed or closed).
 */
export class StreamState {
  /** The state the supervision set (changed only through `setBase`). */
  private base: BaseState = 'starting';
  /** Why an open stream shows `degraded`. */
  private readonly degradedBy = new Map<Degradation, string>();
  private readonly settleWaiters: Array<() => void> = [];
  lastError: string | null = null;

  constructor(
    private readonly key: string,
    private readonly emit: (event: ChangeStreamEvent) => void,
  ) {}

  get baseState(): BaseState {
    return this.base;
  }

  get current(): ChangeStreamState {
    return this.base === 'open' && this.degradedBy.size > 0 ? 'degraded' : this.base;
  }

  /** Resolves once the stream is open, standing by, failed or closed (whichever comes first). */
  whenSettled(): Promise<void> {
    if (this.base !== 'starting' && this.base !== 'reconnecting') return Promise.resolve();
    return new Promise((resolve) => this.settleWaiters.push(resolve));
  }

  setBase(state: BaseState, reason: string | null = null): void {
    // A read abandoned at shutdown (see `CollectionStream.stopReading`) may still answer: closed stays closed.
    if (this.base === 'closed') return;
    const before = this.current;
    this.base = state;
    if ((state === 'open' || state === 'standby') && this.degradedBy.size === 0)
      this.lastError = null;
    else if (reason) this.lastError = reason;
    this.announce(before, reason);
    if (state !== 'starting' && state !== 'reconnecting')
      this.settleWaiters.splice(0).forEach((resolve) => resolve());
  }

  /** Sets (with its reason) or clears (null) one degradation. */
  degrade(cause: Degradation, reason: string | null): void {
    const before = this.current;
    if (reason === null) this.degradedBy.delete(cause);
    else this.degradedBy.set(cause, reason);
    const remaining = [...this.degradedBy.values()][0] ?? null;
    // Recovered: the error that made it degraded is history, not the current state.
    if (reason === null && (this.base === 'open' || this.base === 'standby'))
      this.lastError = remaining;
    this.announce(before, reason ?? remaining);
  }

  private announce(previous: ChangeStreamState, reason: string | null): void {
    const state = this.current;
    if (state === 'degraded' && reason) this.lastError = reason;
    if (previous !== state) this.emit({ type: 'state', key: this.key, state, previous, reason });
  }
}
