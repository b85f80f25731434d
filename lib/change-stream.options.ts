import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { ChangeStreamConfigError } from './change-stream.errors.js';
import { DEFAULT_MAX_DEAD_LETTERS } from './dead-letter/dead-letter-retention.js';
import { messages } from './change-stream.messages.js';
import type { ChangeStreamModuleOptions, LeaseOptions, PositionMirrorOptions } from './interfaces/change-stream-module-options.interface.js';
import type { HandlerFailurePolicy, HistoryLostPolicy } from './interfaces/failure-policies.interface.js';

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

const KNOWN_OPTIONS = new Set([
  'consumer', 'redis', 'tokenStore', 'deadLetterStore', 'onHandlerFailure', 'onHistoryLost', 'keyPrefix', 'connectionName',
  'checkpoint', 'handlerRetry', 'reconnect', 'shutdownTimeoutMs', 'startupTimeoutMs', 'handlerTimeoutMs', 'onHandlerTimeout',
  'concurrency', 'maxAwaitTimeMS', 'batchSize', 'leases', 'telemetry', 'positionMirror', 'deadLetterRetention',
]);

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
  const unknown = Object.keys(options).filter((name) => !KNOWN_OPTIONS.has(name));
  if (options.telemetry !== undefined && typeof options.telemetry !== 'boolean') {
    throw new ChangeStreamConfigError(messages.optionInvalid('telemetry', options.telemetry, 'true or false'));
  }
  if (unknown.length > 0) {
    throw new ChangeStreamConfigError(`ChangeStreamModule: unknown option(s) ${unknown.map((n) => `"${n}"`).join(', ')}. Known options: ${[...KNOWN_OPTIONS].join(', ')}.`);
  }
  if ('redis' in options && options.redis === undefined) {
    // Usually config.get('REDIS_URL') of an unset variable: without this check positions would quietly live in memory.
    throw new ChangeStreamConfigError(
      'ChangeStreamModule: option "redis" is present but undefined (an unset environment variable?). Set it, or leave the option out to keep positions in memory on purpose.',
    );
  }
  if (options.redis === null || options.redis === '') {
    // ioredis would quietly connect to localhost:6379 instead.
    throw new ChangeStreamConfigError(
      `ChangeStreamModule: option "redis" is ${options.redis === null ? 'null' : 'an empty string'} (an unset environment variable?). Pass a redis:// URL, ioredis options or a client, or leave the option out to keep positions in memory on purpose.`,
    );
  }
  const url = typeof options.redis === 'string' ? options.redis : undefined;
  const scheme = url === undefined ? undefined : /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1];
  if (scheme !== undefined && !/^(rediss?|unix)$/i.test(scheme)) {
    // Only the scheme is shown: the URL may hold a password.
    throw new ChangeStreamConfigError(
      `ChangeStreamModule: option "redis" is a "${scheme}:" URL; expected redis://host:port, rediss://host:port (TLS) or unix:///path/to/socket.`,
    );
  }
  // ioredis turns TLS on only for a lowercase "rediss://": REDISS:// would send the password in the clear.
  const redis = scheme === undefined ? options.redis : scheme.toLowerCase() + url!.slice(scheme.length);
  if (options.redis !== undefined && options.tokenStore !== undefined) {
    throw new ChangeStreamConfigError('ChangeStreamModule: set either "redis" or "tokenStore", not both.');
  }
  const keyPrefix = options.keyPrefix ?? 'change-stream';
  if (typeof keyPrefix !== 'string' || keyPrefix === '' || /[{}]/.test(keyPrefix)) {
    throw new ChangeStreamConfigError(messages.optionInvalid('keyPrefix', keyPrefix, 'a non-empty string without "{" or "}"'));
  }
  const onHandlerTimeout = options.onHandlerTimeout ?? 'warn';
  if (onHandlerTimeout !== 'warn' && onHandlerTimeout !== 'abort') {
    throw new ChangeStreamConfigError(messages.optionInvalid('onHandlerTimeout', onHandlerTimeout, '"warn" or "abort"'));
  }
  checkKeys('checkpoint', options.checkpoint, ['maxEvents', 'intervalMs', 'maxUnsavedEvents']);
  checkKeys('handlerRetry', options.handlerRetry, ['retries', 'initialDelayMs', 'maxDelayMs']);
  checkKeys('deadLetterRetention', options.deadLetterRetention, ['maxLetters', 'maxAgeMs']);
  checkKeys('reconnect', options.reconnect, ['initialDelayMs', 'maxDelayMs']);
  if (typeof options.leases === 'object') checkKeys('leases', options.leases, ['ttlMs', 'renewIntervalMs', 'pollIntervalMs', 'instanceId']);
  const reconnectInitial = int('reconnect.initialDelayMs', options.reconnect?.initialDelayMs, 500, 1);
  const retryInitial = int('handlerRetry.initialDelayMs', options.handlerRetry?.initialDelayMs, 200, 0);
  const handlerTimeoutMs = int('handlerTimeoutMs', options.handlerTimeoutMs, 60_000, 0);
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
      maxLetters: int('deadLetterRetention.maxLetters', options.deadLetterRetention?.maxLetters, DEFAULT_MAX_DEAD_LETTERS, 0) || Infinity,
      maxAgeMs: int('deadLetterRetention.maxAgeMs', options.deadLetterRetention?.maxAgeMs, 0, 0) || Infinity,
    },
    onHandlerFailure: handlerFailurePolicy('onHandlerFailure', options.onHandlerFailure),
    onHistoryLost: historyLostPolicy(options.onHistoryLost),
    keyPrefix,
    connectionName: options.connectionName,
    checkpoint: checkpointOptions(options.checkpoint),
    handlerRetry: {
      retries: int('handlerRetry.retries', options.handlerRetry?.retries, 3, 0),
      initialDelayMs: retryInitial,
      maxDelayMs: int('handlerRetry.maxDelayMs', options.handlerRetry?.maxDelayMs, Math.max(5000, retryInitial), retryInitial),
    },
    reconnect: {
      initialDelayMs: reconnectInitial,
      maxDelayMs: int('reconnect.maxDelayMs', options.reconnect?.maxDelayMs, Math.max(30000, reconnectInitial), reconnectInitial),
    },
    shutdownTimeoutMs: int('shutdownTimeoutMs', options.shutdownTimeoutMs, 10000, 0),
    startupTimeoutMs: int('startupTimeoutMs', options.startupTimeoutMs, 10000, 0),
    handlerTimeoutMs,
    concurrency: int('concurrency', options.concurrency, 1, 1),
    onHandlerTimeout,
    maxAwaitTimeMS: int('maxAwaitTimeMS', options.maxAwaitTimeMS, 1000, 1),
    batchSize: options.batchSize === undefined ? undefined : int('batchSize', options.batchSize, 0, 1),
    leases,
    telemetry: options.telemetry ?? true,
    positionMirror: positionMirrorOptions(options.positionMirror, options.connectionName),
  };
}

