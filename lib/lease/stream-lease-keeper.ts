import { Logger } from '@nestjs/common';
import { messages } from '../change-stream.messages.js';
import { backoffDelay, sleep } from '../common/backoff.js';
import { errorText } from '../common/errors.js';
import type { LeaseStore, StreamLease } from '../interfaces/lease-store.interface.js';
import type { LeaseBalancer, LeaseTiming } from './lease-balancer.js';
import { LEASE_EXPIRY_MARGIN_MS } from '../options/defaults.js';

/**
 * One stream's lease on this instance: waits for it as a standby, renews it while active, and
 * reports its loss: a refused renewal, a renewal it could not confirm before the lease may
 * have expired (Redis unreachable), or a refused write.
 */
export class StreamLeaseKeeper {
  private readonly logger = new Logger('ChangeStreamModule');
  private lease: StreamLease | null = null;
  /** The other holder seen by the last attempt, for status while standby. */
  private seen: StreamLease | null = null;
  /** This instance's last lease: if it was given up only for want of a confirmation, it may still be ours. */
  private last: StreamLease | null = null;
  private renewTimer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  /** Monotonic time (`performance.now()`) until which the lease is surely this instance's (see `confirm`). */
  private confirmedUntil = 0;
  private onLost: ((reason: string) => void) | undefined;
  /** Another instance was seen holding this stream at some point: after a restart of Redis it may still believe its lease valid. */
  private sawOtherHolder = false;
  /** Monotonic time of the store's last answer to this keeper (0: none yet). */
  private answeredAt = 0;
  /** The lease was dropped because no renewal was confirmed in time: the store is silent until it answers again. */
  private lostUnanswered = false;

  constructor(
    private readonly key: string,
    private readonly store: LeaseStore,
    private readonly timing: LeaseTiming,
    private readonly balancer: LeaseBalancer,
  ) {}

  get instanceId(): string {
    return this.balancer.instanceId;
  }

  /** This instance's lease, if it holds one. */
  get current(): StreamLease | null {
    return this.lease;
  }

  /**
   * Checked before every dispatch: after a pause (GC, SIGSTOP, a starved event loop) buffered
   * events could otherwise be dispatched before the expiry timer gets its turn.
   */
  stillValid(): boolean {
    if (this.lease !== null && performance.now() < this.confirmedUntil) return true;
    this.loseUnconfirmed();
    return false;
  }

  /** Who holds the stream as far as this instance knows: itself, the holder it last saw, or nobody. */
  get holder(): StreamLease | null {
    return this.lease ?? this.seen;
  }

  /**
   * Polls until this instance holds the lease (within its fair share); null when `signal` aborts
   * first. `onWaiting` is told after each attempt that did not get it: the reason, or the store's
   * error (retried quietly: an unreachable store is reported once, elsewhere).
   */
  async acquire(signal: AbortSignal, onWaiting: (why: { heldBy: StreamLease | null } | { error: string }) => void): Promise<StreamLease | null> {
    // A standby is healthy only while the store answers: a holder it saw is live (its lease has a
    // TTL), but a store that stopped answering (frozen, or down with commands queued) shows nothing.
    // A holder that lost its lease for want of answers is silent since its last renewal, not since now.
    if (this.answeredAt === 0) this.answeredAt = performance.now();
    const watchdog = setInterval(() => this.lease === null && this.silent() && onWaiting(this.standingBy(null)), this.timing.renewIntervalMs);
    watchdog.unref();
    try {
      return await this.poll(signal, onWaiting);
    } finally {
      clearInterval(watchdog);
    }
  }

  /** Why this instance waits: the holder it saw, unless the store has not answered for a TTL. */
  private standingBy(heldBy: StreamLease | null): { heldBy: StreamLease | null } | { error: string } {
    return this.silent() ? { error: messages.leaseStoreSilent(this.timing.ttlMs) } : { heldBy };
  }

