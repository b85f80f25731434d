import type { mongo } from 'mongoose';
import type { HandlerFailedError } from '../change-stream.errors.js';
import type { ChangeContext } from '../interfaces/change-context.interface.js';

/**
 * How one handler's part of an event ended:
 * - `succeeded`: its last attempt returned;
 * - `dead-lettered`: it kept failing and the event was stored as a dead letter (policy `'dead-letter'`);
 * - `recorded`: it kept failing and the failure callback resolved (a callback policy);
 * - `failed`: it kept failing under `'stop'`, or the failure callback threw: the stream stopped before the event.
 */
export type HandlerRunStatus = 'succeeded' | 'dead-lettered' | 'recorded' | 'failed';

/** One interested handler's calls for one event. */
export interface HandlerRun {
  /** `ClassName.methodName`. */
  readonly handler: string;
  readonly status: HandlerRunStatus;
  /** Calls made: 1, plus one per retry. */
  readonly attempts: number;
  /**
   * The context of each call as the handler received it (`attempt` 1, 2, …): a copy whose
   * `signal` is the same AbortSignal, not enumerable so that Jest can print a failing outcome.
   */
  readonly contexts: readonly ChangeContext[];
  /** What each failed call threw, in order. */
  readonly errors: readonly unknown[];
  /** With status `dead-lettered`: the dead letter's id (derived from the event and the handler, as in production). */
  readonly deadLetterId?: string;
}

/** What handling one emitted event came to, and what production would have done with its position. */
export interface ChangeOutcome<C = mongo.ChangeStreamDocument> {
  /** The event as the handlers received it (completed from what was emitted). */
  readonly change: C;
  readonly connectionName: string;
  /** The event's database (`ns.db`): the testing module's `database`, or a tenant's (see `EmitOptions.database`). */
  readonly database: string;
  /** The collection it was emitted on (also in a database stream, whose name is not a collection's). */
  readonly collection: string;
  /**
   * False when the stream had stopped before this event (a handler failed for good under
   * `'stop'`): production reads nothing more until a restart, so no handler ran. See `restart()`.
   */
  readonly delivered: boolean;
  /**
   * Production would store a position past this event: every interested handler succeeded, or
   * its failure was recorded per policy (a dead letter stored, a failure callback resolved).
   * Always false for `invalidate`, which is never a resume point (the stream reopens after it).
   */
  readonly acknowledged: boolean;
  /**
   * The handlers that wanted the event, routed as production routes it (by connection, collection,
   * a tenant pattern's database, `operationTypes` and the lifecycle rule), in discovery order per
   * stream; empty when no handler ran (e.g. an event of a database no pattern matches).
   */
  readonly handlers: readonly HandlerRun[];
  /** Ids of the dead letters stored for this event. */
  readonly deadLetters: readonly string[];
  /** Why the stream stopped at this event (`'stop'`, or a failure callback that threw); it is not acknowledged. */
  readonly failure?: HandlerFailedError;
}