function positionMirrorOptions(value: boolean | PositionMirrorOptions | undefined, connectionName: string | undefined): ResolvedChangeStreamOptions['positionMirror'] {
  if (value === undefined || value === false) return false;
  if (value !== true) checkKeys('positionMirror', value, ['collection', 'intervalMs', 'connectionName']);
  const given = value === true ? {} : value;
  const collection = given.collection ?? 'change_stream_positions';
  if (typeof collection !== 'string' || collection === '' || collection.includes('$') || collection.startsWith('system.')) {
    throw new ChangeStreamConfigError(messages.optionInvalid('positionMirror.collection', collection, 'a collection name (not empty, no "$", not "system.…")'));
  }
  if (given.connectionName !== undefined && (typeof given.connectionName !== 'string' || given.connectionName === '')) {
    throw new ChangeStreamConfigError(messages.optionInvalid('positionMirror.connectionName', given.connectionName, 'a mongoose connection name'));
  }
  return { collection, intervalMs: int('positionMirror.intervalMs', given.intervalMs, 5000, 100), connectionName: given.connectionName ?? connectionName };
}

/** A misspelled key inside a group (`checkpoint: { maxEvent: 10 }`) would silently keep the default. */
function checkKeys(group: string, value: unknown, known: readonly string[]): void {
  if (value === undefined) return;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ChangeStreamConfigError(messages.optionInvalid(group, value, `an object with ${known.join(', ')}`));
  }
  const unknown = Object.keys(value).filter((key) => !known.includes(key));
  if (unknown.length > 0) {
    throw new ChangeStreamConfigError(
      `ChangeStreamModule: unknown option(s) ${unknown.map((key) => `"${group}.${key}"`).join(', ')}. Known in "${group}": ${known.join(', ')}.`,
    );
  }
}

function checkpointOptions(value: ChangeStreamModuleOptions['checkpoint']): ResolvedChangeStreamOptions['checkpoint'] {
  const maxEvents = int('checkpoint.maxEvents', value?.maxEvents, 1000, 1);
  const intervalMs = int('checkpoint.intervalMs', value?.intervalMs, 1000, 1);
  const maxUnsavedEvents = int('checkpoint.maxUnsavedEvents', value?.maxUnsavedEvents, Math.max(10_000, 2 * maxEvents), 1);
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
  const ttlMs = int('leases.ttlMs', value?.ttlMs, 10_000, 100);
  const renewIntervalMs = int('leases.renewIntervalMs', value?.renewIntervalMs, Math.min(3000, Math.floor(ttlMs / 3)), 10);
  if (renewIntervalMs > ttlMs / 2) {
    throw new ChangeStreamConfigError(messages.optionInvalid('leases.renewIntervalMs', renewIntervalMs, `at most half of leases.ttlMs (${ttlMs / 2})`));
  }
  const pollIntervalMs = int('leases.pollIntervalMs', value?.pollIntervalMs, Math.min(1000, renewIntervalMs), 10);
  if (pollIntervalMs > renewIntervalMs) {
    throw new ChangeStreamConfigError(messages.optionInvalid('leases.pollIntervalMs', pollIntervalMs, `at most leases.renewIntervalMs (${renewIntervalMs})`));
  }
  const instanceId = value?.instanceId ?? `${hostname()}:${process.pid}:${randomBytes(2).toString('hex')}`;
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

export function isHandlerFailurePolicy(value: unknown): value is HandlerFailurePolicy {
  return value === 'stop' || value === 'dead-letter' || typeof value === 'function';
}

function handlerFailurePolicy(name: string, value: HandlerFailurePolicy | undefined): HandlerFailurePolicy {
  if (value === undefined) return 'stop';
  if (isHandlerFailurePolicy(value)) return value;
  throw new ChangeStreamConfigError(messages.optionInvalid(name, value, '"stop", "dead-letter" or a function'));
}

function historyLostPolicy(value: HistoryLostPolicy | undefined): HistoryLostPolicy {
  if (value === undefined) return 'fail';
  if (value === 'fail' || value === 'restart-from-now' || typeof value === 'function') return value;
  throw new ChangeStreamConfigError(messages.optionInvalid('onHistoryLost', value, '"fail", "restart-from-now" or a function'));
}
