import { ChangeStreamConfigError } from '../change-stream.errors.js';
import { messages } from '../change-stream.messages.js';
import type {
  ChangeStreamModuleOptions,
  CheckpointOptions,
  HandlerRetryOptions,
  LeaseOptions,
  PositionMirrorOptions,
  ReconnectOptions,
} from '../interfaces/change-stream-module-options.interface.js';
import type { DeadLetterRetention } from '../interfaces/dead-letter.interface.js';
import type { HandlerFailurePolicy, HistoryLostPolicy } from '../interfaces/failure-policies.interface.js';
import {
  CHECKPOINT_DEFAULTS,
  DEAD_LETTER_RETENTION_DEFAULTS,
  HANDLER_RETRY_DEFAULTS,
  LEASE_DEFAULTS,
  MODULE_DEFAULTS,
  POSITION_MIRROR_DEFAULTS,
  RECONNECT_DEFAULTS,
} from './defaults.js';
import { isHandlerFailurePolicy } from './handler-options.js';
import { keyNames, unknownKeys } from './known-keys.js';

/** The module options after validation, with every default filled in. */
export interface ResolvedChangeStreamOptions {
  consumer: string;
  redis: ChangeStreamModuleOptions['redis'];
  tokenStore: ChangeStreamModuleOptions['tokenStore'];
  deadLetterStore: ChangeStreamModuleOptions['deadLetterStore'];
  /** For the module's own dead-letter stores (Redis, in memory); 0 in the input is no limit (Infinity). */
  deadLetterRetention: { maxLetters: number; maxAgeMs: number };
  onHandlerFailure: HandlerFailurePolicy;
  onHistoryLost: HistoryLostPolicy;
  keyPrefix: string;
  connectionName: string | undefined;
  checkpoint: { maxEvents: number; intervalMs: number; maxUnsavedEvents: number };
  handlerRetry: { retries: number; initialDelayMs: number; maxDelayMs: number };
  reconnect: { initialDelayMs: number; maxDelayMs: number };
  shutdownTimeoutMs: number;
  startupTimeoutMs: number;
  handlerTimeoutMs: number;
  onHandlerTimeout: 'warn' | 'abort';
  concurrency: number;
  maxAwaitTimeMS: number;
  batchSize: number | undefined;
  /** `false`: off. `explicit`: the user asked for them (an unsupported store is then an error). */
  leases: false | (Required<LeaseOptions> & { explicit: boolean });
  telemetry: boolean;
  positionMirror: false | { collection: string; intervalMs: number; connectionName: string | undefined };
}

// Every key of each options interface, in the order messages list them; the compiler fails on a missing one.
const MODULE_OPTIONS = {
  consumer: true, redis: true, tokenStore: true, deadLetterStore: true, onHandlerFailure: true, onHistoryLost: true, keyPrefix: true, connectionName: true,
  checkpoint: true, handlerRetry: true, reconnect: true, shutdownTimeoutMs: true, startupTimeoutMs: true, handlerTimeoutMs: true, onHandlerTimeout: true,
  concurrency: true, maxAwaitTimeMS: true, batchSize: true, leases: true, telemetry: true, positionMirror: true,
  deadLetterRetention: true,
} as const satisfies Record<keyof ChangeStreamModuleOptions, true>;
const CHECKPOINT_OPTIONS = { maxEvents: true, intervalMs: true, maxUnsavedEvents: true } as const satisfies Record<keyof CheckpointOptions, true>;
const HANDLER_RETRY_OPTIONS = { retries: true, initialDelayMs: true, maxDelayMs: true } as const satisfies Record<keyof HandlerRetryOptions, true>;
const DEAD_LETTER_RETENTION_OPTIONS = { maxLetters: true, maxAgeMs: true } as const satisfies Record<keyof DeadLetterRetention, true>;
const RECONNECT_OPTIONS = { initialDelayMs: true, maxDelayMs: true } as const satisfies Record<keyof ReconnectOptions, true>;
const LEASE_OPTIONS = { ttlMs: true, renewIntervalMs: true, pollIntervalMs: true, instanceId: true } as const satisfies Record<keyof LeaseOptions, true>;
const POSITION_MIRROR_OPTIONS = { collection: true, intervalMs: true, connectionName: true } as const satisfies Record<keyof PositionMirrorOptions, true>;

