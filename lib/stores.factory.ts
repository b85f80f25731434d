import { Logger } from '@nestjs/common';
import { Redis, type RedisOptions } from 'ioredis';
import { messages } from './change-stream.messages.js';
import type { ResolvedChangeStreamOptions } from './change-stream.options.js';
import { InMemoryDeadLetterStore } from './dead-letter/in-memory-dead-letter.store.js';
import { RedisDeadLetterStore } from './dead-letter/redis-dead-letter.store.js';
import type { DeadLetterStore } from './interfaces/dead-letter.interface.js';
import type { ResumeTokenStore } from './interfaces/resume-token-store.interface.js';
import { InMemoryResumeTokenStore } from './token-store/in-memory-resume-token.store.js';
import { RedisResumeTokenStore } from './token-store/redis-resume-token.store.js';

const logger = new Logger('ChangeStreamModule');

/**
 * For clients the module creates: fail a command fast while Redis is down (ioredis would
 * otherwise hold it ~10 s), so the checkpointer's own retry and the `degraded` state take over.
 */
const CLIENT_DEFAULTS: RedisOptions = { maxRetriesPerRequest: 1 };

/** The stores in use; `close` releases only what the module created. */
export interface ChangeStreamStores {
  tokens: ResumeTokenStore;
  deadLetters: DeadLetterStore;
  close(): Promise<void>;
}

export function createStores(options: ResolvedChangeStreamOptions): ChangeStreamStores {
  const { tokens, client, owned } = createTokenStore(options);
  const deadLetters =
    options.deadLetterStore ??
    (client ? new RedisDeadLetterStore(client, `${options.keyPrefix}:${options.consumer}:dead-letters`) : new InMemoryDeadLetterStore());
  if (!options.deadLetterStore && !client && usesDeadLetters(options)) logger.warn(messages.inMemoryDeadLetters());
  return { tokens, deadLetters, close: async () => (owned ? tokens.close?.() : undefined) };
}

function createTokenStore(options: ResolvedChangeStreamOptions): { tokens: ResumeTokenStore; client?: Redis; owned: boolean } {
  if (options.tokenStore) return { tokens: options.tokenStore, owned: false };
  if (options.redis === undefined) {
    logger.warn(messages.inMemoryStore());
    return { tokens: new InMemoryResumeTokenStore(), owned: true };
  }
  if (isRedisClient(options.redis)) return { tokens: new RedisResumeTokenStore(options.redis, false), client: options.redis, owned: true };
  const client =
    typeof options.redis === 'string' ? new Redis(options.redis, CLIENT_DEFAULTS) : new Redis({ ...CLIENT_DEFAULTS, ...(options.redis as RedisOptions) });
  logConnectionErrors(client);
  return { tokens: new RedisResumeTokenStore(client, true), client, owned: true };
}

function usesDeadLetters(options: ResolvedChangeStreamOptions): boolean {
  return options.onHandlerFailure === 'dead-letter';
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
