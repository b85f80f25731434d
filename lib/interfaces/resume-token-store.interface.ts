import type { mongo } from 'mongoose';
import type { LeaseStore, StreamLease } from './lease-store.interface.js';

/** A change event's `_id`, as the server sent it (`{ _data: '…' }` on MongoDB). */
export type ResumeToken = mongo.ResumeToken;

/**
 * Where a stream resumes: after a change event's resume token or, for a stream that has not
 * seen an event yet on a server that returns no post-batch token, at the cluster time it
 * started (`startAtOperationTime`).
 */
export type StreamPosition =
  | {
      /** Resume after this event (`resumeAfter`). */
      token: ResumeToken;
    }
  | {
      /** Start at this cluster time (`startAtOperationTime`). */
      operationTime: mongo.Timestamp;
    };

/**
 * Where stream positions live. The Redis store is the default; implement this for another
 * database. `encodeCheckpoint`/`decodeCheckpoint` give you the module's value format.
 */
export interface ResumeTokenStore {
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
   * Optional, with leases: an instance that lost its lease leaves its last handled position
   * beside `key` (write-if-absent, expiring) for a holder that started from nothing because the
   * store lost its data (Redis restarted empty).
   */
  leaveOrphan?(key: string, position: StreamPosition): Promise<void>;
  /** Optional, with leases: reads and removes what `leaveOrphan` left, if anything. */
  takeOrphan?(key: string): Promise<StreamPosition | null>;
}
