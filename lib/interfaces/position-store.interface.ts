import type { mongo } from 'mongoose';
import type { StoredBackfill } from './backfill.interface.js';
import type { LeaseStore, StreamLease } from './lease-store.interface.js';

/** A change event's `_id`, as the server sent it (`{ _data: '…' }` on MongoDB). */
export type ResumeToken = mongo.ResumeToken;

/**
 * Where a stream resumes: after a change event's resume token or, for a stream that has not
 * seen an event yet on a server that returns no post-batch token, at the cluster time it
 * started (`startAtOperationTime`).
 */
export type StreamPosition = (
  | {
      /** Resume after this event (`resumeAfter`). */
      token: ResumeToken;
    }
  | {
      /** Start at this cluster time (`startAtOperationTime`). */
      operationTime: mongo.Timestamp;
    }
) & {
  /** Backfill progress, stored with the position (a store keeps it as `encodePosition` does). */
  backfill?: StoredBackfill;
  /**
   * A database stream's record of the collections its position covers (a store keeps it as
   * `encodePosition` does): where a stream that shares a collection with it starts depends on it.
   */
  coverage?: StreamCoverage;
};

/**
 * Which collections a database stream's position covers: it handled their events up to the
 * position (`serves`), or up to the cluster time it stopped serving them (`retired`). A collection
 * stream covers its one collection without it.
 */
export interface StreamCoverage {
  /** The collections the stream serves, sorted. */
  serves: string[];
  /** Collections it served before and serves no longer, each with the cluster time up to which it served them. */
  retired?: Record<string, mongo.Timestamp>;
}

/**
 * Where stream positions live. The Redis store is the default; implement this for another
 * database. `encodePosition`/`decodePosition` give you the module's value format.
 */
export interface PositionStore {
  /**
   * `false` for stores that forget on restart (in-memory). Used at startup to refuse dead
   * letters that are less durable than positions. Custom stores count as durable.
   */
  readonly durable?: boolean;
  /** The stored position, or `null` when the key has never been written. Throw `InvalidStoredTokenError` for a value you cannot read. */
  load(key: string): Promise<StreamPosition | null>;
  /**
   * Persist `position` as the place to resume from. Must not resolve before it is durable.
   * With `lease` (leases on), write only while that lease is current, atomically, else throw
   * `FencedWriteError` (see `LeaseStore`).
   */
  save(key: string, position: StreamPosition, lease?: StreamLease): Promise<void>;
  /** Lease support; without it leases are off for this store. */
  readonly leases?: LeaseStore;
  /**
   * Optional, with leases (all three of `leaveOrphan`, `loadOrphan`, `dropOrphan`, or none):
   * recovery from a store that lost its data (Redis restarted empty) while an instance was
   * reading. That instance loses its lease; it then calls `leaveOrphan` with the position it
   * reached, the lease it held and whether it stored a position under that lease. If the store
   * shows it lost the stream's data after that lease was handed out (in one atomic step: the fence
   * counter is missing or lower, or the lease or the stored position carries that fence for
   * another holder, or, if it had saved, the stored position is missing or has a lower fence),
   * keep the position beside `key` unless something is kept there already, expiring, and return
   * true; else (a normal takeover) return false and keep nothing.
   */
  leaveOrphan?(
    key: string,
    position: StreamPosition,
    lease: StreamLease,
    savedUnderLease: boolean,
  ): Promise<boolean>;
  /** What `leaveOrphan` kept, if anything. The holder of the lease resumes from it. */
  loadOrphan?(key: string): Promise<StreamPosition | null>;
  /**
   * Called once the holder stored a position at or after what `loadOrphan` returned: from then on
   * `loadOrphan` returns null, and `leaveOrphan` keeps nothing (a late retry must not bring it back)
   * until what was kept would have expired.
   */
  dropOrphan?(key: string): Promise<void>;
}

/** @deprecated use `PositionStore`; removed in 1.0 */
export type ResumeTokenStore = PositionStore;
