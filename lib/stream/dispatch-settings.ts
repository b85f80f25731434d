import type { StreamPlan } from './stream-plan.js';
import type { DeadLetterStore } from '../interfaces/dead-letter.interface.js';
import type { HandlerFailurePolicy } from '../interfaces/failure-policies.interface.js';
import type { ChangeStreamTelemetry } from '../telemetry/change-stream-telemetry.js';

export interface DispatchSettings {
  retries: number;
  initialDelayMs: number;
  maxDelayMs: number;
  onFailure: HandlerFailurePolicy;
  deadLetters: DeadLetterStore;
  /** The stream has a user `pipeline`: lifecycle events pass it only to reach the stream itself. */
  hasUserPipeline: boolean;
  /** A database stream: events are routed by their collection; these collections' handlers declared a `pipeline`. */
  routeByCollection?: { withUserPipeline: ReadonlySet<string> };
  /** A deployment stream: events are routed by database and collection to these parts' handlers. */
  routeByNamespace?: { parts: readonly StreamPlan[] };
  /** Called after an event was dead-lettered. */
  onDeadLetter?: (id: string, handler: string) => void;
  telemetry?: ChangeStreamTelemetry;
}
