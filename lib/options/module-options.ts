import { ChangeStreamConfigError } from '../change-stream.errors.js';
import { messages } from '../change-stream.messages.js';
import type {
  ChangeStreamModuleOptions,
  HandlerRetryOptions,
  ReconnectOptions,
} from '../interfaces/change-stream-module-options.interface.js';
import { CHECKPOINT_OPTIONS, checkpointOptions } from './checkpoint-options.js';
import {
  DEAD_LETTER_RETENTION_OPTIONS,
  deadLetterRetentionOptions,
} from './dead-letter-retention-options.js';
import { HANDLER_RETRY_DEFAULTS, MODULE_DEFAULTS, RECONNECT_DEFAULTS } from './defaults.js';
import { checkKeys } from './group-keys.js';
import { intOption } from './integer-option.js';
import { keyNames, unknownKeys } from './known-keys.js';
import { LEASE_OPTIONS, leaseOptions } from './lease-options.js';
import { historyHeadroomOptions } from './history-headroom-options.js';
import { handlerFailurePolicy, historyLostPolicy } from './policy-options.js';
import { positionMirrorOptions } from './position-mirror-options.js';
import { redisOption } from './redis-options.js';
import { streamsOption } from './streams-option.js';
import type { ResolvedChangeStreamOptions } from './resolved-options.js';

export type { ResolvedChangeStreamOptions } from './resolved-options.js';

// Every key of each options interface, in the order messages list them; the compiler fails on a missing one.
const MODULE_OPTIONS = {
  consumer: true,
  redis: true,
  tokenStore: true,
  deadLetterStore: true,
  onHandlerFailure: true,
  onHistoryLost: true,
  keyPrefix: true,
  connectionName: true,
  checkpoint: true,
  handlerRetry: true,
  reconnect: true,
  shutdownTimeoutMs: true,
  startupTimeoutMs: true,
  handlerTimeoutMs: true,
  onHandlerTimeout: true,
  concurrency: true,
  maxAwaitTimeMS: true,
  batchSize: true,
  leases: true,
  telemetry: true,
  positionMirror: true,
  deadLetterRetention: true,
  historyHeadroom: true,
  enabled: true,
  streams: true,
} as const satisfies Record<keyof ChangeStreamModuleOptions, true>;
const HANDLER_RETRY_OPTIONS = {
  retries: true,
  initialDelayMs: true,
  maxDelayMs: true,
} as const satisfies Record<keyof HandlerRetryOptions, true>;
const RECONNECT_OPTIONS = { initialDelayMs: true, maxDelayMs: true } as const satisfies Record<
  keyof ReconnectOptions,
  true
>;

