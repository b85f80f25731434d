import { Logger } from '@nestjs/common';
import { messages } from '../change-stream.messages.js';
import { errorText } from '../common/errors.js';
import type { LeaseStore } from '../interfaces/lease-store.interface.js';

export interface LeaseTiming {
  /** How long a lease lives without renewal: the worst-case takeover time after a crash (plus one poll). */
  ttlMs: number;
  /** How often the holder renews (and instances announce themselves). */
  renewIntervalMs: number;
  /** How often a standby looks for a free lease. */
  pollIntervalMs: number;
}

/**
 * Spreads streams over the live instances of one consumer: each instance announces itself
 * (`heartbeat`) and takes a lease only while it holds fewer than its fair share,
 * `ceil(streams / instances)`; holding more than that (an instance joined), it hands one over
 * per renew interval. So a new instance gets its share within a few renew intervals, and the
 * streams of an instance that left move to the others within one poll (clean shutdown) or the
 * TTL (crash).
 */
export class LeaseBalancer {
  private readonly logger = new Logger('ChangeStreamModule');
  private readonly held = new Set<string>();
  private members = 1;
  private timer: NodeJS.Timeout | undefined;
  /** Announced at least once (an outage at startup is reported by the store check). */
  private announced = false;
  private reportedFailure = false;

  constructor(
    private readonly store: LeaseStore,
    private readonly group: string,
    readonly instanceId: string,
    private readonly timing: LeaseTiming,
    private readonly streams: number,
    /** Asked to hand one stream over (the key), when this instance holds more than its share. */
    private readonly shed: (key: string) => void,
  ) {}

  /** Announces this instance, then keeps announcing every renew interval. */
  async start(): Promise<void> {
    await this.tick();
    this.timer = setInterval(() => void this.tick(), this.timing.renewIntervalMs);
    this.timer.unref();
  }

  /** Stops announcing and leaves the group at once, so the others' share grows now. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.store.leave(this.group, this.instanceId).catch(() => undefined);
  }

  /** `ceil(streams / live instances)`. */
  get fairShare(): number {
    return Math.ceil(this.streams / Math.max(1, this.members));
  }

  get liveInstances(): number {
    return this.members;
  }

  mayAcquire(): boolean {
    return this.held.size < this.fairShare;
  }

  acquired(key: string): void {
    this.held.add(key);
  }

  released(key: string): void {
    this.held.delete(key);
  }

  private async tick(): Promise<void> {
    try {
      this.members = await this.store.heartbeat(this.group, this.instanceId, this.timing.ttlMs);
      this.announced = true;
      this.reportedFailure = false;
    } catch (error) {
      if (this.announced && !this.reportedFailure) this.logger.warn(messages.heartbeatFailed(this.instanceId, errorText(error)));
      this.reportedFailure = true;
      return;
    }
    if (this.held.size > this.fairShare) {
      const key = [...this.held].at(-1)!;
      this.logger.log(messages.leaseShed(key, this.instanceId, this.held.size, this.fairShare, this.members));
      this.shed(key);
    }
  }
}