export function resolveOptions(options: ChangeStreamModuleOptions | undefined): ResolvedChangeStreamOptions {
  if (options == null || typeof options !== 'object') {
    throw new ChangeStreamConfigError(messages.optionRequired('consumer', 'Pass ChangeStreamModule.forRoot({ consumer: "my-service", redis: "redis://…" }).'));
  }
  const consumer = options.consumer;
  if (typeof consumer !== 'string' || consumer.trim() === '') {
    throw new ChangeStreamConfigError(messages.optionRequired('consumer', 'Name this consuming service, e.g. { consumer: "billing" }; it is part of every stored key.'));
  }
  if (/[:{}]/.test(consumer)) {
    throw new ChangeStreamConfigError(messages.optionInvalid('consumer', consumer, 'a name without ":", "{" or "}" (they structure the Redis keys)'));
  }
  const unknown = unknownKeys(options, MODULE_OPTIONS);
  if (options.telemetry !== undefined && typeof options.telemetry !== 'boolean') {
    throw new ChangeStreamConfigError(messages.optionInvalid('telemetry', options.telemetry, 'true or false'));
  }
  if (unknown.length > 0) {
    throw new ChangeStreamConfigError(messages.unknownOptions(unknown, keyNames(MODULE_OPTIONS)));
  }
  if ('redis' in options && options.redis === undefined) {
    // Usually config.get('REDIS_URL') of an unset variable: without this check positions would quietly live in memory.
    throw new ChangeStreamConfigError(messages.redisUndefined());
  }
  if (options.redis === null || options.redis === '') {
    // ioredis would quietly connect to localhost:6379 instead.
    throw new ChangeStreamConfigError(messages.redisEmpty(options.redis));
  }
  const url = typeof options.redis === 'string' ? options.redis : undefined;
  const scheme = url === undefined ? undefined : /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1];
  if (scheme !== undefined && !/^(rediss?|unix)$/i.test(scheme)) {
    // Only the scheme is shown: the URL may hold a password.
    throw new ChangeStreamConfigError(messages.redisUrlScheme(scheme));
  }
  // ioredis turns TLS on only for a lowercase "rediss://": REDISS:// would send the password in the clear.
  const redis = scheme === undefined ? options.redis : scheme.toLowerCase() + url!.slice(scheme.length);
  if (options.redis !== undefined && options.tokenStore !== undefined) {
    throw new ChangeStreamConfigError(messages.redisAndTokenStore());
  }
  const keyPrefix = options.keyPrefix ?? MODULE_DEFAULTS.keyPrefix;
  if (typeof keyPrefix !== 'string' || keyPrefix === '' || /[{}]/.test(keyPrefix)) {
    throw new ChangeStreamConfigError(messages.optionInvalid('keyPrefix', keyPrefix, 'a non-empty string without "{" or "}"'));
  }
  const onHandlerTimeout = options.onHandlerTimeout ?? MODULE_DEFAULTS.onHandlerTimeout;
  if (onHandlerTimeout !== 'warn' && onHandlerTimeout !== 'abort') {
    throw new ChangeStreamConfigError(messages.optionInvalid('onHandlerTimeout', onHandlerTimeout, '"warn" or "abort"'));
  }
  checkKeys('checkpoint', options.checkpoint, CHECKPOINT_OPTIONS);
  checkKeys('handlerRetry', options.handlerRetry, HANDLER_RETRY_OPTIONS);
  checkKeys('deadLetterRetention', options.deadLetterRetention, DEAD_LETTER_RETENTION_OPTIONS);
  checkKeys('reconnect', options.reconnect, RECONNECT_OPTIONS);
  if (typeof options.leases === 'object') checkKeys('leases', options.leases, LEASE_OPTIONS);
  const reconnectInitial = int('reconnect.initialDelayMs', options.reconnect?.initialDelayMs, RECONNECT_DEFAULTS.initialDelayMs, 1);
  const retryInitial = int('handlerRetry.initialDelayMs', options.handlerRetry?.initialDelayMs, HANDLER_RETRY_DEFAULTS.initialDelayMs, 0);
  const handlerTimeoutMs = int('handlerTimeoutMs', options.handlerTimeoutMs, MODULE_DEFAULTS.handlerTimeoutMs, 0);
  const leases = leaseOptions(options.leases);
  // Leases apply with Redis or a custom store (they are off for the in-memory default), or when asked for.
  const leased = leases !== false && (leases.explicit || options.redis !== undefined || options.tokenStore !== undefined);
  if (leased && onHandlerTimeout === 'abort' && handlerTimeoutMs > leases.ttlMs / 2) {
    throw new ChangeStreamConfigError(messages.abortTimeoutTooLong(handlerTimeoutMs, leases.ttlMs));
  }
  return {
    consumer,
    redis,
    tokenStore: options.tokenStore,
    deadLetterStore: options.deadLetterStore,
    deadLetterRetention: {
      maxLetters: int('deadLetterRetention.maxLetters', options.deadLetterRetention?.maxLetters, DEAD_LETTER_RETENTION_DEFAULTS.maxLetters, 0) || Infinity,
      maxAgeMs: int('deadLetterRetention.maxAgeMs', options.deadLetterRetention?.maxAgeMs, DEAD_LETTER_RETENTION_DEFAULTS.maxAgeMs, 0) || Infinity,
    },
    onHandlerFailure: handlerFailurePolicy('onHandlerFailure', options.onHandlerFailure),
    onHistoryLost: historyLostPolicy(options.onHistoryLost),
    keyPrefix,
    connectionName: options.connectionName,
    checkpoint: checkpointOptions(options.checkpoint),
    handlerRetry: {
      retries: int('handlerRetry.retries', options.handlerRetry?.retries, HANDLER_RETRY_DEFAULTS.retries, 0),
      initialDelayMs: retryInitial,
      maxDelayMs: int('handlerRetry.maxDelayMs', options.handlerRetry?.maxDelayMs, HANDLER_RETRY_DEFAULTS.maxDelayMs(retryInitial), retryInitial),
    },
    reconnect: {
      initialDelayMs: reconnectInitial,
      maxDelayMs: int('reconnect.maxDelayMs', options.reconnect?.maxDelayMs, RECONNECT_DEFAULTS.maxDelayMs(reconnectInitial), reconnectInitial),
    },
    shutdownTimeoutMs: int('shutdownTimeoutMs', options.shutdownTimeoutMs, MODULE_DEFAULTS.shutdownTimeoutMs, 0),
    startupTimeoutMs: int('startupTimeoutMs', options.startupTimeoutMs, MODULE_DEFAULTS.startupTimeoutMs, 0),
    handlerTimeoutMs,
    concurrency: int('concurrency', options.concurrency, MODULE_DEFAULTS.concurrency, 1),
    onHandlerTimeout,
    maxAwaitTimeMS: int('maxAwaitTimeMS', options.maxAwaitTimeMS, MODULE_DEFAULTS.maxAwaitTimeMS, 1),
    batchSize: options.batchSize === undefined ? undefined : int('batchSize', options.batchSize, 0, 1),
    leases,
    telemetry: options.telemetry ?? MODULE_DEFAULTS.telemetry,
    positionMirror: positionMirrorOptions(options.positionMirror, options.connectionName),
  };
}

