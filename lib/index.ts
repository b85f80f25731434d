export { ChangeStreamModule } from './change-stream.module.js';
export { CHANGE_STREAM_MODULE_OPTIONS } from './change-stream.module-definition.js';
export { OnChange } from './decorators/on-change.decorator.js';
export type {
  AnyMethod,
  ChangeOf,
  ExplicitDocumentHint,
  ChangeOrBackfill,
  OnChangeBackfillDecorator,
  WithBackfill,
  NoBackfill,
  HandlerAccepts,
  OnChangeDecorator,
  OnChangeHandler,
  OnChangeOptionsFor,
  ParametersAccept,
} from './decorators/on-change.decorator.js';
export { collection } from './decorators/collection-source.js';
export type {
  CollectionSource,
  CollectionToken,
  TenantCollection,
  DocumentOf,
  SchemaClass,
} from './decorators/collection-source.js';
export { OnChangeBatch } from './decorators/on-change-batch.decorator.js';
export type {
  BatchHandlerAccepts,
  OnChangeBatchDecorator,
  OnChangeBatchHandler,
  OnChangeBatchOptionsFor,
} from './decorators/on-change-batch.decorator.js';
export { ChangeStreamRegistry } from './change-stream.registry.js';
export { ChangeStreamHealthIndicator } from './health/change-stream.health.js';
export type {
  ChangeStreamHealthOptions,
  ChangeStreamHealthResult,
  HealthStatus,
  StreamHealth,
  StreamPauseHealth,
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
export { positionKey, checkpointKey, pausedKey } from './redis/redis-keys.js';
export type * from './interfaces/index.js';
export { ChangeStreamDeadLetters } from './dead-letter/change-stream-dead-letters.service.js';
export { RedisDeadLetterStore } from './redis/redis-dead-letter.store.js';
export { InMemoryDeadLetterStore } from './memory/in-memory-dead-letter.store.js';
export type { ChangeStreamEvent, ChangeStreamEventListener } from './change-stream.events.js';
export { RedisLeaseStore } from './redis/redis-lease.store.js';
export { ChangeStreamControl } from './control/change-stream-control.service.js';
export { ChangeStreamBackfill } from './control/change-stream-backfill.service.js';
export type { BackfillTarget } from './control/change-stream-backfill.service.js';
