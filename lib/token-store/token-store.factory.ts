import { Logger } from '@nestjs/common';
import { Redis, type RedisOptions } from 'ioredis';
import { messages } from '../change-stream.messages.js';
import type { ResolvedChangeStreamOptions } from '../change-stream.options.js';
import type { ResumeTokenStore } from '../interfaces/resume-token-store.interface.js';
import { InMemoryResumeTokenStore } from './in-memory-resume-token.store.js';
import { RedisResumeTokenStore } from './redis-resume-token.store.js';

const logger = new Logger('ChangeStreamModule');

/** The store in use, and whether the module created it (and so must close it). */
export interface OwnedTokenStore {
  store: ResumeTokenStore;
  owned: boolean;
}

export function createTokenStore(options: ResolvedChangeStreamOptions): OwnedTokenStore {
  if (options.tokenStore) return { store: options.tokenStore, owned: false };
  if (options.redis === undefined) {
    logger.warn(messages.inMemoryStore());
    return { store: new InMemoryResumeTokenStore(), owned: true };
  }
  if (isRedisClient(options.redis)) return { store: new RedisResumeTokenStore(options.redis, false), owned: true };
  const client =
    typeof options.redis === 'string' ? new Redis(options.redis) : new Redis(options.redis as RedisOptions);
  logConnectionErrors(client);
  return { store: new RedisResumeTokenStore(client, true), owned: true };
}

function isRedisClient(value: unknown): value is Redis {
  return typeof value === 'object' && value !== null && typeof (value as Redis).sendCommand === 'function';
}

/** ioredis retries by itself; log each outage once instead of on every attempt. */
function logConnectionErrors(client: Redis): void {
  let reported = false;
  client.on('error', (error: Error) => {
    if (!reported) logger.warn(`Redis connection error: ${error.message} (ioredis keeps retrying)`);
    reported = true;
  });
  client.on('ready', () => {
    if (reported) logger.log('Redis connection restored.');
    reported = false;
  });
}
