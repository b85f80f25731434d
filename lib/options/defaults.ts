import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type {
  ChangeStreamModuleOptions,
  CheckpointOptions,
  HandlerRetryOptions,
  HistoryHeadroomOptions,
  LeaseOptions,
  PositionMirrorOptions,
  ReconnectOptions,
} from '../interfaces/change-stream-module-options.interface.js';
import type { DeadLetterRetention } from '../interfaces/dead-letter.interface.js';

// Every default value and internal timing constant of the module. A default that depends on
// another option is a function of it. The interfaces' `@defaultValue` tags and the README's
// option table state the same values: change them together.

/** A default for every key of `T`: a value, or a function of the options it depends on. */
type DefaultsOf<T> = { [K in keyof Required<T>]: T[K] | ((...dependsOn: never[]) => T[K]) };

/** Module options whose default does not depend on another option. */
export const MODULE_DEFAULTS = {
  /** Positions live under `change-stream:{…}` unless told otherwise. */
  keyPrefix: 'change-stream',
  /** Stop rather than skip: losing an event must be a decision of the user. */
  onHandlerFailure: 'stop',
  /** Stop rather than restart from now, which would skip the changes in between. */
  onHistoryLost: 'fail',
  /** Fits well inside a typical pod's termination grace period (30 s). */
  shutdownTimeoutMs: 10_000,
  /** Bootstrap waits this long, then streams keep opening in the background. */
  startupTimeoutMs: 10_000,
  /** Long enough for slow handlers (remote calls with retries), short enough to notice a hang. */
  handlerTimeoutMs: 60_000,
  /** Report only: aborting a call is a choice the handler must be written for. */
  onHandlerTimeout: 'warn',
  /** One event at a time: per-document order with no surprises; raise it for throughput. */
  concurrency: 1,
  /** An idle cursor asks the server once a second; also bounds the wait of a shutdown for an idle read. */
  maxAwaitTimeMS: 1000,
  /** Metrics and traces go wherever an OpenTelemetry SDK is registered; without one they cost nothing. */
  telemetry: true,
} as const satisfies Partial<ChangeStreamModuleOptions>;

/** `checkpoint`: at most `2 × maxEvents` events come again after a crash. */
export const CHECKPOINT_DEFAULTS = {
  maxEvents: 1000,
  /** A quiet stream stores its position within a second. */
  intervalMs: 1000,
  /** While saves succeed `2 × maxEvents` may be unsaved, so the bound while they fail is never below it. */
  maxUnsavedEvents: (maxEvents: number) => Math.max(10_000, 2 * maxEvents),
} as const satisfies DefaultsOf<CheckpointOptions>;

/** `handlerRetry`: rides out a short outage of what the handler calls, then the failure policy applies. */
export const HANDLER_RETRY_DEFAULTS = {
  retries: 3,
  initialDelayMs: 200,
  maxDelayMs: (initialDelayMs: number) => Math.max(5000, initialDelayMs),
} as const satisfies DefaultsOf<HandlerRetryOptions>;

/** `reconnect`: a fast first retry (a primary step-down), then at most every 30 s. */
export const RECONNECT_DEFAULTS = {
  initialDelayMs: 500,
  maxDelayMs: (initialDelayMs: number) => Math.max(30_000, initialDelayMs),
} as const satisfies DefaultsOf<ReconnectOptions>;

/** `leases`: a crashed holder is replaced within about 11 s. */
export const LEASE_DEFAULTS = {
  ttlMs: 10_000,
  /** Three renewals per TTL, so one lost renewal does not lose the lease. */
  renewIntervalMs: (ttlMs: number) => Math.min(3000, Math.floor(ttlMs / 3)),
  /** A standby looks at least once a renewal interval. */
  pollIntervalMs: (renewIntervalMs: number) => Math.min(1000, renewIntervalMs),
  /** Readable in logs and unique per process, even for two processes with one pid in two containers. */
  instanceId: () => `${hostname()}:${process.pid}:${randomBytes(2).toString('hex')}`,
} as const satisfies DefaultsOf<LeaseOptions>;