  /** The store has not answered this keeper for a lease TTL: no instance is known to hold the stream. */
  get storeSilent(): boolean {
    return this.silent();
  }

  private silent(): boolean {
    return this.lostUnanswered || performance.now() - this.answeredAt >= this.timing.ttlMs;
  }

  private answered(): void {
    this.answeredAt = performance.now();
    this.lostUnanswered = false;
  }

  private loseUnconfirmed(): void {
    if (this.lease) this.lostUnanswered = true;
    this.lose(messages.leaseUnconfirmed(this.timing.ttlMs));
  }

  private async poll(signal: AbortSignal, onWaiting: (why: { heldBy: StreamLease | null } | { error: string }) => void): Promise<StreamLease | null> {
    // Since when nobody was seen holding the stream while this instance stood back for its share.
    let unseenSince = performance.now();
    for (let failures = 0; !signal.aborted; ) {
      let reserved = this.balancer.reserve(this.key);
      if (!reserved) {
        if (await this.balancer.refresh(this.key)) this.answered(); // over its share, unless a candidate left: look again
        // A TTL without a holder in sight: the instances under their share may not be able to take
        // it (other handler sets). Ask anyway: if it is free, taking it beats leaving it unread.
        reserved = this.balancer.reserve(this.key, performance.now() - unseenSince >= this.timing.ttlMs);
      }
      if (reserved) {
        let sentAt = performance.now();
        try {
          const attempt = await this.store.acquire(this.key, this.instanceId, this.timing.ttlMs);
          this.answered();
          failures = 0;
          const heldBy = 'heldBy' in attempt ? attempt.heldBy : null;
          let won = 'acquired' in attempt ? attempt.acquired : null;
          // Still our own lease (dropped when a renewal came too late, say): take it back rather than wait out its TTL.
          if (heldBy && this.isLast(heldBy) && (await this.store.renew(this.key, heldBy, this.timing.ttlMs))) won = heldBy;
          // A late reply (queued while Redis was away) leaves too little of the TTL confirmed for the
          // renewals to keep it: renew once first, or the lease would be dropped at once as unconfirmed.
          if (won && this.confirmedFrom(sentAt) - performance.now() < 2 * this.timing.renewIntervalMs) {
            this.last = won; // if this renewal fails, the next attempt takes it back as ours
            sentAt = performance.now();
            if (!(await this.store.renew(this.key, won, this.timing.ttlMs))) won = null;
          }
          if (heldBy && heldBy.holder !== this.instanceId) this.sawOtherHolder = true;
          // Only when another instance may hold a lease from before (a wait on every first start of a new Redis would delay it for nothing).
          const mayOverlap = this.sawOtherHolder || this.balancer.sawOtherCandidates(this.key);
          const waitMs = won && mayOverlap && 'acquired' in attempt && attempt.acquired === won ? (attempt.waitMs ?? 0) : 0;
          if (won && waitMs > 0 && !(await this.waitOut(won, sentAt, waitMs, signal))) continue;
          if (won) return await this.take(won, sentAt, signal);
          this.balancer.unreserve(this.key);
          this.seen = heldBy;
          unseenSince = performance.now();
          onWaiting(this.standingBy(this.seen));
        } catch (error) {
          this.balancer.unreserve(this.key);
          failures++;
          this.logger.debug(messages.leaseAttemptFailed(this.key, errorText(error)));
          onWaiting({ error: errorText(error) });
          await sleep(backoffDelay(failures, this.timing.pollIntervalMs, this.timing.ttlMs), signal);
          continue;
        }
      } else {
        onWaiting(this.standingBy(null));
      }
      // Jitter, so standbys polling at one interval do not knock in step.
      await sleep(Math.round(this.timing.pollIntervalMs * (0.75 + Math.random() * 0.5)), signal);
    }
    return null;
  }

