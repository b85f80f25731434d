/**
 * One instance's tenure over a stream: who holds it and the fencing number of that
 * acquisition. Fencing numbers only grow (per stream), so a newer holder always has a larger one.
 */
export interface StreamLease {
  /** The instance holding the lease (its `leases.instanceId`). */
  holder: string;
  /** The fencing number of this acquisition. */
  fence: number;
}

/** What an acquisition attempt found. */
export type LeaseAttempt =
  | {
      /** The lease is now the caller's. */
      acquired: StreamLease;
      /**
       * Wait this long (ms) before reading under it: the store may have lost an earlier lease that
       * its holder still believes valid (Redis restarted empty less than a TTL ago). Absent: at once.
       */
      waitMs?: number;
    }
  | {
      /** The current lease (null when its value could not be read). */
      heldBy: StreamLease | null;
      /** Its remaining time to live in ms (-1 for a lease key without expiry). */
      ttlMs: number;
    }
  | {
      /** The stream is paused fleet-wide (the value of its pause key): nobody may acquire it. */
      paused: string;
    };

/**
 * Leases decide which instance of a consumer reads a stream (see docs/replicas.md). The Redis
 * store implements it; a custom `PositionStore` that wants
 * leases exposes one as its `leases` property. What an implementation must guarantee:
 * - `acquire` is atomic: it succeeds only when no unexpired lease exists, and then hands out a
 *   fencing number larger than every number handed out before for that key (never reused, also
 *   across expiry and release);
 * - `renew` and `release` act only when the current lease is exactly `lease` (holder and fence);
 * - the store's `save(key, position, lease)` writes only while `lease` is current (or while no
 *   lease exists and no newer fence was handed out) and otherwise throws `FencedWriteError`,
 *   in the same atomic step as the write; it never replaces a position written with a larger fence.
 */
export interface LeaseStore {
  /** `key` is the stream's position key. */
  acquire(key: string, holder: string, ttlMs: number): Promise<LeaseAttempt>;
  /** Extends the lease to `ttlMs` from now; false when it is no longer `lease` (lost). */
  renew(key: string, lease: StreamLease, ttlMs: number): Promise<boolean>;
  /** Gives the lease up at once, so a standby takes over without waiting for the TTL. */
  release(key: string, lease: StreamLease): Promise<void>;
  /**
   * Records `member` as a live instance of `group` for `ttlMs` and returns how many live members
   * the group has (this one included): the basis of the fair share of streams per instance.
   */
  heartbeat(group: string, member: string, ttlMs: number): Promise<number>;
  /**
   * Optional: `heartbeat` that also records `member`'s handler set (`handlers`, an opaque string)
   * and returns every live member's, so that instances of one consumer running different handlers
   * for one stream are noticed (and warned about). Without it, `heartbeat` is used.
   */
  announce?(
    group: string,
    member: string,
    ttlMs: number,
    handlers: string,
  ): Promise<CandidateAnnouncement>;
  /** Removes `member` from `group` at once (clean shutdown). */
  leave(group: string, member: string): Promise<void>;
  /**
   * Optional, with `writePause` (fleet-wide pause): `renew` that also reads the stream's pause
   * flag in the same step (null when none is set). A store with both must also answer `acquire`
   * with `{ paused }` while the flag is set. Without them a pause applies to one instance only.
   */
  renewReadingPause?(key: string, lease: StreamLease, ttlMs: number): Promise<RenewalWithPause>;
  /** Optional: sets the stream's pause flag to `value` (who paused it and why), or clears it (null). */
  writePause?(key: string, value: string | null): Promise<void>;
}

/** What `LeaseStore.renewReadingPause` found. */
export interface RenewalWithPause {
  /** As `renew`: false when the lease is no longer the caller's. */
  renewed: boolean;
  /** The stream's pause flag (who paused it and why), or null when it is not paused fleet-wide. */
  paused: string | null;
}

/** What `LeaseStore.announce` found. */
export interface CandidateAnnouncement {
  /** How many live members the group has (this one included), as `heartbeat` returns. */
  members: number;
  /** Each live member's handler set, by member (this one included). */
  handlers: Map<string, string>;
}
