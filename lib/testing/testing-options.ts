import { DEFAULT_CONNECTION_NAME } from '../change-stream.constants.js';
import { ChangeStreamConfigError } from '../change-stream.errors.js';
import { type ResolvedChangeStreamOptions, resolveOptions } from '../change-stream.options.js';
import type { HandlerRetryOptions } from '../interfaces/change-stream-module-options.interface.js';
import type { HandlerFailurePolicy } from '../interfaces/failure-policies.interface.js';

/** Injection token of the testing module's resolved options. */
export const CHANGE_STREAM_TESTING_OPTIONS = Symbol('nestjs-change-streams:testing-options');

/**
 * The production options that shape how handlers are called, and labels for what production
 * reads from the server. Nothing is connected: no MongoDB, no Redis, no mongoose connection.
 */
export interface ChangeStreamTestingOptions {
  /** `context.consumer`, and part of dead-letter ids (default `test`). */
  consumer?: string;
  /** The connection name of handlers that name none (a label here; nothing is resolved). */
  connectionName?: string;
  /**
   * `context.database` and the events' `ns.db`: one name for every connection, or one per
   * connection name (default `test`, as `changeEvents` builds).
   */
  database?: string | Record<string, string>;
  /** Part of dead letters' `streamKey` (default `change-stream`). */
  keyPrefix?: string;
  /** As in production: `'stop'` (default), `'dead-letter'` or a callback. */
  onHandlerFailure?: HandlerFailurePolicy;
  /**
   * As in production (`retries` default 3), except that `initialDelayMs` defaults to 0 so that
   * retries do not slow tests down; set it to test with production's backoff.
   */
  handlerRetry?: HandlerRetryOptions;
  /**
   * `context.fence`: the fencing number of the lease the handlers run under (default 1, as for the
   * first holder of a stream); `null` as without leases.
   */
  fence?: number | null;
}

export interface ResolvedTestingOptions {
  /** The production options these resolve to (validated by the same code, with the same messages). */
  module: ResolvedChangeStreamOptions;
  defaultConnection: string;
  databaseOf(connectionName: string): string;
  fence: number | null;
}

const KNOWN = ['consumer', 'connectionName', 'database', 'keyPrefix', 'onHandlerFailure', 'handlerRetry', 'fence'];

export function resolveTestingOptions(options: ChangeStreamTestingOptions = {}): ResolvedTestingOptions {
  if (typeof options !== 'object' || options === null) {
    throw new ChangeStreamConfigError('ChangeStreamTestingModule: options must be an object.');
  }
  const unknown = Object.keys(options).filter((name) => !KNOWN.includes(name));
  if (unknown.length > 0) {
    throw new ChangeStreamConfigError(
      `ChangeStreamTestingModule: unknown option(s) ${unknown.map((n) => `"${n}"`).join(', ')}. Known options: ${KNOWN.join(', ')}. ` +
        `Stores, Redis, leases and timeouts do not apply: nothing is connected.`,
    );
  }
  const { database = 'test', handlerRetry, fence = 1 } = options;
  if (fence !== null && (!Number.isSafeInteger(fence) || fence < 1)) {
    throw new ChangeStreamConfigError(`ChangeStreamTestingModule: option "fence" is ${JSON.stringify(fence)}; expected an integer >= 1, or null (no leases).`);
  }
  const module = resolveOptions({
    consumer: options.consumer ?? 'test',
    ...(options.connectionName !== undefined && { connectionName: options.connectionName }),
    ...(options.keyPrefix !== undefined && { keyPrefix: options.keyPrefix }),
    ...(options.onHandlerFailure !== undefined && { onHandlerFailure: options.onHandlerFailure }),
    handlerRetry: { ...handlerRetry, initialDelayMs: handlerRetry?.initialDelayMs ?? 0 },
  });
  const names = typeof database === 'string' ? [database] : typeof database === 'object' && database !== null ? Object.values(database) : [database];
  if (names.some((name) => typeof name !== 'string' || name === '' || /[/\\. "$]/.test(name))) {
    throw new ChangeStreamConfigError(`ChangeStreamTestingModule: option "database" is ${JSON.stringify(database)}; expected a database name, or one per connection name.`);
  }
  return {
    module,
    defaultConnection: options.connectionName ?? DEFAULT_CONNECTION_NAME,
    fence,
    databaseOf: (connectionName) => (typeof database === 'string' ? database : (database[connectionName] ?? 'test')),
  };
}
