import { Logger } from '@nestjs/common';
import { messages } from '../change-stream.messages.js';
import { backoffDelay, sleep } from '../common/backoff.js';
import { errorText } from '../common/errors.js';
import type { LeaseStore, StreamLease } from '../interfaces/lease-store.interface.js';
import type { LeaseBalancer, LeaseTiming } from './lease-balancer.js';
import { LeaseHolding } from './lease-holding.js';

/** Why an acquisition attempt did not get the lease: its holder, the store's error, or a fleet-wide pause (the pause key's value). */
export type LeaseWait =
  | {
      heldBy: StreamLease | null;
      /** The store answered an attempt (else this instance did not ask: over its fair share, say). */
      answered?: boolean;
    }
  | { error: string }
  | { paused: string };

/**
 * One stream's lease on this instance: waits for it as a standby (the acquire loop here), renews it
 * while active, and reports its loss (both in `LeaseHolding`): a refused renewal, a renewal it could
 * not confirm before the lease may have expired (Redis unreachable), or a refused write.
 */
export class StreamLeaseKeeper {
  private readonly logger = new Logger('ChangeStreamModule');
  private readonly holding: LeaseHolding;
  /** The other holder seen by the last attempt, for status while standby. */
  private seen: StreamLease | null = null;
  /** Another instance was seen holding this stream at some point: after a restart of Redis it may still believe its lease valid. */
  private sawOtherHolder = false;

  constructor(
    private readonly key: string,
    private readonly store: LeaseStore,
    private readonly timing: LeaseTiming,
    private readonly balancer: LeaseBalancer,
  ) {
    this.holding = new LeaseHolding(key, store, timing, balancer);
  }

  get instanceId(): string {
    return this.balancer.instanceId;
  }

  /** This instance's lease, if it holds one. */
  get current(): StreamLease | null {
    return this.holding.current;
  }

  /**
   * Checked before every dispatch: after a pause (GC, SIGSTOP, a starved event loop) buffered
   * events could otherwise be dispatched before the expiry timer gets its turn.
   */
  stillValid(): boolean {
    return this.holding.stillValid();
  }

  /** Who holds the stream as far as this instance knows: itself, the holder it last saw, or nobody. */
  get holder(): StreamLease | null {
    return this.holding.current ?? this.seen;
  }

  /**
   * Polls until this instance holds the lease (within its fair share); null when `signal` aborts
   * first. `onWaiting` is told after each attempt that did not get it: the reason, or the store's
   * error (retried quietly: an unreachable store is reported once, elsewhere).
   */
  async acquire(
    signal: AbortSignal,
    onWaiting: (why: LeaseWait) => void,
  ): Promise<StreamLease | null> {
    // A standby is healthy only while the store answers: a holder it saw is live (its lease has a
    // TTL), but a store that stopped answering (frozen, or down with commands queued) shows nothing.
    // A holder that lost its lease for want of answers is silent since its last renewal, not since now.
    this.holding.startCountingSilence();
    const watchdog = setInterval(
      () =>
        this.holding.current === null && this.holding.silent() && onWaiting(this.standingBy(null)),
      this.timing.renewIntervalMs,
    );
    watchdog.unref();
    try {
      return await this.poll(signal, onWaiting);
    } finally {
      clearInterval(watchdog);
    }
  }

  /** Why this instance waits: the holder it saw, unless the store has not answered for a TTL. */
  private standingBy(
    heldBy: StreamLease | null,
  ): { heldBy: StreamLease | null } | { error: string } {
    return this.holding.silent()
      ? { error: messages.leaseStoreSilent(this.timing.ttlMs) }
      : { heldBy };
  }

  /** The store has not answered this keeper for a lease TTL: no instance is known to hold the stream. */
  get storeSilent(): boolean {
    return this.holding.silent();
  }

