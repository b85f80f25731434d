export { ChangeStreamModule } from './change-stream.module.js';
export { CHANGE_STREAM_MODULE_OPTIONS } from './change-stream.module-definition.js';
export { OnChange } from './decorators/on-change.decorator.js';
export type {
  ChangeOf,
  ChangeOrBackfill,
  OnChangeBackfillDecorator,
  WithBackfill,
  NoBackfill,
  HandlerAccepts,
  OnChangeDecorator,
  OnChangeHandler,
  OnChangeOptionsFor,
} from './decorators/on-change.decorator.js';
export { ChangeStreamRegistry } from './change-stream.registry.js';
export { ChangeStreamHealthIndicator } from './health/change-stream.health.js';
export type {
  ChangeStreamHealthOptions,
  ChangeStreamHealthResult,
  HealthStatus,
  StreamHealth,
} from './health/change-stream.health.js';
export {
  ChangeStreamConfigError,
  FencedWriteError,
  HandlerFailedError,
  InvalidStoredTokenError,
} from './change-stream.errors.js';
export { RedisPositionStore, RedisResumeTokenStore } from './redis/redis-position.store.js';
export {
  InMemoryPositionStore,
  InMemoryResumeTokenStore,
} from './memory/in-memory-position.store.js';
export {
  encodePosition,
  decodePosition,
  encodeCheckpoint,
  decodeCheckpoint,
} from './position/position.codec.js';
export { positionKey, checkpointKey } from './redis/redis-keys.js';
export type * from './interfaces/index.js';
export { ChangeStreamDeadLetters } from './dead-letter/change-stream-dead-letters.service.js';
export { RedisDeadLetterStore } from './redis/redis-dead-letter.store.js';
export { InMemoryDeadLetterStore } from './memory/in-memory-dead-letter.store.js';
export type { ChangeStreamEvent, ChangeStreamEventListener } from './change-stream.events.js';
export { RedisLeaseStore } from './redis/redis-lease.store.js';
export { ChangeStreamBackfill } from './backfill/change-stream-backfill.service.js';
export type { BackfillTarget } from './backfill/change-stream-backfill.service.js';