function positionMirrorOptions(value: boolean | PositionMirrorOptions | undefined, connectionName: string | undefined): ResolvedChangeStreamOptions['positionMirror'] {
  if (value === undefined || value === false) return false;
  if (value !== true) checkKeys('positionMirror', value, POSITION_MIRROR_OPTIONS);
  const given = value === true ? {} : value;
  const collection = given.collection ?? POSITION_MIRROR_DEFAULTS.collection;
  if (typeof collection !== 'string' || collection === '' || collection.includes('$') || collection.startsWith('system.')) {
    throw new ChangeStreamConfigError(messages.optionInvalid('positionMirror.collection', collection, 'a collection name (not empty, no "$", not "system.…")'));
  }
  if (given.connectionName !== undefined && (typeof given.connectionName !== 'string' || given.connectionName === '')) {
    throw new ChangeStreamConfigError(messages.optionInvalid('positionMirror.connectionName', given.connectionName, 'a mongoose connection name'));
  }
  return {
    collection,
    intervalMs: int('positionMirror.intervalMs', given.intervalMs, POSITION_MIRROR_DEFAULTS.intervalMs, 100),
    connectionName: given.connectionName ?? POSITION_MIRROR_DEFAULTS.connectionName(connectionName),
  };
}

/** A misspelled key inside a group (`checkpoint: { maxEvent: 10 }`) would silently keep the default. */
function checkKeys(group: string, value: unknown, known: Record<string, true>): void {
  if (value === undefined) return;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ChangeStreamConfigError(messages.optionInvalid(group, value, `an object with ${keyNames(known).join(', ')}`));
  }
  const unknown = unknownKeys(value, known);
  if (unknown.length > 0) throw new ChangeStreamConfigError(messages.unknownOptions(unknown, keyNames(known), group));
}

