import type { ChangeContext } from '../interfaces/change-context.interface.js';
import type { ChangeEvent } from '../common/change-event.js';
import type { ChangeHandler } from './change-handler.js';
import { DeploymentRoutes } from './deployment-routes.js';
import type { Attempt, DispatchScope } from './event-in-flight.js';
import type { HandlerLabels } from './failure-policy-step.js';

/** What a stream tells each handler call beside the call's own handler, attempt, signal and fence. */
export type StreamContext = Omit<ChangeContext, 'handler' | 'attempt' | 'signal' | 'fence'>;

/** One stream's handler calls: the `ChangeContext` each is given, and the labels its telemetry counts under. */
export class CallContexts {
  constructor(
    private readonly context: StreamContext,
    /** A deployment stream: `context.database` is each event's. */
    private readonly databasePerEvent: boolean,
  ) {}

  labels(handler: ChangeHandler, change: ChangeEvent): HandlerLabels {
    return {
      consumer: this.context.consumer,
      // The stream's (`$deployment` for a deployment stream): one label value per tenant database would not scale.
      database: this.context.database,
      collection: handler.collection,
      handler: handler.name,
      operationType: change.operationType,
    };
  }

  contextFor(
    handler: ChangeHandler,
    attempt: number,
    signal: AbortSignal,
    scope: DispatchScope,
    change?: unknown,
  ): ChangeContext {
    const { consumer, connectionName } = this.context;
    return {
      consumer,
      connectionName,
      database: this.databaseOf(change),
      // A database stream's handler is on one collection: the event's.
      collection: handler.collection,
      handler: handler.name,
      attempt,
      signal,
      fence: scope.fence,
    };
  }

  /** The stream's database; in a deployment stream, the event's (`ns.db`; an `invalidate` has none). */
  private databaseOf(change: unknown): string {
    if (!this.databasePerEvent || change === undefined) return this.context.database;
    return DeploymentRoutes.databaseOf(change) ?? this.context.database;
  }
}

/**
 * A call with its own signal (see `EventInFlight.attempts`), in the attempts of each event it
 * handles (one, or a batch's), and aborted at once if the events' signal already is.
 */
export function beginAttempt(
  handler: ChangeHandler,
  shared: AbortSignal,
  ...attemptsOfEvents: Set<Attempt>[]
): Attempt {
  const attempt: Attempt = {
    handler: handler.name,
    startedAt: Date.now(),
    abort: new AbortController(),
  };
  if (shared.aborted) attempt.abort.abort(shared.reason);
  for (const attempts of attemptsOfEvents) attempts.add(attempt);
  return attempt;
}
