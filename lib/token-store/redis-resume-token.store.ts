import type { Redis } from 'ioredis';
import type { ResumeToken, ResumeTokenStore } from '../interfaces/resume-token-store.interface.js';
import { decodeCheckpoint, encodeCheckpoint } from './checkpoint.codec.js';

/** Stores each position as a plain Redis string (no expiry) under its checkpoint key. */
export class RedisResumeTokenStore implements ResumeTokenStore {
  constructor(
    readonly client: Redis,
    /** Quit the client on close only when this store created it. */
    private readonly ownsClient: boolean,
  ) {}

  async load(key: string): Promise<ResumeToken | null> {
    const raw = await this.client.get(key);
    return raw === null ? null : decodeCheckpoint(key, raw);
  }

  async save(key: string, token: ResumeToken): Promise<void> {
    await this.client.set(key, encodeCheckpoint(token));
  }

  async close(): Promise<void> {
    if (this.ownsClient && this.client.status !== 'end') await this.client.quit();
  }
}
