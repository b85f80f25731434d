import type { OnChangeOptions } from './on-change-options.interface.js';

/** How an `@OnChangeBatch` handler's batches are cut. */
export interface BatchLimits {
  /**
   * The most events in one batch (an integer from 1 to `checkpoint.maxEvents`, so the crash
   * duplicate bound holds with batches: see docs/guarantees.md).
   */
  maxSize: number;
  /**
   * A batch is cut after this many milliseconds without a new event for the handler (0: as soon
   * as the event loop is free). Shutdown, a reopen and an event without a document cut it at once.
   */
  maxWaitMs: number;
}

/**
 * The second argument of `@OnChangeBatch(collection, options)`: the batch limits and every
 * `@OnChange` option (filters, stream options, `retries`, `onFailure`, `connectionName`, …).
 */
export interface OnChangeBatchOptions extends OnChangeOptions, BatchLimits {}
