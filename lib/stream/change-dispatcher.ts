import { Logger } from '@nestjs/common';
import { HandlerFailedError } from '../change-stream.errors.js';
import { messages } from '../change-stream.messages.js';
import type { ChangeContext } from '../interfaces/change-context.interface.js';
import { backoffDelay, sleep } from './backoff.js';
import type { ChangeHandler } from './change-handler.js';

export interface DispatchSettings {
  retries: number;
  initialDelayMs: number;
  maxDelayMs: number;
}

export type DispatchOutcome = { ok: true } | { ok: false; error: HandlerFailedError } | { ok: false; aborted: true };

type ChangeEvent = { _id: unknown; operationType: string };

/** Runs the handlers of one stream for one event, each with its own retries. */
export class ChangeDispatcher {
  private readonly logger = new Logger(ChangeDispatcher.name);

  constructor(
    private readonly handlers: ChangeHandler[],
    private readonly settings: DispatchSettings,
    private readonly context: Omit<ChangeContext, 'handler' | 'attempt'>,
    private readonly streamKey: string,
  ) {}

  /** Succeeds only when every interested handler succeeded; `aborted` means shutdown interrupted a retry wait. */
  async dispatch(change: ChangeEvent, signal: AbortSignal): Promise<DispatchOutcome> {
    const interested = this.handlers.filter((h) => wants(h, change.operationType));
    const outcomes = await Promise.all(interested.map((h) => this.runWithRetries(h, change, signal)));
    return outcomes.find((o) => !o.ok) ?? { ok: true };
  }

  private async runWithRetries(handler: ChangeHandler, change: ChangeEvent, signal: AbortSignal): Promise<DispatchOutcome> {
    const retries = handler.options.retries ?? this.settings.retries;
    for (let attempt = 1; ; attempt++) {
      try {
        await handler.invoke(change, { ...this.context, handler: handler.name, attempt } satisfies ChangeContext);
        return { ok: true };
      } catch (error) {
        const eventId = JSON.stringify(change._id);
        if (attempt > retries) {
          const text = messages.handlerFailed(handler.name, this.streamKey, eventId, attempt, errorText(error));
          this.logger.error(text, (error as Error)?.stack);
          return { ok: false, error: new HandlerFailedError(text, error) };
        }
        const delay = backoffDelay(attempt, this.settings.initialDelayMs, this.settings.maxDelayMs);
        this.logger.warn(messages.handlerAttemptFailed(handler.name, eventId, attempt, delay));
        this.logger.warn((error as Error)?.stack ?? String(error));
        if (!(await sleep(delay, signal))) return { ok: false, aborted: true };
      }
    }
  }
}

function wants(handler: ChangeHandler, operationType: string): boolean {
  const types = handler.options.operationTypes as string[] | undefined;
  return types === undefined || types.includes(operationType);
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
