import { DEFAULT_CONNECTION_NAME } from '../change-stream.constants.js';
import { ChangeStreamConfigError } from '../change-stream.errors.js';
import { messages } from '../change-stream.messages.js';
import type {
  HandlerRetryOptions,
  StreamsOption,
} from '../interfaces/change-stream-module-options.interface.js';
import type { HandlerFailurePolicy } from '../interfaces/failure-policies.interface.js';
import { TESTING_DEFAULTS } from '../options/defaults.js';
import { keyNames, unknownKeys } from '../options/known-keys.js';
import { type ResolvedChangeStreamOptions, resolveOptions } from '../options/module-options.js';

/** Injection token of the testing module's resolved options. */
export const CHANGE_STREAM_TESTING_OPTIONS = Symbol('nestjs-change-streams:testing-options');

/**
 * The production options that shape how handlers are called, and labels for what production
 * reads from the server. Nothing is connected: no MongoDB, no Redis, no mongoose connection.
 */
export interface ChangeStreamTestingOptions {
  /**
   * `context.consumer`, and part of dead-letter ids.
   * @defaultValue `test`
   */
  consumer?: string;
  /**
   * The connection name of handlers that name none (a label here; nothing is resolved).
   * @defaultValue mongoose's default connection
   */
  connectionName?: string;
  /**
   * `context.database` and the events' `ns.db`: one name for every connection, or one per
   * connection name (a connection not named gets the default).
   * @defaultValue `test`, as `changeEvents` builds
   */
  database?: string | Record<string, string>;
  /**
   * Part of dead letters' `streamKey`.
   * @defaultValue `change-stream`
   */
  keyPrefix?: string;
  /**
   * As in production: `'stop'`, `'dead-letter'` or a callback.
   * @defaultValue `'stop'`
   */
  onHandlerFailure?: HandlerFailurePolicy;
  /**
   * As in production, except that `initialDelayMs` defaults to 0 so that retries do not slow
   * tests down; set it to test with production's backoff.
   * @defaultValue `{ retries: 3, initialDelayMs: 0, maxDelayMs: 5000 }`
   */
  handlerRetry?: HandlerRetryOptions;
  /**
   * `context.fence`: the fencing number of the lease the handlers run under; `null` as without leases.
   * @defaultValue 1, as for the first holder of a stream
   */
  fence?: number | null;
  /**
   * As in production: one stream per collection, or per database (`'database'`), per connection
   * with `{ default, connections }`. The testing module plans, validates and routes as production
   * does: in database mode one stream's events (of all its collections) are handled one at a time.
   * @defaultValue `'collection'`
   */
  streams?: StreamsOption;
  /**
   * As in production: how many events of one stream are handled at once (events of one document
   * in order, events without one alone), lowered by a handler's `concurrency`. Above 1, events go
   * through production's scheduler; a stream with `@OnChangeBatch` handlers still takes them one
   * `emit` at a time.
   * @defaultValue 1
   */
  concurrency?: number;
}

export interface ResolvedTestingOptions {
  /** The production options these resolve to (validated by the same code, with the same messages). */
  module: ResolvedChangeStreamOptions;
  defaultConnection: string;
  databaseOf(connectionName: string): string;
  fence: number | null;
}

const KNOWN = {
  consumer: true,
  connectionName: true,
  database: true,
  keyPrefix: true,
  onHandlerFailure: true,
  handlerRetry: true,
  fence: true,
  streams: true,
  concurrency: true,
} as const satisfies Record<keyof ChangeStreamTestingOptions, true>;

export function resolveTestingOptions(
  options: ChangeStreamTestingOptions = {},
): ResolvedTestingOptions {
  if (typeof options !== 'object' || options === null) {
    throw new ChangeStreamConfigError(messages.testingOptionsNotObject());
  }
  const unknown = unknownKeys(options, KNOWN);
  if (unknown.length > 0)
    throw new ChangeStreamConfigError(messages.testingUnknownOptions(unknown, keyNames(KNOWN)));
  const {
    database = TESTING_DEFAULTS.database,
    handlerRetry,
    fence = TESTING_DEFAULTS.fence,
  } = options;
  if (fence !== null && (!Number.isSafeInteger(fence) || fence < 1)) {
    throw new ChangeStreamConfigError(
      messages.testingOptionInvalid('fence', fence, 'an integer >= 1, or null (no leases)'),
    );
  }
  // Validated by production's code, with production's messages.
  const module = resolveOptions({
    consumer: options.consumer ?? TESTING_DEFAULTS.consumer,
    ...(options.connectionName !== undefined && { connectionName: options.connectionName }),
    ...(options.keyPrefix !== undefined && { keyPrefix: options.keyPrefix }),
    ...(options.onHandlerFailure !== undefined && { onHandlerFailure: options.onHandlerFailure }),
    ...(options.streams !== undefined && { streams: options.streams }),
    ...(options.concurrency !== undefined && { concurrency: options.concurrency }),
    handlerRetry: {
      ...handlerRetry,
      initialDelayMs: handlerRetry?.initialDelayMs ?? TESTING_DEFAULTS.retryInitialDelayMs,
    },
  });
  const names =
    typeof database === 'string'
      ? [database]
      : typeof database === 'object' && database !== null
        ? Object.values(database)
        : [database];
  if (names.some((name) => typeof name !== 'string' || name === '' || /[/\\. "$]/.test(name))) {
    throw new ChangeStreamConfigError(
      messages.testingOptionInvalid(
        'database',
        database,
        'a database name, or one per connection name',
      ),
    );
  }
  return {
    module,
    defaultConnection: options.connectionName ?? DEFAULT_CONNECTION_NAME,
    fence,
    databaseOf: (connectionName) =>
      typeof database === 'string'
        ? database
        : (database[connectionName] ?? TESTING_DEFAULTS.database),
  };
}
