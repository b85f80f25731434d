import { Logger } from '@nestjs/common';
import { messages } from '../change-stream.messages.js';
import type { BackfillStatus } from '../interfaces/backfill.interface.js';
import { BACKFILL_REPORT_EVERY_MS } from '../options/defaults.js';

/** While a backfill runs on this instance, a progress line at a calm pace. */
export class BackfillReporter {
  private readonly logger = new Logger('ChangeStreamBackfill');
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly key: string,
    private readonly read: () => BackfillStatus | null,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), BACKFILL_REPORT_EVERY_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Public for tests. */
  tick(): void {
    const status = this.read();
    if (!status) return;
    const { run, done, total, rate, etaMs } = status;
    this.logger.log(messages.backfillProgress(this.key, run, done, total, rate, etaMs));
  }
}
