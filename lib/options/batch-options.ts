import { ChangeStreamConfigError } from '../change-stream.errors.js';
import { messages } from '../change-stream.messages.js';
import type {
  BatchLimits,
  OnChangeBatchOptions,
} from '../interfaces/on-change-batch-options.interface.js';
import type { OnChangeOptions } from '../interfaces/on-change-options.interface.js';
import { HANDLER_OPTIONS } from './handler-options.js';
import { keyNames, unknownKeys } from './known-keys.js';

// The validator of what `@OnChangeBatch` adds to `@OnChange`'s options; those it shares are
// checked by handler-options.ts like any handler's.

const BATCH_LIMITS = { maxSize: true, maxWaitMs: true } as const satisfies Record<
  keyof BatchLimits,
  true
>;
const BATCH_OPTIONS = { ...HANDLER_OPTIONS, ...BATCH_LIMITS };

/** Splits `@OnChangeBatch` options into the batch limits and the `@OnChange` options. */
export function splitBatchOptions(options: Partial<OnChangeBatchOptions>): {
  limits: Partial<BatchLimits>;
  options: OnChangeOptions;
} {
  const { maxSize, maxWaitMs, ...rest } = options;
  return { limits: { maxSize, maxWaitMs }, options: rest };
}

/** What `@OnChangeBatch(collection, options)` on `where` can check when the class is defined. */
export function validateBatchDeclaration(collection: string, where: string, options: object): void {
  const unknown = unknownKeys(options, BATCH_OPTIONS);
  if (unknown.length > 0)
    throw new ChangeStreamConfigError(
      messages.onChangeBatchUnknownOptions(collection, where, unknown, keyNames(BATCH_OPTIONS)),
    );
  validateBatchLimits(collection, where, options as Partial<BatchLimits>);
}

/**
 * The limits of one batch handler; with `checkpointMaxEvents` (at startup) also that a batch fits
 * in it, or a crash could deliver again more than the duplicate bound.
 */
export function validateBatchLimits(
  collection: string,
  handler: string,
  limits: Partial<BatchLimits>,
  checkpointMaxEvents?: number,
): asserts limits is BatchLimits {
  const invalid = (option: keyof BatchLimits, rule: string) =>
    new ChangeStreamConfigError(
      messages.onChangeBatchOptionInvalid(collection, handler, option, rule),
    );
  const { maxSize, maxWaitMs } = limits;
  if (typeof maxSize !== 'number' || !Number.isInteger(maxSize) || maxSize < 1)
    throw invalid('maxSize', `must be an integer >= 1 (got ${String(maxSize)})`);
  if (typeof maxWaitMs !== 'number' || !Number.isFinite(maxWaitMs) || maxWaitMs < 0)
    throw invalid('maxWaitMs', `must be a number of milliseconds >= 0 (got ${String(maxWaitMs)})`);
  if (checkpointMaxEvents !== undefined && maxSize > checkpointMaxEvents)
    throw new ChangeStreamConfigError(
      messages.batchLargerThanCheckpoint(collection, handler, maxSize, checkpointMaxEvents),
    );
}
