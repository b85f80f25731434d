import type { mongo } from 'mongoose';
import type { ChangeContext } from './change-context.interface.js';
import type { StreamPosition } from './position-store.interface.js';

/** What a handler failure callback receives once retries ran out. */
export interface HandlerFailure {
  /** The event the handler failed on. */
  change: mongo.ChangeStreamDocument;
  /** What the handler's last attempt threw. */
  error: unknown;
  /** `context.attempt` is the number of attempts made. */
  context: ChangeContext;
}

/**
 * Called when a handler failed for good. Resolving counts the event as handled (you recorded
 * it somewhere); throwing stops the stream before the event, like `'stop'`.
 */
export type HandlerFailureCallback = (failure: HandlerFailure) => void | Promise<void>;

/**
 * - `stop` (default): the stream stops before the event; health goes down; it is redelivered on restart.
 * - `dead-letter`: the event, error, handler and attempts are stored (Redis), then the stream moves on.
 * - a callback: see `HandlerFailureCallback`.
 */
export type HandlerFailurePolicy = 'stop' | 'dead-letter' | HandlerFailureCallback;

/** A stream whose stored position cannot be resumed from. */
export interface HistoryLost {
  /** The stream's position key. */
  key: string;
  /** The mongoose connection of the stream. */
  connectionName: string;
  /** The database of the watched collection. */
  database: string;
  /**
   * The watched collection. For a whole database or deployment stream, `'$database'` or
   * `'$deployment'`; for a database stream whose own start is still in the oplog, the one
   * collection whose history fell off it (the policy is asked for each such collection).
   */
  collection: string;
  /** What happened, for logs and alerts. */
  reason: string;
  /**
   * The newest acknowledged position, which could not be resumed from (null when the stored value
   * was not a position); for one collection of a database stream, its newest stored position (a
   * token, or the cluster time the database stream covered it up to).
   */
  position: StreamPosition | null;
  /**
   * Only for one collection of a database stream whose history fell off the oplog: the cluster time
   * the stream starts at (the oldest of its other collections' positions). With `restart-from-now`
   * that collection goes on from there: its changes from its lost `position` up to this time are
   * not delivered, including those still in the oplog after its oldest entry (starting at the
   * oplog's edge instead would give the other collections duplicates for the whole oplog window).
   */
  startsAt?: mongo.Timestamp;
}

/** What to do about a lost position: stop the stream (`fail`) or go on from now (`restart-from-now`, losing the changes in between). */
export type HistoryLostAction = 'fail' | 'restart-from-now';

/** Decide per occurrence, e.g. trigger a resync and then restart from now. */
export type HistoryLostCallback = (
  lost: HistoryLost,
) => HistoryLostAction | Promise<HistoryLostAction>;

/**
 * Applies to `ChangeStreamHistoryLost` (286), a token the server rejects, and a stored value
 * that is not a token. `fail` (default): stream failed, health down, stored value kept.
 * `restart-from-now`: logged as data loss, a `history-lost` event is emitted, reading goes on from now.
 * Also asked, per collection, for a database stream's collection whose position fell off the oplog
 * while the stream's start is still in it: `restart-from-now` lets that collection go on from the
 * stream's start; `fail` fails the stream.
 */
export type HistoryLostPolicy = HistoryLostAction | HistoryLostCallback;
