import type { mongo } from 'mongoose';
import type { StreamPosition } from '../interfaces/position-store.interface.js';

// The events every part reads (the stream, its backfills, the testing module): their type, the
// cursor they come from, and those that end or reshape a stream.

export type ChangeEvent = mongo.ChangeStreamDocument;

/** The part of a change stream a collection stream uses; `DriverChangeCursor` adapts the driver's. */
export interface ChangeCursor {
  /** The next event, or null after an empty batch. The first call opens the stream on the server. */
  tryNext(): Promise<ChangeEvent | null>;
  /**
   * The next event the driver already holds, at once (no I/O, no promise), as `tryNext` would
   * return it; null when it holds none (then call `tryNext`).
   */
  nextBuffered(): ChangeEvent | null;
  /** Events the cursor holds from its last read (0: the next `tryNext` asks the server); undefined when unknown. */
  readonly buffered?: number;
  /** Resolves once the server accepted the stream (its `aggregate` answered); never rejects. */
  whenOpen(): Promise<void>;
  /** True once the server accepted the stream: an error after that is not about the start position. */
  readonly isOpen: boolean;
  /**
   * Where the stream started, as the server answered the open: its post-batch token, else its
   * `operationTime`; but when the first batch already holds events (writes raced the open, and
   * their cluster times may precede `operationTime`), the first event's `clusterTime`
   * (`startAtOperationTime` is inclusive). Null before the open, or when there is none of these.
   */
  readonly startPosition: StreamPosition | null;
  /** The driver's cached token: the last event's, or the post-batch token of an empty batch. */
  readonly resumeToken: unknown;
  readonly closed: boolean;
  close(): Promise<void>;
}

/**
 * Events that end or reshape the stream. A filter must never hide them: after an unseen drop the
 * stream would keep resuming from a pre-drop token and never notice the invalidate.
 */
export const LIFECYCLE_EVENTS: readonly string[] = ['drop', 'rename', 'dropDatabase', 'invalidate'];

export function isLifecycleEvent(operationType: string): boolean {
  return LIFECYCLE_EVENTS.includes(operationType);
}

/** The operation types that change or end a watched collection without being about one document. */
export const COLLECTION_LIFECYCLE = ['drop', 'rename'];
