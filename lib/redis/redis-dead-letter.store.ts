import type { Cluster, Redis } from 'ioredis';
import type {
  DeadLetter,
  DeadLetterPage,
  DeadLetterPageOptions,
  DeadLetterStore,
  DeadLetterStoreRetention,
} from '../interfaces/dead-letter.interface.js';
import {
  decodeDeadLetter,
  decodeDeadLetters,
  encodeDeadLetter,
} from '../dead-letter/dead-letter.codec.js';
import {
  PAGE_COUNT,
  type RetentionPolicy,
  retentionPolicy,
} from '../dead-letter/dead-letter-retention.js';
import { deadLetterIndexKey } from './redis-keys.js';

/**
 * All dead letters of one consumer in one Redis hash (`<keyPrefix>:<consumer>:dead-letters`), by
 * id, with a sorted set beside it (`…:dead-letters:by-time`, scored by `failedAt`) to find the
 * oldest when the retention drops letters. Each command touches one key, so it works on a Cluster.
 */
export class RedisDeadLetterStore implements DeadLetterStore {
  readonly durable = true;
  /** The sorted set of ids by `failedAt` (ms). */
  readonly indexKey: string;
  private readonly retention: RetentionPolicy;

  constructor(
    private readonly client: Redis | Cluster,
    /** The Redis hash holding the letters (the module uses `<keyPrefix>:<consumer>:dead-letters`). */
    readonly hashKey: string,
    retention?: DeadLetterStoreRetention,
  ) {
    this.indexKey = deadLetterIndexKey(hashKey);
    this.retention = retentionPolicy(retention);
  }

  async add(letter: DeadLetter): Promise<void> {
    await this.client.hset(this.hashKey, letter.id, encodeDeadLetter(letter));
    await this.client.zadd(this.indexKey, letter.failedAt.getTime(), letter.id);
    await this.trim();
  }

  /** Every dead letter, oldest first (read with `HSCAN`; the retention bounds how many there are). */
  async list(): Promise<DeadLetter[]> {
    await this.trim();
    const raws: string[] = [];
    let cursor = '0';
    do {
      const [next, entries] = await this.client.hscan(this.hashKey, cursor, 'COUNT', PAGE_COUNT);
      for (let i = 1; i < entries.length; i += 2) raws.push(entries[i]);
      cursor = next;
    } while (cursor !== '0');
    // HSCAN may return an entry twice (while the hash is resized): one letter per id.
    return dedupe(decodeDeadLetters(raws));
  }

  /** One `HSCAN` step: about `count` letters; the cursor is Redis' own (null when the scan is complete). */
  async page({ cursor, count = PAGE_COUNT }: DeadLetterPageOptions = {}): Promise<DeadLetterPage> {
    if (!cursor) await this.trim();
    const [next, entries] = await this.client.hscan(
      this.hashKey,
      cursor ?? '0',
      'COUNT',
      Math.max(1, count),
    );
    const raws = entries.filter((_, i) => i % 2 === 1);
    return { letters: decodeDeadLetters(raws), cursor: next === '0' ? null : next };
  }

  /** The dead letter with this id, or null. */
  async get(id: string): Promise<DeadLetter | null> {
    const raw = await this.client.hget(this.hashKey, id);
    return raw === null ? null : decodeDeadLetter(raw);
  }

  async remove(id: string): Promise<boolean> {
    const removed = (await this.client.hdel(this.hashKey, id)) > 0;
    await this.client.zrem(this.indexKey, id);
    return removed;
  }

  /** Drops letters past the age limit, then the oldest past the count limit. */
  private async trim(): Promise<void> {
    const { maxLetters, maxAgeMs } = this.retention;
    if (maxAgeMs !== Infinity) {
      const old = await this.client.zrangebyscore(
        this.indexKey,
        '-inf',
        `(${Date.now() - maxAgeMs}`,
      );
      if (old.length > 0) await this.drop(old, 'age');
    }
    if (maxLetters !== Infinity) {
      const excess = (await this.client.zcard(this.indexKey)) - maxLetters;
      if (excess > 0)
        await this.drop(await this.client.zrange(this.indexKey, '0', String(excess - 1)), 'count');
    }
  }

  /** Removes `ids`; reports only the letters this call removed (two instances may trim at once). */
  private async drop(ids: string[], reason: 'count' | 'age'): Promise<void> {
    const raws = await this.client.hmget(this.hashKey, ...ids);
    const dropped: DeadLetter[] = [];
    for (const [i, id] of ids.entries()) {
      const removed = (await this.client.hdel(this.hashKey, id)) > 0;
      if (removed && raws[i] !== null) dropped.push(decodeDeadLetter(raws[i]!));
    }
    await this.client.zrem(this.indexKey, ...ids);
    if (dropped.length > 0) this.retention.onDropped(dropped, reason);
  }
}

function dedupe(letters: DeadLetter[]): DeadLetter[] {
  const seen = new Set<string>();
  return letters.filter((letter) => !seen.has(letter.id) && seen.add(letter.id));
}
