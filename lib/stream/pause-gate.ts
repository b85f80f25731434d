import type { StreamPause } from '../interfaces/change-stream-status.interface.js';

/**
 * One stream's pauses: the local one (`ChangeStreamControl.pause` on this instance, held until
 * `resume`) and the fleet-wide one last seen in the store (the pause key, read with each lease
 * renewal and acquisition attempt). The supervision waits at the gate while paused locally; a
 * fleet-wide pause keeps it out of the lease (the store refuses to hand it out).
 */
export class PauseGate {
  private localPause: StreamPause | null = null;
  private fleetPause: StreamPause | null = null;
  /** Aborted by a local pause: ends a wait for the lease. */
  private pausing = new AbortController();
  private resumeWaiters: Array<() => void> = [];
  private settleWaiters: Array<() => void> = [];

  /** The pause in force: the local one first (it outlasts a fleet-wide one). */
  get current(): StreamPause | null {
    return this.localPause ?? this.fleetPause;
  }

  get local(): StreamPause | null {
    return this.localPause;
  }

  get fleet(): StreamPause | null {
    return this.fleetPause;
  }

  /** False when it was paused locally already. */
  pauseLocally(pause: StreamPause): boolean {
    if (this.localPause) return false;
    this.localPause = pause;
    this.pausing.abort();
    return true;
  }

  /** False when it was not paused locally. */
  resumeLocally(): boolean {
    if (!this.localPause) return false;
    this.localPause = null;
    this.pausing = new AbortController();
    this.resumeWaiters.splice(0).forEach((resolve) => resolve());
    // A pause still draining when resumed never settles as a pause: its caller must not wait on.
    this.settled();
    return true;
  }

  /** Records what the store said of the fleet-wide pause; true when that changed. */
  fleetSeen(pause: StreamPause | null): boolean {
    const changed = (pause === null) !== (this.fleetPause === null);
    this.fleetPause = pause;
    return changed;
  }

  /** Aborted at `stopping` or by a local pause (the one in force now, or a later one). */
  interruptible(stopping: AbortSignal): AbortSignal {
    return AbortSignal.any([stopping, this.pausing.signal]);
  }

  /** Resolves once resumed locally, or at `stopping`. */
  whenResumed(stopping: AbortSignal): Promise<void> {
    if (!this.localPause || stopping.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        stopping.removeEventListener('abort', done);
        resolve();
      };
      this.resumeWaiters.push(done);
      stopping.addEventListener('abort', done, { once: true });
    });
  }

  /** The stream stopped reading for the pause (drained, saved, released) or stopped for good. */
  settled(): void {
    this.settleWaiters.splice(0).forEach((resolve) => resolve());
  }

  /** Resolves at the next `settled`. */
  whenSettled(): Promise<void> {
    return new Promise((resolve) => this.settleWaiters.push(resolve));
  }
}
