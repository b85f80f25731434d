import { Logger } from '@nestjs/common';
import { messages } from '../change-stream.messages.js';
import { describeEvent, type EventInFlight } from './change-dispatcher.js';
import { STUCK_CHECK_MAX_INTERVAL_MS, STUCK_CHECK_MIN_INTERVAL_MS } from '../options/defaults.js';

export interface StuckHandlerSettings {
  /** 0 disables the watch. */
  handlerTimeoutMs: number;
  onHandlerTimeout: 'warn' | 'abort';
}

/**
 * A handler that never settles would otherwise leave the stream `open` and healthy forever:
 * past `handlerTimeoutMs` the stream shows `degraded` and the handler and event are logged
 * (and, with `onHandlerTimeout: 'abort'`, the `context.signal` of each call running that long is aborted).
 */
export class StuckHandlerWatch {
  private readonly logger = new Logger('ChangeStreamModule');
  private readonly reported = new WeakSet<EventInFlight>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly key: string,
    private readonly settings: StuckHandlerSettings,
    private readonly inFlight: () => EventInFlight[],
    /** Told the reason while a handler is stuck, null once none is. */
    private readonly onChange: (reason: string | null) => void,
  ) {}

  start(): void {
    const { handlerTimeoutMs } = this.settings;
    if (handlerTimeoutMs <= 0 || this.timer) return;
    this.timer = setInterval(
      () => this.check(),
      Math.max(
        STUCK_CHECK_MIN_INTERVAL_MS,
        Math.min(STUCK_CHECK_MAX_INTERVAL_MS, Math.floor(handlerTimeoutMs / 4)),
      ),
    );
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Public for tests: one look at the events in flight. */
  check(now = Date.now()): void {
    const stuck = this.inFlight().filter(
      (event) => event.pending.size > 0 && now - event.startedAt >= this.settings.handlerTimeoutMs,
    );
    for (const event of stuck) {
      if (!this.reported.has(event)) {
        this.reported.add(event);
        this.logger.warn(
          messages.handlerStuck(
            [...event.pending],
            this.key,
            describeEvent(event.change),
            now - event.startedAt,
            this.settings.onHandlerTimeout,
          ),
        );
      }
      // Each call is timed on its own: a retry (or another handler of the event) gets its full time.
      for (const attempt of event.attempts ?? []) {
        if (
          attempt.abort.signal.aborted ||
          now - attempt.startedAt < this.settings.handlerTimeoutMs
        )
          continue;
        attempt.abort.abort(
          new Error(
            messages.handlerStuck(
              [attempt.handler],
              this.key,
              describeEvent(event.change),
              now - attempt.startedAt,
              'abort',
            ),
          ),
        );
      }
    }
    const oldest = stuck[0];
    this.onChange(
      oldest
        ? messages.handlerStuck(
            [...oldest.pending],
            this.key,
            describeEvent(oldest.change),
            now - oldest.startedAt,
            this.settings.onHandlerTimeout,
          )
        : null,
    );
  }
}
