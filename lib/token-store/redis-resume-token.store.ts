import type { Cluster, Redis } from 'ioredis';
import type { ResumeTokenStore, StreamPosition } from '../interfaces/resume-token-store.interface.js';
import { decodeCheckpoint, encodeCheckpoint } from './checkpoint.codec.js';

/**
 * Stores each position as a plain Redis string (no expiry) under its checkpoint key. A key
 * written by version 0.1 (`prefix:consumer:db:collection`, no hash tag) is read when the
 * current key does not exist yet, and left in place so a rollback still finds it.
 */
export class RedisResumeTokenStore implements ResumeTokenStore {
  readonly durable = true;

  constructor(readonly client: Redis | Cluster) {}

  async load(key: string): Promise<StreamPosition | null> {
    const raw = await this.client.get(key);
    if (raw !== null) return decodeCheckpoint(key, raw);
    const legacy = legacyKeyOf(key);
    const legacyRaw = legacy === null ? null : await this.client.get(legacy);
    return legacyRaw === null ? null : decodeCheckpoint(legacy!, legacyRaw);
  }

  async save(key: string, position: StreamPosition): Promise<void> {
    await this.client.set(key, encodeCheckpoint(position));
  }
}

/** `prefix:{consumer:db:collection}` → `prefix:consumer:db:collection`. */
function legacyKeyOf(key: string): string | null {
  const open = key.indexOf(':{');
  return open > 0 && key.endsWith('}') ? `${key.slice(0, open)}:${key.slice(open + 2, -1)}` : null;
}
