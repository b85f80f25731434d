import type { Logger } from '@nestjs/common';
import { messages } from '../change-stream.messages.js';
import type { StreamPause } from '../interfaces/change-stream-status.interface.js';
import type { LeaseBalancer } from '../lease/lease-balancer.js';
import type { StreamLeaseKeeper } from '../lease/stream-lease-keeper.js';
import type { LeaseTerm } from './lease-term.js';
import { decodePauseFlag } from './pause-flag.js';
import { PauseGate } from './pause-gate.js';
import type { StreamState } from './stream-state.js';

export interface StreamPausesDeps {
  key: string;
  logger: Logger;
  balancer?: LeaseBalancer;
  /** With leases on: whether this instance holds the stream's lease decides what a pause does. */
  lease?: Pick<StreamLeaseKeeper, 'current' | 'storeSilent'>;
  /** The lease term running now, if any: a pause ends it. */
  term(): LeaseTerm | undefined;
}

/**
 * A stream's run-time pauses as they act on it: a pause (local, or fleet-wide as seen in the
 * store) ends the running term, a local one also leaves the balancer; the end of the last pause
 * in force cancels a pause the term has not acted on yet. The supervision waits at `gate`.
 */
export class StreamPauses {
  readonly gate = new PauseGate();

  constructor(private readonly deps: StreamPausesDeps) {}

  /** Pauses on this instance; false when it was paused here already. */
  pauseLocally(pause: Omit<StreamPause, 'scope'>): boolean {
    const mark: StreamPause = { ...pause, scope: 'local' };
    if (!this.gate.pauseLocally(mark)) return false;
    this.deps.logger.log(messages.streamPaused(this.deps.key, mark, this.holding()));
    this.deps.balancer?.withdraw(this.deps.key);
    this.deps.term()?.pause(`paused: ${pause.reason ?? 'on this instance'}`);
    return true;
  }

  /**
   * The supervision while paused on this instance: shown as `paused` until resumed. Then, with
   * leases, as the lease attempts last said (`reconnecting` while the store does not answer, else
   * `standby`) until the next attempt answers: that one may take long while Redis is away.
   */
  async whilePausedLocally(state: StreamState, stopping: AbortSignal): Promise<void> {
    const before = state.baseState;
    const reason = state.lastError;
    state.setBase('paused');
    this.gate.settled();
    await this.gate.whenResumed(stopping);
    const { lease } = this.deps;
    if (stopping.aborted || this.gate.current || !lease) return;
    if (before === 'reconnecting' || lease.storeSilent) state.setBase('reconnecting', reason);
    else state.setBase('standby');
  }

  /** Ends a pause on this instance; false when it was not paused here. */
  resumeLocally(): boolean {
    if (!this.gate.resumeLocally()) return false;
    this.deps.balancer?.rejoin(this.deps.key);
    if (!this.gate.current) this.deps.term()?.cancelPause();
    this.deps.logger.log(messages.streamResumed(this.deps.key, 'local'));
    return true;
  }

  /** What a pause acts on: the lease held, no lease held (waiting for one, or standing by), or leases off. */
  private holding(): 'lease' | 'no lease' | 'leases off' {
    const { lease } = this.deps;
    if (!lease) return 'leases off';
    return lease.current ? 'lease' : 'no lease';
  }

  /** What the store said of the fleet-wide pause (the pause key's value, or null). */
  fleetSeen(value: string | null): void {
    const pause = value === null ? null : decodePauseFlag(value);
    if (!this.gate.fleetSeen(pause)) return;
    if (pause) {
      this.deps.logger.log(messages.streamPaused(this.deps.key, pause, this.holding()));
      this.deps.term()?.pause(`paused fleet-wide: ${pause.reason ?? 'pause key set'}`);
    } else {
      if (!this.gate.current) this.deps.term()?.cancelPause();
      this.deps.logger.log(messages.streamResumed(this.deps.key, 'fleet'));
    }
  }
}
