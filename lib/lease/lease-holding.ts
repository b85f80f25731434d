import { Logger } from '@nestjs/common';
import { messages } from '../change-stream.messages.js';
import { errorText } from '../common/errors.js';
import type { LeaseStore, StreamLease } from '../interfaces/lease-store.interface.js';
import type { LeaseBalancer, LeaseTiming } from './lease-balancer.js';
import { LEASE_EXPIRY_MARGIN_MS } from '../options/defaults.js';

/**
 * The lease this instance holds for one stream: renews it, drops it when no renewal confirmed it
 * before it may have expired, and tracks when the store last answered (see `silent`).
 */
export class LeaseHolding {
  private readonly logger = new Logger('ChangeStreamModule');
  private lease: StreamLease | null = null;
  /** This instance's last lease: if it was given up only for want of a confirmation, it may still be ours. */
  private last: StreamLease | null = null;
  private renewTimer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  /** Monotonic time (`performance.now()`) until which the lease is surely this instance's (see `confirm`). */
  private confirmedUntil = 0;
  private onLost: ((reason: string) => void) | undefined;
  /** Told after each confirmed renewal what the store said of the fleet-wide pause (stores that read it). */
  private onPauseSeen: ((paused: string | null) => void) | undefined;
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

  get current(): StreamLease | null {
    return this.lease;
  }

  stillValid(): boolean {
    if (this.lease !== null && performance.now() < this.confirmedUntil) return true;
    this.loseUnconfirmed();
    return false;
  }

  /** Silence is counted from now if the store never answered yet. */
  startCountingSilence(): void {
    if (this.answeredAt === 0) this.answeredAt = performance.now();
  }

  silent(): boolean {
    return this.lostUnanswered || performance.now() - this.answeredAt >= this.timing.ttlMs;
  }

  answered(): void {
    this.answeredAt = performance.now();
    this.lostUnanswered = false;
  }

  /** Forget the listener of the last tenure: it ended, nothing of it may react to a later loss. */
  forgetLostListener(): void {
    this.onLost = undefined;
  }

  /** Remembers `lease` as this instance's own: a later attempt that finds it takes it back. */
  remember(lease: StreamLease): void {
    this.last = lease;
  }

  whenLost(onLost: (reason: string) => void): void {
    this.onLost = onLost;
  }

  whenPauseSeen(listener: (paused: string | null) => void): void {
    this.onPauseSeen = listener;
  }

  /** Drops the lease (if held) and tells the listener. */
  lose(reason: string): void {
    if (!this.lease) return;
    this.drop();
    this.onLost?.(reason);
  }

  async release(): Promise<void> {
    const lease = this.lease;
    if (!lease) return;
    this.drop();
    await this.store
      .release(this.key, lease)
      .catch((error: unknown) =>
        this.logger.warn(messages.leaseReleaseFailed(this.key, errorText(error))),
      );
  }

  abandon(): void {
    if (this.lease) this.drop();
  }

  isLast(lease: StreamLease | null): boolean {
    return (
      lease !== null &&
      this.last !== null &&
      lease.fence === this.last.fence &&
      lease.holder === this.last.holder
    );
  }

  hold(lease: StreamLease, sentAt: number): void {
    this.lease = lease;
    this.last = lease;
    this.balancer.acquired(this.key);
    this.confirm(sentAt);
    this.renewTimer = setInterval(() => void this.renew(), this.timing.renewIntervalMs);
    this.renewTimer.unref();
  }

  /** Until when a request sent at `sentAt` that Redis answered confirms the lease. */
  confirmedFrom(sentAt: number): number {
    const margin = Math.min(LEASE_EXPIRY_MARGIN_MS, Math.floor(this.timing.ttlMs / 10));
    return sentAt + this.timing.ttlMs - margin;
  }

  private loseUnconfirmed(): void {
    if (this.lease) this.lostUnanswered = true;
    this.lose(messages.leaseUnconfirmed(this.timing.ttlMs));
  }

  private async renew(): Promise<void> {
    const lease = this.lease;
    if (!lease) return;
    const sentAt = performance.now();
    let renewed: boolean;
    let paused: string | null | undefined;
    try {
      // The fleet-wide pause is read with the renewal (one script), not by a poll of its own.
      if (this.store.renewReadingPause)
        ({ renewed, paused } = await this.store.renewReadingPause(
          this.key,
          lease,
          this.timing.ttlMs,
        ));
      else renewed = await this.store.renew(this.key, lease, this.timing.ttlMs);
    } catch {
      return; // unconfirmed: the expiry timer decides if it stays unconfirmed for too long
    }
    this.answered();
    if (this.lease !== lease) return;
    if (!renewed) return this.lose(messages.leaseRenewRefused());
    this.confirm(sentAt);
    if (paused !== undefined) this.onPauseSeen?.(paused);
  }

  /**
   * The lease surely lasts until `sentAt + ttl` (Redis set its expiry after the request left);
   * stop a little before that if no renewal confirms it meanwhile, so two instances never both
   * believe they hold it.
   */
  private confirm(sentAt: number): void {
    clearTimeout(this.expiryTimer);
    this.confirmedUntil = this.confirmedFrom(sentAt);
    this.expiryTimer = setTimeout(
      () => this.loseUnconfirmed(),
      Math.max(0, this.confirmedUntil - performance.now()),
    );
    this.expiryTimer.unref();
  }

  private drop(): void {
    clearInterval(this.renewTimer);
    clearTimeout(this.expiryTimer);
    this.renewTimer = this.expiryTimer = undefined;
    this.balancer.released(this.key);
    this.lease = null;
  }
}
