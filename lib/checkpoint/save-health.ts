import type { Logger } from '@nestjs/common';
import { messages } from '../change-stream.messages.js';
import { backoffDelay } from '../common/backoff.js';
import { errorText } from '../common/errors.js';
import { RETRY_MAX_DELAY_MS, SLOW_SAVE_MS } from '../options/defaults.js';
import type { CheckpointerContext } from './checkpointer-context.js';

/**
 * Whether a stream's saves work: failures are counted and logged (a warning for the first),
 * and `onSaveTrouble` hears once when saving fails or stalls and once when it works again.
 */
export class SaveHealth {
  /** Failed saves since the last one that worked. */
  failures = 0;
  private troubleReported = false;
  private silenced = false;

  constructor(
    private readonly context: CheckpointerContext,
    private readonly logger: Logger,
  ) {}

  /** Reports trouble if a save is still running after `SLOW_SAVE_MS`; clear the timer when it ends. */
  watchSlowSave(): NodeJS.Timeout {
    const slow = setTimeout(
      () => this.reportTrouble(messages.saveStalled(SLOW_SAVE_MS)),
      SLOW_SAVE_MS,
    );
    slow.unref();
    return slow;
  }

  /** A save failed; returns how long to wait before the next one. */
  failed(error: unknown, intervalMs: number): number {
    this.failures++;
    this.reportTrouble(errorText(error));
    if (this.failures === 1)
      this.logger.warn(messages.checkpointFailed(this.context.key, errorText(error)));
    else this.logger.debug(messages.checkpointFailed(this.context.key, errorText(error)));
    return backoffDelay(this.failures, intervalMs, RETRY_MAX_DELAY_MS);
  }

  /** A save worked. */
  stored(): void {
    if (this.failures > 0) this.logger.log(messages.saveRecovered(this.context.key, this.failures));
    this.failures = 0;
    if (this.troubleReported) {
      this.troubleReported = false;
      this.context.onSaveTrouble?.(null);
    }
  }

  /** The checkpointer was disposed: trouble is no longer reported. */
  silence(): void {
    this.silenced = true;
  }

  private reportTrouble(reason: string): void {
    if (this.troubleReported || this.silenced) return;
    this.troubleReported = true;
    this.context.onSaveTrouble?.(reason);
  }
}