/** `deadLetterRetention` (0 is no limit). */
export const DEAD_LETTER_RETENTION_DEFAULTS = {
  /** A stream that dead-letters every event must not fill Redis' memory. */
  maxLetters: 10_000,
  /** Letters are kept until replayed or removed. */
  maxAgeMs: 0,
} as const satisfies DefaultsOf<DeadLetterRetention>;

/** `positionMirror: true`. */
export const POSITION_MIRROR_DEFAULTS = {
  collection: 'change_stream_positions',
  /** A copy at most 5 s old, and one write per stream per 5 s at most. */
  intervalMs: 5000,
  /** The module's `connectionName`. */
  connectionName: (moduleConnection: string | undefined) => moduleConnection,
} as const satisfies DefaultsOf<PositionMirrorOptions>;

/** `historyHeadroom`: an hour's notice before a stream's position falls off the oplog. */
export const HISTORY_HEADROOM_DEFAULTS = {
  /** Time to react (restart a consumer, fix a handler, enlarge the oplog) before history is lost. */
  warnMs: 3_600_000,
  /** One pair of oplog reads per connection a minute: the oplog's ends move slowly. */
  intervalMs: 60_000,
} as const satisfies DefaultsOf<HistoryHeadroomOptions>;

/** `ChangeStreamTestingModule.forRoot()` (its other options default as in production). */
export const TESTING_DEFAULTS = {
  consumer: 'test',
  /** As `changeEvents` builds events. */
  database: 'test',
  /** As for the first holder of a stream. */
  fence: 1,
  /** Retries do not slow tests down. */
  retryInitialDelayMs: 0,
} as const;

// Internal timing, not options.

/** Bootstrap waits this long for the store's first answer before logging that it is unreachable. */
export const STORE_CHECK_MS = 3000;

/** A save unanswered this long turns the stream `degraded`: far above a healthy round trip. */
export const SLOW_SAVE_MS = 5000;

/** Cap of the backoff of internal retries (position saves, dead-letter writes, leaving a position), as for `reconnect`. */
export const RETRY_MAX_DELAY_MS = 30_000;

/** First delay of a dead-letter write retry when `handlerRetry.initialDelayMs` is 0: no busy loop against a store that is down. */
export const DEAD_LETTER_RETRY_INITIAL_MS = 100;

/** First delay of a retry to leave a position after a lost lease. */
export const LEFT_POSITION_RETRY_INITIAL_MS = 500;

/** A left position is kept this long, and leaving one is retried this long (after that nobody would read it); the holder takes it within a renew interval, or at its start. */
export const LEFT_POSITION_TTL_MS = 3_600_000;

/** The catch-up line is logged this often: calm enough for a log, often enough to follow a backlog. */
export const CATCH_UP_REPORT_EVERY_MS = 30_000;

/** While a backfill runs, a getMore waits at most this long: every chunk's window waits for one, on an idle collection too (0.53× a bare find at 100 ms, 0.9× at 10 ms: docs/throughput.md). */
export const BACKFILL_MAX_AWAIT_MS = 10;

/** The backfill progress line is logged this often while a run is in progress. */
export const BACKFILL_REPORT_EVERY_MS = 30_000;

/** …and only while the stream is at least this far behind (a stream that keeps up logs nothing). */
export const CATCH_UP_REPORT_BEHIND_MS = 10_000;

/** Stuck handlers are looked for every quarter of `handlerTimeoutMs`, at most this often… */
export const STUCK_CHECK_MIN_INTERVAL_MS = 10;

/** …and at least this often, so a stuck call is reported within a second of its timeout. */
export const STUCK_CHECK_MAX_INTERVAL_MS = 1000;

/** A holder stops trusting its lease this long (at most a tenth of the TTL) before Redis would expire it: clock drift and timer lag. */
export const LEASE_EXPIRY_MARGIN_MS = 1000;

/** The last shutdown steps (balancer, mirror, store) get at least this long after `shutdownTimeoutMs` is used up. */
export const MIN_CLOSE_MS = 100;

/** The mirror looks for due copies every half `intervalMs`, at most this often. */
export const MIRROR_TICK_MIN_MS = 10;
