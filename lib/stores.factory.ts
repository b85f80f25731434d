import { Logger } from '@nestjs/common';
import { messages } from './change-stream.messages.js';
import type { ResolvedChangeStreamOptions } from './options/module-options.js';
import type {
  DeadLetter,
  DeadLetterStore,
  DeadLetterStoreRetention,
} from './interfaces/dead-letter.interface.js';
import type { PositionStore } from './interfaces/position-store.interface.js';
import { InMemoryDeadLetterStore } from './memory/in-memory-dead-letter.store.js';
import { InMemoryPositionStore } from './memory/in-memory-position.store.js';
import { closeRedis, connectRedis, verifyRedis } from './redis/redis-connection.js';
import { RedisDeadLetterStore } from './redis/redis-dead-letter.store.js';
import { deadLetterKey } from './redis/redis-keys.js';
import { RedisPositionStore } from './redis/redis-position.store.js';

const logger = new Logger('ChangeStreamModule');

/** The stores in use; `close` releases only what the module created. */
export interface ChangeStreamStores {
  tokens: PositionStore;
  deadLetters: DeadLetterStore;
  /** Tells `listener` about the letters the module's dead-letter store dropped for its retention (absent in the testing module). */
  onDeadLettersDropped?(listener: (letters: DeadLetter[]) => void): void;
  /** Checks the store answers: wrong credentials throw `ChangeStreamConfigError`; an outage is logged once. */
  verify(timeoutMs: number): Promise<void>;
  close(timeoutMs: number): Promise<void>;
}

export function createStores(options: ResolvedChangeStreamOptions): ChangeStreamStores {
  const redis =
    options.redis === undefined || options.tokenStore !== undefined
      ? undefined
      : connectRedis(options.redis, { lazy: !options.enabled });
  const tokens =
    options.tokenStore ?? (redis ? new RedisPositionStore(redis.client) : inMemoryPositions());
  const droppedListeners: Array<(letters: DeadLetter[]) => void> = [];
  const { maxLetters, maxAgeMs } = options.deadLetterRetention;
  const retention: DeadLetterStoreRetention = {
    maxLetters,
    maxAgeMs,
    onDropped: (letters, reason) => {
      logger.warn(
        messages.deadLettersDropped(
          letters.map((l) => l.id),
          reason === 'count' ? `more than ${maxLetters} letters` : `older than ${maxAgeMs} ms`,
        ),
      );
      droppedListeners.forEach((listener) => listener(letters));
    },
  };
  const { keyPrefix, consumer } = options;
  const deadLetters =
    options.deadLetterStore ??
    (redis
      ? new RedisDeadLetterStore(redis.client, deadLetterKey(keyPrefix, consumer), retention)
      : new InMemoryDeadLetterStore(retention));
  return {
    tokens,
    deadLetters,
    onDeadLettersDropped: (listener) => void droppedListeners.push(listener),
    verify: (timeoutMs) => (redis ? verifyRedis(redis, timeoutMs) : Promise.resolve()),
    close: (timeoutMs) => (redis ? closeRedis(redis, timeoutMs) : Promise.resolve()),
  };
}

function inMemoryPositions(): PositionStore {
  logger.warn(messages.inMemoryStore());
  return new InMemoryPositionStore();
}