  private async poll(
    signal: AbortSignal,
    onWaiting: (why: LeaseWait) => void,
  ): Promise<StreamLease | null> {
    // Since when nobody was seen holding the stream while this instance stood back for its share.
    let unseenSince = performance.now();
    for (let failures = 0; !signal.aborted;) {
      let reserved = this.balancer.reserve(this.key);
      if (!reserved) {
        if (await this.balancer.refresh(this.key)) this.holding.answered(); // over its share, unless a candidate left: look again
        // A TTL without a holder in sight: the instances under their share may not be able to take
        // it (other handler sets). Ask anyway: if it is free, taking it beats leaving it unread.
        reserved = this.balancer.reserve(
          this.key,
          performance.now() - unseenSince >= this.timing.ttlMs,
        );
      }
      if (reserved) {
        let sentAt = performance.now();
        try {
          const attempt = await this.store.acquire(this.key, this.instanceId, this.timing.ttlMs);
          this.holding.answered();
          failures = 0;
          if ('paused' in attempt) {
            // Paused fleet-wide: nobody may take it; look again at the poll interval.
            this.balancer.unreserve(this.key);
            this.seen = null;
            onWaiting({ paused: attempt.paused });
            await sleep(this.pollDelay(), signal);
            continue;
          }
          const heldBy = 'heldBy' in attempt ? attempt.heldBy : null;
          let won = 'acquired' in attempt ? attempt.acquired : null;
          // Still our own lease (dropped when a renewal came too late, say): take it back rather than wait out its TTL.
          const ownLease = heldBy && this.holding.isLast(heldBy) ? heldBy : null;
          if (ownLease && (await this.store.renew(this.key, ownLease, this.timing.ttlMs))) {
            won = ownLease;
          }
          // A late reply (queued while Redis was away) leaves too little of the TTL confirmed for the
          // renewals to keep it: renew once first, or the lease would be dropped at once as unconfirmed.
          if (
            won &&
            this.holding.confirmedFrom(sentAt) - performance.now() < 2 * this.timing.renewIntervalMs
          ) {
            this.holding.remember(won); // if this renewal fails, the next attempt takes it back as ours
            sentAt = performance.now();
            if (!(await this.store.renew(this.key, won, this.timing.ttlMs))) won = null;
          }
          if (heldBy && heldBy.holder !== this.instanceId) this.sawOtherHolder = true;
          // Only when another instance may hold a lease from before (a wait on every first start of a new Redis would delay it for nothing).
          const mayOverlap = this.sawOtherHolder || this.balancer.sawOtherCandidates(this.key);
          const waitMs =
            won && mayOverlap && 'acquired' in attempt && attempt.acquired === won
              ? (attempt.waitMs ?? 0)
              : 0;
          if (won && waitMs > 0 && !(await this.waitOut(won, sentAt, waitMs, signal))) continue;
          if (won) return await this.take(won, sentAt, signal);
          this.balancer.unreserve(this.key);
          this.seen = heldBy;
          unseenSince = performance.now();
          const why = this.standingBy(this.seen);
          onWaiting('heldBy' in why ? { ...why, answered: true } : why);
        } catch (error) {
          this.balancer.unreserve(this.key);
          failures++;
          this.logger.debug(messages.leaseAttemptFailed(this.key, errorText(error)));
          onWaiting({ error: errorText(error) });
          await sleep(
            backoffDelay(failures, this.timing.pollIntervalMs, this.timing.ttlMs),
            signal,
          );
          continue;
        }
      } else {
        onWaiting(this.standingBy(null));
      }
      await sleep(this.pollDelay(), signal);
    }
    return null;
  }

  /** Jitter, so standbys polling at one interval do not knock in step. */
  private pollDelay(): number {
    return Math.round(this.timing.pollIntervalMs * (0.75 + Math.random() * 0.5));
  }

  /**
   * Holds `lease` (renewing it, so nobody else takes it) for `waitMs` before anything is read under
   * it: the store lost an earlier lease that its holder may still believe valid for that long.
   * False if the lease was lost meanwhile.
   */
  private async waitOut(
    lease: StreamLease,
    sentAt: number,
    waitMs: number,
    signal: AbortSignal,
  ): Promise<boolean> {
    this.holding.forgetLostListener(); // the last tenure's: it ended, nothing of it may react to this loss
    this.hold(lease, sentAt);
    this.logger.warn(messages.leaseFenceMissing(this.key, this.instanceId, waitMs));
    await sleep(waitMs, signal);
    if (this.holding.current === lease) return true;
    this.seen = null;
    return false;
  }

  /** Holds `lease`, unless shutdown began meanwhile: then it is given back at once. */
  private async take(
    lease: StreamLease,
    sentAt: number,
    signal: AbortSignal,
  ): Promise<StreamLease | null> {
    if (this.holding.current !== lease) this.hold(lease, sentAt);
    if (!signal.aborted) return lease;
    await this.release();
    return null;
  }

  private hold(lease: StreamLease, sentAt: number): void {
    this.seen = null;
    this.holding.hold(lease, sentAt);
  }

  /** Told after each confirmed renewal what the store said of the fleet-wide pause (null: none). */
  whenPauseSeen(listener: (paused: string | null) => void): void {
    this.holding.whenPauseSeen(listener);
  }

  /** Called once, when the current lease is lost. */
  whenLost(onLost: (reason: string) => void): void {
    this.holding.whenLost(onLost);
  }

  /** The lease is gone (a refused write proves it): stop renewing and tell the stream. */
  lose(reason: string): void {
    if (!this.holding.current) return;
    this.seen = null;
    this.holding.lose(reason);
  }

  /** Gives the lease up so a standby takes over at once (clean shutdown, hand-over). */
  release(): Promise<void> {
    return this.holding.release();
  }

  /** Stops renewing without releasing: the lease runs out after its TTL (shutdown with handlers still running). */
  abandon(): void {
    this.holding.abandon();
  }
}
