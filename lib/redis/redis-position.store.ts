import type { Cluster, Redis } from 'ioredis';
import type { StreamLease } from '../interfaces/lease-store.interface.js';
import type { PositionStore, StreamPosition } from '../interfaces/position-store.interface.js';
import { decodePosition, encodePosition } from '../position/position.codec.js';
import { RedisLeaseStore } from './redis-lease.store.js';
import { LEFT_POSITION_TTL_SECONDS, legacyPositionKey, leftPositionKey } from './redis-keys.js';

/** What `dropOrphan` leaves at the left-position key. */
const USED = 'used';

/**
 * Stores each position as a plain Redis string (no expiry) under its position key. A key
 * written by version 0.1 (`prefix:consumer:db:collection`, no hash tag) is read when the
 * current key does not exist yet, and left in place so a rollback still finds it.
 * With a lease, a save is a fenced compare-and-set (`RedisLeaseStore.writeFenced`).
 */
export class RedisPositionStore implements PositionStore {
  readonly durable = true;
  /** Leases on the same client; its keys sit beside each position key, in the same slot. */
  readonly leases: RedisLeaseStore;

  constructor(
    /** The ioredis client positions are stored with. */
    readonly client: Redis | Cluster,
  ) {
    this.leases = new RedisLeaseStore(client);
  }

  /** Read from the master (through a script), never from a replica that may lag behind. */
  async load(key: string): Promise<StreamPosition | null> {
    const raw = await this.leases.read(key);
    if (raw !== null) return decodePosition(key, raw);
    const legacy = legacyPositionKey(key);
    const legacyRaw = legacy === null ? null : await this.leases.read(legacy);
    return legacyRaw === null ? null : decodePosition(legacy!, legacyRaw);
  }

  /** Kept at `leftPositionKey(key)` (same slot as `key`): long enough for any holder to see it, never in the way. */
  async leaveOrphan(
    key: string,
    position: StreamPosition,
    lease: StreamLease,
    savedUnderLease: boolean,
  ): Promise<boolean> {
    return this.leases.leaveOrphan(
      key,
      encodePosition(position, new Date(), lease),
      lease,
      LEFT_POSITION_TTL_SECONDS,
      savedUnderLease,
    );
  }

  async loadOrphan(key: string): Promise<StreamPosition | null> {
    const raw = await this.leases.read(leftPositionKey(key));
    return raw === null || raw === USED ? null : decodePosition(leftPositionKey(key), raw);
  }

  /** Leaves a marker for the rest of the hour: a late retry of `leaveOrphan` must not bring it back. */
  async dropOrphan(key: string): Promise<void> {
    await this.client.set(leftPositionKey(key), USED, 'EX', LEFT_POSITION_TTL_SECONDS);
  }

  async save(key: string, position: StreamPosition, lease?: StreamLease): Promise<void> {
    if (lease)
      await this.leases.writeFenced(key, encodePosition(position, new Date(), lease), lease);
    else await this.client.set(key, encodePosition(position));
  }
}

/** @deprecated use `RedisPositionStore`; removed in 1.0 */
export const RedisResumeTokenStore = RedisPositionStore;
/** @deprecated use `RedisPositionStore`; removed in 1.0 */
export type RedisResumeTokenStore = RedisPositionStore;
