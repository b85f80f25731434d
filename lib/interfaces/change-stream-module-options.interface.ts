import type { Cluster, Redis, RedisOptions } from 'ioredis';
import type { DeadLetterRetention, DeadLetterStore } from './dead-letter.interface.js';
import type { HandlerFailurePolicy, HistoryLostPolicy } from './failure-policies.interface.js';
import type { PositionStore } from './position-store.interface.js';

/** When a stream's position is saved (the module's `checkpoint` option). */
export interface CheckpointOptions {
  /**
   * Save the position after this many handled events. At most twice this many are delivered again after a crash.
   * @defaultValue 1000
   */
  maxEvents?: number;
  /**
   * …or this long (ms) after the first unsaved event.
   * @defaultValue 1000
   */
  intervalMs?: number;
  /**
   * While saves fail (Redis down), handling may run this many events ahead of the last
   * stored position; beyond it, reading pauses until a save succeeds. While saves succeed the
   * bound is `2 × maxEvents`, so this is at least that.
   * @defaultValue `max(10000, 2 × maxEvents)`
   */
  maxUnsavedEvents?: number;
}

/** How a throwing handler is retried (the module's `handlerRetry` option). */
export interface HandlerRetryOptions {
  /**
   * Retries after the first failed call, before the failure policy applies.
   * @defaultValue 3
   */
  retries?: number;
  /**
   * Delay (ms) before the first retry; doubles each time, with jitter.
   * @defaultValue 200
   */
  initialDelayMs?: number;
  /**
   * Upper bound (ms) of the delay between retries.
   * @defaultValue `max(5000, initialDelayMs)`
   */
  maxDelayMs?: number;
}

/** How a broken stream is reopened (the module's `reconnect` option). */
export interface ReconnectOptions {
  /**
   * Delay (ms) before reopening a stream that broke; doubles, with jitter.
   * @defaultValue 500
   */
  initialDelayMs?: number;
  /**
   * Upper bound (ms) of that delay.
   * @defaultValue `max(30000, initialDelayMs)`
   */
  maxDelayMs?: number;
}

/** One active consumer per stream among the instances of a consumer (see docs/replicas.md). */
export interface LeaseOptions {
  /**
   * A lease lives this long (ms) without renewal: the worst-case takeover after a crash is this plus `pollIntervalMs`.
   * @defaultValue 10000
   */
  ttlMs?: number;
  /**
   * The holder renews this often (ms); at most `ttlMs / 2`.
   * @defaultValue `min(3000, ttlMs / 3)`
   */
  renewIntervalMs?: number;
  /**
   * A standby checks for a free lease this often (ms); at most `renewIntervalMs`.
   * @defaultValue `min(1000, renewIntervalMs)`
   */
  pollIntervalMs?: number;
  /**
   * This instance's name in logs, status and Redis.
   * @defaultValue `<hostname>:<pid>:<random tag>`
   */
  instanceId?: string;
}

/**
 * A copy of each position in MongoDB, for a Redis that may restart empty (the module's
 * `positionMirror` option; see docs/positions.md, "Position mirror in MongoDB").
 */
export interface PositionMirrorOptions {
  /**
   * The collection the module owns, in the connection's database.
   * @defaultValue `change_stream_positions`
   */
  collection?: string;
  /**
   * Each stream's copy is written at most this often (ms), besides at shutdown and while Redis cannot be reached.
   * @defaultValue 5000
   */
  intervalMs?: number;
  /**
   * The mongoose connection whose database holds the collection.
   * @defaultValue the module's `connectionName`
   */
  connectionName?: string;
}

/**
 * History headroom (the module's `historyHeadroom` option; see docs/operating.md): how long until
 * each stream's position falls off the oplog, sampled from `local.oplog.rs` (needs `find` on it).
 */
export interface HistoryHeadroomOptions {
  /**
   * A stream whose headroom is below this (ms) while the oplog drops entries turns `degraded`, with
   * one warning naming it, its headroom and the oplog window; 0 never warns (status still shows it).
   * @defaultValue 3600000 (1 hour)
   */
  warnMs?: number;
  /**
   * How often (ms) each connection's oplog is sampled: two one-entry reads, shared by its streams.
   * @defaultValue 60000
   */
  intervalMs?: number;
}

/**
 * Options of `ChangeStreamModule.forRoot()`, or what the `forRootAsync()` factory returns.
 * Invalid values fail startup with a `ChangeStreamConfigError` naming the option.
 */
