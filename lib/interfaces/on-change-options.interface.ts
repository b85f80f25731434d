import type { mongo } from 'mongoose';
import type { BackfillOptions } from './backfill.interface.js';
import type { HandlerFailurePolicy } from './failure-policies.interface.js';

/** The `operationType` of a change event: `insert`, `update`, `replace`, `delete`, `drop`, `rename`, `dropDatabase`, `invalidate` and the DDL types. */
export type ChangeOperationType = mongo.ChangeStreamDocument['operationType'];

/** A `$match` stage; change streams here accept only filters, so resume tokens stay intact. */
export interface MatchStage {
  /** A filter on the change event's fields (`operationType`, `fullDocument.status`, `updateDescription.updatedFields.x`, …). */
  $match: Record<string, unknown>;
}

/** The driver's `fullDocument` option: whether update events carry the document as it is now (`updateLookup`) or as it was written (post-images: `whenAvailable`, `required`). */
export type FullDocumentMode = 'default' | 'updateLookup' | 'whenAvailable' | 'required';
/** The driver's `fullDocumentBeforeChange` option: the document before the change (needs pre-images enabled on the collection). */
export type FullDocumentBeforeChangeMode = 'off' | 'whenAvailable' | 'required';

/** The second argument of `@OnChange(collection, options)`. */
export interface OnChangeOptions {
  /** Only these operation types reach the handler (all when omitted). */
  operationTypes?: readonly ChangeOperationType[];
  /**
   * `$match` stages applied on the server. Stream-level: every handler of the same
   * collection must declare the same pipeline (or none).
   */
  pipeline?: MatchStage[];
  /** Stream-level; handlers of one collection that set it must agree. */
  fullDocument?: FullDocumentMode;
  /** Stream-level; handlers of one collection that set it must agree. */
  fullDocumentBeforeChange?: FullDocumentBeforeChangeMode;
  /**
   * Stream-level (set by any handler of the collection, it applies to the stream): events over
   * 16 MB (usually with `fullDocument` or `fullDocumentBeforeChange`) are split by the server
   * (`$changeStreamSplitLargeEvent`, MongoDB 7.0+ or 6.0.9+) and joined again before handlers
   * see them. Without it such an event fails the stream with a message naming this option.
   * Older servers refuse the stream when it is set.
   * @defaultValue false
   */
  splitLargeEvents?: boolean;
  /**
   * Mongoose connection name.
   * @defaultValue the module's `connectionName`, else the default connection
   */
  connectionName?: string;
  /** Overrides the module's `handlerRetry.retries` for this handler. */
  retries?: number;
  /** Caps the stream's `concurrency` (the lowest cap among a collection's handlers wins). */
  concurrency?: number;
  /** Overrides the module's `onHandlerFailure` for this handler. */
  onFailure?: HandlerFailurePolicy;
  /**
   * `false` leaves this handler out of its stream (still validated at startup): the stream's
   * filter and position key are what its other handlers make them, and a stream whose handlers
   * are all disabled is not opened.
   * @defaultValue true
   */
  enabled?: boolean;
  /**
   * Deliver every existing document once (a `BackfillEvent`), then every change since the
   * backfill began, with live changes flowing meanwhile: on the stream's first start, or when
   * this handler is new on an existing stream. Needs `fullDocument` `updateLookup` or
   * `required` on the stream, and every document event for the handler (no `operationTypes`, or
   * all of insert, update, replace, delete). See "Backfill" in docs/guarantees.md.
   * @defaultValue false
   */
  backfill?: boolean | BackfillOptions;
}
