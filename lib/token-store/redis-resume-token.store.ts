import type { Cluster, Redis } from 'ioredis';
import type { StreamLease } from '../interfaces/lease-store.interface.js';
import type { ResumeTokenStore, StreamPosition } from '../interfaces/resume-token-store.interface.js';
import { orphanKey } from '../lease/lease-keys.js';
import { RedisLeaseStore } from '../lease/redis-lease.store.js';
import { decodeCheckpoint, encodeCheckpoint } from './checkpoint.codec.js';
import { LEFT_POSITION_TTL_MS } from '../options/defaults.js';

const ORPHAN_TTL_SECONDS = LEFT_POSITION_TTL_MS / 1000;
/** What `dropOrphan` leaves at the orphan key. */
const USED = 'used';

/**
 * Stores each position as a plain Redis string (no expiry) under its checkpoint key. A key
 * written by version 0.1 (`prefix:consumer:db:collection`, no hash tag) is read when the
 * current key does not exist yet, and left in place so a rollback still finds it.
 * With a lease, a save is a fenced compare-and-set (`RedisLeaseStore.writeFenced`).
 */
export class RedisResumeTokenStore implements ResumeTokenStore {
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
    if (raw !== null) return decodeCheckpoint(key, raw);
    const legacy = legacyKeyOf(key);
    const legacyRaw = legacy === null ? null : await this.leases.read(legacy);
    return legacyRaw === null ? null : decodeCheckpoint(legacy!, legacyRaw);
  }

  /** Kept an hour at `K:orphan` (same slot as K): long enough for any holder to see it, never in the way. */
  async leaveOrphan(key: string, position: StreamPosition, lease: StreamLease, savedUnderLease: boolean): Promise<boolean> {
    return this.leases.leaveOrphan(key, encodeCheckpoint(position, new Date(), lease), lease, ORPHAN_TTL_SECONDS, savedUnderLease);
  }

  async loadOrphan(key: string): Promise<StreamPosition | null> {
    const raw = await this.leases.read(orphanKey(key));
    return raw === null || raw === USED ? null : decodeCheckpoint(orphanKey(key), raw);
  }

  /** Leaves a marker for the rest of the hour: a late retry of `leaveOrphan` must not bring it back. */
  async dropOrphan(key: string): Promise<void> {
    await this.client.set(orphanKey(key), USED, 'EX', ORPHAN_TTL_SECONDS);
  }

  async save(key: string, position: StreamPosition, lease?: StreamLease): Promise<void> {
    if (lease) await this.leases.writeFenced(key, encodeCheckpoint(position, new Date(), lease), lease);
    else await this.client.set(key, encodeCheckpoint(position));
  }
}

/** `prefix:{consumer:db:collection}` → `prefix:consumer:db:collection`. */
function legacyKeyOf(key: string): string | null {
  const open = key.indexOf(':{');
  return open > 0 && key.endsWith('}') ? `${key.slice(0, open)}:${key.slice(open + 2, -1)}` : null;
}
