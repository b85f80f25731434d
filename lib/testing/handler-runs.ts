import type { ChangeContext } from '../interfaces/change-context.interface.js';
import type { DeadLetter, DeadLetterStore } from '../interfaces/dead-letter.interface.js';
import type { HandlerFailurePolicy } from '../interfaces/failure-policies.interface.js';
import type { InMemoryDeadLetterStore } from '../memory/in-memory-dead-letter.store.js';
import type { ChangeHandler } from '../stream/change-handler.js';
import type { HandlerRun } from './change-outcome.js';

/** What one handler did with the event being dispatched, filled in by the wrappers below. */
interface RunRecord {
  contexts: ChangeContext[];
  errors: unknown[];
  succeeded: boolean;
  recorded: boolean;
  deadLetterId?: string;
}

/** One event's records: handler name → what it did. */
export type EventRuns = Map<string, RunRecord>;

/**
 * Records what each handler did with each event being dispatched: the handlers, failure
 * callbacks and dead-letter store it wraps note each call's context and outcome.
 */
export class HandlerRuns {
  /** The event being dispatched → its handlers' records (events are fresh objects per emission). */
  private readonly records = new Map<object, EventRuns>();

  /** Records `change`'s runs until `end(change)`. */
  begin(change: object): EventRuns {
    const runs: EventRuns = new Map();
    this.records.set(change, runs);
    return runs;
  }

  end(change: object): void {
    this.records.delete(change);
  }

  private runOf(change: unknown, handler: string): RunRecord | undefined {
    const runs = this.records.get(change as object);
    if (!runs) return undefined;
    let run = runs.get(handler);
    if (!run)
      runs.set(handler, (run = { contexts: [], errors: [], succeeded: false, recorded: false }));
    return run;
  }

  /** The handler as production calls it, noting each call's context and outcome. */
  recorded(handler: ChangeHandler): ChangeHandler {
    const { onFailure } = handler.options;
    return {
      ...handler,
      options:
        onFailure === undefined
          ? handler.options
          : { ...handler.options, onFailure: this.recordedPolicy(onFailure) },
      invoke: async (change, context) => {
        // A batch handler's call counts for each event of the batch.
        const events = handler.batch ? (change as unknown[]) : [change];
        const runs = events.map((event) => this.runOf(event, handler.name));
        for (const run of runs) run?.contexts.push(snapshot(context as ChangeContext));
        try {
          const result = await handler.invoke(change, context);
          for (const run of runs) if (run) run.succeeded = true;
          return result;
        } catch (error) {
          for (const run of runs) {
            if (!run) continue;
            run.succeeded = false;
            run.errors.push(error);
          }
          throw error;
        }
      },
    };
  }

  /** A failure callback notes that it resolved (the failure counts as recorded); `'stop'` and `'dead-letter'` as they are. */
  recordedPolicy(policy: HandlerFailurePolicy): HandlerFailurePolicy {
    if (typeof policy !== 'function') return policy;
    return async (failure) => {
      await policy(failure);
      const run = this.runOf(failure.change, failure.context.handler);
      if (run) run.recorded = true;
    };
  }

  /** `store`, noting which handler's letter was stored for which event. */
  recordingDeadLetters(store: InMemoryDeadLetterStore): DeadLetterStore {
    return {
      durable: store.durable,
      add: async (letter: DeadLetter) => {
        await store.add(letter);
        const run = this.runOf(letter.change, letter.handler);
        if (run) run.deadLetterId = letter.id;
      },
      list: () => store.list(),
      get: (id) => store.get(id),
      remove: (id) => store.remove(id),
    };
  }
}

/**
 * The context's values with the same `signal`, which is not enumerable: Jest crashes printing an
 * AbortSignal (jestjs/jest#13963), so a failing assertion on an outcome could not show its diff.
 */
function snapshot(context: ChangeContext): ChangeContext {
  const { signal, ...values } = context;
  return Object.defineProperty(values, 'signal', {
    value: signal,
    enumerable: false,
  }) as ChangeContext;
}

export function summarize(handler: string, run: RunRecord): HandlerRun {
  const status = run.succeeded
    ? 'succeeded'
    : run.deadLetterId
      ? 'dead-lettered'
      : run.recorded
        ? 'recorded'
        : 'failed';
  return {
    handler,
    status,
    attempts: run.contexts.length,
    contexts: run.contexts,
    errors: run.errors,
    ...(run.deadLetterId && { deadLetterId: run.deadLetterId }),
  };
}
