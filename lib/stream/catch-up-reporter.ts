import { Logger } from '@nestjs/common';
import { messages } from '../change-stream.messages.js';
import { CATCH_UP_REPORT_BEHIND_MS, CATCH_UP_REPORT_EVERY_MS } from '../options/defaults.js';

/**
 * While a stream works through a backlog, says so at a calm pace: how many events it handled,
 * how far behind it is, and how fast it catches up.
 */
export class CatchUpReporter {
  private readonly logger = new Logger('ChangeStreamModule');
  private timer: NodeJS.Timeout | undefined;
  private lastHandled = 0;
  private lastAt = 0;

  constructor(
    private readonly key: string,
    private readonly read: () => {
      handled: number;
      lagMs: number | null;
      inFlightForMs?: number | null;
      /** The stream's history headroom (see `StreamHeadroom`), when known. */
      headroomMs?: number | null;
    },
  ) {}

  start(): void {
    if (this.timer) return;
    this.lastAt = Date.now();
    this.timer = setInterval(() => this.tick(), CATCH_UP_REPORT_EVERY_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Public for tests. */
  tick(now = Date.now()): void {
    const { handled, lagMs, inFlightForMs, headroomMs = null } = this.read();
    const finished = handled - this.lastHandled;
    const rate = finished / Math.max(1, (now - this.lastAt) / 1000);
    this.lastHandled = handled;
    this.lastAt = now;
    if (lagMs === null || lagMs < CATCH_UP_REPORT_BEHIND_MS) return;
    // Nothing finished: that is not catching up at 0/s, it is a handler that does not return.
    if (finished === 0 && inFlightForMs)
      this.logger.warn(messages.fallingBehind(this.key, handled, lagMs, inFlightForMs, headroomMs));
    else this.logger.log(messages.catchingUp(this.key, handled, lagMs, rate, headroomMs));
  }
}