export interface ChangeStreamModuleOptions {
  /**
   * Name of this consuming service. Part of every key, so two services sharing a
   * Redis never overwrite each other's positions. Required; no `:`, `{` or `}`.
   */
  consumer: string;
  /**
   * Where positions are stored: a Redis URL, ioredis options, or an ioredis client or
   * `Cluster` (which the module then never quits). Omit for an in-memory store (positions do
   * not survive a restart; a warning is logged).
   */
  redis?: string | RedisOptions | Redis | Cluster;
  /** A custom store instead of Redis; the module never closes it. */
  tokenStore?: PositionStore;
  /**
   * A custom dead-letter store.
   * @defaultValue Redis with `redis`, else in memory
   */
  deadLetterStore?: DeadLetterStore;
  /**
   * How many dead letters the module's stores keep and for how long; `0` turns a limit off. The
   * oldest are dropped first, each drop logged as a warning and counted
   * (`change_stream.dead_letters.dropped`). Not applied to a custom `deadLetterStore`.
   * @defaultValue `{ maxLetters: 10000, maxAgeMs: 0 }` (no age limit)
   */
  deadLetterRetention?: DeadLetterRetention;
  /**
   * What happens when a handler still fails after its retries.
   * @defaultValue `'stop'`
   */
  onHandlerFailure?: HandlerFailurePolicy;
  /**
   * What happens when the stored position cannot be resumed from.
   * @defaultValue `'fail'`
   */
  onHistoryLost?: HistoryLostPolicy;
  /**
   * First part of every key.
   * @defaultValue `change-stream`
   */
  keyPrefix?: string;
  /**
   * Default mongoose connection name for handlers that name none.
   * @defaultValue mongoose's default connection
   */
  connectionName?: string;
  /** When positions are saved: after `maxEvents` handled events or `intervalMs`, whichever comes first. */
  checkpoint?: CheckpointOptions;
  /** Retries of a throwing handler, with exponential backoff and jitter, before its failure policy applies. */
  handlerRetry?: HandlerRetryOptions;
  /** Backoff before reopening a stream that broke. */
  reconnect?: ReconnectOptions;
  /**
   * Upper bound of a shutdown: draining in-flight handlers, the final save and closing the cursor
   * all fit in it (ms). Events not finished by then are delivered again on the next start.
   * @defaultValue 10000
   */
  shutdownTimeoutMs?: number;
  /**
   * How long (ms) application bootstrap waits for every stream to open.
   * @defaultValue 10000
   */
  startupTimeoutMs?: number;
  /**
   * A handler call running longer than this turns its stream `degraded`, with a log line naming
   * the handler and event (ms; 0 disables).
   * @defaultValue 60000
   */
  handlerTimeoutMs?: number;
  /**
   * `warn`: report only. `abort`: also abort that call's `context.signal` (each call has
   * its own: a retry starts with a fresh one). With leases, `abort` needs `handlerTimeoutMs` at
   * most half of `leases.ttlMs`, or startup fails.
   * @defaultValue `'warn'`
   */
  onHandlerTimeout?: 'warn' | 'abort';
  /**
   * Events whose handlers run at once per stream. Events of one document (`documentKey`) are
   * always handled in order, one at a time (the later ones wait without taking a slot); events
   * without one (drop, rename, DDL) run alone.
   * @defaultValue 1
   */
  concurrency?: number;
  /**
   * Server wait (ms) per `getMore`; also bounds how long a shutdown waits for an idle read.
   * @defaultValue 1000
   */
  maxAwaitTimeMS?: number;
  /**
   * Cursor batch size.
   * @defaultValue the driver's
   */
  batchSize?: number;
  /**
   * Leases: on by default with the Redis store (and custom stores that implement `leases`), so
   * any number of instances may run; `false` for a single-instance deployment.
   * @defaultValue on with `redis` (and a `tokenStore` that implements `leases`), off with the in-memory store
   */
  leases?: LeaseOptions | false;
  /**
   * Metrics and traces through `@opentelemetry/api` when it is installed and an SDK is registered
   * before the application starts. `false` turns them off.
   * @defaultValue true
   */
  telemetry?: boolean;
  /**
   * Also copy each position into a MongoDB collection, read only when Redis holds no position for
   * a stream (Redis restarted without persistence). `true` for the defaults of `PositionMirrorOptions`.
   * @defaultValue false
   */
  positionMirror?: boolean | PositionMirrorOptions;
  /**
   * Sample each stream's history headroom (time until its position falls off the oplog) and warn
   * before it runs out; `false` reads nothing from `local.oplog.rs`. `true` for the defaults of
   * `HistoryHeadroomOptions`.
   * @defaultValue true
   */
  historyHeadroom?: boolean | HistoryHeadroomOptions;
  /**
   * `false` keeps this instance out of consuming (e.g. `enabled: process.env.ROLE === 'worker'`):
   * handlers are still discovered and validated (bad options still fail startup), but no stream
   * is opened, no lease taken, and a Redis client the module creates connects only if used (the
   * dead-letter service). Status and health show each stream as `disabled`.
   * @defaultValue true
   */
  enabled?: boolean;
  /**
   * One change stream per collection (`'collection'`), or one per database for all of a
   * connection's watched collections (`'database'`), routed to each collection's handlers by
   * namespace; an object sets it per connection. See the README, "Many collections: one stream
   * per database".
   * @defaultValue 'collection'
   */
  streams?: StreamsOption;
}

/**
 * How handlers are grouped into change streams: `'collection'` (one stream per watched
 * collection) or `'database'` (one stream per connection's database); `connections` overrides
 * `default` per mongoose connection name (the default connection is `'default'`).
 */
export type StreamsOption =
  | 'collection'
  | 'database'
  | {
      /** The mode of connections not named in `connections`. */
      default?: 'collection' | 'database';
      /** The mode per mongoose connection name. */
      connections?: Record<string, 'collection' | 'database'>;
    };
