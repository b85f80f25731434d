import { backfillTargets, isBackfillEvent } from '../backfill/backfill-event.js';
import type { ChangeEvent } from '../common/change-event.js';
import type { ChangeHandler } from './change-handler.js';
import type { DispatchSettings } from './dispatch-settings.js';
import { isLifecycleEvent } from '../common/change-event.js';

/** Which of a stream's handlers want an event, computed once per operation type. */
export class HandlerRoutes {
  private readonly byOperationType = new Map<string, ChangeHandler[]>();
  private readonly batchesByOperationType = new Map<string, ChangeHandler[]>();
  /** The stream has `@OnChangeBatch` handlers. */
  readonly batching: boolean;
  private lastTargets: ReadonlySet<string> | undefined;
  private targeted: { perEvent: ChangeHandler[]; batches: ChangeHandler[] } = {
    perEvent: [],
    batches: [],
  };

  constructor(
    private readonly handlers: ChangeHandler[],
    private readonly settings: Pick<DispatchSettings, 'hasUserPipeline'>,
  ) {
    this.batching = handlers.some((h) => h.batch !== undefined);
  }

  /** The per-event handlers (`@OnChange`) that want `change`. */
  interested(change: ChangeEvent): ChangeHandler[] {
    if (isBackfillEvent(change)) return this.backfillTargets(change).perEvent;
    let interested = this.byOperationType.get(change.operationType);
    if (!interested) {
      interested = this.handlers.filter((h) => !h.batch && this.wants(h, change));
      this.byOperationType.set(change.operationType, interested);
    }
    return interested;
  }

  /** The batch handlers (`@OnChangeBatch`) that want `change`. */
  batchesFor(change: ChangeEvent): ChangeHandler[] {
    if (isBackfillEvent(change)) return this.backfillTargets(change).batches;
    let interested = this.batchesByOperationType.get(change.operationType);
    if (!interested) {
      interested = this.handlers.filter((h) => h.batch && this.wants(h, change));
      this.batchesByOperationType.set(change.operationType, interested);
    }
    return interested;
  }

  /** A backfill event goes to its run's handlers only (declared with `backfill`), whatever their operation types. */
  private backfillTargets(change: unknown): {
    perEvent: ChangeHandler[];
    batches: ChangeHandler[];
  } {
    const targets = backfillTargets(change);
    if (targets !== this.lastTargets) {
      this.lastTargets = targets;
      const run = this.handlers.filter((h) => h.options.backfill && targets?.has(h.name));
      this.targeted = {
        perEvent: run.filter((h) => !h.batch),
        batches: run.filter((h) => h.batch),
      };
    }
    return this.targeted;
  }

  /**
   * Operation types stay per handler. Lifecycle events (drop, rename, …) always pass the server
   * filter so the stream sees them; a handler gets them if it asked: it lists them, or it lists
   * no types and the stream has no user pipeline that would have filtered them out.
   */
  private wants(handler: ChangeHandler, change: ChangeEvent): boolean {
    const types = handler.options.operationTypes as readonly string[] | undefined;
    if (types !== undefined) return types.includes(change.operationType);
    return !(this.settings.hasUserPipeline && isLifecycleEvent(change.operationType));
  }
}
