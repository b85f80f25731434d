import type { Cluster, Redis, RedisOptions } from 'ioredis';
import type { DeadLetterRetention, DeadLetterStore } from './dead-letter.interface.js';
import type { HandlerFailurePolicy, HistoryLostPolicy } from './failure-policies.interface.js';
import type { PositionStore } from './position-store.interface.js';

/** When a stream's position is saved (the module's `checkpoint` option). */
export interface CheckpointOptions {
  /** Save the position after this many handled events (default 1000). At most twice this many are delivered again after a crash. */
  maxEvents?: number;
  /** …or this long after the first unsaved event (default 1000 ms). */
  intervalMs?: number;
  /**
   * While saves fail (Redis down), handling may run this many events ahead of the last
   * stored position; beyond it, reading pauses until a save succeeds (default 10000). While
   * saves succeed the bound is `2 × maxEvents`.
   */
  maxUnsavedEvents?: number;
}

/** How a throwing handler is retried (the module's `handlerRetry` option). */
export interface HandlerRetryOptions {
  /** Retries after the first failed call, before the failure policy applies (default 3). */
  retries?: number;
  /** Delay before the first retry; doubles each time, with jitter (default 200 ms). */
  initialDelayMs?: number;
  /** Upper bound of the delay between retries (default 5000 ms). */
  maxDelayMs?: number;
}

/** How a broken stream is reopened (the module's `reconnect` option). */
export interface ReconnectOptions {
  /** Delay before reopening a stream that broke (default 500 ms); doubles, with jitter. */
  initialDelayMs?: number;
  /** Upper bound of that delay (default 30000 ms). */
  maxDelayMs?: number;
}

/** One active consumer per stream among the instances of a consumer (see the README's "Replicas and rolling deploys"). */
export interface LeaseOptions {
  /** A lease lives this long without renewal: the worst-case takeover after a crash is this plus `pollIntervalMs` (default 10000). */
  ttlMs?: number;
  /** The holder renews this often (default `min(3000, ttlMs / 3)`); at most `ttlMs / 2`. */
  renewIntervalMs?: number;
  /** A standby checks for a free lease this often (default `min(1000, renewIntervalMs)`); at most `renewIntervalMs`. */
  pollIntervalMs?: number;
  /** This instance's name in logs, status and Redis (default `<hostname>:<pid>:<random tag>`). */
  instanceId?: string;
}

/**
 * A copy of each position in MongoDB, for a Redis that may restart empty (the module's
 * `positionMirror` option; see the README's "Position mirror in MongoDB").
 */
export interface PositionMirrorOptions {
  /** The collection the module owns, in the connection's database (default `change_stream_positions`). */
  collection?: string;
  /** Each stream's copy is written at most this often (default 5000 ms), besides at shutdown and while Redis cannot be reached. */
  intervalMs?: number;
  /** The mongoose connection whose database holds the collection (default: the module's `connectionName`). */
  connectionName?: string;
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
  /** A custom dead-letter store (default: Redis with `redis`, else in memory). */
  deadLetterStore?: DeadLetterStore;
  /**
   * How many dead letters the module's stores keep (`maxLetters`, default 10,000) and for how
   * long (`maxAgeMs`, default no limit); `0` turns a limit off. The oldest are dropped first,
   * each drop logged as a warning and counted (`change_stream.dead_letters.dropped`). Not
   * applied to a custom `deadLetterStore`.
   */
  deadLetterRetention?: DeadLetterRetention;
  /** What happens when a handler still fails after its retries (default `stop`). */
  onHandlerFailure?: HandlerFailurePolicy;
  /** What happens when the stored position cannot be resumed from (default `fail`). */
  onHistoryLost?: HistoryLostPolicy;
  /** First part of every key (default `change-stream`). */
  keyPrefix?: string;
  /** Default mongoose connection name for handlers that name none. */
  connectionName?: string;
  /** When positions are saved: after `maxEvents` handled events or `intervalMs`, whichever comes first. */
  checkpoint?: CheckpointOptions;
  /** Retries of a throwing handler, with exponential backoff and jitter, before its failure policy applies. */
  handlerRetry?: HandlerRetryOptions;
  /** Backoff before reopening a stream that broke. */
  reconnect?: ReconnectOptions;
  /**
   * Upper bound of a shutdown: draining in-flight handlers, the final save and closing the cursor
   * all fit in it (default 10000 ms). Events not finished by then are delivered again on the next start.
   */
  shutdownTimeoutMs?: number;
  /** How long application bootstrap waits for every stream to open (default 10000 ms). */
  startupTimeoutMs?: number;
  /**
   * A handler call running longer than this turns its stream `degraded`, with a log line naming
   * the handler and event (default 60000 ms; 0 disables).
   */
  handlerTimeoutMs?: number;
  /**
   * `warn` (default): report only. `abort`: also abort that call's `context.signal` (each call has
   * its own: a retry starts with a fresh one). With leases, `abort` needs `handlerTimeoutMs` at
   * most half of `leases.ttlMs`, or startup fails.
   */
  onHandlerTimeout?: 'warn' | 'abort';
  /**
   * Events whose handlers run at once per stream. Events of one document (`documentKey`) are
   * always handled in order, one at a time (the later ones wait without taking a slot); events
   * without one (drop, rename, DDL) run alone.
   */
  concurrency?: number;
  /** Server wait per `getMore`; also bounds how long a shutdown waits for an idle read (default 1000 ms). */
  maxAwaitTimeMS?: number;
  /** Cursor batch size (driver default when omitted). */
  batchSize?: number;
  /**
   * Leases: on by default with the Redis store (and custom stores that implement `leases`), so
   * any number of instances may run; `false` for a single-instance deployment.
   */
  leases?: LeaseOptions | false;
  /**
   * Metrics and traces through `@opentelemetry/api` when it is installed and an SDK is registered
   * before the application starts (default true). `false` turns them off.
   */
  telemetry?: boolean;
  /**
   * Also copy each position into a MongoDB collection, read only when Redis holds no position for
   * a stream (Redis restarted without persistence). Off by default; `true` for the defaults.
   */
  positionMirror?: boolean | PositionMirrorOptions;
}