export function resolveOptions(
  options: ChangeStreamModuleOptions | undefined,
): ResolvedChangeStreamOptions {
  if (options == null || typeof options !== 'object') {
    throw new ChangeStreamConfigError(
      messages.optionRequired(
        'consumer',
        'Pass ChangeStreamModule.forRoot({ consumer: "my-service", redis: "redis://…" }).',
      ),
    );
  }
  const consumer = options.consumer;
  if (typeof consumer !== 'string' || consumer.trim() === '') {
    throw new ChangeStreamConfigError(
      messages.optionRequired(
        'consumer',
        'Name this consuming service, e.g. { consumer: "billing" }; it is part of every stored key.',
      ),
    );
  }
  if (/[:{}]/.test(consumer)) {
    throw new ChangeStreamConfigError(
      messages.optionInvalid(
        'consumer',
        consumer,
        'a name without ":", "{" or "}" (they structure the Redis keys)',
      ),
    );
  }
  const unknown = unknownKeys(options, MODULE_OPTIONS);
  if (options.telemetry !== undefined && typeof options.telemetry !== 'boolean') {
    throw new ChangeStreamConfigError(
      messages.optionInvalid('telemetry', options.telemetry, 'true or false'),
    );
  }
  if (options.enabled !== undefined && typeof options.enabled !== 'boolean') {
    throw new ChangeStreamConfigError(
      messages.optionInvalid('enabled', options.enabled, 'true or false'),
    );
  }
  if (unknown.length > 0) {
    throw new ChangeStreamConfigError(messages.unknownOptions(unknown, keyNames(MODULE_OPTIONS)));
  }
  const redis = redisOption(options);
  const keyPrefix = options.keyPrefix ?? MODULE_DEFAULTS.keyPrefix;
  if (typeof keyPrefix !== 'string' || keyPrefix === '' || /[{}]/.test(keyPrefix)) {
    throw new ChangeStreamConfigError(
      messages.optionInvalid('keyPrefix', keyPrefix, 'a non-empty string without "{" or "}"'),
    );
  }
  const onHandlerTimeout = options.onHandlerTimeout ?? MODULE_DEFAULTS.onHandlerTimeout;
  if (onHandlerTimeout !== 'warn' && onHandlerTimeout !== 'abort') {
    throw new ChangeStreamConfigError(
      messages.optionInvalid('onHandlerTimeout', onHandlerTimeout, '"warn" or "abort"'),
    );
  }
  checkKeys('checkpoint', options.checkpoint, CHECKPOINT_OPTIONS);
  checkKeys('handlerRetry', options.handlerRetry, HANDLER_RETRY_OPTIONS);
  checkKeys('deadLetterRetention', options.deadLetterRetention, DEAD_LETTER_RETENTION_OPTIONS);
  checkKeys('reconnect', options.reconnect, RECONNECT_OPTIONS);
  if (typeof options.leases === 'object') checkKeys('leases', options.leases, LEASE_OPTIONS);
  const reconnectInitial = intOption(
    'reconnect.initialDelayMs',
    options.reconnect?.initialDelayMs,
    RECONNECT_DEFAULTS.initialDelayMs,
    1,
  );
  const retryInitial = intOption(
    'handlerRetry.initialDelayMs',
    options.handlerRetry?.initialDelayMs,
    HANDLER_RETRY_DEFAULTS.initialDelayMs,
    0,
  );
  const handlerTimeoutMs = intOption(
    'handlerTimeoutMs',
    options.handlerTimeoutMs,
    MODULE_DEFAULTS.handlerTimeoutMs,
    0,
  );
  const leases = leaseOptions(options.leases);
  // Leases apply with Redis or a custom store (they are off for the in-memory default), or when asked for.
  const leased =
    leases !== false &&
    (leases.explicit || options.redis !== undefined || options.tokenStore !== undefined);
  if (leased && onHandlerTimeout === 'abort' && handlerTimeoutMs > leases.ttlMs / 2) {
    throw new ChangeStreamConfigError(messages.abortTimeoutTooLong(handlerTimeoutMs, leases.ttlMs));
  }
  return {
    consumer,
    redis,
    tokenStore: options.tokenStore,
    deadLetterStore: options.deadLetterStore,
    deadLetterRetention: deadLetterRetentionOptions(options.deadLetterRetention),
    onHandlerFailure: handlerFailurePolicy('onHandlerFailure', options.onHandlerFailure),
    onHistoryLost: historyLostPolicy(options.onHistoryLost),
    keyPrefix,
    connectionName: options.connectionName,
    checkpoint: checkpointOptions(options.checkpoint),
    handlerRetry: {
      retries: intOption(
        'handlerRetry.retries',
        options.handlerRetry?.retries,
        HANDLER_RETRY_DEFAULTS.retries,
        0,
      ),
      initialDelayMs: retryInitial,
      maxDelayMs: intOption(
        'handlerRetry.maxDelayMs',
        options.handlerRetry?.maxDelayMs,
        HANDLER_RETRY_DEFAULTS.maxDelayMs(retryInitial),
        retryInitial,
      ),
    },
    reconnect: {
      initialDelayMs: reconnectInitial,
      maxDelayMs: intOption(
        'reconnect.maxDelayMs',
        options.reconnect?.maxDelayMs,
        RECONNECT_DEFAULTS.maxDelayMs(reconnectInitial),
        reconnectInitial,
      ),
    },
    shutdownTimeoutMs: intOption(
      'shutdownTimeoutMs',
      options.shutdownTimeoutMs,
      MODULE_DEFAULTS.shutdownTimeoutMs,
      0,
    ),
    startupTimeoutMs: intOption(
      'startupTimeoutMs',
      options.startupTimeoutMs,
      MODULE_DEFAULTS.startupTimeoutMs,
      0,
    ),
    handlerTimeoutMs,
    concurrency: intOption('concurrency', options.concurrency, MODULE_DEFAULTS.concurrency, 1),
    onHandlerTimeout,
    maxAwaitTimeMS: intOption(
      'maxAwaitTimeMS',
      options.maxAwaitTimeMS,
      MODULE_DEFAULTS.maxAwaitTimeMS,
      1,
    ),
    batchSize:
      options.batchSize === undefined ? undefined : intOption('batchSize', options.batchSize, 0, 1),
    leases,
    telemetry: options.telemetry ?? MODULE_DEFAULTS.telemetry,
    positionMirror: positionMirrorOptions(options.positionMirror, options.connectionName),
    historyHeadroom: historyHeadroomOptions(options.historyHeadroom),
    enabled: options.enabled ?? true,
    streams: streamsOption(options.streams),
  };
}