  /**
   * Holds `lease` (renewing it, so nobody else takes it) for `waitMs` before anything is read under
   * it: the store lost an earlier lease that its holder may still believe valid for that long.
   * False if the lease was lost meanwhile.
   */
  private async waitOut(lease: StreamLease, sentAt: number, waitMs: number, signal: AbortSignal): Promise<boolean> {
    this.onLost = undefined; // the last tenure's: it ended, nothing of it may react to this loss
    this.hold(lease, sentAt);
    this.logger.warn(messages.leaseFenceMissing(this.key, this.instanceId, waitMs));
    await sleep(waitMs, signal);
    if (this.lease === lease) return true;
    this.seen = null;
    return false;
  }

  /** Holds `lease`, unless shutdown began meanwhile: then it is given back at once. */
  private async take(lease: StreamLease, sentAt: number, signal: AbortSignal): Promise<StreamLease | null> {
    if (this.lease !== lease) this.hold(lease, sentAt);
    if (!signal.aborted) return lease;
    await this.release();
    return null;
  }

  /** Called once, when the current lease is lost. */
  whenLost(onLost: (reason: string) => void): void {
    this.onLost = onLost;
  }

  /** The lease is gone (a refused write proves it): stop renewing and tell the stream. */
  lose(reason: string): void {
    if (!this.lease) return;
    this.seen = null;
    this.drop();
    this.onLost?.(reason);
  }

  /** Gives the lease up so a standby takes over at once (clean shutdown, hand-over). */
  async release(): Promise<void> {
    const lease = this.lease;
    if (!lease) return;
    this.drop();
    await this.store.release(this.key, lease).catch((error: unknown) => this.logger.warn(messages.leaseReleaseFailed(this.key, errorText(error))));
  }

  /** Stops renewing without releasing: the lease runs out after its TTL (shutdown with handlers still running). */
  abandon(): void {
    if (this.lease) this.drop();
  }

  private isLast(lease: StreamLease | null): boolean {
    return lease !== null && this.last !== null && lease.fence === this.last.fence && lease.holder === this.last.holder;
  }

  private hold(lease: StreamLease, sentAt: number): void {
    this.lease = lease;
    this.last = lease;
    this.seen = null;
    this.balancer.acquired(this.key);
    this.confirm(sentAt);
    this.renewTimer = setInterval(() => void this.renew(), this.timing.renewIntervalMs);
    this.renewTimer.unref();
  }

  private async renew(): Promise<void> {
    const lease = this.lease;
    if (!lease) return;
    const sentAt = performance.now();
    let renewed: boolean;
    try {
      renewed = await this.store.renew(this.key, lease, this.timing.ttlMs);
    } catch {
      return; // unconfirmed: the expiry timer decides if it stays unconfirmed for too long
    }
    this.answered();
    if (this.lease !== lease) return;
    if (renewed) this.confirm(sentAt);
    else this.lose(messages.leaseRenewRefused());
  }

  /**
   * The lease surely lasts until `sentAt + ttl` (Redis set its expiry after the request left);
   * stop a little before that if no renewal confirms it meanwhile, so two instances never both
   * believe they hold it.
   */
  private confirm(sentAt: number): void {
    clearTimeout(this.expiryTimer);
    this.confirmedUntil = this.confirmedFrom(sentAt);
    this.expiryTimer = setTimeout(() => this.loseUnconfirmed(), Math.max(0, this.confirmedUntil - performance.now()));
    this.expiryTimer.unref();
  }

  /** Until when a request sent at `sentAt` that Redis answered confirms the lease. */
  private confirmedFrom(sentAt: number): number {
    const margin = Math.min(LEASE_EXPIRY_MARGIN_MS, Math.floor(this.timing.ttlMs / 10));
    return sentAt + this.timing.ttlMs - margin;
  }

  private drop(): void {
    clearInterval(this.renewTimer);
    clearTimeout(this.expiryTimer);
    this.renewTimer = this.expiryTimer = undefined;
    this.balancer.released(this.key);
    this.lease = null;
  }
}