function checkpointOptions(value: ChangeStreamModuleOptions['checkpoint']): ResolvedChangeStreamOptions['checkpoint'] {
  const maxEvents = int('checkpoint.maxEvents', value?.maxEvents, CHECKPOINT_DEFAULTS.maxEvents, 1);
  const intervalMs = int('checkpoint.intervalMs', value?.intervalMs, CHECKPOINT_DEFAULTS.intervalMs, 1);
  const maxUnsavedEvents = int('checkpoint.maxUnsavedEvents', value?.maxUnsavedEvents, CHECKPOINT_DEFAULTS.maxUnsavedEvents(maxEvents), 1);
  if (maxUnsavedEvents < 2 * maxEvents) {
    throw new ChangeStreamConfigError(
      messages.optionInvalid('checkpoint.maxUnsavedEvents', maxUnsavedEvents, `at least 2 × checkpoint.maxEvents (${2 * maxEvents}): while saves succeed that many may already be unsaved`),
    );
  }
  return { maxEvents, intervalMs, maxUnsavedEvents };
}

function leaseOptions(value: LeaseOptions | false | undefined): ResolvedChangeStreamOptions['leases'] {
  if (value === false) return false;
  if (value !== undefined && (typeof value !== 'object' || value === null)) {
    throw new ChangeStreamConfigError(messages.optionInvalid('leases', value, 'false or an object'));
  }
  const ttlMs = int('leases.ttlMs', value?.ttlMs, LEASE_DEFAULTS.ttlMs, 100);
  const renewIntervalMs = int('leases.renewIntervalMs', value?.renewIntervalMs, LEASE_DEFAULTS.renewIntervalMs(ttlMs), 10);
  if (renewIntervalMs > ttlMs / 2) {
    throw new ChangeStreamConfigError(messages.optionInvalid('leases.renewIntervalMs', renewIntervalMs, `at most half of leases.ttlMs (${ttlMs / 2})`));
  }
  const pollIntervalMs = int('leases.pollIntervalMs', value?.pollIntervalMs, LEASE_DEFAULTS.pollIntervalMs(renewIntervalMs), 10);
  if (pollIntervalMs > renewIntervalMs) {
    throw new ChangeStreamConfigError(messages.optionInvalid('leases.pollIntervalMs', pollIntervalMs, `at most leases.renewIntervalMs (${renewIntervalMs})`));
  }
  const instanceId = value?.instanceId ?? LEASE_DEFAULTS.instanceId();
  if (typeof instanceId !== 'string' || instanceId.trim() === '') {
    throw new ChangeStreamConfigError(messages.optionInvalid('leases.instanceId', instanceId, 'a non-empty string'));
  }
  return { ttlMs, renewIntervalMs, pollIntervalMs, instanceId, explicit: value !== undefined };
}

function int(name: string, value: number | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min) {
    throw new ChangeStreamConfigError(messages.optionInvalid(name, value, `an integer >= ${min}`));
  }
  return value;
}

function handlerFailurePolicy(name: string, value: HandlerFailurePolicy | undefined): HandlerFailurePolicy {
  if (value === undefined) return MODULE_DEFAULTS.onHandlerFailure;
  if (isHandlerFailurePolicy(value)) return value;
  throw new ChangeStreamConfigError(messages.optionInvalid(name, value, '"stop", "dead-letter" or a function'));
}

function historyLostPolicy(value: HistoryLostPolicy | undefined): HistoryLostPolicy {
  if (value === undefined) return MODULE_DEFAULTS.onHistoryLost;
  if (value === 'fail' || value === 'restart-from-now' || typeof value === 'function') return value;
  throw new ChangeStreamConfigError(messages.optionInvalid('onHistoryLost', value, '"fail", "restart-from-now" or a function'));
}
